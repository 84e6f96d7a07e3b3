"""`driftloop demo` end to end, as a new user runs it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

# past the subprocess's 600 s; with the LLM tests, since the demo starts a llama server of its own
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(660), pytest.mark.xdist_group("llm")]
DEMO_TIMEOUT_S = 540
"""The demo's own bound on the loop (360 s by default): here it shares the two cores with the other xdist worker's
tests, and took 370 s beside the fault scenarios."""


def demo(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftloop", "demo", "--workdir", str(workdir), "--timeout", str(DEMO_TIMEOUT_S), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_demo_shows_every_step_with_a_verdict_and_exits_zero(tmp_path) -> None:
    result = demo(tmp_path / "demo")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in (
        "llama server (SmolLM2-135M)",
        "INCIDENT attack-wave in gpt-4o-mini",
        "INCIDENT latency-drift in llama-3.1-8b",
        "no dataset: latency-drift is for on-call",
        "DATASET",
        "training set, targets by smollm2-135m",
        "FINETUNE driftloop.dataset.published",
        "WEBHOOK dataset.published",
        "signature verified",
        "a STAND-IN for a model fine-tuned on it (no training runs in the demo)",
        "VERDICT",
        "driftloop demo summary",
    ):
        assert step in out, step
    assert "false alarm" not in out and "SKIPPED" not in out
    assert re.search(r"finetune\.requests messages\s*│\s*1\s", out), "the attack's training set; none for latency"
    assert re.search(r"webhook deliveries \(verified\)\s*│\s*1\s", out)
    [decision] = re.findall(r"VERDICT \S+: (promote|reject) ", out)
    assert re.search(rf"a stand-in trained on ds-\w+\)\s*│\s*{decision} ", out), "the summary carries the verdict"
    recalled, asked = map(int, re.search(r"the stand-in answered (\d+) of (\d+) probes", out).groups())
    assert 0 <= recalled <= asked and asked >= 12, "the incident family alone has 12 probes"
    cards = re.findall(r"quality card \(open in a browser\): (\S+quality\.html)", out)
    assert len(cards) == 1 and all("<svg" in Path(card).read_text() for card in cards)


def test_demo_says_the_verdict_step_is_skipped_and_fails_when_its_job_fails(tmp_path) -> None:
    """Without the verdict step the datasets are evaluation sets; 5 samples a job cannot pass the quality gate's
    minimum of 10 rows, so the attack's job fails, and so does the demo."""
    result = demo(tmp_path / "demo", "--no-verdict", env={"DRIFTLOOP_SAMPLES_PER_JOB": "5"})
    out = result.stdout
    assert result.returncode == 1, out[-3000:] + result.stderr[-3000:]
    assert "VERDICT STEP SKIPPED: not asked (--no-verdict); datasets are evaluation sets" in out
    assert re.search(r"verdict\s*│\s*skipped: not asked", out), "the summary says the verdict step was skipped"
    assert re.search(r"JOB \w+ \(attack-hardening\) for incident \w+: failed — .*quality gate: only \d+ rows", out)
    assert "the demo failed: job" in out and "DATASET" not in out and "CANDIDATE" not in out
