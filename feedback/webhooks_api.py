"""Webhook subscriptions, the delivery log and the dead letters over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from core.api import Limit, NoStore, Offset, RedisDep, found, list_page
from feedback.dead_letters import DeadLetter, DeadLetterState, dead_letters
from feedback.deps import DispatcherDep, PolicyDep
from feedback.webhooks import Delivery, Dispatcher, Webhook, WebhookCreate, WebhookView, register, unregister, webhooks

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=201, dependencies=[NoStore])
async def create_webhook(request: WebhookCreate, redis: RedisDep, policy: PolicyDep) -> Webhook:
    """Register a receiver; only this response carries the signing secret (Standard Webhooks ``whsec_…``).

    Receivers at loopback, private, link-local and other non-public addresses are refused (422) unless
    ``DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` or ``DRIFTLOOP_WEBHOOK_ALLOWED_NETWORKS`` allow them.
    """
    return await register(redis, request, policy)


@router.get("/webhooks")
async def list_webhooks(redis: RedisDep) -> list[WebhookView]:
    """Registered receivers, without their secrets."""
    return [WebhookView.model_validate(hook.model_dump()) for hook in await webhooks(redis).list(limit=500)]


@router.get("/webhooks/deliveries")
async def list_deliveries(redis: RedisDep, limit: Limit = 100) -> list[Delivery]:
    """The delivery log, newest attempt first: status code, latency and error of every attempt."""
    return await Dispatcher(redis).log(limit)


@router.get("/webhooks/dead-letters")
async def list_dead_letters(
    redis: RedisDep,
    response: Response,
    state: DeadLetterState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[DeadLetter]:
    """Messages given up after their last retry, newest first; ``state=dead`` for those not replayed yet."""
    keep = None if state is None else lambda letter: letter.state == state
    return await list_page(dead_letters(redis), response, limit, offset, keep)


@router.post("/webhooks/dead-letters/{letter_id}/replay")
async def replay_dead_letter(letter_id: str, dispatcher: DispatcherDep) -> DeadLetter:
    """Deliver a dead letter now, once (same ``webhook-id``, fresh signature). 409 when it was replayed
    already or is being replayed, 502 when the receiver failed again (the letter stays ``dead``)."""
    letter = found(await dispatcher.replay(letter_id), "dead letter", letter_id)
    if letter.state != DeadLetterState.REPLAYED:
        raise HTTPException(502, f"dead letter {letter_id} was not delivered: {letter.last_error}")
    return letter


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, redis: RedisDep) -> Response:
    """Remove a receiver; nothing more is delivered to it."""
    if not await unregister(redis, webhook_id):
        raise HTTPException(404, f"no webhook {webhook_id}")
    return Response(status_code=204)
