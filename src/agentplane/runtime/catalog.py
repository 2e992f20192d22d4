"""The model catalog: which models exist, who serves them, and their list prices."""

from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)
# Costs are stored with 10 decimal places; rounding here keeps every sum exact.
COST_QUANTUM = Decimal("1e-10")


@dataclass(frozen=True)
class ModelInfo:
    id: str  # "<provider>/<model>"
    provider: str
    input_usd_per_mtok: Decimal | None  # None: no known price (usage is recorded as unpriced)
    output_usd_per_mtok: Decimal | None
    label: str = ""

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def priced(self) -> bool:
        return self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        if not self.priced:
            return Decimal(0)
        assert self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None
        total = self.input_usd_per_mtok * input_tokens + self.output_usd_per_mtok * output_tokens
        return (total / MILLION).quantize(COST_QUANTUM)


_DEMO = "test/demo model: deterministic, offline, nominal price"
CATALOG: dict[str, ModelInfo] = {
    m.id: m
    for m in [
        ModelInfo("scripted/echo", "scripted", Decimal("0.50"), Decimal("1.50"), _DEMO),
        ModelInfo("scripted/agent", "scripted", Decimal("0.50"), Decimal("1.50"), _DEMO),
        ModelInfo("openai/gpt-4o-mini", "openai", Decimal("0.15"), Decimal("0.60")),
        ModelInfo("openai/gpt-4o", "openai", Decimal("2.50"), Decimal("10.00")),
        ModelInfo("openai/gpt-4.1-mini", "openai", Decimal("0.40"), Decimal("1.60")),
        ModelInfo("openai/gpt-4.1", "openai", Decimal("2.00"), Decimal("8.00")),
        # Listed (not enabled) so agents documented with them (e.g. Kubiya's examples) can be
        # configured; no Anthropic provider is built in yet, so their runs fail clearly.
        ModelInfo("anthropic/claude-sonnet-4-5", "anthropic", Decimal("3.00"), Decimal("15.00")),
        ModelInfo("anthropic/claude-haiku-4-5", "anthropic", Decimal("1.00"), Decimal("5.00")),
    ]
}
# The providers the runtime builds (providers.build_providers), and those of them that
# take an API key (which a tenant may set for itself).
PROVIDERS = frozenset({"scripted", "openai"})
KEYED_PROVIDERS = frozenset({"openai"})
# Providers that serve any model name (self-hosted vLLM, Ollama, LiteLLM behind the
# OpenAI-compatible API); models missing from the catalog run unpriced.
OPEN_PROVIDERS = {"openai"}


def lookup(model_id: str) -> ModelInfo | None:
    """The catalog entry for `model_id`, or an unpriced one for an open provider."""
    if model_id in CATALOG:
        return CATALOG[model_id]
    provider, sep, name = model_id.partition("/")
    if sep and name and provider in OPEN_PROVIDERS:
        return ModelInfo(model_id, provider, None, None, "not in catalog: unpriced")
    return None


def servable(model: ModelInfo) -> bool:
    """A provider here runs it (Kubiya's `enabled`)."""
    return model.provider in PROVIDERS
