"""A webhook receiver that verifies Standard Webhooks signatures: the demo's stand-in for a training
system, and the tests' real HTTP peer.

>>> with WebhookReceiver(secret=None) as receiver:
...     receiver.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    message_id: str
    verified: bool
    payload: dict


class WebhookReceiver:
    """Listens on a free loopback port. With a ``secret`` it answers 204 to verified deliveries and 401
    otherwise; without one it records and accepts everything (e.g. Alertmanager's notifications).

    ``fail_next`` makes it answer 503 to that many requests first (a receiver that is down); ``delay_s`` makes it
    wait that long before it answers each request (a slow receiver).
    """

    def __init__(self, secret: str | None, fail_next: int = 0, delay_s: float = 0.0) -> None:
        self.secret, self.fail_next, self.delay_s = secret, fail_next, delay_s
        self.received: list[Received] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests += 1
                time.sleep(receiver.delay_s)
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                verified = receiver.verify(body, dict(self.headers))
                receiver.received.append(Received(self.headers.get("webhook-id", ""), verified, json.loads(body)))
                self.send_response(204 if verified or receiver.secret is None else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/driftloop"

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        if self.secret is None:
            return False
        try:
            Webhook(self.secret).verify(body, {k.lower(): v for k, v in headers.items()})
            return True
        except WebhookVerificationError:
            return False

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
