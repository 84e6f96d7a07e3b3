"""The quality gate on real text and real embeddings: screening, fidelity, coverage and the HTML card."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.embeddings import MODELS, Model, embed
from feedback import write_dataset
from feedback.datasets import QUALITY_CARD, earlier_samples
from feedback.storage import DatasetStore
from generators.card import render_card
from generators.quality import ENCODER, SCALES, Fit, QualityThresholds, Seen, screen
from generators.samples import Expected, Sample
from tests.factories import make_evidence, make_incident, make_lineage

CODING = [
    "How do I reverse a list in Python?",
    "Why does my JavaScript promise never resolve?",
    "Write a SQL query that counts orders per customer.",
    "Explain the difference between a process and a thread.",
    "How can I read a CSV file with pandas?",
    "My Rust code says borrowed value does not live long enough, why?",
    "What is a good way to structure a Flask application?",
    "How do I undo the last git commit?",
    "Write a bash script that renames all .txt files to .md.",
    "How do I sort a dictionary by value in Python?",
    "What does the static keyword mean in Java?",
    "Fix this TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    "How do I center a div with CSS flexbox?",
    "Explain big-O notation with an example.",
    "How can I make an HTTP request in Go?",
    "What is dependency injection and why would I use it?",
    "How do I write a unit test for a function that reads a file?",
    "What's the difference between a list and a tuple in Python?",
    "How do I merge two branches in git without a merge commit?",
    "Explain closures in JavaScript with a short example.",
    "How do I parse JSON in Java?",
    "Why is my SQL join returning duplicate rows?",
    "How do I set an environment variable in a Dockerfile?",
    "What is a race condition and how do I avoid one?",
]
COOKING = [
    "How long should I boil an egg for a runny yolk?",
    "What can I use instead of buttermilk in pancakes?",
    "Give me a recipe for a vegetarian lasagna.",
    "How do I keep my bread from going stale?",
    "What temperature should I roast a chicken at?",
    "How do I make a sourdough starter from scratch?",
    "Why did my cake sink in the middle?",
    "What spices go well with lentil soup?",
    "How do I caramelize onions properly?",
    "Suggest a quick weeknight pasta dinner.",
    "How much rice should I cook per person?",
    "Can I freeze cooked potatoes?",
    "How do I make a French vinaigrette?",
    "What is the difference between baking soda and baking powder?",
    "How do I sear a steak in a cast iron pan?",
    "Give me a simple recipe for banana bread.",
]
REAL, ON_TOPIC = CODING[:12], CODING[12:]


def samples(prompts: list[str], technique: str = "rewrite") -> list[Sample]:
    return [Sample.make(p, technique, Expected.ANSWER, "A short answer.", "test", "0") for p in prompts]


def test_a_good_batch_passes_with_every_figure_measured() -> None:
    gate = screen(samples(ON_TOPIC), REAL)
    report = gate.report
    assert report.passed, report.failures
    assert report.rows == report.candidates == len(ON_TOPIC) and gate.kept == samples(ON_TOPIC)
    assert report.rejected == {} and report.notes == []
    assert report.mmd2 is not None and report.coverage is not None and report.pairwise_distance > 0.5


def test_fidelity_separates_on_topic_from_off_topic() -> None:
    on, off = screen(samples(ON_TOPIC), REAL).report, screen(samples(COOKING), REAL).report
    assert on.mmd2 < on.thresholds.max_mmd2 < off.mmd2
    assert off.mmd2_p_value < 0.05 < on.mmd2_p_value
    assert off.coverage < on.coverage
    assert any("fidelity" in f for f in off.failures) and not off.passed


@pytest.mark.parametrize("encoder", MODELS)
def test_each_encoder_scores_with_its_own_vectors_and_bounds_and_keeps_the_verdicts(encoder: Model) -> None:
    on, off = (screen(samples(batch), REAL, encoder=encoder).report for batch in (ON_TOPIC, COOKING))
    assert on.encoder == off.encoder == encoder and on.thresholds == QualityThresholds.on(encoder)
    assert on.thresholds.max_mmd2 == SCALES[encoder].get("max_mmd2", QualityThresholds().max_mmd2)
    assert on.mmd2 == Fit.of(embed(REAL, encoder), embed(ON_TOPIC, encoder)).mmd2
    assert on.passed, on.failures
    assert not off.passed and any("fidelity" in f for f in off.failures), off.failures


def test_the_default_encoder_is_the_settings_default() -> None:
    from driftloop.settings import Settings

    assert Settings(_env_file=None).gate_embedding_model == ENCODER
    assert screen(samples(ON_TOPIC), REAL).report.encoder == ENCODER


def test_near_duplicates_are_caught_by_minhash_not_only_exact() -> None:
    base = "Please explain step by step how I can configure logging levels for every module of a large Python app"
    variants = [base, base.upper(), base + " ?", base.replace("every", "each"), base + " thanks"]
    planted = samples(ON_TOPIC[:4] + variants * 4)  # 20 near-copies of one prompt among 4 good samples
    gate = screen(planted, REAL)
    assert not gate.report.passed
    assert gate.report.near_duplicates >= 18 and gate.report.rejected["near_duplicate"] == gate.report.near_duplicates
    assert any("near-duplicates" in f for f in gate.report.failures)
    assert {r.reason for r in gate.report.rejections} == {"near_duplicate"}
    assert len([s for s in gate.kept if s.prompt in variants]) <= 2


def test_near_duplicates_of_another_technique_are_kept() -> None:
    prompt = "How do I read a large CSV file in chunks with pandas?"
    gate = screen([*samples([prompt], "typos"), *samples([prompt.upper()], "casing")], REAL)
    assert gate.report.near_duplicates == 0 and len(gate.kept) == 2


def test_a_pii_leaking_batch_fails_and_its_samples_are_removed() -> None:
    leaking = samples([*ON_TOPIC, "Email the report to jane.doe@example.com tonight", "My card is 4111 1111 1111 1111"])
    gate = screen(leaking, REAL)
    assert not gate.report.passed and any("PII" in f for f in gate.report.failures)
    assert gate.report.pii_values == 2 and gate.report.rejected == {"pii": 2}
    assert all("example.com" not in s.prompt and "4111" not in s.prompt for s in gate.kept)
    assert all(r.detail == "1 PII values" for r in gate.report.rejections), "the text itself is never recorded"


def test_verbatim_copies_are_removed_and_fail_a_copying_batch() -> None:
    gate = screen(samples(ON_TOPIC + REAL[:3]), REAL)
    assert gate.report.verbatim_copies == 3 and gate.report.rejected == {"verbatim_copy": 3}
    assert not set(REAL) & {s.prompt for s in gate.kept}
    assert any("verbatim" in f for f in gate.report.failures)


def test_samples_seen_in_an_earlier_version_are_removed() -> None:
    earlier = [Seen("ds-old", "rewrite", p) for p in ON_TOPIC[:6]]
    gate = screen(samples([*ON_TOPIC, "How do I profile memory use in a Node.js service?"]), REAL, earlier)
    assert gate.report.seen_in_versions == 6 and gate.report.rejected == {"seen_in_version": 6}
    assert {r.detail for r in gate.report.rejections} == {"ds-old"}
    assert [s.prompt for s in gate.kept] == [*ON_TOPIC[6:], "How do I profile memory use in a Node.js service?"]


def test_a_small_window_degrades_with_a_reason() -> None:
    report = screen(samples(ON_TOPIC), ["How do I reverse a list in Python?"]).report
    assert report.mmd2 is None and report.coverage is None
    assert report.notes and "not measured" in report.notes[0]
    assert report.passed, "unmeasured figures do not fail the gate"


def test_thresholds_are_configurable_and_checked() -> None:
    report = screen(samples(ON_TOPIC), REAL, thresholds=QualityThresholds(min_rows=50, max_mmd2=None)).report
    assert report.failures == ["only 12 rows kept (< 50)"]
    with pytest.raises(ValueError, match="min_coverage"):
        QualityThresholds(min_coverage=1.5)


class _Card(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: bytes) -> _Card:
    card = _Card()
    card.feed(page.decode())
    return card


def test_the_card_shows_the_verdict_reasons_figures_and_plots() -> None:
    gate = screen(samples([*COOKING, "Call me on +1 415 555 0100 about dinner"]), REAL)
    card = parse(render_card(gate.report, gate.views, title="edge-cases", incident="inc-9", segment="m/chat/acme"))
    text = " ".join(card.text)
    assert "FAILED" in text and "inc-9" in text and "m/chat/acme" in text
    assert all(reason in text for reason in gate.report.failures)
    assert "fidelity: MMD² to the window" in text and "pii" in text
    assert card.tags.count("svg") == 3, "technique counts, embedding map and coverage histogram"
    assert "samples kept" in text and "principal axis 1" in text, "the plots' labels are text, not glyph paths"
    assert f"sentence encoder of the figures below {gate.report.encoder}" in text
    assert card.tags.count("script") == 0


def test_a_written_dataset_carries_its_card_and_feeds_later_dedup(tmp_path: Path) -> None:
    gate = screen(samples(ON_TOPIC), REAL)
    lineage = make_lineage(incident_kind="input-shift", segment="m/chat/acme", job_id="job-1", recipe="edge-cases")
    manifest = write_dataset(gate.kept, lineage, gate.report, gate.report.rejected, DatasetStore(tmp_path), gate.views)
    page = DatasetStore(tmp_path).read(manifest.id, QUALITY_CARD)
    assert "PASSED" in " ".join(parse(page).text) and manifest.quality == gate.report
    assert list(earlier_samples([manifest], "m/chat/acme", "input-shift", "job-1")) == [], "a job's own version"
    seen = list(earlier_samples([manifest], "m/chat/acme", "input-shift", "job-2"))
    assert sorted(seen) == sorted(Seen(manifest.id, "rewrite", p) for p in ON_TOPIC), "the held-out split too"
    assert screen(gate.kept, REAL, seen).report.rows == 0


def test_the_report_audits_group_representation_before_and_after() -> None:
    from generators.counterfactual import CounterfactualGenerator

    window = ["Write a job ad for a male nurse.", "Should a man lead the team?", *CODING[:10]]
    incident = make_incident(
        id="cf", kind="quality-drop", segment="m/r/t", evidence=[make_evidence(prompt=p, response="ok") for p in window]
    )
    generated = list(CounterfactualGenerator().generate(incident, 24, seed="0"))
    report = screen(generated, window).report
    assert report.representation_before is not None and not all(report.representation_before.balanced.values())
    assert report.representation_after is not None and all(report.representation_after.balanced.values())
    assert sum(report.representation_after.counts["gender"].values()) > 0
