"""``POST /v1/traces``: OTLP/HTTP trace exports in, GenAI spans out to ``llm.traffic`` as traffic events.

Protobuf (``application/x-protobuf``) or OTLP JSON (``application/json``), gzip or not; answered in the request's
encoding as the OpenTelemetry protocol says: 200 with an ``ExportTraceServiceResponse`` whose ``partial_success``
counts the GenAI model-call spans that made no event (no prompt, invalid values); 400/413/415 with a
``google.rpc.Status`` (not retried by exporters); 429 when the buffer is full and 503 while the broker is down, with
``Retry-After`` (exporters retry). Spans that are not GenAI are counted and dropped. Needs the ``ingest`` scope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftloop.metrics import IngestMetrics
from driftloop.otlp_codec import JSON, PROTOBUF, Malformed, TooLarge, Unsupported, decode, media_type
from driftloop.otlp_codec import response as export_response
from driftloop.otlp_codec import status as status_body
from driftloop.settings import Settings
from driftloop.traffic_buffer import Admission, Record, TrafficBuffer
from monitor.spans import Mapped, SegmentAttributes, map_spans

PATH = "/v1/traces"
MAX_REASONS = 5
"""Reasons of rejected spans named in ``partial_success.error_message``."""
# gRPC codes of the google.rpc.Status bodies
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED = 3, 8, 14, 12


def _content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}, JSON: {"schema": {"type": "object"}}},
    }


router = APIRouter(tags=["otlp"])


@router.post(
    PATH,
    summary="OTLP/HTTP trace export",
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, **_content("an ExportTraceServiceRequest")}},
    responses={
        200: _content("an ExportTraceServiceResponse; partial_success counts the GenAI spans rejected"),
        400: _content("a google.rpc.Status: the body is not an export request"),
        413: _content("a google.rpc.Status: the body decompresses past DRIFTLOOP_OTLP_MAX_REQUEST_BYTES"),
        415: _content("a google.rpc.Status: a Content-Type or Content-Encoding OTLP does not define"),
        429: _content("a google.rpc.Status: the buffer is full; retry after Retry-After"),
        503: _content("a google.rpc.Status: the broker is down; retry after Retry-After"),
    },
)
async def export_traces(request: Request) -> Response:
    """GenAI spans of an OTLP trace export as traffic events on `llm.traffic` (scope `ingest`)."""
    settings: Settings = request.app.state.settings
    buffer: TrafficBuffer = request.app.state.traffic_buffer
    metrics = IngestMetrics.default()
    try:
        media = media_type(request.headers.get("content-type"))
    except Unsupported as exc:
        return _refused(metrics, "unsupported", 415, UNIMPLEMENTED, str(exc), PROTOBUF)
    if (early := buffer.admits()) is not Admission.accepted:  # spare the reading of a request that cannot fit
        return _backpressure(metrics, early, settings, media)
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    try:
        export = await asyncio.to_thread(decode, body, media, encoding, settings.otlp_max_request_bytes)
    except Unsupported as exc:
        return _refused(metrics, "unsupported", 415, UNIMPLEMENTED, str(exc), media)
    except TooLarge as exc:
        return _refused(metrics, "too_large", 413, INVALID_ARGUMENT, str(exc), media)
    except Malformed as exc:
        return _refused(metrics, "malformed", 400, INVALID_ARGUMENT, str(exc), media)
    # decoding costs a microsecond a span, mapping a hundred: a request whose spans would not fit is refused first
    spans = sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)
    if (fits := buffer.admits(min(spans, settings.otlp_buffer_events))) is not Admission.accepted:
        return _backpressure(metrics, fits, settings, media)
    segments = SegmentAttributes(settings.otlp_route_attributes, settings.otlp_tenant_attributes)
    mapped, records = await asyncio.to_thread(_records, export, segments)
    admission = buffer.offer(records) if records else Admission.accepted
    if admission is not Admission.accepted:
        return _backpressure(metrics, admission, settings, media)
    metrics.requests.labels("accepted").inc()
    for outcome, count in mapped.outcomes.items():
        metrics.spans.labels(outcome).inc(count)
    reasons = "; ".join(mapped.reasons[:MAX_REASONS])
    return Response(export_response(mapped.rejected, reasons, media), media_type=media)


def _records(export: ExportTraceServiceRequest, segments: SegmentAttributes) -> tuple[Mapped, list[Record]]:
    """The spans mapped, and their events keyed by segment as the worker reads them (``driftloop.traffic/v1``)."""
    mapped = map_spans(export.resource_spans, segments)
    records = [
        (e.segment.encode(), e.model_dump_json(by_alias=True, exclude_none=True).encode()) for e in mapped.events
    ]
    return mapped, records


def _backpressure(metrics: IngestMetrics, admission: Admission, settings: Settings, media: str) -> Response:
    """429 (the buffer is full) or 503 (the broker is down), with ``Retry-After``: exporters retry these."""
    retry = {"Retry-After": str(settings.otlp_retry_after_s)}
    if admission is Admission.full:
        detail = f"the ingest buffer is full ({settings.otlp_buffer_events} events)"
        return _refused(metrics, "full", 429, RESOURCE_EXHAUSTED, detail, media, retry)
    return _refused(metrics, "unavailable", 503, UNAVAILABLE, "the broker does not take events", media, retry)


def _refused(
    metrics: IngestMetrics,
    outcome: str,
    code: int,
    grpc_code: int,
    message: str,
    media: str,
    headers: dict[str, str] | None = None,
) -> Response:
    metrics.requests.labels(outcome).inc()
    return Response(status_body(grpc_code, message, media), status_code=code, media_type=media, headers=headers)
