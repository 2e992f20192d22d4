"""GraphQL for principals: users read, renamed, expired and revoked; tokens minted for
them; single roles and role assignments; the signed-in user and their personal tokens.

What the OpsClaw IAM and Koda auth REST routes already did, on the same resolvers
(`tests/test_graphql_parity.py` keeps the two in step). Mixed into `Query`/`Mutation`.
"""

from datetime import datetime

import strawberry
from strawberry.types import Info

from agentplane.resolvers import accounts, roles, tokens, users
from agentplane.schema.context import Context
from agentplane.schema.identity import RoleAssignment, RoleDefinition, User, UserPayload
from agentplane.schema.types import AccessToken, Connection


@strawberry.input
class UpdateUserInput:
    id: strawberry.ID
    email: str | None = None
    display_name: str | None = None
    not_after: datetime | None = strawberry.field(
        default=None,
        description="The account stops working after this (with a timezone offset); "
        "its tokens then expire no later than that",
    )
    clear_not_after: bool = strawberry.field(
        default=False, description="Remove the expiry (ignored when `notAfter` is given)"
    )


@strawberry.input
class RevokeUserInput:
    id: strawberry.ID


@strawberry.input
class CreateUserTokenInput:
    name: str
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user it acts for; omit for your own (signed-in users)"
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="Default in 30 days; never after the user's `notAfter`"
    )


@strawberry.type
class UserTokenPayload:
    token: AccessToken
    plain_text_token: str = strawberry.field(description="Shown once; only a hash is stored")


@strawberry.input
class CreatePrincipalInput:
    email: str
    role: str
    tenant: str | None = strawberry.field(
        default=None, description="Tenant name; defaults to yours (platform admins: omit for all)"
    )
    display_name: str = ""
    not_after: datetime | None = None


@strawberry.type
class CreatePrincipalPayload:
    user: User
    token: AccessToken
    plain_text_token: str = strawberry.field(description="Shown once; only a hash is stored")


@strawberry.type
class IamQuery:
    @strawberry.field(description="One user you may see (NOT_FOUND otherwise).")
    async def user(self, info: Info[Context, None], id: strawberry.ID) -> User:
        return await users.get_user(info.context.actor, id)  # type: ignore[return-value]

    @strawberry.field(description="The signed-in user (null for tokens not acting for one).")
    async def me(self, info: Info[Context, None]) -> User | None:
        return await accounts.get_user(info.context.actor)  # type: ignore[return-value]

    @strawberry.field(description="One role definition by name.")
    async def role(self, info: Info[Context, None], name: str) -> RoleDefinition:
        return await roles.get_role(info.context.actor, name)  # type: ignore[return-value]

    @strawberry.field(description="One role assignment by ID.")
    async def role_assignment(self, info: Info[Context, None], id: strawberry.ID) -> RoleAssignment:
        return await roles.get_assignment(info.context.actor, id)  # type: ignore[return-value]

    @strawberry.field(
        description="The tokens acting for the signed-in user, newest first (revoked included)."
    )
    async def personal_tokens(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[AccessToken]:
        return Connection.of(await tokens.list_personal_tokens(info.context.actor, first, after))


@strawberry.type
class IamMutation:
    @strawberry.mutation(
        description="Rename a user, or set or clear when the account expires; its tokens "
        "then expire no later than that."
    )
    async def update_user(self, info: Info[Context, None], input: UpdateUserInput) -> UserPayload:
        user = await users.update_user(
            info.context.actor,
            input.id,
            email=input.email,
            display_name=input.display_name,
            not_after=input.not_after,
            clear_not_after=input.clear_not_after,
        )
        return UserPayload(user=user)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Disable an account: its roles go, its sessions and tokens end at once."
    )
    async def revoke_user(self, info: Info[Context, None], input: RevokeUserInput) -> UserPayload:
        user = await users.revoke_user(info.context.actor, input.id)
        return UserPayload(user=user)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="A token acting for a user, with the role the user holds now: your own "
        "(omit `userId`) or one for a user you manage."
    )
    async def create_user_token(
        self, info: Info[Context, None], input: CreateUserTokenInput
    ) -> UserTokenPayload:
        token, plaintext = await users.mint_user_token(
            info.context.actor, user_id=input.user_id, name=input.name, expires_at=input.expires_at
        )
        return UserTokenPayload(token=token, plain_text_token=plaintext)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="A principal: a user without a password holding a role, and its first token."
    )
    async def create_principal(
        self, info: Info[Context, None], input: CreatePrincipalInput
    ) -> CreatePrincipalPayload:
        user, token, plaintext = await users.create_principal(
            info.context.actor,
            email=input.email,
            role=input.role,
            tenant=input.tenant,
            display_name=input.display_name,
            not_after=input.not_after,
        )
        return CreatePrincipalPayload(
            user=user,  # type: ignore[arg-type]
            token=token,  # type: ignore[arg-type]
            plain_text_token=plaintext,
        )
