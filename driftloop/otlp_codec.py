"""OTLP/HTTP bodies: an ``ExportTraceServiceRequest`` read from binary protobuf or OTLP JSON, gzip or not, and the
answers (``ExportTraceServiceResponse``, ``google.rpc.Status``) written in the encoding of the request, as the
OpenTelemetry protocol specifies. OTLP JSON differs from protobuf's JSON mapping in one place: trace and span ids
are hex, not base64.

>>> request = decode(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",'
...                  b' "spanId": "eee19b7ec3c1b174", "name": "chat", "kind": 3}]}]}]}', "application/json", None, 1000)
>>> span = request.resource_spans[0].scope_spans[0].spans[0]
>>> span.span_id.hex(), span.kind
('eee19b7ec3c1b174', 3)
>>> decode(b"\\x00garbage", "application/x-protobuf", None, 1000)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftloop.otlp_codec.Malformed: not an ExportTraceServiceRequest in protobuf: Error parsing message with type ...
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf.json_format import MessageToJson, ParseDict, ParseError
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
_IDS = {"spans": ("traceId", "spanId", "parentSpanId"), "links": ("traceId", "spanId")}


class Malformed(ValueError):
    """A body that is not an export request in its declared encoding (400)."""


class Unsupported(ValueError):
    """A content type or encoding OTLP/HTTP does not define (415)."""


class TooLarge(ValueError):
    """A body that decompresses past the limit (413)."""


def media_type(content_type: str | None) -> str:
    """The request's OTLP encoding, from its ``Content-Type``; :class:`Unsupported` for any other."""
    found = (content_type or "").split(";")[0].strip().lower()
    if found not in MEDIA_TYPES:
        raise Unsupported(f"Content-Type {found or '(none)'!r} is not one of {', '.join(MEDIA_TYPES)}")
    return found


def decode(body: bytes, media: str, encoding: str | None, max_bytes: int) -> ExportTraceServiceRequest:
    """The export request in ``body`` (``media`` one of :data:`MEDIA_TYPES`, ``encoding`` the Content-Encoding)."""
    raw = _decompressed(body, (encoding or "identity").strip().lower(), max_bytes)
    if media == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(raw)
        except (DecodeError, RecursionError) as exc:
            raise Malformed(f"not an ExportTraceServiceRequest in protobuf: {exc}") from None
    try:
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise Malformed(f"expected a JSON object, got {type(document).__name__}")
        _hex_ids_to_base64(document)
        return ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (ValueError, ParseError, RecursionError, TypeError, AttributeError) as exc:
        raise Malformed(f"not an ExportTraceServiceRequest in OTLP JSON: {exc}") from None


def encode(message: Message, media: str) -> bytes:
    """``message`` in the encoding of the request (OTLP JSON leaves out default values, as protobuf does)."""
    return message.SerializeToString() if media == PROTOBUF else MessageToJson(message, indent=None).encode()


def response(rejected: int, error_message: str, media: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` set when spans were rejected."""
    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = error_message
    return encode(answer, media)


def status(code: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` (``code`` a gRPC code) that the body of an OTLP error response is."""
    return encode(Status(code=code, message=message), media)


def _decompressed(body: bytes, encoding: str, max_bytes: int) -> bytes:
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise Unsupported(f"Content-Encoding {encoding!r} is not gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise Malformed(f"not gzip: {exc}") from None
    if len(raw) > max_bytes:
        raise TooLarge(f"the body decompresses to more than {max_bytes} bytes")
    if not inflater.eof:
        raise Malformed("the gzip stream is truncated")
    return raw


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP JSON's hex ids of spans and links in place as protobuf JSON's base64."""
    for resource_spans in document.get("resourceSpans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for span in scope_spans.get("spans") or []:
                _rewrite(span, _IDS["spans"])
                for link in span.get("links") or []:
                    _rewrite(link, _IDS["links"])


def _rewrite(item: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        if item.get(field):
            try:
                item[field] = base64.b64encode(bytes.fromhex(item[field])).decode()
            except (TypeError, ValueError, binascii.Error):
                raise Malformed(f"{field} {item[field]!r} is not hex") from None
