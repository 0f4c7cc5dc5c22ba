"""A local fake of the Twilio and SendGrid APIs, for development and tests.

The official SDKs talk real HTTP to it (set ``TWILIO_API_BASE_URL`` and
``SENDGRID_API_BASE_URL`` to its address). It serves:

- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form-encoded, HTTP basic auth with the
  account sid): answers ``201`` with a Twilio-shaped message, ``sid`` ``SM…``, ``status``
  ``queued``;
- ``POST /v3/mail/send`` (JSON, ``Authorization: Bearer …``): answers ``202`` with an empty
  body and an ``X-Message-Id`` header.

Every request is recorded (``FakeProviders.requests``) so tests can assert what was sent.

The recipient selects the behaviour. SMS, by the ``To`` number (the first three follow
Twilio's own magic test numbers):

==================  ================================================================
``+15005550001``    400, code 21211 (invalid ``To`` number)
``+15005550004``    400, code 21610 (the recipient replied STOP)
``+15005550009``    400, code 21614 (not a mobile number)
``+15005550429``    429, code 20429 (too many requests)
``+15005550500``    500, code 20500
``+15005550408``    answers only after ``slow_seconds`` (longer than a client timeout)
``+15005550444``    reads the request, then closes the connection without answering
anything else       201, queued
==================  ================================================================

Email, by the local part of the first ``to`` address: ``status-400@…``, ``status-429@…``,
``status-500@…`` (that status), ``slow@…`` and ``drop@…`` (as above); anything else 202.

Posting signed status callbacks back to the app is not done yet.

Run it with ``manage.py fake_providers --port 8025``; in tests, ``FakeProviders().start()``
serves on a free port from a thread.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TWILIO_ERRORS = {
    "+15005550001": (400, 21211, "The 'To' number is not a valid phone number."),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (400, 21614, "'To' number is not a valid mobile number"),
    "+15005550429": (429, 20429, "Too Many Requests"),
    "+15005550500": (500, 20500, "Internal Server Error"),
}
TWILIO_SLOW = "+15005550408"
TWILIO_DROP = "+15005550444"
EMAIL_STATUS = {"status-400": 400, "status-429": 429, "status-500": 500}
EMAIL_SLOW = "slow"
EMAIL_DROP = "drop"

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")


@dataclass
class RecordedRequest:
    """One request the fake received: ``data`` is the form (one value per key) for Twilio,
    the JSON body for SendGrid."""

    service: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone away before its slow answer: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeProviders:
    """The fake server; ``start()`` serves from a daemon thread, ``stop()`` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, slow_seconds: float = 15.0):
        self.slow_seconds = slow_seconds
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = _Server((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviders:
        # A short poll interval: ``stop()`` waits for the next poll.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self._stopping.set()  # releases slow answers at once
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def wait_slow(self) -> None:
        self._stopping.wait(self.slow_seconds)


def _basic_auth_user(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(credentials).decode().partition(":")[0]
    except ValueError:
        return ""


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry no patient data, but tests need quiet output

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers = dict(self.headers.items())
            match = MESSAGES_PATH.match(path)
            if match:
                form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                fake.record(RecordedRequest("twilio", "POST", path, query, headers, form))
                self._twilio(match["sid"], form)
            elif path == "/v3/mail/send":
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                fake.record(RecordedRequest("sendgrid", "POST", path, query, headers, body))
                self._sendgrid(body)
            else:
                self._json(404, {"message": "not found"})

        def _twilio(self, account_sid: str, form: dict[str, str]) -> None:
            to = form.get("To", "")
            if _basic_auth_user(self.headers.get("Authorization", "")) != account_sid:
                self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            if not form.get("Body"):
                self._json(400, {"code": 21602, "message": "Body is required.", "status": 400})
                return
            if to in TWILIO_ERRORS:
                status, code, message = TWILIO_ERRORS[to]
                self._json(status, {"code": code, "message": message, "status": status})
                return
            if to == TWILIO_SLOW:
                fake.wait_slow()
            elif to == TWILIO_DROP:
                self._drop()
                return
            sid = "SM" + secrets.token_hex(16)
            self._json(
                201,
                {
                    "sid": sid,
                    "account_sid": account_sid,
                    "to": to,
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
                },
            )

        def _sendgrid(self, body: dict[str, Any]) -> None:
            try:
                to = body["personalizations"][0]["to"][0]["email"]
            except (KeyError, IndexError, TypeError):
                self._json(400, {"errors": [{"message": "personalizations are required"}]})
                return
            local = to.partition("@")[0]
            if local in EMAIL_STATUS:
                self._json(EMAIL_STATUS[local], {"errors": [{"message": "fake error"}]})
                return
            if local == EMAIL_SLOW:
                fake.wait_slow()
            elif local == EMAIL_DROP:
                self._drop()
                return
            self.send_response(202)
            self.send_header("X-Message-Id", secrets.token_urlsafe(16))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.close()

    return Handler
