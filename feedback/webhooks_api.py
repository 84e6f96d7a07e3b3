"""Webhook subscriptions and the delivery log over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

from feedback.webhooks import Delivery, Dispatcher, Webhook, WebhookCreate, WebhookView, register, webhooks
from monitor.api import Limit, RedisDep

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=201)
async def create_webhook(request: WebhookCreate, redis: RedisDep) -> Webhook:
    """Register a receiver; only this response carries the signing secret (Standard Webhooks ``whsec_…``)."""
    return await register(redis, request)


@router.get("/webhooks")
async def list_webhooks(redis: RedisDep) -> list[WebhookView]:
    """Registered receivers, without their secrets."""
    return [WebhookView.model_validate(hook.model_dump()) for hook in await webhooks(redis).list(limit=500)]


@router.get("/webhooks/deliveries")
async def list_deliveries(redis: RedisDep, limit: Limit = 100) -> list[Delivery]:
    """The delivery log, newest attempt first."""
    return await Dispatcher(redis).log(limit)
