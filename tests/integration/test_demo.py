"""`driftloop demo` end to end, as a new user runs it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_shows_every_step_and_exits_zero(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "driftloop", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in (
        "INCIDENT attack-wave in gpt-4o-mini",
        "INCIDENT latency-drift in llama-3.1-8b",
        "no dataset: latency-drift is for on-call",
        "DATASET",
        "WEBHOOK dataset.published",
        "evaluation set (no LLM endpoint: prompts and expected behaviour, no targets)",
        "verdict step skipped: not asked",
        "signature verified",
        "driftloop demo summary",
    ):
        assert step in out, step
    assert "false alarm" not in out
    assert re.search(r"finetune\.requests messages\s*│\s*0\s", out), "evaluation sets are not sent to fine-tuning"
    assert "FINETUNE" not in out and "VERDICT" not in out
    assert re.search(r"verdict\s*│\s*skipped: not asked", out), "the summary says the verdict step was skipped"
    assert re.search(r"webhook deliveries \(verified\)\s*│\s*1\s", out), "the attack's dataset; none for latency"
    cards = re.findall(r"quality card \(open in a browser\): (\S+quality\.html)", out)
    assert len(cards) == 1 and all("<svg" in Path(card).read_text() for card in cards)
