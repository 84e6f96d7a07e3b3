"""The fault suite's rig: a private tansu broker and redis-server that a scenario stops and starts again on the
same ports, ``driftloop worker`` processes it kills, a webhook receiver, and traffic published with every send
checked. The outage lengths and sizes are settings (``DRIFTLOOP_FAULTS_*``, :class:`FaultSettings`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from devtools.embedded import (
    broker_settings,
    embedded_secret_key,
    free_port,
    kafka_broker,
    redis_server,
    settings_env,
    stop_process,
)
from devtools.receiver import WebhookReceiver
from devtools.traffic import MODELS, ShiftPlan, shifted_stream
from driftloop.kafka import ensure_topics, segment_key
from driftloop.settings import Settings
from feedback import WebhookCreate, register
from tests.integration.helpers import stored_jobs, wait_for

Message = tuple[bytes | None, bytes]
"""A traffic record as published: its key (None: the producer picks the partition) and its value."""
WEBHOOK_TYPES = ("incident.opened", "dataset.published")


class FaultSettings(BaseSettings):
    """How long the outages last and how big the scenarios are (``DRIFTLOOP_FAULTS_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_FAULTS_", extra="ignore")

    redis_outage_s: float = 30.0
    broker_outage_s: float = 30.0
    settle_s: float = 240.0
    """Longest wait for the counts to reach what a scenario expects."""
    stable_s: float = 20.0
    """Counts unchanged this long, not what is expected and no job unfinished: the scenario stopped short."""
    tenants: int = 100_000
    """Distinct tenants of the cardinality scenario (one event each)."""
    rss_growth_mb: float = 40.0
    """How much a worker's resident memory may grow over the last three quarters of those tenants."""
    sigterm_exit_s: float = 10.0


class Service:
    """An embedded service on a fixed port, stopped and started again by the scenario (``run(workdir, port)`` is
    :func:`devtools.embedded.kafka_broker` or :func:`~devtools.embedded.redis_server`)."""

    def __init__(self, run: Callable[[Path, int], contextlib.AbstractContextManager[str]], workdir: Path) -> None:
        self.run, self.workdir, self.port = run, workdir, free_port()
        self.running: contextlib.ExitStack | None = None
        self.address = self.start()

    def start(self) -> str:
        assert self.running is None, "already running"
        self.running = contextlib.ExitStack()
        return self.running.enter_context(self.run(self.workdir, self.port))

    def stop(self) -> None:
        if self.running is not None:
            self.running.close()
            self.running = None

    @contextlib.contextmanager
    def down(self, seconds: float) -> Iterator[None]:
        """Stopped while the block runs and at least ``seconds`` in all, then started again on the same port."""
        self.stop()
        started = time.monotonic()
        try:
            yield
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        finally:
            self.start()


class Rig:
    """Private services, the worker processes, a webhook receiver subscribed to every event type the suite
    counts, and the traffic published so far (``published``: sends the broker acknowledged)."""

    def __init__(self, workdir: Path, faults: FaultSettings) -> None:
        self.workdir, self.faults = workdir, faults
        self.workers: list[subprocess.Popen] = []
        self.metrics_ports: dict[int, int] = {}
        """Worker pid → the port of its /metrics."""
        self.published = 0
        with contextlib.ExitStack() as stack:  # services started before a failure are stopped
            services = workdir / "services"
            services.mkdir(parents=True)
            self.broker = Service(kafka_broker, services)
            stack.callback(self.broker.stop)
            self.redis = Service(redis_server, services)
            stack.callback(self.redis.stop)
            self.settings = Settings(
                _env_file=None,
                **broker_settings(self.broker.address),
                redis_url=self.redis.address,
                secret_keys=SecretStr(embedded_secret_key(services)),
                data_dir=workdir / "data",
                topic_partitions=4,
                group_session_timeout_s=6.0,
                webhook_backoff_s=0.05,
                webhook_allow_private_networks=True,
                job_lease_s=6.0,
                job_sweep_interval_s=2.0,
                samples_per_job=30,  # a job's size does not matter here, its count does
                worker_metrics_port=0,
            )
            ensure_topics(self.settings)
            self.settings.secret_box().install()  # what the webhook store in this process seals with
            self.receiver = stack.enter_context(WebhookReceiver(secret=None))
            self.receiver.secret = asyncio.run(self._subscribe())
            self.stack = stack.pop_all()

    async def _subscribe(self) -> str:
        redis = Redis.from_url(self.settings.redis_url)
        try:
            hook = await register(redis, WebhookCreate(url=self.receiver.url, event_types=list(WEBHOOK_TYPES)))
        finally:
            await redis.aclose()
        return hook.secret

    def start_workers(self, count: int = 1, env: dict[str, str] | None = None) -> list[subprocess.Popen]:
        """``count`` ``driftloop worker`` processes on the rig's services (with ``env`` added to their environment),
        started together; returned once each serves its /metrics (its app is built, it is joining the group).
        Stopped when the rig closes."""
        started = []
        for _ in range(count):
            settings = self.settings.model_copy(update={"worker_metrics_port": free_port()})
            with (self.workdir / f"worker-{len(self.workers)}.log").open("ab") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "driftloop", "worker"],
                    env={**os.environ, **settings_env(settings), **(env or {})},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.workers.append(worker)
            self.metrics_ports[worker.pid] = settings.worker_metrics_port
            started.append((worker, settings.worker_metrics_port))
        for worker, port in started:
            wait_for(lambda: worker.poll() is not None or answers(port), 180, f"worker {worker.pid} to start")  # noqa: B023
            assert worker.poll() is None, f"worker {worker.pid} exited with {worker.returncode} as it started"
        return [worker for worker, _ in started]

    def kill(self, worker: subprocess.Popen) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost node would."""
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()

    def metric(self, worker: subprocess.Popen, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample of ``worker``'s /metrics (0 when it has none of that name and labels)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[worker.pid]}/metrics", timeout=5).text
        return next(
            (
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == name and sample.labels == (labels or {})
            ),
            0.0,
        )

    def accepted_by(self, worker: subprocess.Popen) -> float:
        """Events ``worker`` accepted, from its /metrics."""
        return self.metric(worker, "driftloop_events_total", {"outcome": "accepted"})

    def stream_resets(self) -> float:
        """Stream resets the live workers counted (``driftloop_stream_resets_total``)."""
        live = [worker for worker in self.workers if worker.poll() is None]
        return sum(self.metric(worker, "driftloop_stream_resets_total") for worker in live)

    def live_workers(self) -> int:
        return sum(worker.poll() is None for worker in self.workers)

    def publish(self, messages: Iterable[Message]) -> Counter[int]:
        """Publish to the traffic topic and count it in ``published``; every send must be acknowledged (a scenario
        that publishes less than it meant to would expect less). How many went to each partition."""
        producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", linger_ms=5, max_request_size=16 << 20
        )
        try:
            futures = [producer.send(self.settings.traffic_topic, key=key, value=value) for key, value in messages]
            producer.flush()
        finally:
            producer.close()
        failed = [future.exception for future in futures if future.failed()]
        assert not failed, f"{len(failed)} of {len(futures)} sends refused, the first: {failed[0]!r}"
        partitions = Counter(future.value.partition for future in futures)
        self.published += len(futures)
        return partitions

    def report(self, lines: int = 40) -> str:
        """What a failed scenario's reader needs: every stored job's state, attempts and lease, and the last
        ``lines`` of each worker's log (Redis down: said so instead of the jobs)."""
        try:
            jobs = [
                f"{job.id} {job.state} attempts={job.attempts} owner={job.lease_owner} error={job.error}"
                for job in stored_jobs(self.settings)
            ]
        except (RedisError, OSError) as error:  # the scenario may have left Redis stopped
            jobs = [f"jobs not readable: {error!r}"]
        logs = []
        for index, worker in enumerate(self.workers):
            tail = (self.workdir / f"worker-{index}.log").read_text(errors="replace").splitlines()[-lines:]
            logs.append(f"--- worker {worker.pid} (exit {worker.poll()}), last {len(tail)} lines:\n" + "\n".join(tail))
        return "\n".join(["jobs:", *jobs, *logs])

    def close(self) -> list[str]:
        """Stop the workers, the receiver and the services; what is left running of the processes this rig
        started (their process groups), each as ``pid command``, killed."""
        for worker in self.workers:  # all signalled first: their grace periods run together
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            stop_process(worker)
        self.stack.close()
        listening = [
            f"port {service.port} still answers" for service in (self.broker, self.redis) if answers(service.port)
        ]
        return leftovers([worker.pid for worker in self.workers]) + listening


