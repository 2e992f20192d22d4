"""Content negotiation for GraphQL over HTTP: which response media type an Accept asks for."""

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def _weights(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            weights[media.lower()] = max(quality, weights.get(media.lower(), 0.0))
    return weights


def wants_graphql_response_json(accept: str | None) -> bool:
    """True when the client accepts `application/graphql-response+json` at least as
    much as `application/json` (the spec prefers the new type when both are listed).
    No Accept, `*/*` or `application/json` alone keep the legacy `application/json`."""
    if not accept:
        return False
    weights = _weights(accept)
    wanted = weights.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return wanted > 0 and wanted >= weights.get("application/json", 0.0)
