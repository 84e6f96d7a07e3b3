"""The stream worker: one Faust app whose agents join the loop's steps.

- ``monitor_traffic``: ``llm.traffic`` → parse → features → per-segment detectors →
  ``driftloop.incidents``; bad events → ``llm.traffic.dlq`` with the reason. Detector state is
  checkpointed every ``checkpoint_events`` events, and whenever an incident opens, into a
  changelog-backed Faust table that a restarted worker recovers.
- ``run_jobs``: ``driftloop.incidents`` → ``incident.opened`` webhooks → generation job (under a
  lease) → dataset version → ``finetune.requests`` and ``dataset.published`` webhooks (or
  ``pending_approval`` when ``require_approval`` is on).
- ``sweep_jobs`` (timer): re-runs jobs whose worker died or whose attempt failed (``feedback.sweeper``).

Run it with ``driftloop worker``.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from datetime import UTC, datetime

import faust
from prometheus_client import REGISTRY, start_http_server
from pydantic import ValidationError
from redis.asyncio import Redis

from driftloop.settings import Settings
from feedback import JobRunner
from feedback.deps import dispatcher as webhook_dispatcher
from feedback.publishing import Publisher
from feedback.storage import DatasetStore
from feedback.sweeper import sweep
from monitor import DriftIncident, InvalidEvent, SegmentMonitor, StreamStats, extract_features, incidents, parse_event
from monitor import metrics as monitor_metrics
from monitor.metrics import DetectorCollector

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    """The Faust app with its topics, table and agents, bound to ``settings``."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        web_enabled=False,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.group_session_timeout_s / 4),
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.data_dir / "faust"),
    )
    traffic = app.topic(settings.traffic_topic, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
    incident_topic = app.topic(settings.incidents_topic, key_serializer="raw", value_serializer="raw")
    finetune = app.topic(settings.finetune_topic, key_serializer="raw", value_serializer="raw")
    segments = app.Table("segment-monitors", default=None, key_type=bytes, value_type=bytes)  # bytes: raw codec
    monitors: dict[str, SegmentMonitor] = {}  # live state; checkpointed into the changelog-backed table

    redis = Redis.from_url(settings.redis_url)
    stats = StreamStats(redis)

    async def reject(raw: bytes, error: InvalidEvent) -> None:
        letter = {
            "reason": error.reason,
            "detail": error.detail,
            "received_at": datetime.now(UTC).isoformat(),
            "event": raw.decode("utf-8", errors="replace"),
        }
        await dlq.send(key=error.reason.encode(), value=json.dumps(letter).encode())
        await stats.rejected(error.reason)
        monitor_metrics.EVENTS.labels("rejected").inc()
        monitor_metrics.REJECTED.labels(error.reason).inc()

    REGISTRY.register(DetectorCollector(monitors, settings.metrics_max_segments))
    for topic in (settings.traffic_topic, settings.incidents_topic):
        monitor_metrics.CONSUMER_LAG.labels(topic).set(0)

    @app.agent(traffic)
    async def monitor_traffic(stream: faust.StreamT) -> None:
        async for raw in stream:
            monitor_metrics.LAST_EVENT.set_to_current_time()
            started = time.perf_counter()
            try:
                event = parse_event(raw)
            except InvalidEvent as error:
                await reject(raw, error)
                continue
            state = monitors.get(event.segment)
            if state is None:
                stored = segments.get(event.segment.encode())
                state = monitors[event.segment] = (
                    pickle.loads(stored)
                    if stored
                    else SegmentMonitor(
                        event.segment, settings.detector_delta, settings.detector_warmup, settings.confirm_events
                    )
                )
            incident = state.observe(event, extract_features(event))
            if incident is not None or state.events % settings.checkpoint_events == 0:
                segments[event.segment.encode()] = pickle.dumps(state)
            monitor_metrics.PROCESSING.observe(time.perf_counter() - started)
            await stats.accepted()
            monitor_metrics.EVENTS.labels("accepted").inc()
            if incident is not None:
                await incidents(redis).create(incident)
                await incident_topic.send(key=incident.id.encode(), value=incident.model_dump_json().encode())
                monitor_metrics.INCIDENTS.labels(incident.kind, incident.severity).inc()
                log.warning("incident %s: %s", incident.id, incident.headline)

    async def publish_finetune(key: str, value: bytes) -> None:
        await (await finetune.send(key=key.encode(), value=value))  # returns once the broker has it

    dispatcher = webhook_dispatcher(redis, settings)
    runner = JobRunner(
        redis,
        DatasetStore.open(settings.storage_url, settings.data_dir),
        Publisher(redis, publish_finetune, dispatcher),
        dispatcher,
        settings.samples_per_job,
        settings.job_seed,
        lease_s=settings.job_lease_s,
        max_attempts=settings.job_max_attempts,
        require_approval=settings.require_approval,
    )

    @app.agent(incident_topic)
    async def run_jobs(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                incident = DriftIncident.model_validate_json(raw)
            except ValidationError as error:
                log.error("skipping a message on %s that is not a DriftIncident: %s", settings.incidents_topic, error)
                continue
            job = await runner.handle(incident)
            log.warning("job %s for incident %s: %s", job.id, job.incident_id, job.state)

    @app.timer(interval=settings.job_sweep_interval_s)
    async def sweep_jobs() -> None:
        for job in await sweep(runner):
            log.warning("swept job %s for incident %s: %s", job.id, job.incident_id, job.state)

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        lag: dict[str, int] = {}
        for tp in app.consumer.assignment():
            position = await app.consumer.position(tp)
            if position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, app.consumer.highwater(tp) - position)
        for topic in (settings.traffic_topic, settings.incidents_topic):
            monitor_metrics.CONSUMER_LAG.labels(topic).set(lag.get(topic, 0))

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run the worker until interrupted (blocks)."""
    app = create_app(settings)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.api_host)
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()
