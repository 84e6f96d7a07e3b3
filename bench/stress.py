"""Stress-run throughput: probes/s against SmolLM2-135M under llama-cpp-python's server, concurrency 1 vs 16.

Run with ``make bench-stress``. The same suite (built by the generators around real-looking topics) is sent
at each concurrency; replies are capped at ``MAX_TOKENS`` so the figure is dominated by the endpoint.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import typer

from devtools.embedded import llama_server
from generators.llm_client import Endpoint, LLMClient
from monitor.incidents import Evidence
from validation.run import StressConfig, stress_run
from validation.suite import Suite, build_suite

TOPICS = {
    "m/chat/t": [
        Evidence(prompt="What is the capital of France?", response="Paris."),
        Evidence(prompt="How do I sort a list in Python?", response="Use sorted()."),
    ]
}
COUNTS = {"adversarial": 10, "ambiguity": 4, "counterfactual": 3, "perturbation": 4}
MAX_TOKENS = 24
CONCURRENCY = (1, 16)


async def probes_per_second(suite: Suite, base_url: str, concurrency: int) -> float:
    async with LLMClient(Endpoint(base_url, concurrency=concurrency)) as client:
        started = time.perf_counter()
        run = await stress_run(suite, client, StressConfig(max_tokens=MAX_TOKENS))
        seconds = time.perf_counter() - started
    assert run.summary.errors == 0, f"{run.summary.errors} probes got no reply"
    return len(suite.probes) / seconds


def main() -> None:
    """Probes/s of one suite against SmolLM2 under llama-cpp-python's server at concurrency 1 and 16."""
    suite = build_suite("bench", TOPICS, COUNTS, seed="0")
    with tempfile.TemporaryDirectory() as workdir, llama_server(Path(workdir)) as server:
        rates = {c: asyncio.run(probes_per_second(suite, server.base_url, c)) for c in CONCURRENCY}
    for concurrency, rate in rates.items():
        print(f"concurrency {concurrency:>2}: {rate:6.2f} probes/s ({len(suite.probes)} probes, <={MAX_TOKENS} tokens)")
    print(f"ratio {CONCURRENCY[1]} vs {CONCURRENCY[0]}: {rates[CONCURRENCY[1]] / rates[CONCURRENCY[0]]:.2f}x")


if __name__ == "__main__":
    typer.run(main)
