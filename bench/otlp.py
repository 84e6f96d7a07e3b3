"""Spans/s through OTLP ingest (``POST /v1/traces``) against the direct Kafka produce rate, in the same run.

Run with ``make bench-otlp`` (``python -m bench.otlp [--spans N] [--batch N] [--concurrency N] [--gzip]``). It
starts tansu and redis-server, turns real ShareGPT traffic (``devtools.traffic``) into GenAI spans as the OpenAI
instrumentation of the GenAI conventions writes them (messages on the span), encodes them as OTLP protobuf export
requests of ``--batch`` spans (the SDK's batch size) before the clock starts, and measures, each on a fresh topic:

- **direct produce**: the same events as JSON lines through ``driftloop replay``'s producer (kafka-python,
  ``acks=all``), events/s acknowledged by the broker — the baseline;
- **OTLP ingest**: ``driftloop api`` in its own process (one for all rounds) with an ``ingest`` token,
  ``--concurrency`` exports in flight; spans/s answered 200 (accepted into the buffer; a 429 is retried after
  50 ms and counted), and spans/s until the broker has acknowledged every event to the API's producer (its
  ``driftloop_otlp_events_published_total``; tansu's end offsets lag the messages it holds, so they are not used).

Every path runs ``--repeats`` times, one after the other; the table gives medians and ranges and the ratio of the
medians to direct produce. The client runs on the same machine as the API and the broker (2 shared cores here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from devtools.embedded import free_port, settings_env, stop_process, with_services
from devtools.traffic import shifted_stream
from driftloop.auth import Scope, TokenStore
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings

console = Console()
RETRY_429_S = 0.05


def attribute(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def as_span(event: dict, index: int) -> Span:
    """A traffic event as the GenAI conventions' OpenAI instrumentation writes the call (content on the span)."""
    start = time.time_ns()
    latency_ns = int((event.get("latency_ms") or 100) * 1e6)
    messages = [{"role": "user", "parts": [{"type": "text", "content": event["prompt"]}]}]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": event.get("response") or ""}]}]
    return Span(
        trace_id=uuid.uuid4().bytes,
        span_id=index.to_bytes(8, "big"),
        name=f"chat {event['model']}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + latency_ns,
        attributes=[
            attribute("gen_ai.operation.name", "chat"),
            attribute("gen_ai.provider.name", "openai"),
            attribute("gen_ai.request.model", event["model"]),
            attribute("gen_ai.response.model", event["model"]),
            attribute("gen_ai.usage.input_tokens", event.get("prompt_tokens") or 0),
            attribute("gen_ai.usage.output_tokens", event.get("completion_tokens") or 0),
            attribute("gen_ai.input.messages", json.dumps(messages)),
            attribute("gen_ai.output.messages", json.dumps(output)),
            attribute("driftloop.route", event.get("route", "default")),
            attribute("driftloop.tenant", event.get("tenant", "default")),
        ],
    )


def export_bodies(events: list[dict], batch: int, compress: bool) -> list[bytes]:
    """Protobuf export requests of ``batch`` spans each (gzip-compressed with ``compress``)."""
    bodies = []
    for first in range(0, len(events), batch):
        spans = [as_span(event, first + i + 1) for i, event in enumerate(events[first : first + batch])]
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
        body = request.SerializeToString()
        bodies.append(gzip.compress(body, compresslevel=1) if compress else body)
    return bodies


