"""What an event cost: its tokens times its model's price (USD per million input and output tokens).

:data:`DEFAULT_PRICES` holds the public list prices of common hosted models; ``DRIFTLOOP_PRICES`` (a JSON object
model → ``{"input": USD, "output": USD}``, or ``null`` to drop a default) is laid over it. A model is found by its
name, lower-cased, without a provider prefix (``openai/gpt-4o`` is ``gpt-4o``), or else by the longest priced name
it starts with followed by ``-`` (a dated snapshot ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``). A model
without a price (self-hosted ones, say) has no cost: the event has no ``cost_usd`` feature.

>>> table = PriceTable.of({"my-llama": Price(input=0.2, output=0.6)})
>>> table.cost("gpt-4o-mini-2024-07-18", prompt_tokens=1000, completion_tokens=500)  # 1000·0.15 + 500·0.6, per 1M
0.00045
>>> table.cost("my-llama", 1_000_000, 0), table.cost("llama-3.1-8b", 100, 100) is None
(0.2, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """A model's price in USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0, description="USD per 1M prompt (input) tokens")
    output: float = Field(ge=0, description="USD per 1M completion (output) tokens")


def _prices(table: dict[str, tuple[float, float]]) -> dict[str, Price]:
    return {name: Price(input=pin, output=pout) for name, (pin, pout) in table.items()}


DEFAULT_PRICES: dict[str, Price] = _prices(
    {  # public list prices, USD per 1M input / output tokens (2025); DRIFTLOOP_PRICES overrides any of them
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o1": (15.00, 60.00),
        "o1-mini": (1.10, 4.40),
        "o3": (2.00, 8.00),
        "o3-mini": (1.10, 4.40),
        "o4-mini": (1.10, 4.40),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-3-7-sonnet": (3.00, 15.00),
        "claude-sonnet-4": (3.00, 15.00),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-opus": (15.00, 75.00),
        "claude-opus-4": (15.00, 75.00),
        "gemini-1.5-pro": (1.25, 5.00),
        "gemini-1.5-flash": (0.075, 0.30),
        "gemini-2.0-flash": (0.10, 0.40),
        "gemini-2.5-pro": (1.25, 10.00),
        "gemini-2.5-flash": (0.30, 2.50),
        "mistral-large": (2.00, 6.00),
        "mistral-small": (0.20, 0.60),
    }
)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name (lower-case); see the module docstring for how a model is found."""

    prices: Mapping[str, Price]

    @classmethod
    def of(cls, overrides: Mapping[str, Price | None] | None = None) -> PriceTable:
        """:data:`DEFAULT_PRICES` with ``overrides`` laid over it (``None``: the model has no price)."""
        merged: dict[str, Price | None] = {**DEFAULT_PRICES, **{k.lower(): v for k, v in (overrides or {}).items()}}
        return cls({name: price for name, price in merged.items() if price is not None})

    def price(self, model: str) -> Price | None:
        """The price of ``model``, or None when it has none.

        >>> table = PriceTable.of()
        >>> table.price("OpenAI/GPT-4o") == table.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
        True
        >>> table.price("o3-mini-high") == DEFAULT_PRICES["o3-mini"], table.price("gpt-4o1") is None
        (True, True)
        """
        name = model.lower().rsplit("/", 1)[-1]
        while name:
            if name in self.prices:
                return self.prices[name]
            cut = name.rfind("-")
            name = name[:cut] if cut > 0 else ""
        return None

    def cost(self, model: str, prompt_tokens: float, completion_tokens: float) -> float | None:
        """USD that ``model`` charges for the tokens, or None when it has no price."""
        price = self.price(model)
        if price is None:
            return None
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
