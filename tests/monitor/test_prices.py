"""Cost per event: the price table (defaults, DRIFTLOOP_PRICES laid over them, how a model name is found), the
``cost_usd`` feature, and a cost drift on real traffic opening a cost-drift incident."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from devtools.traffic import sharegpt_pairs
from driftloop.settings import Settings
from monitor.events import TrafficEvent
from monitor.features import estimate_tokens, extract_features
from monitor.incidents import IncidentKind
from monitor.prices import DEFAULT_PRICES, Price, PriceTable
from monitor.segments import SegmentMonitor
from monitor.stream import StreamStep
from tests.factories import stream_settings


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest priced name, not gpt-4o
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("o3-mini", "o3-mini"),
        ("gpt-4o1", None),  # a name only starts a priced one at a dash
        ("llama-3.1-8b", None),
        ("", None),
    ],
)
def test_a_model_is_priced_by_its_name_its_snapshot_or_not_at_all(model: str, priced_as: str | None) -> None:
    assert PriceTable.of().price(model) == (DEFAULT_PRICES[priced_as] if priced_as else None)


def test_overrides_add_replace_and_drop_prices() -> None:
    table = PriceTable.of({"My-Llama": Price(input=0.2, output=0.6), "gpt-4o": Price(input=1, output=2), "o3": None})
    assert table.price("my-llama-8b") == Price(input=0.2, output=0.6)
    assert table.cost("gpt-4o-2024-08-06", 1_000_000, 1_000_000) == 3.0
    assert table.price("o3") is None and table.price("o3-mini") == DEFAULT_PRICES["o3-mini"]


def test_cost_is_the_tokens_at_the_price_estimated_when_the_event_has_no_counts() -> None:
    counted = TrafficEvent(
        id="1", model="gpt-4o", prompt="hi", response="hello", prompt_tokens=2000, completion_tokens=500
    )
    assert extract_features(counted, "en")["cost_usd"] == pytest.approx((2000 * 2.5 + 500 * 10) / 1e6)
    uncounted = counted.model_copy(update={"prompt_tokens": None, "completion_tokens": None, "prompt": "x" * 400})
    assert extract_features(uncounted, "en")["cost_usd"] == pytest.approx((100 * 2.5 + 2 * 10) / 1e6)  # 4 chars a token
    assert "cost_usd" not in extract_features(counted.model_copy(update={"model": "llama-3.1-8b"}), "en")


def test_the_stream_step_measures_cost_at_its_own_prices() -> None:
    events = [TrafficEvent(id="1", model="my-llama", prompt="hi", prompt_tokens=1_000_000, completion_tokens=0)]
    priced = StreamStep(stream_settings(), {}, {}, prices=PriceTable.of({"my-llama": Price(input=0.2, output=0.6)}))
    assert priced.features(events)[0]["cost_usd"] == pytest.approx(0.2)
    assert "cost_usd" not in StreamStep(stream_settings(), {}, {}).features(events)[0]


def test_prices_are_set_as_json_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_PRICES", '{"my-llama": {"input": 0.2, "output": 0.6}, "gpt-4o": null}')
    table = Settings(_env_file=None).price_table()
    assert table.price("my-llama") == Price(input=0.2, output=0.6) and table.price("gpt-4o-2024-08-06") is None
    monkeypatch.setenv("DRIFTLOOP_PRICES", '{"my-llama": {"input": -1, "outptu": 2}}')
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert {".".join(map(str, e["loc"])) for e in error.value.errors()} == {
        "prices.my-llama.input",
        "prices.my-llama.output",
        "prices.my-llama.outptu",
    }


def test_cost_drift_is_its_own_kind_at_warning() -> None:
    """On real ShareGPT traffic to gpt-4o-mini, a tokenizer change: the gateway counts 30% more prompt and completion
    tokens for the same text and time. Cost, which sums both counts, crosses its drift level first, and the incident
    is a cost drift, at warning severity."""
    rng = np.random.default_rng(7)
    pairs = sharegpt_pairs()
    monitor = SegmentMonitor("gpt-4o-mini/chat/acme", 1e6, warmup=50, reference_events=800, resolve_events=300)
    shift_at, opened = 1500, None
    for i, j in enumerate(rng.choice(len(pairs), 4000)):
        prompt, response = pairs[j]
        counted = 1.3 if i >= shift_at else 1.0
        event = TrafficEvent(
            id=f"e{i}", model="gpt-4o-mini", route="chat", tenant="acme", prompt=prompt, response=response,
            prompt_tokens=round(estimate_tokens(prompt) * counted),
            completion_tokens=round(estimate_tokens(response) * counted), latency_ms=float(rng.lognormal(7, 0.3)),
        )  # fmt: skip
        if opened := monitor.observe(event, extract_features(event, "en")):
            break
    assert opened is not None and shift_at < opened.detected_after_events < shift_at + 400
    assert (opened.kind, opened.severity) == (IncidentKind.COST_DRIFT, "warning")
    assert opened.features[0].feature == "cost_usd"
