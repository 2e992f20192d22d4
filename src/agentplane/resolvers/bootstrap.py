"""First start: make sure someone can log in."""

from agentplane.resolvers.tokens import has_any_token, mint_token


async def bootstrap_admin_token() -> str | None:
    """On an installation with no tokens at all, mint a platform-admin token.

    Returns the plaintext (to print once) or None when tokens already exist.
    """
    if await has_any_token():
        return None
    _, plaintext = await mint_token(tenant_id=None, role="platform_admin", name="bootstrap")
    return plaintext
