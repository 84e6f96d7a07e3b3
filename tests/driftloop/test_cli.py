import json

from typer.testing import CliRunner

from driftloop.cli import app

runner = CliRunner()


def test_every_verb_explains_itself() -> None:
    for verb in ("up", "worker", "api", "replay", "traffic", "demo", "status", "token", "secrets", "suite", "stress"):
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, verb


def test_traffic_writes_one_event_per_line_even_with_unicode_separators(tmp_path) -> None:
    out = tmp_path / "traffic.jsonl"
    assert runner.invoke(app, ["traffic", str(out), "--events", "300", "--shift-at", "150"]).exit_code == 0
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    assert len(events) == 300 and events[0]["schema"] == "driftloop.traffic/v1"


def test_worker_without_services_says_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTLOOP_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("DRIFTLOOP_REDIS_URL", raising=False)
    from driftloop.settings import get_settings

    get_settings.cache_clear()
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "DRIFTLOOP_KAFKA_BOOTSTRAP and DRIFTLOOP_REDIS_URL not set" in result.output
    assert "driftloop up" in result.output


def test_suite_builds_the_same_probes_around_each_segment_of_real_traffic(tmp_path) -> None:
    from generators.adversarial import FAMILIES
    from validation.suite import load_suite

    traffic = tmp_path / "traffic.jsonl"
    assert runner.invoke(app, ["traffic", str(traffic), "--events", "300"]).exit_code == 0
    first, again = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for out in (first, again):
        result = runner.invoke(
            app, ["suite", str(out), "--traffic", str(traffic), "--mix", "adversarial=14,ambiguity=3"]
        )
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == again.read_bytes()
    suite = load_suite(first)
    segments = {json.loads(line)["model"] for line in traffic.read_text(encoding="utf-8").splitlines()}
    assert {probe.segment.split("/")[0] for probe in suite.probes} == segments
    assert set(FAMILIES) <= {probe.family for probe in suite.probes}
    bad = runner.invoke(app, ["suite", str(first), "--traffic", str(traffic), "--mix", "adversarial"])
    assert bad.exit_code == 2 and "generator=count" in bad.output