def published(api_url: str) -> float:
    """Events the API's producer has had acknowledged by the broker (its ``/metrics``)."""
    text = httpx.get(f"{api_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "driftloop_otlp_events_published_total" and sample.labels["outcome"] == "published":
                return sample.value
    return 0.0


def fresh(settings: Settings) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(update={"traffic_topic": f"llm.traffic.{suffix}", "api_port": free_port()})


def direct_produce(lines: list[str], settings: Settings) -> float:
    """Events/s of ``driftloop replay``'s producer, every send acknowledged."""
    started = time.perf_counter()
    result = replay(lines, settings)
    if result.failed:
        raise RuntimeError(f"{result.failed} events were not acknowledged: {dict(result.errors)}")
    return result.sent / (time.perf_counter() - started)


def ingest_token(settings: Settings) -> str:
    async def create() -> str:
        redis = Redis.from_url(settings.redis_url)
        try:
            created = await TokenStore(redis).create(f"bench-{uuid.uuid4().hex[:6]}", [Scope.ingest])
        finally:
            await redis.aclose()
        assert created is not None
        return created.token

    return asyncio.run(create())


def api_process(settings: Settings, log: Path) -> subprocess.Popen:
    """``driftloop api`` in its own process, answering ``/healthz``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "driftloop", "api", "--port", str(settings.api_port)],
            env={**os.environ, **settings_env(settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with code {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{settings.api_port}/healthz", timeout=1).is_success:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"the API did not answer within 300 s; see {log}")


async def export_all(url: str, token: str, bodies: list[bytes], concurrency: int, compress: bool) -> int:
    """Post every body, ``concurrency`` in flight, retrying 429s; the number of 429s."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    queue = list(reversed(bodies))
    throttled = 0

    async def exporter(client: httpx.AsyncClient) -> None:
        nonlocal throttled
        while queue:
            body = queue.pop()
            while (answer := await client.post(url, content=body, headers=headers)).status_code == 429:
                throttled += 1
                await asyncio.sleep(RETRY_429_S)
            answer.raise_for_status()

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(exporter(client) for _ in range(concurrency)))
    return throttled


def ingest_round(
    api_url: str, token: str, bodies: list[bytes], spans: int, concurrency: int, compress: bool
) -> tuple[float, float, int]:
    """Spans/s accepted by the endpoint and spans/s acknowledged by the broker; the 429s on the way."""
    before = published(api_url)
    started = time.perf_counter()
    throttled = asyncio.run(export_all(f"{api_url}/v1/traces", token, bodies, concurrency, compress))
    accepted = time.perf_counter() - started
    while (sent := published(api_url) - before) < spans:
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"the broker acknowledged {sent:.0f} of {spans} events after 300 s")
        time.sleep(0.02)
    return spans / accepted, spans / (time.perf_counter() - started), throttled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000, help="spans (events) per run")
    parser.add_argument("--batch", type=int, default=512, help="spans per export request (the SDK's default)")
    parser.add_argument("--concurrency", type=int, default=4, help="export requests in flight")
    parser.add_argument("--gzip", action="store_true", help="gzip the export requests")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every path, one after the other")
    args = parser.parse_args()
    events = list(shifted_stream(args.spans, None, seed=3))
    lines = [json.dumps(event) for event in events]
    bodies = export_bodies(events, args.batch, args.gzip)
    workdir = Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    rates: dict[str, list[float]] = {}
    throttled: list[int] = []
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(
            with_services(Settings(_env_file=None, kafka_bootstrap=None, redis_url=None), workdir)
        )
        ingest = fresh(settings)
        ensure_topics(ingest)
        with console.status("starting the API"):
            stack.callback(stop_process, api_process(ingest, workdir / "api.log"))
        api_url, token = f"http://127.0.0.1:{ingest.api_port}", ingest_token(ingest)
        for round_ in range(1, args.repeats + 1):
            with console.status(f"round {round_}/{args.repeats}: direct produce"):
                direct = fresh(settings)
                ensure_topics(direct)
                rates.setdefault("direct produce (kafka-python, acks=all)", []).append(direct_produce(lines, direct))
            with console.status(f"round {round_}/{args.repeats}: OTLP ingest"):
                accepted, delivered, retried = ingest_round(
                    api_url, token, bodies, len(events), args.concurrency, args.gzip
                )
                rates.setdefault("OTLP /v1/traces: accepted (200)", []).append(accepted)
                rates.setdefault("OTLP /v1/traces: acknowledged by the broker", []).append(delivered)
                throttled.append(retried)
    baseline = statistics.median(next(iter(rates.values())))
    encoding = "protobuf + gzip" if args.gzip else "protobuf"
    table = Table(
        title=f"OTLP ingest vs direct produce: {args.spans:,} events, {args.batch} spans a request ({encoding}), "
        f"{args.concurrency} in flight; median of {args.repeats} rounds"
    )
    for column in ("path", "events/s", "range", "ratio to direct produce"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, measured in rates.items():
        spread = f"{min(measured):,.0f}–{max(measured):,.0f}"
        table.add_row(
            label, f"{statistics.median(measured):,.0f}", spread, f"{statistics.median(measured) / baseline:.2f}"
        )
    console.print(table)
    console.print(f"429 answers retried per round: {throttled}")


if __name__ == "__main__":
    main()
