import pytest

from bench.injection import RUN_CHARS, crafted_inputs, sources_for
from core.injection_model import SOURCES
from core.risk import KINDS, injection_signals
from core.scan import SCAN_CHARS


def test_a_held_out_source_is_never_among_those_its_model_is_fitted_on() -> None:
    for source in SOURCES:
        assert source not in sources_for(source) and len(sources_for(source)) == len(SOURCES) - 1
    assert sources_for("agent-injection-bench") == SOURCES


def test_the_crafted_inputs_run_every_rule_word_into_a_long_run_across_the_starts_end() -> None:
    runs = crafted_inputs()
    words = {word for families in KINDS for family in families for rule in family for word in rule.words}
    assert all(any(name.startswith(f"{word!r} then") for name in runs) for word in words)
    start_ends_in_run = [text.index("1gn0r3 ") + 7 < SCAN_CHARS < len(text) - RUN_CHARS // 2 for text in runs.values()]
    assert all(start_ends_in_run)


@pytest.mark.timeout(120)  # a hang guard for every rule, later ones too: about 7 s here, hours if one backtracks
def test_every_rule_reads_a_crafted_run_in_linear_time() -> None:
    assert all(injection_signals(text).score >= 0 for text in crafted_inputs().values())
