"""GraphQL first: every resolver function a REST route calls is reachable from GraphQL.

Statically, from the source: the `resolvers.<module>.<function>` references of
`rest_compat/` against those of the GraphQL transport (`schema/` and `http/graphql_app.py`).
A REST-only call needs an entry below, with its reason; a stale entry fails too.
"""

import ast
import importlib
import inspect
from pathlib import Path

import agentplane

SRC = Path(agentplane.__file__).parent
REST = [SRC / "rest_compat"]
GRAPHQL = [SRC / "schema", SRC / "http" / "graphql_app.py"]

_SIGN_IN = "cookie sign-in for browsers (sets or clears the session cookie and CSRF token)"
_DEVICE = "OAuth device authorization grant (RFC 8628): form-encoded HTTP endpoints by spec"
_OIDC = "OIDC login: browser redirects to and from the identity provider"
# Transport-specific: no GraphQL field could serve them.
REST_ONLY = {
    "accounts.has_users": "the sign-in page's first-run switch, asked before any credential",
    "accounts.register_first_owner": _SIGN_IN,
    "accounts.login_password": _SIGN_IN,
    "accounts.create_session": _SIGN_IN,
    "accounts.logout": _SIGN_IN + "; GraphQL ends a session with revokeSession",
    "auth.credential_or_none": "reads a bearer off a sign-in form request (" + _SIGN_IN + ")",
    "auth.user_actor": _SIGN_IN + ": the actor of the user who just signed in",
    "auth.account_active": _SIGN_IN + ": refuses a disabled or expired account",
    "device.start": _DEVICE,
    "device.pending_grant": _DEVICE,
    "device.approve": _DEVICE + ", approved on a browser page",
    "device.poll": _DEVICE,
    "oidc.configured": _OIDC,
    "oidc.start_login": _OIDC,
    "oidc.finish_login": _OIDC,
    "health.readiness": "the /readyz probe of load balancers (plain HTTP status)",
    "server.prometheus_text": "Prometheus text exposition at /metrics",
    "worker_queues.parse_queue_id": "Kubiya's `worker_queue_id` body field must be a UUID; "
    "GraphQL's workerQueue(id) answers NOT_FOUND for a malformed one",
}
# REST dialects page by limit/offset or load one object at a time; GraphQL reaches the
# same rows through the cursor-paginated (or batched) resolver named here.
SAME_AS = {
    "agents.list_agents_offset": "agents.list_agents",
    "roles.list_assignments_page": "roles.list_assignments",
    "users.list_users_page": "roles.list_users",
    "usage.list_usage_records": "budgets.list_usage",
    "usage.task_usage": "usage.tasks_usage",
    "traces.list_steps": "steps.load_steps",
    "tools.all_mcp_servers": "tools.list_mcp_servers",
    # a synchronous REST call's "waits for approval X" error; GraphQL reads Task.pendingApproval
    "approvals.approval_required": "approvals.load_pending",
}


def _resolver_refs(roots: list[Path]) -> dict[str, set[str]]:
    """`module.function` → the files that reference it, for functions of `resolvers/`."""
    found: dict[str, set[str]] = {}
    files = [f for root in roots for f in ([root] if root.is_file() else root.rglob("*.py"))]
    for path in files:
        tree = ast.parse(path.read_text())
        modules: dict[str, str] = {}  # local name → resolvers module
        names: dict[str, tuple[str, str]] = {}  # local name → (module, attribute)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "agentplane.resolvers":
                modules.update({a.asname or a.name: a.name for a in node.names})
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "agentplane.resolvers."
            ):
                module = (node.module or "").split(".")[2]
                names.update({a.asname or a.name: (module, a.name) for a in node.names})
        for node in ast.walk(tree):
            ref = None
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in modules:
                    ref = (modules[node.value.id], node.attr)
            elif isinstance(node, ast.Name) and node.id in names:
                ref = names[node.id]
            if ref is not None and _is_function(*ref):
                found.setdefault(".".join(ref), set()).add(str(path.relative_to(SRC)))
    return found


def _is_function(module: str, name: str) -> bool:
    value = getattr(importlib.import_module(f"agentplane.resolvers.{module}"), name, None)
    return inspect.isfunction(value)


async def test_every_resolver_a_rest_route_calls_has_a_graphql_path() -> None:
    # Given the resolver functions each transport references
    rest, graphql = _resolver_refs(REST), _resolver_refs(GRAPHQL)
    assert len(rest) >= 60 and len(graphql) >= 60  # the scan sees both transports
    # When we take away those GraphQL reaches and the listed exceptions
    missing = {
        ref: sorted(files)
        for ref, files in rest.items()
        if ref not in graphql and ref not in REST_ONLY and ref not in SAME_AS
    }
    # Then nothing is left: REST has no capability GraphQL lacks
    assert not missing, f"REST-only resolver calls (add a GraphQL field or mutation): {missing}"


async def test_the_exceptions_are_current() -> None:
    rest, graphql = _resolver_refs(REST), _resolver_refs(GRAPHQL)
    for ref in [*REST_ONLY, *SAME_AS]:
        assert ref in rest, f"{ref} is no longer called by REST: drop its entry"
        assert ref not in graphql, f"{ref} is reachable from GraphQL now: drop its entry"
    for ref, twin in SAME_AS.items():
        assert twin in graphql, f"{ref}: its GraphQL twin {twin} is not reachable from GraphQL"
