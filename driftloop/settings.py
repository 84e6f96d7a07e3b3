"""All of driftloop's configuration, read once from ``DRIFTLOOP_*`` environment variables.

>>> Settings(kafka_bootstrap="127.0.0.1:9092").traffic_topic
'llm.traffic'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; every field can be set as ``DRIFTLOOP_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", env_file=".env", extra="ignore")

    kafka_bootstrap: str | None = Field(None, description="host:port of the Kafka broker; unset = embedded tansu")
    redis_url: str | None = Field(None, description="redis:// URL; unset = embedded redis-server")
    data_dir: Path = Field(Path(".driftloop"), description="where dataset versions are written")

    app_id: str = "driftloop"
    traffic_topic: str = "llm.traffic"
    dlq_topic: str = "llm.traffic.dlq"
    incidents_topic: str = "driftloop.incidents"
    finetune_topic: str = "finetune.requests"
    topic_partitions: int = Field(1, ge=1, description="partitions of topics the worker creates")
    group_session_timeout_s: float = Field(10.0, gt=0, description="consumer group session timeout")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_max_segments: int = Field(20, ge=1, description="segments exported as metric labels (the busiest)")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM), e.g. http://vllm:8000/v1")
    worker_metrics_port: int = Field(9108, ge=0, description="port of a worker's /metrics; 0 turns it off")

    detector_delta: float = Field(1e-5, gt=0, lt=1, description="ADWIN confidence; smaller: fewer false alarms")
    detector_warmup: int = Field(300, ge=10, description="events per segment before detectors may fire")
    confirm_events: int = Field(
        100, ge=0, description="events collected after a first detection before the incident opens"
    )

    checkpoint_events: int = Field(50, ge=1, description="events of a segment between detector-state checkpoints")

    job_seed: int = 0
    samples_per_job: int = Field(120, ge=1)
    webhook_attempts: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each attempt")
    webhook_timeout_s: float = Field(5.0, gt=0)

    # --- API security and conventions ---
    admin_token: SecretStr | None = Field(
        None, min_length=16, description="bootstrap admin bearer token; only its SHA-256 is kept by the API"
    )
    max_request_bytes: int = Field(1_048_576, ge=1, description="largest request body accepted; larger: 413")
    audit_max_entries: int = Field(10_000, ge=1, description="audit log entries kept in Redis (the newest)")
    idempotency_ttl_s: int = Field(86_400, ge=1, description="how long a response is replayed for its Idempotency-Key")

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
    job_sweep_interval_s: float = Field(10.0, gt=0, description="how often a worker re-runs jobs without a live lease")
    require_approval: bool = Field(False, description="hold each dataset in pending_approval until it is approved")
    webhook_allow_private_networks: bool = Field(
        False, description="allow webhook receivers at loopback, private, link-local and other non-public addresses"
    )
    webhook_allowed_networks: str = Field(
        "", description="comma-separated CIDRs or host names allowed as webhook receivers even when not public"
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()
