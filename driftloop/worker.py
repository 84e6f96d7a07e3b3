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

import asyncio
import json
import logging
import pickle
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import faust
from prometheus_client import REGISTRY, start_http_server
from pydantic import ValidationError
from redis.asyncio import Redis

from core.embeddings import embed
from core.risk import exemplar_vectors, injection_similarity
from driftloop.settings import Settings
from feedback import JobRunner
from feedback.deps import dispatcher as webhook_dispatcher
from feedback.publishing import Publisher
from feedback.storage import DatasetStore
from feedback.sweeper import sweep
from generators.llm import EndpointBackend, LLMGenerator, VLLMEngine
from generators.llm_client import Endpoint, StructuredOutput
from generators.recipes import load_recipes
from generators.samples import Generator
from monitor import (
    DriftIncident,
    IncidentStatus,
    InvalidEvent,
    Resolution,
    SegmentMonitor,
    StreamStats,
    TrafficEvent,
    extract_features,
    incidents,
    parse_event,
)
from monitor import metrics as monitor_metrics
from monitor.features import semantic_features
from monitor.language import detect_languages
from monitor.lifecycle import change_status, status_event
from monitor.metrics import DetectorCollector
from monitor.records import SegmentStatus, SegmentStatuses
from monitor.references import ReferencePins, fetch_range
from monitor.reports import build_report, store_report
from monitor.segments import MIN_REFERENCE, Measurements, measurements
from monitor.topics import TopicModel
from validation.run import StressConfig
from validation.scheduled import scheduled_stress

log = logging.getLogger(__name__)
T = TypeVar("T")
EMBED_CHARS = 1000
"""Characters of a prompt that are embedded (the model reads 256 word pieces, about this many characters)."""


def sampled(event_id: str, rate: float) -> bool:
    """Whether an event is in the embedding sample: a hash of its id, so a redelivered event is chosen again.

    >>> sampled("evt-1", 1.0), sampled("evt-1", 1e-9)
    (True, False)
    """
    return zlib.crc32(event_id.encode()) < rate * 2**32


def llm_endpoint(settings: Settings, base_url: str, model: str | None, concurrency: int) -> Endpoint:
    """An OpenAI-compatible endpoint with the service's key, structured-output dialect, timeout and retries."""
    return Endpoint(
        base_url,
        model=model,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        structured_output=StructuredOutput(settings.llm_structured_output),
        concurrency=concurrency,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )


