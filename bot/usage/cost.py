"""What tokens cost, from the policy's `prices` (USD per million tokens)."""

from __future__ import annotations

from bot.llm.types import Usage
from bot.policy import Price

PER_TOKENS = 1_000_000


def cost_usd(usage: Usage, price: Price | None) -> float:
    """The cost of `usage`; cached prompt tokens at the cached price, if there is one.

    Reasoning tokens are part of the completion tokens and cached tokens part of the
    prompt tokens (as the API counts them), so neither is charged twice.
    """
    if price is None:
        return 0.0
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = price.prompt if price.cached is None else price.cached
    return (
        (usage.prompt_tokens - cached) * price.prompt
        + cached * cached_price
        + usage.completion_tokens * price.completion
    ) / PER_TOKENS
