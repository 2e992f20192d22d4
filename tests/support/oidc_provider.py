"""A real OpenID Connect provider for tests, built from Authlib's server side:
discovery, JWKS, authorization endpoint (auto-consents for one configured user),
token endpoint with client authentication, PKCE (S256) and nonce-bearing ID tokens
signed with RS256. Runs in a uvicorn thread, like the OpenAI test server."""

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Authlib refuses plain-HTTP endpoints unless told this is a test.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in ("openid", "email", "profile"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class ProviderState:
    issuer: str = ""
    client: Client | None = None
    user: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    )
    codes: dict[str, Code] = field(default_factory=dict)
    # What the provider saw, for assertions: the PKCE methods of authorization requests.
    challenge_methods: list[str | None] = field(default_factory=list)


def _build_server(state: ProviderState) -> AuthorizationServer:
    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            data = request.payload.data
            state.challenge_methods.append(data.get("code_challenge_method"))
            state.codes[code] = Code(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.payload.scope,
                user=request.user,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            return found if found and found.client_id == client.get_client_id() else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> dict[str, Any]:
            return authorization_code.user

    class IdTokens(OpenIDCode):
        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return state.key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-key"}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            return {"iss": state.issuer, "aud": [client.get_client_id()]}

        def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
            return False

        def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
            return UserInfo(
                sub=user["sub"], email=user["email"], email_verified=True, name=user["name"]
            )

    class Server(AuthorizationServer):
        def query_client(self, client_id: str) -> Client | None:
            client = state.client
            return client if client and client.client_id == client_id else None

        def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
            pass

        def handle_response(self, status: int, body: Any, headers: Any) -> Response:
            if isinstance(body, dict):
                return JSONResponse(body, status_code=status, headers=dict(headers))
            return Response(body, status_code=status, headers=dict(headers))

        def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
            pass

        def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
            return request  # built from the Starlette request by `_oauth_request`

    server = Server(scopes_supported=["openid", "email", "profile"])
    server.register_token_generator(
        "default", BearerTokenGenerator(lambda *_args, **_kw: secrets.token_urlsafe(32))
    )
    server.register_grant(CodeGrant, [IdTokens(require_nonce=True), CodeChallenge(required=True)])
    return server


class _Request(OAuth2Request):
    def __init__(self, request: Request, data: dict[str, str]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self.payload = BasicOAuth2Payload(data)
        self._args = dict(request.query_params)
        self._form = {k: v for k, v in data.items() if k not in self._args}

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def _oauth_request(request: Request) -> _Request:
    data = dict(request.query_params)
    if request.method == "POST":
        form = parse_qsl((await request.body()).decode())
        data.update(dict(form))
    return _Request(request, data)


def create_app(state: ProviderState) -> Starlette:
    server = _build_server(state)

    async def discovery(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": state.issuer,
                "authorization_endpoint": state.issuer + "/authorize",
                "token_endpoint": state.issuer + "/token",
                "jwks_uri": state.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [state.key.as_dict(private=False)]})

    async def authorize(request: Request) -> Response:
        # The test user is already signed in at the provider and consents.
        response: Response = server.create_authorization_response(
            request=await _oauth_request(request), grant_user=state.user
        )
        return response

    async def token(request: Request) -> Response:
        response: Response = server.create_token_response(await _oauth_request(request))
        return response

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ]
    )


@contextmanager
def serve_oidc(redirect_uri: str, user: dict[str, Any] | None = None) -> Iterator[ProviderState]:
    """Run the provider on a free port with one client (`agentplane` / `s3cret`)."""
    state = ProviderState(
        client=Client("agentplane", "s3cret", [redirect_uri]),
        user=user
        or {"sub": f"u-{uuid.uuid4().hex[:8]}", "email": "alice@example.com", "name": "Alice"},
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state.issuer = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with closing(socket.create_connection(("127.0.0.1", port), timeout=0.5)):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("test OIDC provider did not start") from None
                time.sleep(0.02)
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
