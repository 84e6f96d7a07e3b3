"""The incident report: real ShareGPT traffic as the reference, a real jailbreak wave as the drifted window."""

from __future__ import annotations

import re

import pytest

from devtools.traffic import jailbreak_prompts, sharegpt_pairs
from monitor.features import extract_features
from monitor.reports import MIN_ROWS, build_report
from tests.factories import make_event, make_incident, make_shift

WINDOW = 80
LEAK = "ann.leak@example.org"


def rows(prompts: list[tuple[str, str]]) -> list[dict[str, float | str]]:
    events = [make_event(id=str(i), prompt=p, response=r, latency_ms=900) for i, (p, r) in enumerate(prompts)]
    return [{**extract_features(event), "prompt": event.prompt_text} for event in events]


@pytest.fixture(scope="module")
def windows() -> tuple[list[dict], list[dict]]:
    reference = rows(list(sharegpt_pairs(limit=WINDOW)))
    refusal = "I'm sorry, but I can't help with that."
    current = rows([(f"{prompt} mail {LEAK}", refusal) for prompt in jailbreak_prompts()[:WINDOW]])
    return reference, current


INCIDENT = make_incident(segment="m/default/default", features=[make_shift()])


def verdict(html: str, column: str) -> str:
    """The drift table's verdict on ``column``: Detected or Not Detected."""
    found = re.search(rf'"column_name": "{re.escape(column)}", .*?"data_drift": "(Detected|Not Detected)"', html)
    assert found, f"{column} is not in the drift table"
    return found.group(1)


@pytest.mark.slow
def test_the_report_shows_the_drifted_columns_and_no_personal_data(windows: tuple[list, list]) -> None:
    reference, current = windows
    html = build_report(INCIDENT, reference, current, "static")
    assert html.lstrip().startswith("<!DOCTYPE html>")
    # the jailbreak wave moved the injection score, the refusals and the prompts; latency stayed at 900 ms
    for column in ("injection_score", "refusal", "prompt length", "prompt words", "prompt"):
        assert verdict(html, column) == "Detected", column
    assert verdict(html, "latency_ms") == "Not Detected"
    columns = len(reference[0]) + 3  # the features, the prompt text and its three descriptors
    assert re.search(rf"Drift is detected for [\d.]+% of columns \(\d+ out of {columns}\)", html)
    assert re.search(r"Drift in embeddings 'prompt_embedding'\", \"label\": \"Data drift detected", html)
    assert LEAK not in html and "<EMAIL>" in html, "prompts reach the report redacted"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ref, cur: (ref[: MIN_ROWS - 1], cur), "reference window has 9 rows"),
        (lambda ref, cur: (ref, [{k: v for k, v in r.items() if k != "prompt"} for r in cur]), "no 'prompt' text"),
        (lambda ref, cur: (ref, [{**r, "latency_ms": float("nan")} for r in cur]), "not finite numbers"),
        (lambda ref, cur: (ref, [{**r, "extra": 1.0} for r in cur]), "different columns"),
        (lambda ref, cur: (ref, [{**r, "prompt": 3} for r in cur]), "must be text"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(windows: tuple[list, list], change, message: str) -> None:
    reference, current = change(*windows)
    with pytest.raises(ValueError, match=message):
        build_report(INCIDENT, reference, current, "static")


@pytest.mark.slow
def test_a_window_of_empty_prompts_gets_a_report(windows: tuple[list, list]) -> None:
    """A restored segment's recent events have no text: the report is built (Evidently's non-letter share divided
    by the prompt's length, and the report failed), the empty prompts counted as 0% non-letters."""
    reference, current = windows
    html = build_report(INCIDENT, reference, [{**row, "prompt": ""} for row in current], "static")
    assert verdict(html, "prompt non-letter %") == "Detected"
    assert verdict(html, "prompt length") == "Detected"
