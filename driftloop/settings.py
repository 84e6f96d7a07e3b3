"""All of driftloop's configuration, read once from ``DRIFTLOOP_*`` environment variables.

>>> Settings(kafka_bootstrap="127.0.0.1:9092").traffic_topic
'llm.traffic'
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.embeddings import Model
from core.secrets import SecretBox, SecretKeysMissing
from driftloop.services_file import SERVICES_FILE, running_writer
from monitor.prices import Price, PriceTable

NO_SECRET_KEYS = (
    "DRIFTLOOP_SECRET_KEYS is not set: the API and the worker seal webhook secrets in Redis with it. Set it to a "
    "Fernet key, made by `driftloop secrets new-key` or "
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`, '
    "and give the API and every worker the same value (`driftloop demo` and `driftloop up` with embedded Redis "
    "make their own)."
)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Settings(BaseSettings):
    """Service settings; every field can be set as ``DRIFTLOOP_<FIELD>``: in the environment, else in ``.env``, else
    in the file of a running ``driftloop up`` (:mod:`driftloop.services_file`)."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, then the services file of ``driftloop up`` while the ``up`` that wrote it runs."""
        services = DotEnvSettingsSource(settings_cls, env_file=SERVICES_FILE if running_writer(SERVICES_FILE) else None)
        return init_settings, env_settings, dotenv_settings, services, file_secret_settings

    kafka_bootstrap: str | None = Field(None, description="host:port of the Kafka broker; unset = embedded tansu")
    producer_batch_bytes: int = Field(
        16384,
        ge=1,
        description="most bytes the worker's producer puts in one batch per partition (aiokafka's max_batch_size); "
        "the embedded tansu gets 1, one record a batch: it reports a partition's end as its last batch's first offset "
        "+ 1, and a table's recovery reads only to that end, so a worker taking over partitions missed the newest "
        "checkpoints",
    )
    redis_url: str | None = Field(None, description="redis:// URL; unset = embedded redis-server")
    redis_timeout_s: float = Field(
        5.0,
        gt=0,
        description="bound on one attempt of a Redis command (connect, answer); the worker retries failed attempts "
        "until Redis is back, the API answers 503 after two",
    )
    data_dir: Path = Field(Path(".driftloop"), description="where dataset versions are written")

    app_id: str = "driftloop"
    traffic_topic: str = "llm.traffic"
    dlq_topic: str = "llm.traffic.dlq"
    dlq_keep_raw: bool = Field(
        False,
        description="dead letters keep the raw rejected record, personal data included; off: a redacted copy",
    )
    max_event_bytes: int = Field(
        1_048_576,
        ge=1,
        description="largest traffic record read (bytes, as Kafka's default message limit); larger: dead-lettered "
        "as too_large",
    )
    incidents_topic: str = "driftloop.incidents"
    finetune_topic: str = "finetune.requests"
    results_topic: str = Field("finetune.results", description="where training systems report candidate models")
    topic_partitions: int = Field(1, ge=1, description="partitions of topics the worker creates")
    group_session_timeout_s: float = Field(10.0, gt=0, description="consumer group session timeout")
    fetch_max_wait_s: float = Field(
        0.1,
        ge=0.001,  # whole milliseconds: less would be none, a busy loop of empty fetches
        description="longest a fetch waits at the broker for records (Faust fixes 1.5 s: a fetch of only the empty "
        "partitions, sent while the traffic's records wait in the client's buffer, stalled the stream that long)",
    )
    metadata_max_age_s: float = Field(
        10.0,
        gt=0,
        description="how often the worker reads the topics' metadata again: topics created after it joined (a broker "
        "back without its data, whose topics the worker recreates) are assigned at the next read",
    )
    worker_stop_timeout_s: float = Field(
        8.0,
        gt=0,
        description="how long a stopping worker waits for Faust's shutdown (commits, producer flush) before it exits "
        "without it (code 1): the broker or Redis may be gone",
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_max_segments: int = Field(20, ge=1, description="segments exported as metric labels (the busiest)")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM), e.g. http://vllm:8000/v1")
    llm_model: str | None = Field(None, description="model name sent to the endpoint; unset = the first it lists")
    llm_api_key: SecretStr | None = Field(None, description="bearer key of the LLM endpoint, if it wants one")
    llm_structured_output: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="response_format dialect: json_schema (vLLM, OpenAI) or json_object (llama-cpp-python's server)",
    )
    llm_in_process: bool = Field(
        False,
        description="generate with vLLM inside the worker (LLM_MODEL; needs vllm and a GPU), not LLM_BASE_URL",
    )
    llm_concurrency: int = Field(8, ge=1, description="LLM calls in flight at once, per job")
    llm_timeout_s: float = Field(120.0, gt=0, description="timeout of one LLM call attempt")
    llm_max_retries: int = Field(3, ge=0, description="retries of an LLM call on connection errors, 429 and 5xx")
    llm_token_budget: int | None = Field(
        50_000, ge=1, description="prompt + completion tokens one job may spend on the LLM; unset = no limit"
    )
    target_judge: bool = Field(
        True, description="an LLM judge (the same endpoint) checks every teacher-written target before it is kept"
    )
    target_token_budget: int | None = Field(
        200_000, ge=1, description="tokens the teacher and the judge may spend on one job's targets; unset = no limit"
    )
    target_max_tokens: int = Field(320, ge=16, description="longest target the teacher may write (longer: dropped)")
    target_words: int = Field(150, ge=1, description="length the teacher is asked of an answer, in words")
    worker_metrics_port: int = Field(9108, ge=0, description="port of a worker's /metrics; 0 turns it off")
    stress_interval_minutes: float = Field(0, ge=0, description="minutes between scheduled stress runs; 0 = off")
    stress_endpoint: str | None = Field(None, description="OpenAI-compatible endpoint to stress; unset = LLM_BASE_URL")
    stress_model: str | None = Field(None, description="model name for stress runs; unset = the first it lists")
    stress_suite_path: Path | None = Field(None, description="suite file (.json/.yaml) of the scheduled stress runs")
    stress_system_prompt: str = Field("You are a helpful assistant.", description="system prompt of stress runs")
    stress_max_tokens: int = Field(64, ge=1, description="reply length limit per stress probe")
    stress_concurrency: int = Field(8, ge=1, description="stress probes in flight at once")

    detector_service_ert: float = Field(
        1_000_000, gt=1, description="events between false alarms of all detectors of all segments together"
    )
    detector_warmup: int = Field(50, ge=0, description="events of a segment ignored before its reference begins")
    reference_events: int = Field(
        800, ge=200, description="events of a segment's rolling reference; more: tighter thresholds, later start"
    )
    resolve_events: int = Field(
        500, ge=1, description="events under every warning level after which an open incident resolves itself"
    )

    max_live_segments: int = Field(
        5000,
        ge=1,
        description="segments whose detector state a worker keeps in memory; the least recently used beyond it are "
        "checkpointed and evicted, and restored on their next event",
    )
    segment_max_routes: int = Field(
        100,
        ge=0,
        description="routes per model with segments of their own; the others fold into _overflow; 0 = no limit",
    )
    segment_max_tenants: int = Field(
        1000,
        ge=0,
        description="tenants per model with segments of their own; the others fold into _overflow; 0 = no limit",
    )
    reference_poll_s: float = Field(10.0, gt=0, description="how often a worker takes up pinned or released references")
    reference_max_events: int = Field(5000, ge=1, description="most events of a pinned time range a reference takes")
    batch_max_events: int = Field(
        1024,
        ge=1,
        description="traffic events the worker takes from the stream at once (each batch pays a checkpoint and an "
        "undo copy of every segment it touched, and a wait for the broker to have the checkpoints)",
    )
    batch_within_s: float = Field(0.2, gt=0, description="longest wait for a batch to fill before it is processed")
    measure_ahead: bool = Field(
        True,
        description="with embeddings on, measure traffic records (language, features, embeddings) in a helper "
        "process as they are fetched, while the worker observes the batches before them (one more process; about "
        "1.2x the events/s on 2 cores); off, or with embeddings off: the worker measures each batch itself",
    )
    embeddings: bool = Field(False, description="sentence-embedding features (topic novelty, injection similarity)")
    embedding_model: Model = Field(
        "tuned",
        description="the monitor's sentence encoder: tuned (a static model distilled from all-MiniLM-L6-v2 and fitted "
        "to imitate it: 384 dimensions, ~400x its texts/s on a CPU), minilm (all-MiniLM-L6-v2 under torch) or static "
        "(the distillation unfitted: 256 dimensions, slower to see a new topic); a change rebases the segments that "
        "hold another encoder's embeddings",
    )
    embedding_sample_rate: float = Field(1.0, gt=0, le=1, description="share of events embedded (by event-id hash)")
    topic_reference_size: int = Field(200, ge=20, description="embedded events of a segment its topics are fitted on")
    topic_count: int = Field(16, ge=2, le=16, description="reference topics (k-means clusters) per segment")
    prices: dict[str, Price | None] = Field(
        default_factory=dict,
        description='JSON object model -> {"input": USD, "output": USD} per 1M tokens, laid over the default prices '
        "of common hosted models (monitor/prices.py); null drops one; a model without a price has no cost_usd",
    )
    judge_sample_rate: float = Field(
        0.0, ge=0, le=1, description="share of responses scored 1-5 by the LLM judge at LLM_BASE_URL; 0 = off"
    )
    judge_tokens_per_minute: int = Field(
        20_000, ge=1, description="prompt + completion tokens the judge may spend per minute; beyond: not judged"
    )

    job_seed: int = 0
    samples_per_job: int = Field(120, ge=1)
    gate_embedding_model: Model = Field(
        "minilm",
        description="the quality gate's sentence encoder (fidelity, diversity, coverage), with its bounds on the "
        "embedding figures set on that encoder's scale: tuned, minilm or static (python -m bench.gate compares them)",
    )
    recipes_path: Path | None = Field(
        None, description="YAML recipes (incident kind -> generators and shares); unset = generators/recipes.yaml"
    )
    webhook_attempts: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each attempt")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_concurrency: int = Field(
        8, ge=1, description="webhook deliveries a process runs at once (at most one per receiver), from the outbox"
    )
    webhook_poll_s: float = Field(0.25, gt=0, description="how often a process looks for due webhook deliveries")
    webhook_lease_s: float = Field(
        30.0, gt=0, description="a claimed webhook delivery's lease; renewed every third of it, retaken once it lapses"
    )

    # --- API security and conventions ---
    admin_token: SecretStr | None = Field(
        None, min_length=16, description="bootstrap admin bearer token; only its SHA-256 is kept by the API"
    )
    secret_keys: SecretStr | None = Field(
        None,
        description="comma-separated Fernet keys sealing the secrets kept in Redis (webhook signing secrets): the "
        "first seals, each opens; needed by the API and the worker. Rotate: put a new key first, run "
        "`driftloop secrets rotate`, drop the old one",
    )
    max_request_bytes: int = Field(1_048_576, ge=1, description="largest request body accepted; larger: 413")
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        [], description="comma-separated IPs or CIDRs whose X-Forwarded-For is believed; unset = the peer is the client"
    )
    audit_retention_days: float = Field(90, gt=0, description="how long audit entries are kept")
    audit_unauthenticated_per_minute: int = Field(
        10, ge=0, description="calls refused with 401 audited per minute (all clients together); the rest are not"
    )
    idempotency_ttl_s: int = Field(86_400, ge=1, description="how long a response is replayed for its Idempotency-Key")
    api_docs: bool = Field(
        False, description="serve /docs, /redoc and /openapi.json to anyone; off in production (no map for attackers)"
    )
    console_secure_cookie: bool = Field(
        True,
        description="the console's session cookie is Secure (sent over HTTPS and to localhost only); off only for a "
        "console served over plain HTTP on another host",
    )
    console_session_hours: float = Field(12, gt=0, description="how long a console login (its cookie) lasts")

    # --- OTLP ingest (POST /v1/traces) ---
    otlp_route_attributes: Annotated[list[str], NoDecode] = Field(
        ["driftloop.route", "service.name"],
        description="comma-separated span or resource attributes whose first present value is an OTLP event's "
        "route (unset: default)",
    )
    otlp_tenant_attributes: Annotated[list[str], NoDecode] = Field(
        ["driftloop.tenant", "tenant.id"],
        description="comma-separated span or resource attributes whose first present value is an OTLP event's "
        "tenant (unset: default)",
    )
    otlp_buffer_events: int = Field(
        10_000, ge=1, description="traffic events from spans held for the broker; full: 429 with Retry-After"
    )
    otlp_max_request_bytes: int = Field(
        8_388_608, ge=1, description="largest OTLP export body, before and after gzip; larger: 413"
    )
    otlp_send_timeout_s: float = Field(
        10.0, gt=0, description="a send the broker has not answered in this time marks it down: 503 until it is back"
    )
    otlp_retry_after_s: int = Field(5, ge=1, description="Retry-After of an OTLP 429 or 503")

    # --- dataset registry and storage ---
    storage_url: str | None = Field(
        None, description="fsspec URL of the dataset store (s3://bucket/datasets, ...); unset = DATA_DIR/datasets"
    )
    retention_max_versions: int | None = Field(
        None, ge=1, description="keep at most this many dataset versions (newest first); unset = no count limit"
    )
    retention_max_age_days: float | None = Field(
        None, gt=0, description="delete dataset versions older than this; unset = no age limit"
    )

    # --- jobs, publication and webhooks ---
    job_max_attempts: int = Field(3, ge=1, description="attempts of a job (takeovers included) before it fails")
    job_lease_s: float = Field(30.0, gt=0, description="a running job's lease; renewed every third of it")
    job_sweep_interval_s: float = Field(
        10.0, gt=0, description="how often a worker re-runs jobs, and verifies candidates, without a live lease"
    )
    job_concurrency: int = Field(
        default_factory=usable_cpus,
        ge=1,
        description="generation jobs one worker runs at once (default: the CPUs it may use); more wait for a slot "
        "here or are swept up by another worker with one free",
    )
    require_approval: bool = Field(False, description="hold each dataset in pending_approval until it is approved")
    webhook_allow_private_networks: bool = Field(
        False, description="allow webhook receivers at loopback, private, link-local and other non-public addresses"
    )
    webhook_allowed_networks: str = Field(
        "", description="comma-separated CIDRs or host names allowed as webhook receivers even when not public"
    )

    # --- verification of candidate models (the production side is STRESS_ENDPOINT or LLM_BASE_URL) ---
    candidate_allow_private_networks: bool = Field(
        False, description="allow candidate endpoints at loopback, private, link-local and other non-public addresses"
    )
    candidate_allowed_networks: str = Field(
        "", description="comma-separated CIDRs or host names allowed as candidate endpoints even when not public"
    )
    verify_probes: int = Field(24, ge=4, description="probes per group (incident, held-out, each stress family)")
    verify_general_probes: int = Field(8, ge=1, description="general-capability prompts sent to both models")
    verify_max_tokens: int = Field(48, ge=1, description="reply length limit per verification probe")
    verify_concurrency: int = Field(4, ge=1, description="verification probes in flight at once, per model")
    verify_max_attempts: int = Field(3, ge=1, description="attempts of a verification before the candidate fails")

    @field_validator("trusted_proxies", "otlp_route_attributes", "otlp_tenant_attributes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _blank_secret_keys_are_unset(cls, keys: object) -> object:
        return None if isinstance(keys, str) and not keys.strip() else keys

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys_are_fernet_keys(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is not None:
            try:
                SecretBox.parse(keys.get_secret_value())
            except ValueError:
                raise ValueError(
                    "DRIFTLOOP_SECRET_KEYS must be comma-separated Fernet keys (32 bytes, URL-safe base64); "
                    "make one with `driftloop secrets new-key`"
                ) from None
        return keys

    def secret_box(self) -> SecretBox:
        """The box of ``secret_keys``; ``SecretKeysMissing``, saying what to set, when there are none."""
        if self.secret_keys is None:
            raise SecretKeysMissing(NO_SECRET_KEYS)
        return SecretBox.parse(self.secret_keys.get_secret_value())

    @property
    def segments_topic(self) -> str:
        """The worker's own topic of traffic repartitioned by segment (``topic_partitions`` partitions, like the
        detector checkpoints', so a segment's events and its checkpoints share a partition)."""
        return f"{self.app_id}-{self.traffic_topic}-by-segment"

    def price_table(self) -> PriceTable:
        """The default prices with ``prices`` laid over them."""
        return PriceTable.of(self.prices)

    @model_validator(mode="after")
    def _the_judge_needs_an_endpoint(self) -> Settings:
        if self.judge_sample_rate and not self.llm_base_url:
            raise ValueError(
                "the LLM judge (DRIFTLOOP_JUDGE_SAMPLE_RATE > 0) needs DRIFTLOOP_LLM_BASE_URL, an OpenAI-compatible "
                "endpoint (DRIFTLOOP_LLM_MODEL names its model; unset: the first it lists)"
            )
        return self

    @model_validator(mode="after")
    def _stress_runs_need_a_suite_and_an_endpoint(self) -> Settings:
        if self.stress_interval_minutes and not (
            self.stress_suite_path and (self.stress_endpoint or self.llm_base_url)
        ):
            raise ValueError(
                "scheduled stress runs (DRIFTLOOP_STRESS_INTERVAL_MINUTES > 0) need DRIFTLOOP_STRESS_SUITE_PATH and "
                "DRIFTLOOP_STRESS_ENDPOINT (or DRIFTLOOP_LLM_BASE_URL); build one with `driftloop suite --help`"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()
