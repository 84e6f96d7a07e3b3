from bench.injection import sources_for
from core.injection_model import SOURCES


def test_a_held_out_source_is_never_among_those_its_model_is_fitted_on() -> None:
    for source in SOURCES:
        assert source not in sources_for(source) and len(sources_for(source)) == len(SOURCES) - 1
    assert sources_for("agent-injection-bench") == SOURCES
