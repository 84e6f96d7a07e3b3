"""Windowed two-sample tests (MMD on embeddings, Hellinger on labels and on numeric profiles), calibrated to an ERT."""

import pickle

import numpy as np
import pytest

from monitor import windows
from monitor.detector import Level
from monitor.features import measurements
from monitor.segments import SegmentMonitor
from monitor.windows import CategoryMap, FourierMap, ProfileMap, calibrated_window, window_alarms
from tests.factories import StubEvent, poisson_band

DIM = 16


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def topics(rng: np.random.Generator, n: int, centres: np.ndarray, weights: list[float]) -> np.ndarray:
    """Unit vectors around ``centres`` (one drawn per row with ``weights``), like sentence embeddings of topics."""
    chosen = rng.choice(len(centres), n, p=weights)
    return _unit(centres[chosen] + rng.normal(0, 0.35, (n, DIM)))


CENTRES = _unit(np.random.default_rng(0).normal(size=(4, DIM)))
LANGUAGES = ["en", "es", "zh"]


def test_the_mmd_test_finds_a_new_topic_and_stays_quiet_on_the_old_mix() -> None:
    rng = np.random.default_rng(1)
    usual = [0.4, 0.3, 0.3, 0.0]
    reference = topics(rng, 800, CENTRES, usual)
    detector = calibrated_window("prompt_embedding", FourierMap.fit(reference), reference, 100, 1e7, 1e4)
    assert detector.kind == "mmd"
    assert all(detector.update(x) is not Level.DRIFT for x in topics(rng, 20_000, CENTRES, usual))
    new_topic = topics(rng, 2000, CENTRES, [0.3, 0.2, 0.2, 0.3])
    assert next(i for i, x in enumerate(new_topic) if detector.update(x) is Level.DRIFT) < 600


def test_the_hellinger_test_finds_a_new_language_mix_with_the_same_english_share() -> None:
    rng = np.random.default_rng(2)
    reference = rng.choice(LANGUAGES, 800, p=[0.7, 0.25, 0.05]).tolist()
    detector = calibrated_window("language", CategoryMap.fit(reference), reference, 200, 1e7, 1e4)
    assert detector.kind == "hellinger"
    assert all(detector.update(x) is not Level.DRIFT for x in rng.choice(LANGUAGES, 20_000, p=[0.7, 0.25, 0.05]))
    swapped = rng.choice(LANGUAGES, 2000, p=[0.7, 0.1, 0.2])  # non-English share unchanged
    assert next(i for i, x in enumerate(swapped) if detector.update(x) is Level.DRIFT) < 600


@pytest.mark.parametrize("kind", ["embedding", "labels"])
def test_false_alarms_on_null_streams_match_the_target_rate(kind: str) -> None:
    """ERT 2,000 over 200,000 null events for each of 4 references, the window emptied after each alarm: the
    alarms of all four within Poisson tolerance of the target, none more than twice it (a reference's own error
    moves its rate: the calibration guards against it for most references, not all)."""
    rng = np.random.default_rng(3)
    ert, events, size, references = 2000, 200_000, 50, 4

    def draw(n: int) -> np.ndarray | list[str]:
        if kind == "embedding":
            return topics(rng, n, CENTRES, [0.4, 0.3, 0.3, 0.0])
        return rng.choice(LANGUAGES, n, p=[0.7, 0.25, 0.05]).tolist()

    counts = []
    for seed in range(references):
        reference = draw(800)
        feature_map = FourierMap.fit(reference) if kind == "embedding" else CategoryMap.fit(reference)
        detector = calibrated_window("x", feature_map, reference, size, ert=ert, warning_ert=ert / 10, seed=seed)
        counts.append(len(window_alarms(detector.statistics(draw(events)), size, detector.threshold)))
    expected = events / (ert + size)
    low, high = poisson_band(references * expected)
    assert low < sum(counts) < high and max(counts) < 2 * expected, counts


def test_the_online_window_matches_the_vectorised_statistics_and_survives_a_pickle() -> None:
    rng = np.random.default_rng(5)
    reference = topics(rng, 400, CENTRES, [0.5, 0.5, 0.0, 0.0])
    detector = calibrated_window("prompt_embedding", FourierMap.fit(reference), reference, 50, 1e5, 1e2)
    stream = topics(rng, 300, CENTRES, [0.25, 0.25, 0.25, 0.25])
    for x in stream[:120]:
        detector.update(x)
    detector = pickle.loads(pickle.dumps(detector))
    assert detector.feature_map._projection is None  # pickled without its matrix: drawn again from the seed
    for x in stream[120:]:
        detector.update(x)
    assert detector.statistic == pytest.approx(detector.statistics(stream)[-1], rel=1e-9)


