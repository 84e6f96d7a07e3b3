"""FastAPI dependencies of the feedback routers: the settings they read, the webhook dispatcher and the
dataset publisher (with a Kafka producer started on the first publication, stopped with the app); and the
webhook delivery loop that the API and the worker run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Request
from redis.asyncio import Redis

from feedback.egress import EgressPolicy
from feedback.outbox import DeliveryLoop, Outbox
from feedback.publishing import KafkaSend, Publisher
from feedback.webhooks import Dispatcher


class FeedbackSettings(Protocol):
    """What the feedback routers read from ``app.state.settings`` (``driftloop.settings.Settings``)."""

    kafka_bootstrap: str | None
    finetune_topic: str
    webhook_attempts: int
    webhook_backoff_s: float
    webhook_timeout_s: float
    webhook_concurrency: int
    webhook_poll_s: float
    webhook_lease_s: float
    webhook_allow_private_networks: bool
    webhook_allowed_networks: str
    candidate_allow_private_networks: bool
    candidate_allowed_networks: str
    recipes_path: Path | None


def get_settings(request: Request) -> FeedbackSettings:
    return request.app.state.settings


def egress_policy(settings: FeedbackSettings) -> EgressPolicy:
    return EgressPolicy.parse(settings.webhook_allow_private_networks, settings.webhook_allowed_networks)


def dispatcher(redis: Redis, settings: FeedbackSettings) -> Dispatcher:
    """The dispatcher that ``settings`` describe, on ``redis``."""
    return Dispatcher(
        redis,
        settings.webhook_attempts,
        settings.webhook_backoff_s,
        settings.webhook_timeout_s,
        egress_policy(settings),
        outbox=Outbox(redis, settings.webhook_lease_s),
    )


def delivery_loop(redis: Redis, settings: FeedbackSettings) -> DeliveryLoop:
    """The loop that delivers the outbox on ``redis`` as ``settings`` describe (one per process)."""
    sender = dispatcher(redis, settings)
    return DeliveryLoop(sender.outbox, sender.deliver, settings.webhook_concurrency, settings.webhook_poll_s)


def get_policy(request: Request) -> EgressPolicy:
    return egress_policy(get_settings(request))


def get_dispatcher(request: Request) -> Dispatcher:
    return dispatcher(request.app.state.redis, get_settings(request))


def get_publisher(request: Request) -> Publisher:
    state = request.app.state
    if getattr(state, "finetune_send", None) is None:
        settings = get_settings(request)
        state.finetune_send = KafkaSend(settings.kafka_bootstrap or "", settings.finetune_topic)
    return Publisher(state.redis, state.finetune_send, get_dispatcher(request))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stops the producer that ``get_publisher`` may have started."""
    yield
    send: KafkaSend | None = getattr(app.state, "finetune_send", None)
    if send is not None:
        await send.close()


SettingsDep = Annotated[FeedbackSettings, Depends(get_settings)]
PolicyDep = Annotated[EgressPolicy, Depends(get_policy)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