def traffic(events: int, shift_at: int | None = None, tenants: int = 1, seed: int = 0) -> tuple[list[dict], set[str]]:
    """Real traffic over :data:`~devtools.traffic.MODELS` and ``tenants`` tenants (each with every model), with an
    attack wave on the first model's segments from ``shift_at`` on (none without it); the events and the
    shifted segments.

    >>> events, shifted = traffic(8, shift_at=4, tenants=2)
    >>> sorted({event["tenant"] for event in events}), sorted(shifted)
    (['t0', 't1'], ['gpt-4o-mini/chat/t0', 'gpt-4o-mini/chat/t1'])
    """
    plan = None if shift_at is None else ShiftPlan(shift_at, attack_model=MODELS[0], latency_model=None)
    stream = list(shifted_stream(events, plan, seed))
    for index, event in enumerate(stream):
        event["tenant"] = f"t{index // len(MODELS) % tenants}"
    shifted = set() if plan is None else {f"{MODELS[0]}/chat/t{tenant}" for tenant in range(tenants)}
    return stream, shifted


def keyed(events: Iterable[dict]) -> Iterator[Message]:
    """Events keyed by segment, as ``driftloop replay`` keys them."""
    for event in events:
        yield segment_key(event), json.dumps(event).encode()


def answers(port: int) -> bool:
    """Whether something accepts connections on ``port`` of the loopback."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def leftovers(sessions: list[int]) -> list[str]:
    """Processes still running in the sessions led by ``sessions`` (each worker starts its own), killed; each
    as ``pid command``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) in sessions:
                pid, command = int(stat.parent.name), (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{pid} {command.decode(errors='replace')[:200]}")
                os.kill(pid, signal.SIGKILL)
    return found