def llm_generators(settings: Settings) -> dict[str, Generator]:
    """``{"llm": ...}``: vLLM in this process with ``DRIFTLOOP_LLM_IN_PROCESS``, else the endpoint at
    ``DRIFTLOOP_LLM_BASE_URL``; none when neither is set (recipes naming llm skip it)."""
    if settings.llm_in_process:
        if not (settings.llm_model and VLLMEngine.available()):
            raise RuntimeError("DRIFTLOOP_LLM_IN_PROCESS needs DRIFTLOOP_LLM_MODEL, the vllm package and a CUDA GPU")
        return {"llm": LLMGenerator(VLLMEngine(settings.llm_model), token_budget=settings.llm_token_budget)}
    if not settings.llm_base_url:
        return {}
    endpoint = llm_endpoint(settings, settings.llm_base_url, settings.llm_model, settings.llm_concurrency)
    return {"llm": LLMGenerator(EndpointBackend(endpoint), token_budget=settings.llm_token_budget)}


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
    # bytes: raw codec. use_partitioner: the agent takes batches, so a write has no current event to take the
    # changelog partition from; the producer's partitioner (murmur2, like the traffic producer's) puts a segment's
    # state in the partition of its traffic, as long as traffic is keyed by segment (driftloop.kafka.segment_key).
    segments = app.Table("segment-monitors", default=None, key_type=bytes, value_type=bytes, use_partitioner=True)
    monitors: dict[str, SegmentMonitor] = {}  # live state; checkpointed into the changelog-backed table
    state_lock = asyncio.Lock()  # the monitors change in threads: one change at a time
    topic_table = app.Table("segment-topics", default=None, key_type=bytes, value_type=bytes, use_partitioner=True)
    topic_models: dict[str, TopicModel] = {}  # checkpointed with the segment's monitor

    redis = Redis.from_url(settings.redis_url)
    stats, statuses, pins = StreamStats(redis), SegmentStatuses(redis), ReferencePins(redis)

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

    def restored(live: dict[str, T], table: faust.Table, segment: str, new: Callable[[], T]) -> T:
        """A segment's live state: in memory, else from its last checkpoint in ``table``, else ``new()``."""
        if segment not in live:
            stored = table.get(segment.encode())
            live[segment] = pickle.loads(stored) if stored else new()
        return live[segment]

    def segment_state(segment: str) -> SegmentMonitor:
        return restored(
            monitors,
            segments,
            segment,
            lambda: SegmentMonitor(
                segment,
                settings.detector_service_ert,
                settings.detector_warmup,
                settings.reference_events,
                settings.resolve_events,
                novel=any(known.detectors for known in monitors.values()),  # appeared after others settled
            ),
        )

    def segment_topics(segment: str) -> TopicModel:
        return restored(
            topic_models,
            topic_table,
            segment,
            lambda: TopicModel(settings.topic_reference_size, settings.topic_count, seed=settings.job_seed),
        )

    def featured(events: list[TrafficEvent]) -> list[Measurements]:
        """Each event's features and language: run in a thread, so the loop fetches the next batch meanwhile."""
        languages = detect_languages([event.prompt_text for event in events])
        return [
            measurements(extract_features(event, language), language)
            for event, language in zip(events, languages, strict=True)
        ]

    async def measure(events: list[TrafficEvent]) -> list[Measurements]:
        """Each event's :func:`~monitor.segments.measurements`: features, language and, for the embedding sample
        (when embeddings are on), the prompt embedding and its features (computed off the loop)."""
        inputs = await asyncio.to_thread(featured, events)
        rate = settings.embedding_sample_rate
        chosen = [i for i, event in enumerate(events) if settings.embeddings and sampled(event.id, rate)]
        if not chosen:
            return inputs
        vectors = await asyncio.to_thread(embed, [events[i].prompt_text[:EMBED_CHARS] for i in chosen])
        similarities = injection_similarity(vectors)
        for i, vector, similarity in zip(chosen, vectors, similarities, strict=True):
            topics = segment_topics(events[i].segment).assign(vector)
            inputs[i] |= measurements(semantic_features(topics, float(similarity)), vector=vector)
        return inputs

    def observe(events: list[TrafficEvent], inputs: list[Measurements]) -> tuple[list, dict[str, tuple]]:
        """Feed a batch to its segments' monitors, in a thread (a reference that completes is calibrated here:
        seconds of CPU that must not stall the event loop). The incidents and resolutions reached, and each
        incident's report windows as they were when it opened."""
        batches: dict[str, tuple[list[TrafficEvent], list[Measurements]]] = {}
        for event, measured in zip(events, inputs, strict=True):
            batch = batches.setdefault(event.segment, ([], []))
            batch[0].append(event)
            batch[1].append(measured)
        outcomes, windows = [], {}
        for segment, (segment_events, segment_inputs) in batches.items():
            state = monitors[segment]
            for outcome in state.observe_many(segment_events, segment_inputs):
                if isinstance(outcome, DriftIncident):
                    windows[outcome.id] = state.report_windows(outcome.onset_event)
                outcomes.append(outcome)
        return outcomes, windows

    @app.agent(traffic)
    async def monitor_traffic(stream: faust.StreamT) -> None:
        if settings.embeddings:
            await asyncio.to_thread(exemplar_vectors)  # load the model and embed the exemplars before consuming
        async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within_s):
            monitor_metrics.LAST_EVENT.set_to_current_time()
            started = time.perf_counter()
            events = []
            for item in batch:
                try:
                    event = parse_event(item.value)
                except InvalidEvent as error:
                    await reject(item.value, error)
                    continue
                # a redelivered event already in the segment's state (it was checkpointed after the consumer's last
                # commit, then the worker died): counted once, not twice
                positions = segment_state(event.segment).positions
                if item.message.offset > positions.get(item.message.partition, -1):
                    positions[item.message.partition] = item.message.offset
                    events.append(event)
            if not events:
                continue
            inputs = await measure(events)
            touched = {event.segment for event in events}
            before = {segment: monitors[segment].events for segment in touched}
            async with state_lock:
                opened, windows = await asyncio.to_thread(observe, events, inputs)
            changed = {outcome.segment for outcome in opened}
            for segment in touched:
                state = monitors[segment]
                if (
                    segment in changed
                    or before[segment] // settings.checkpoint_events < state.events // settings.checkpoint_events
                ):
                    segments[segment.encode()] = pickle.dumps(state)
                    if segment in topic_models:
                        topic_table[segment.encode()] = pickle.dumps(topic_models[segment])
                await statuses.record(
                    SegmentStatus(
                        segment=segment,
                        state=state.state,
                        events=state.events,
                        open_incident=state.open_incident,
                    )
                )
            elapsed = time.perf_counter() - started
            for _ in events:
                monitor_metrics.PROCESSING.observe(elapsed / len(events))
            await stats.accepted(len(events))
            monitor_metrics.EVENTS.labels("accepted").inc(len(events))
            for incident in opened:
                if isinstance(incident, Resolution):
                    await resolve(incident)
                    continue
                await incidents(redis).create(incident)
                await incident_topic.send(key=incident.id.encode(), value=incident.model_dump_json().encode())
                monitor_metrics.INCIDENTS.labels(incident.kind, incident.severity).inc()
                log.warning("incident %s: %s", incident.id, incident.headline)
                reports.add(asyncio.create_task(report(incident, *windows.pop(incident.id))))

    reports: set[asyncio.Task] = set()  # running report builds (a reference keeps each task alive)

    async def report(incident: DriftIncident, reference: list[dict], current: list[dict]) -> None:
        """Render and store the incident's Evidently report off the event loop (it takes seconds of CPU)."""
        try:
            html = await asyncio.to_thread(build_report, incident, reference, current)
            await store_report(redis, incident.id, html)
        except ValueError as error:  # windows too small for a report: the incident stands without one
            log.warning("no report for incident %s: %s", incident.id, error)
        finally:
            reports.discard(asyncio.current_task())

    async def resolve(resolution: Resolution) -> None:
        """The monitor's auto-resolve: the stored incident moves to resolved and ``incident.resolved`` goes out."""
        changed = await change_status(redis, resolution.incident_id, IncidentStatus.RESOLVED, by="monitor")
        if changed is not None:
            await dispatcher.dispatch(*status_event(*changed))
            log.warning("incident %s resolved by the monitor", resolution.incident_id)

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
        recipes=load_recipes(settings.recipes_path),
        extra_generators=llm_generators(settings),
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

    @app.timer(interval=settings.reference_poll_s)
    async def apply_reference_pins() -> None:
        """Take up references pinned through the API (events of the range, re-read from the traffic topic), and
        return released ones to rolling; only segments this worker monitors."""
        for change in await pins.pending():
            state = monitors.get(change.segment)
            if state is None:
                continue
            if change.pin is None:
                async with state_lock:
                    state.rebase()
                await pins.released(change.segment)
                continue
            pin = change.pin
            events = await asyncio.to_thread(
                fetch_range,
                settings.kafka_bootstrap,
                settings.traffic_topic,
                pin.segment,
                pin.start,
                pin.end,
                settings.reference_max_events,
            )
            rows = await measure(events) if events else []
            if len(rows) < MIN_REFERENCE:
                log.error(
                    "reference pin of %s: %d events in its range, at least %d needed; not applied",
                    pin.segment,
                    len(rows),
                    MIN_REFERENCE,
                )
                continue
            async with state_lock:
                await asyncio.to_thread(state.pin_reference, rows, [event.prompt_text for event in events])
            await pins.applied(pin, len(rows))
            log.warning(
                "segment %s: reference pinned to %d events of %s..%s", pin.segment, len(rows), pin.start, pin.end
            )

    if settings.stress_interval_minutes:
        stress_endpoint = llm_endpoint(
            settings,
            settings.stress_endpoint or settings.llm_base_url,
            settings.stress_model,
            settings.stress_concurrency,
        )
        stress_config = StressConfig(system_prompt=settings.stress_system_prompt, max_tokens=settings.stress_max_tokens)

        async def publish_regression(incident: DriftIncident) -> None:
            await (await incident_topic.send(key=incident.id.encode(), value=incident.model_dump_json().encode()))

        @app.timer(interval=settings.stress_interval_minutes * 60, on_leader=True)
        async def stress_model() -> None:
            run, incident = await scheduled_stress(
                settings.stress_suite_path, stress_endpoint, stress_config, redis, publish_regression
            )
            log.warning("stress run of %s: %s", run.summary.suite, incident.headline if incident else "no regression")

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
