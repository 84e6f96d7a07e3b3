"""Generation throughput: samples/s of each rule generator in the recipe registry, of the LLM generator
against llama-cpp-python's server (SmolLM2-135M, started here) with concurrent calls vs one at a time, and
targets/s through the teacher (rule checks and the LLM judge included) with the judge's pass rate.

Run with ``make bench-generation`` (``python -m bench.generation --help`` for the knobs). The incident's
evidence is real ShareGPT traffic, redacted as the monitor writes it. Both LLM runs send the same requests
(same few-shot draws and seeds), so they differ only in how many calls are in flight.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.redact import redact
from devtools.embedded import llama_server
from devtools.traffic import sharegpt_pairs
from feedback.targets import TargetWriter
from generators.llm import EndpointBackend, LLMGenerator
from generators.llm_client import Endpoint, StructuredOutput
from generators.recipes import load_recipes, run_recipe
from generators.registry import GENERATORS
from monitor.incidents import DriftIncident, Evidence

console = Console()


def sharegpt_incident(evidence: int = 32) -> DriftIncident:
    """An input-shift incident whose evidence is ``evidence`` redacted ShareGPT prompt/response pairs."""
    pairs = sharegpt_pairs(limit=evidence)
    return DriftIncident(
        id="bench-generation",
        kind="input-shift",
        segment="gpt-4o-mini/chat/bench",
        features=[],
        detected_after_events=1000,
        onset_event=800,
        evidence=[Evidence(prompt=redact(p[:400]), response=redact(r[:400])) for p, r in pairs],
    )


def rule_rows(incident: DriftIncident, count: int) -> list[tuple[str, int, float]]:
    """(generator, samples, seconds) for every generator of the recipe registry."""
    rows = []
    for name, generator in GENERATORS.items():
        started = time.perf_counter()
        samples = list(generator.generate(incident, count, seed="0"))
        rows.append((name, len(samples), time.perf_counter() - started))
    return rows


def llm_row(base_url: str, incident: DriftIncident, count: int, concurrency: int, max_tokens: int) -> dict:
    endpoint = Endpoint(base_url, structured_output=StructuredOutput.JSON_OBJECT, concurrency=concurrency)
    generator = LLMGenerator(EndpointBackend(endpoint), token_budget=None, per_call=2, max_tokens=max_tokens)
    started = time.perf_counter()
    batch = generator.generate(incident, count, seed="0")
    seconds = time.perf_counter() - started
    return {"samples": len(batch.samples), "seconds": seconds, "tokens": batch.tokens_used, "rejected": batch.rejected}


def teacher_row(base_url: str, incident: DriftIncident, count: int, concurrency: int, max_tokens: int) -> dict:
    """Targets for ``count`` samples of the attack-hardening recipe, judged."""
    samples = run_recipe(incident, load_recipes().named("attack-hardening"), count, seed="0").samples
    endpoint = Endpoint(base_url, structured_output=StructuredOutput.JSON_OBJECT, concurrency=concurrency)
    writer = TargetWriter(EndpointBackend(endpoint), judge=True, token_budget=None, max_tokens=max_tokens, words=60)
    started = time.perf_counter()
    report = writer.write(samples, incident, seed="0").report
    return {"report": report, "seconds": time.perf_counter() - started}


def main(
    rule_samples: int = typer.Option(2000, help="samples asked of each rule generator"),
    llm_samples: int = typer.Option(16, help="samples asked of the LLM generator (2 per call)"),
    concurrency: int = typer.Option(8, help="LLM calls in flight in the concurrent run"),
    max_tokens: int = typer.Option(160, help="completion tokens per LLM call"),
    n_threads: int = typer.Option(1, help="llama.cpp threads (2 stalled on a busy 2-core machine)"),
    teacher_samples: int = typer.Option(8, help="samples whose targets the teacher writes (and the judge checks)"),
    teacher_max_tokens: int = typer.Option(200, help="longest target the teacher may write"),
) -> None:
    incident = sharegpt_incident()
    table = Table(title="generation throughput")
    for column in ("generator", "samples", "seconds", "samples/s", "note"):
        table.add_column(column, justify="left" if column in ("generator", "note") else "right")
    for name, samples, seconds in rule_rows(incident, rule_samples):
        table.add_row(name, str(samples), f"{seconds:.3f}", f"{samples / seconds:,.0f}", "rule-based, in process")

    with tempfile.TemporaryDirectory() as workdir, llama_server(Path(workdir), n_threads=n_threads) as server:
        base_url = server.base_url
        console.print(f"llama-cpp-python server with SmolLM2-135M at {base_url}; {n_threads} threads")
        runs = {c: llm_row(base_url, incident, llm_samples, c, max_tokens) for c in (1, concurrency)}
        teacher = teacher_row(base_url, incident, teacher_samples, concurrency, teacher_max_tokens)
    for c, run in runs.items():
        note = f"{run['tokens']} tokens in+out, {run['tokens'] / run['seconds']:.0f}/s; rejected {run['rejected']}"
        rate = run["samples"] / run["seconds"]
        table.add_row(f"llm, concurrency {c}", str(run["samples"]), f"{run['seconds']:.1f}", f"{rate:.2f}", note)
    report = teacher["report"]
    targets_rate = report.written / teacher["seconds"]
    table.add_row(
        f"teacher + judge, concurrency {concurrency}",
        str(report.written),
        f"{teacher['seconds']:.1f}",
        f"{targets_rate:.2f}",
        f"targets kept of {report.asked} samples ({report.calls} teacher calls, {report.judged} judged); "
        f"judge pass rate {report.judge_pass_rate}; {report.tokens} tokens in+out; "
        f"dropped {report.dropped}",
    )
    console.print(table)
    sequential, concurrent = runs[1], runs[concurrency]
    asked_rate = report.asked / teacher["seconds"]
    generator_rate = concurrent["samples"] / concurrent["seconds"]
    console.print(
        f"teacher: {asked_rate:.2f} samples/s through the teacher and the judge ({targets_rate:.2f} targets/s kept), "
        f"×{asked_rate / generator_rate:.2f} the LLM generator's samples/s at the same concurrency; "
        f"judge pass rate {report.judge_pass_rate} ({report.judge_passed} of {report.judged})"
    )
    speedup = sequential["seconds"] / concurrent["seconds"]
    token_rate = (concurrent["tokens"] / concurrent["seconds"]) / (sequential["tokens"] / sequential["seconds"])
    console.print(
        f"LLM concurrency {concurrency} vs 1: wall time ×{speedup:.2f} faster, tokens/s ×{token_rate:.2f} "
        "(llama-cpp-python's server runs one completion at a time: concurrency overlaps only the round trips)"
    )


if __name__ == "__main__":
    typer.run(main)
