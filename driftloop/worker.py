"""The stream worker: one Faust app whose agents and timers hand their messages to the apps' steps.

- ``monitor_traffic``: ``llm.traffic`` → events not in their segment's partition forwarded to it through the
  segments topic (:mod:`driftloop.repartition`), so one worker holds each segment → :class:`monitor.agent.TrafficAgent`
  (parse → features → per-segment
  detectors → ``driftloop.incidents``; bad events → ``llm.traffic.dlq`` with the reason; a sample of responses to
  the LLM judge, off the stream, when ``DRIFTLOOP_JUDGE_SAMPLE_RATE`` > 0). Every segment a batch
  changed is checkpointed into changelog-backed Faust tables that a restarted worker recovers
  (:class:`monitor.stream.StreamStep`), and the batch's events are acknowledged (so their offsets committed) only
  once the broker has those checkpoints (:class:`driftloop.checkpoints.CheckpointTable`).
- ``apply_reference_pins`` (timer): references pinned or released through the API.
- ``run_jobs``: ``driftloop.incidents`` → :func:`feedback.agent.start_job` (``incident.opened`` webhooks →
  generation job queued, then run in the worker's :class:`feedback.pool.JobPool`, up to ``job_concurrency`` at
  once, each under a lease → dataset version → ``finetune.requests`` and ``dataset.published`` webhooks, or
  ``pending_approval`` when ``require_approval`` is on).
- ``sweep_jobs`` (timer): runs jobs whose worker died, whose attempt failed, or that wait for a slot on a busy
  worker (``feedback.sweeper``).
- ``verify_candidates``: ``finetune.results`` → the candidate model stored and verified against production
  (``feedback.verifier``).
- ``sweep_candidates`` (timer): verifies candidates reported through the API or left unverified; a timer of its
  own, because a verification takes minutes and job sweeps go on meanwhile.
- ``deliver_webhooks`` (task): delivers the webhook outbox (``feedback.outbox``); whoever dispatches an event
  only records it there.
- ``stress_model`` (timer, when scheduled): a stress suite against the model; a regression is an incident.

Run it with ``driftloop worker``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from datetime import datetime
from typing import Any

import faust
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import start_http_server
from redis.asyncio import Redis
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter
from threadpoolctl import threadpool_limits

from core.allocator import fix_malloc_thresholds
from core.embeddings import limit_threads
from core.redis_client import connect
from driftloop.checkpoints import CheckpointTable
from driftloop.consumer import App
from driftloop.log_identity import TrafficLog
from driftloop.log_repeats import Repeats
from driftloop.repartition import HEADER, forwarded, local_rule, segment_partition, source_header
from driftloop.settings import Settings, usable_cpus
from feedback import JobRunner
from feedback.agent import start_job
from feedback.candidates import candidate_policy
from feedback.deps import delivery_loop
from feedback.deps import dispatcher as webhook_dispatcher
from feedback.pool import JobPool
from feedback.publishing import Publisher
from feedback.storage import DatasetStore
from feedback.sweeper import sweep
from feedback.targets import TargetWriter
from feedback.verification import Sizes
from feedback.verifier import CandidateVerifier
from feedback.webhooks import Dispatcher
from generators.judge import LLMJudge, MinuteBudget
from generators.llm import Backend, EndpointBackend, LLMGenerator, VLLMEngine
from generators.llm_client import Endpoint, StructuredOutput
from generators.metrics import LLMMetrics
from generators.recipes import load_recipes
from generators.samples import Generator
from monitor import calibration_pool
from monitor.agent import Record, Source, TrafficAgent
from monitor.cpu import StageCollector
from monitor.events import InvalidEvent, TrafficEvent
from monitor.incidents import DriftIncident
from monitor.judging import JudgeSampler
from monitor.measure_ahead import MeasureAhead, Recipe
from monitor.metrics import DetectorCollector, MonitorMetrics
from monitor.references import fetch_range
from monitor.sink import IncidentSink
from monitor.stream import StreamStep
from validation.run import StressConfig
from validation.scheduled import scheduled_stress

log = logging.getLogger(__name__)


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


def llm_backend(settings: Settings) -> Backend | None:
    """vLLM in this process with ``DRIFTLOOP_LLM_IN_PROCESS``, else the endpoint at ``DRIFTLOOP_LLM_BASE_URL``;
    None when neither is set."""
    if settings.llm_in_process:
        if not (settings.llm_model and VLLMEngine.available()):
            raise RuntimeError("DRIFTLOOP_LLM_IN_PROCESS needs DRIFTLOOP_LLM_MODEL, the vllm package and a CUDA GPU")
        return VLLMEngine(settings.llm_model)
    if not settings.llm_base_url:
        return None
    return EndpointBackend(llm_endpoint(settings, settings.llm_base_url, settings.llm_model, settings.llm_concurrency))


def llm_generators(settings: Settings, backend: Backend | None = None) -> dict[str, Generator]:
    """``{"llm": ...}`` on ``backend`` (default: :func:`llm_backend`); none without one (recipes naming llm skip
    it)."""
    backend = backend or llm_backend(settings)
    return {"llm": LLMGenerator(backend, token_budget=settings.llm_token_budget)} if backend else {}


def target_writer(settings: Settings, backend: Backend | None = None) -> TargetWriter | None:
    """The teacher on ``backend`` (default: :func:`llm_backend`); None without one: datasets are evaluation sets."""
    backend = backend or llm_backend(settings)
    if backend is None:
        return None
    return TargetWriter(
        backend,
        settings.target_judge,
        settings.target_token_budget,
        max_tokens=settings.target_max_tokens,
        words=settings.target_words,
    )


def response_judge(settings: Settings, metrics: MonitorMetrics) -> JudgeSampler | None:
    """The sampled LLM judge of responses at ``DRIFTLOOP_LLM_BASE_URL``; none when ``DRIFTLOOP_JUDGE_SAMPLE_RATE``
    is 0. At most ``DRIFTLOOP_LLM_CONCURRENCY`` calls in flight, as many awaited at once."""
    if not settings.judge_sample_rate or not settings.llm_base_url:
        return None
    endpoint = llm_endpoint(settings, settings.llm_base_url, settings.llm_model, settings.llm_concurrency)
    judge = LLMJudge(endpoint, MinuteBudget(settings.judge_tokens_per_minute))
    return JudgeSampler(judge, settings.judge_sample_rate, settings.llm_concurrency, metrics)


def candidate_verifier(settings: Settings, redis: Redis, dispatcher: Dispatcher) -> CandidateVerifier:
    """The verifier of candidate models against the production model (``stress_endpoint`` or ``llm_base_url``)."""
    production_url = settings.stress_endpoint or settings.llm_base_url
    production = (
        llm_endpoint(settings, production_url, settings.stress_model, settings.verify_concurrency)
        if production_url
        else None
    )
    return CandidateVerifier(
        redis,
        production,
        StressConfig(system_prompt=settings.stress_system_prompt, max_tokens=settings.verify_max_tokens),
        dispatcher,
        candidate_policy(settings.candidate_allow_private_networks, settings.candidate_allowed_networks),
        recipes=load_recipes(settings.recipes_path),
        stress_suite_path=settings.stress_suite_path,
        sizes=Sizes(settings.verify_probes, settings.verify_general_probes),
        lease_s=settings.job_lease_s,
        max_attempts=settings.verify_max_attempts,
    )


def measure_ahead(settings: Settings) -> MeasureAhead | None:
    """The helper that measures traffic records as they are fetched (``DRIFTLOOP_MEASURE_AHEAD``, with embeddings
    on), or None."""
    if not (settings.measure_ahead and settings.embeddings):
        return None
    recipe = Recipe(
        settings.price_table(), settings.max_event_bytes, settings.embedding_model, settings.embedding_sample_rate
    )
    return MeasureAhead(recipe)


def broker_blips() -> AsyncRetrying:
    """Retries of a write the stream awaits while the broker refuses it (away, or back without the topic, which the
    worker recreates on its next assignment): with backoff for up to two minutes, then the error stops the agent."""
    return AsyncRetrying(
        retry=retry_if_exception_type(KafkaError),
        wait=wait_exponential_jitter(0.2, 5),
        stop=stop_after_delay(120),
        before_sleep=lambda state: log.warning(
            "a write to the broker failed (%r): retrying", state.outcome.exception()
        ),
        reraise=True,
    )


def create_app(settings: Settings) -> faust.App:
    """The Faust app with its topics, tables, agents and timers, bound to ``settings``; ``SecretKeysMissing``
    without ``secret_keys``."""
    settings.secret_box().install()
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = App(  # Faust's, its commits never passing an event not processed (driftloop.consumer)
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        web_enabled=False,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.group_session_timeout_s / 4),
        consumer_metadata_max_age_ms=int(settings.metadata_max_age_s * 1000),
        fetch_max_wait_s=settings.fetch_max_wait_s,
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=settings.producer_batch_bytes,
        datadir=str(settings.data_dir / "faust"),
    )
    # the traffic as produced and as forwarded to its segment's partition (driftloop.repartition), in one agent
    traffic = app.topic(settings.traffic_topic, settings.segments_topic, key_serializer="raw", value_serializer="raw")
    by_segment = app.topic(settings.segments_topic, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
    incident_topic = app.topic(settings.incidents_topic, key_serializer="raw", value_serializer="raw")
    finetune = app.topic(settings.finetune_topic, key_serializer="raw", value_serializer="raw")
    # bytes: raw codec. use_partitioner: the agent takes batches, so a write has no current event to take the
    # changelog partition from; the producer's partitioner (murmur2) puts a segment's state in its segment's
    # partition, where the agent processes its events (driftloop.repartition.segment_partition).
    segments, topic_table = (
        app.tables.add(
            CheckpointTable(
                app, name=name, beacon=app.tables.beacon, key_type=bytes, value_type=bytes, use_partitioner=True
            )
        )
        for name in ("segment-monitors", "segment-topics")
    )
    # live state, checkpointed into the changelog-backed tables
    step = StreamStep(settings, segments, topic_table, prices=settings.price_table())

    redis = connect(settings.redis_url, settings.redis_timeout_s)  # waits out Redis outages
    dispatcher = webhook_dispatcher(redis, settings)

    async def dead_letter(key: bytes, value: bytes) -> None:
        async for attempt in broker_blips():
            with attempt:  # the broker has it before the record's offset is committed
                await (await dlq.send(key=key, value=value))

    async def publish_incident(incident: DriftIncident) -> None:
        async for attempt in broker_blips():
            with attempt:
                await (await incident_topic.send(key=incident.id.encode(), value=incident.model_dump_json().encode()))

    metrics = MonitorMetrics.default()
    LLMMetrics.default()  # exported from the start, an LLM endpoint configured or not
    sink = IncidentSink(
        redis, publish_incident, metrics.incidents, metrics.causes
    )  # the stream's incidents and stress regressions
    monitoring = TrafficAgent(
        step,
        redis,
        dead_letter,
        sink,
        dispatcher.dispatch,
        metrics,
        keep_raw_dead_letters=settings.dlq_keep_raw,
        max_event_bytes=settings.max_event_bytes,
        judge=response_judge(settings, metrics),
        ahead=measure_ahead(settings),
    )
    app.measure_ahead, app.traffic_topics = monitoring.ahead, frozenset(traffic.topics)
    metrics.registry.register(DetectorCollector(step.monitors, settings.metrics_max_segments))
    metrics.registry.register(StageCollector())
    for topic in (settings.traffic_topic, settings.segments_topic, settings.incidents_topic):
        metrics.consumer_lag.labels(topic).set(0)

    @app.agent(traffic)
    async def monitor_traffic(stream: faust.StreamT) -> None:
        await monitoring.warm_up()
        gc.freeze()  # what is loaded by now lives as long as the worker: out of every collection's scan (run_worker)
        async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within_s):
            # a batch taken before a rebalance may hold another worker's events, or events fetched before a
            # restart of the broker: they are left (this worker reads its own again from the committed offsets)
            await traffic_log.follow(lambda: app.assignments)  # the log's id as of this assignment
            assigned, generation = app.consumer.assignment(), app.consumer_generation_id
            arrived, produced, unreadable = [], [], []  # no await in this loop: the assignment must hold throughout
            for item in batch:
                message = item.message
                if message.tp not in assigned or message.generation_id != generation:
                    continue
                sent_at = message.timestamp if message.timestamp and message.timestamp > 0 else None  # -1 ms: none
                if message.topic == settings.traffic_topic:
                    highwater = app.consumer.highwater(message.tp)
                    produced.append(
                        Record(item.value, message.partition, message.offset, highwater, traffic_log.id, sent_at)
                    )
                    continue
                try:
                    arrived.append(forwarded(item.value, message.headers, sent_at))
                except ValueError as error:  # not forwarded by a worker: its source is the segments topic's record
                    record = Record(item.value, message.partition, message.offset)
                    source = Source(message.topic, message.partition, message.offset)
                    unreadable.append((record, source, InvalidEvent("unexpected_error", str(error))))
            for record, source, error in unreadable:
                await monitoring.reject(record, error, source)
            local = local_rule(await traffic_log.partition_count(), settings.topic_partitions)
            here, away = await monitoring.route(produced, local)
            sends = [
                await by_segment.send(
                    key=segment.encode(),
                    value=record.value,
                    partition=segment_partition(segment, settings.topic_partitions),
                    timestamp=record.produced,
                    headers=[(HEADER, source_header(record))],
                )
                for segment, record in away
            ]
            await monitoring.process([*arrived, *here])
            await asyncio.gather(*sends)  # take_events acknowledges the batch when the body returns: forwarded and
            await segments.written()  # checkpointed by then
            await topic_table.written()

    @app.on_before_shutdown.connect
    async def stop_judging(app: faust.App, **kwargs: object) -> None:
        if monitoring.judge is not None:
            await monitoring.judge.close()

    @app.on_before_shutdown.connect
    async def stop_helpers(app: faust.App, **kwargs: object) -> None:
        await asyncio.to_thread(calibration_pool.stop)  # its processes gone before this one
        if monitoring.ahead is not None:
            monitoring.ahead.stop()

    traffic_log = TrafficLog(settings, [table.changelog_topic.get_topic_name() for table in (segments, topic_table)])

    @app.on_partitions_assigned.connect
    async def follow_the_log(app: faust.App, assigned: set, **kwargs: object) -> None:
        await traffic_log.follow(lambda: app.assignments)  # topics a broker lost recreated at once

    @app.on_partitions_revoked.connect
    async def forget_live_segments(app: faust.App, revoked: set, **kwargs: object) -> None:
        await monitoring.forget()  # a partition may come back later, its segments moved on by another worker

    def fetch_reference(segment: str, start: datetime, end: datetime) -> list[TrafficEvent]:
        return fetch_range(
            settings.kafka_bootstrap, settings.traffic_topic, segment, start, end, settings.reference_max_events
        )

    @app.timer(interval=settings.reference_poll_s)
    async def apply_reference_pins() -> None:
        await monitoring.apply_reference_pins(fetch_reference)

    async def publish_finetune(key: str, value: bytes) -> None:
        await (await finetune.send(key=key.encode(), value=value))  # returns once the broker has it

    backend = llm_backend(settings)  # one vLLM engine (or endpoint) for the generator and the teacher
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
        extra_generators=llm_generators(settings, backend),
        targets=target_writer(settings, backend),
        gate_encoder=settings.gate_embedding_model,
    )

    pool = JobPool(runner, settings.job_concurrency)
    limit_threads(usable_cpus() // settings.job_concurrency)  # jobs at once share the CPUs: no thread waits for one

    @app.agent(incident_topic)
    async def run_jobs(stream: faust.StreamT) -> None:
        async for message in stream:  # acknowledged once its job is queued in Redis, where any sweeper finds it
            await start_job(pool, message, settings.incidents_topic)

    verifier = candidate_verifier(settings, redis, dispatcher)
    results = app.topic(settings.results_topic, key_serializer="raw", value_serializer="raw")

    @app.agent(results)
    async def verify_candidates(stream: faust.StreamT) -> None:
        async for message in stream:
            await verifier.on_result(message, settings.results_topic)

    @app.timer(interval=settings.job_sweep_interval_s)
    async def sweep_jobs() -> None:
        for task in await sweep(pool):
            log.warning("swept up %s", task.get_name())

    @app.timer(interval=settings.job_sweep_interval_s)
    async def sweep_candidates() -> None:
        for candidate in await verifier.sweep():
            log.warning("swept candidate %s for incident %s: %s", candidate.id, candidate.incident_id, candidate.state)

    @app.on_before_shutdown.connect
    async def stop_jobs(app: faust.App, **kwargs: object) -> None:
        await pool.close()  # their leases let go: another worker takes the jobs over at its next sweep

    deliveries = delivery_loop(redis, settings)

    @app.task
    async def deliver_webhooks() -> None:
        await deliveries.run()  # until the worker stops

    if settings.stress_interval_minutes:
        stress_endpoint = llm_endpoint(
            settings,
            settings.stress_endpoint or settings.llm_base_url,
            settings.stress_model,
            settings.stress_concurrency,
        )
        stress_config = StressConfig(system_prompt=settings.stress_system_prompt, max_tokens=settings.stress_max_tokens)

        @app.timer(interval=settings.stress_interval_minutes * 60, on_leader=True)
        async def stress_model() -> None:
            run, incident = await scheduled_stress(
                settings.stress_suite_path, stress_endpoint, stress_config, redis, sink
            )
            log.warning("stress run of %s: %s", run.summary.suite, incident.headline if incident else "no regression")

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        lag: dict[str, int] = {}
        for tp in app.consumer.assignment():
            try:
                position, highwater = await app.consumer.position(tp), app.consumer.highwater(tp)
            except (IllegalStateError, AssertionError):  # aiokafka's: revoked meanwhile (a timer's error stops Faust)
                continue
            if position is not None and highwater is not None:  # unknown while the broker is away
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
        for topic in (settings.traffic_topic, settings.segments_topic, settings.incidents_topic):
            metrics.consumer_lag.labels(topic).set(lag.get(topic, 0))

    return app


KAFKA_LOGGERS = ("aiokafka",)
"""Loggers whose repeated lines are summarised (:class:`~driftloop.log_repeats.Repeats`): during a broker outage
aiokafka logs every failed connection, metadata update and fetch."""


class Worker(faust.Worker):
    """Faust's worker whose log summarises the Kafka client's repeated lines, and whose stop (on SIGTERM, or after
    a crash) is bounded: ``stop_timeout_s`` after it began, the process exits with code 1 and says so, whatever
    Faust's shutdown still waits for (a commit or a flush to a broker that is gone)."""

    def __init__(self, app: faust.App, stop_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.stop_timeout_s = stop_timeout_s

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        repeats = Repeats(KAFKA_LOGGERS)
        for handler in logger.handlers:
            handler.addFilter(repeats)

    async def on_stop(self) -> None:
        deadline = threading.Timer(self.stop_timeout_s, self._abandon)
        deadline.daemon = True
        deadline.start()
        await super().on_stop()

    def _abandon(self) -> None:
        log.critical("the worker did not stop within %.0f s: exiting without waiting for the rest", self.stop_timeout_s)
        os._exit(1)


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run the worker until interrupted (blocks).

    numpy's BLAS runs on one thread here: the stream's matrix products are small (a batch's embeddings against a
    segment's topics, window statistics), and split over threads they mostly spin. With embeddings on every event
    the worker used 2,172 µs of CPU an event with two BLAS threads, 1,626 with one (``python -m bench.throughput``,
    10,000 events, 2 cores). Its mmap and trim thresholds are fixed, so that freed large arrays leave its resident
    memory and small ones stay (:mod:`core.allocator`). Once its models are loaded, the objects it holds (about
    700,000, mostly of the libraries it imports) are frozen out of the garbage collector's scans (``gc.freeze``):
    each of the collections of the oldest generation, ten in 30,000 events, took about 200 ms of scanning them
    (2.2 s of the stream step's 10 s in process; over 20,000 events with the freeze, 0.04 s in all)."""
    threadpool_limits(limits=1, user_api="blas")
    fix_malloc_thresholds()
    app = create_app(settings)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.api_host)
    Worker(app, settings.worker_stop_timeout_s, loglevel=loglevel).execute_from_commandline()