def test_a_segment_opens_a_topic_shift_when_only_its_embeddings_move() -> None:
    """Same features and languages, prompts from a new topic: the MMD test opens a topic-shift incident."""
    rng = np.random.default_rng(6)
    monitor = SegmentMonitor("m/chat/t", 1e6, warmup=0, reference_events=800, resolve_events=200)

    def inputs(n: int, weights: list[float]) -> list[dict]:
        vectors = topics(rng, n, CENTRES, weights)
        latency = rng.lognormal(6, 0.3, n)
        languages = rng.choice(LANGUAGES, n, p=[0.7, 0.25, 0.05])
        return [
            measurements({"latency_ms": float(x)}, str(language), vector)
            for x, language, vector in zip(latency, languages, vectors, strict=True)
        ]

    outcomes = [monitor.observe(StubEvent(), row) for row in inputs(2800, [0.4, 0.3, 0.3, 0.0])]  # type: ignore[arg-type]
    assert not any(outcomes) and {"prompt_embedding", "language", "latency_ms"} <= set(monitor.detectors)
    monitor = pickle.loads(pickle.dumps(monitor))
    opened = [out for row in inputs(1000, [0.25, 0.25, 0.2, 0.3]) if (out := monitor.observe(StubEvent(), row))]  # type: ignore[arg-type]
    assert [incident.kind for incident in opened] == ["topic-shift"]
    assert opened[0].features[0].feature == "prompt_embedding" and opened[0].features[0].detector == "mmd"


def test_a_window_fed_at_once_equals_one_event_at_a_time() -> None:
    rng = np.random.default_rng(7)
    reference = topics(rng, 400, CENTRES, [0.5, 0.5, 0.0, 0.0])
    one = calibrated_window("prompt_embedding", FourierMap.fit(reference), reference, 50, 1e5, 1e2)
    many = pickle.loads(pickle.dumps(one))
    stream = topics(rng, 330, CENTRES, [0.25, 0.25, 0.25, 0.25])
    trajectory = [(one.update(x), one.statistic)[1] for x in stream[:30]]  # a window not yet full: 0
    assert many.trajectory(stream[:30]).tolist() == [0.0] * 30 == trajectory
    trajectory = [(one.update(x), one.statistic)[1] for x in stream[30:]]
    many.advance(stream[:30])
    # φ of a batch and of one vector come from different BLAS kernels (gemm, gemv): on CPUs with AVX-512 a float16
    # φ may round one ulp apart, a relative difference of about 1e-6 in the statistic, far below any threshold
    assert many.trajectory(stream[30:]) == pytest.approx(trajectory, rel=1e-5)
    many.advance(stream[30:100])
    many.advance(stream[100:])
    assert (many.seen, many.onset, many.statistic) == (one.seen, one.onset, pytest.approx(one.statistic, rel=1e-5))


def test_the_profile_test_finds_a_spread_that_widens_at_the_same_median() -> None:
    """Latency's median stays, its spread doubles: the profile of the numeric features moves."""
    rng = np.random.default_rng(8)

    def rows(n: int, spread: float) -> np.ndarray:
        return np.stack([rng.lognormal(6, spread, n), rng.poisson(3, n), rng.random(n)], axis=1)

    reference = rows(800, 0.3)
    detector = calibrated_window("feature_profile", ProfileMap.fit(reference), reference, 200, 1e7, 1e4)
    assert detector.kind == "hellinger-profile"
    assert all(detector.update(x) is not Level.DRIFT for x in rows(20_000, 0.3))
    assert next(i for i, x in enumerate(rows(2000, 0.6)) if detector.update(x) is Level.DRIFT) < 600


@pytest.mark.parametrize("size", [1, 7, 200])
def test_window_statistics_are_each_window_s_distance_computed_afresh(size: int) -> None:
    """The statistics moved column by column as rows enter and leave the window (rows drawn at ``picks``, as a
    calibration draws them) are each full window's distance computed from its rows, to rounding; drawn rows give
    what the same rows gathered give, bit for bit."""
    rng = np.random.default_rng(4)
    reference = rng.random((300, 40)).astype(np.float16)
    picks = rng.integers(0, len(reference), size=2_003)
    stream, mean = reference[picks].astype(np.float64), reference.mean(axis=0, dtype=np.float64)
    for root in (False, True):
        drawn = windows.window_statistics(reference, mean, size, root, picks)
        assert np.array_equal(drawn, windows.window_statistics(reference[picks], mean, size, root))
        means = np.stack([stream[end - size + 1 : end + 1].mean(axis=0) for end in range(size - 1, len(stream))])
        expected = windows.distance(means, mean, root)
        assert len(drawn) == len(picks) - size + 1
        assert np.allclose(drawn, expected, rtol=1e-9, atol=1e-12)
