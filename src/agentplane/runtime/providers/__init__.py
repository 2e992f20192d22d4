"""Model providers behind one interface, chosen by the model ID's `provider/` prefix.
Part of runtime/: imports core/ (settings, pricing) only; never a transport."""

from agentplane.core.config import Settings
from agentplane.runtime.providers.base import Provider
from agentplane.runtime.providers.openai_compat import OpenAICompatProvider
from agentplane.runtime.providers.scripted import ScriptedProvider


def build_providers(settings: Settings) -> dict[str, Provider]:
    """One per name in `catalog.PROVIDERS`."""
    return {
        "scripted": ScriptedProvider(settings.scripted_delay_ms),
        "openai": OpenAICompatProvider(settings.openai_base_url, settings.openai_api_key),
    }
