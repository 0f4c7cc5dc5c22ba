"""A local HTTP server that receives outbound webhooks in tests and checks their signature.

``answers`` is the list of status codes to give, in order (the last one repeats).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str
    answers: list[int]
    received: list[Received] = field(default_factory=list)

    def signature_valid(self, request: Received, secret: str) -> bool:
        """The documented check: t and v1 from the header, HMAC-SHA256 over "<t>." + body."""
        parts = dict(p.split("=", 1) for p in request.headers["X-TrackStat-Signature"].split(","))
        expected = hmac.new(
            secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])


def receiver_start(answers: list[int]) -> tuple[Receiver, ThreadingHTTPServer]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.received.append(Received(body=body, headers=dict(self.headers.items())))
            index = min(len(receiver.received), len(receiver.answers)) - 1
            self.send_response(receiver.answers[index])
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(
        url=f"http://127.0.0.1:{server.server_port}/hooks/trackstat", answers=answers
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
