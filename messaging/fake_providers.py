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

It also serves ``GET /2010-04-01/Accounts/{sid}/Messages.json`` (the SDK's
``messages.list``), filtering the messages it accepted by ``To``, ``From`` and ``DateSent>``,
so a message whose create call timed out can be found (``TwilioProvider.lookup``). A slow
message is recorded before its slow answer: Twilio accepted it, the client never heard.

Callbacks: started with ``callback_base`` (the app's address) it posts, after accepting a
message and a short ``callback_delay`` (the app stores the provider id first), correctly
signed delivery reports: Twilio status callbacks ``sent`` then ``delivered`` to the
``StatusCallback`` URL it was given (rewritten to ``callback_base``: same path and query;
signed, as Twilio does, for the URL it was given, with ``twilio_auth_token``), and SendGrid
events ``processed`` then ``delivered`` to ``/webhooks/sendgrid/events`` (ECDSA P-256 over
timestamp + body with ``sendgrid_private_key``). ``callback_disorder=True`` posts them
out of order and duplicated instead: ``delivered``, ``sent`` (``processed``), ``delivered``
again (the same event). Every callback's URL and answer is kept in ``FakeProviders.callbacks``.

Run it with ``manage.py fake_providers --port 8025`` (``--callback-base``,
``--twilio-auth-token``, ``--sendgrid-private-key-file`` turn callbacks on); in tests,
``FakeProviders().start()`` serves on a free port from a thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

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
SENDGRID_EVENTS_PATH = "/webhooks/sendgrid/events"


def _parse_when(value: str) -> dt.datetime | None:
    """``DateSent>`` as the SDK sends it (``YYYY-MM-DDTHH:MM:SSZ``) or a bare date."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


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

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        slow_seconds: float = 15.0,
        callback_base: str = "",
        twilio_auth_token: str = "",
        sendgrid_private_key: ec.EllipticCurvePrivateKey | None = None,
        callback_delay: float = 0.3,
        callback_disorder: bool = False,
    ):
        self.slow_seconds = slow_seconds
        self.callback_base = callback_base.rstrip("/")
        self.twilio_auth_token = twilio_auth_token
        self.sendgrid_private_key = sendgrid_private_key
        self.callback_delay = callback_delay
        self.callback_disorder = callback_disorder
        self.requests: list[RecordedRequest] = []
        # Accepted SMS in Twilio's JSON shape (what the list endpoint serves).
        self.messages: list[dict[str, Any]] = []
        # (url, HTTP status or 0 when the app could not be reached) of every callback posted.
        self.callbacks: list[tuple[str, int]] = []
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

    # --- callbacks -----------------------------------------------------------------------

    def twilio_accepted(self, message: dict[str, Any], status_callback: str) -> None:
        if not (self.callback_base and self.twilio_auth_token and status_callback):
            return
        order = (
            ["delivered", "sent", "delivered"] if self.callback_disorder else ["sent", "delivered"]
        )
        parts = urlsplit(status_callback)
        target = self.callback_base + parts.path + (f"?{parts.query}" if parts.query else "")
        posts = []
        for status in order:
            params = {
                "MessageSid": message["sid"],
                "SmsSid": message["sid"],
                "AccountSid": message["account_sid"],
                "MessageStatus": status,
                "SmsStatus": status,
                "To": message["to"],
                "From": message["from"] or "",
                "ApiVersion": "2010-04-01",
            }
            # Twilio signs the URL it was given, whatever address it is delivered to.
            signature = RequestValidator(self.twilio_auth_token).compute_signature(
                status_callback, params
            )
            posts.append(
                (
                    target,
                    urlencode(params).encode(),
                    {
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                )
            )
        self._post_later(posts)

    def sendgrid_accepted(self, message_id: str, body: dict[str, Any]) -> None:
        if not (self.callback_base and self.sendgrid_private_key):
            return
        custom_args = body.get("custom_args") or {}
        to = body["personalizations"][0]["to"][0]["email"]
        order = (
            ["delivered", "processed", "delivered"]
            if self.callback_disorder
            else ["processed", "delivered"]
        )
        posts = []
        for kind in order:
            event = {
                "email": to,
                "timestamp": int(time.time()),
                "event": kind,
                # One id per event: a duplicate delivery repeats it.
                "sg_event_id": f"{message_id}-{kind}",
                "sg_message_id": f"{message_id}.filter0001",
                **custom_args,
            }
            payload = json.dumps([event])
            timestamp = str(int(time.time()))
            raw = self.sendgrid_private_key.sign(
                (timestamp + payload).encode(), ec.ECDSA(hashes.SHA256())
            )
            posts.append(
                (
                    self.callback_base + SENDGRID_EVENTS_PATH,
                    payload.encode(),
                    {
                        "Content-Type": "application/json",
                        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(raw).decode(),
                        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
                    },
                )
            )
        self._post_later(posts)

    def _post_later(self, posts: list[tuple[str, bytes, dict[str, str]]]) -> None:
        def run() -> None:
            if self._stopping.wait(self.callback_delay):
                return
            for url, data, headers in posts:
                try:
                    status = requests.post(url, data=data, headers=headers, timeout=10).status_code
                except requests.RequestException:
                    status = 0
                with self._lock:
                    self.callbacks.append((url, status))

        threading.Thread(target=run, daemon=True).start()


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
        # The headers and the body go out in separate writes: with Nagle's algorithm the
        # body would wait for the client's delayed ACK (about 40 ms per answer).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry no patient data, but tests need quiet output

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            match = MESSAGES_PATH.match(path)
            if not match:
                self._json(404, {"message": "not found"})
                return
            params = {k: v[0] for k, v in parse_qs(query).items()}
            fake.record(RecordedRequest("twilio", "GET", path, query, dict(self.headers), params))
            account_sid = match["sid"]
            if _basic_auth_user(self.headers.get("Authorization", "")) != account_sid:
                self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            after = _parse_when(params.get("DateSent>", ""))
            page_size = int(params.get("PageSize") or 50)
            with fake._lock:
                found = [
                    m
                    for m in reversed(fake.messages)  # newest first, as Twilio lists them
                    if m["account_sid"] == account_sid
                    and params.get("To", m["to"]) == m["to"]
                    and params.get("From", m["from"]) == m["from"]
                    and (after is None or m["_sent"] > after)
                ][:page_size]
            uri = f"{path}?{query}"
            self._json(
                200,
                {
                    "messages": [{k: v for k, v in m.items() if k != "_sent"} for m in found],
                    "page": 0,
                    "page_size": page_size,
                    "first_page_uri": uri,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": uri,
                    "start": 0,
                    "end": max(len(found) - 1, 0),
                },
            )

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
            sid = "SM" + secrets.token_hex(16)
            now = dt.datetime.now(dt.UTC)
            message = {
                "sid": sid,
                "account_sid": account_sid,
                "to": to,
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": email.utils.format_datetime(now),
                "date_sent": email.utils.format_datetime(now),
                "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
            }
            # Accepted (and listed) even when the answer never reaches the client.
            with fake._lock:
                fake.messages.append({**message, "_sent": now})
            if to == TWILIO_DROP:
                self._drop()
                return
            fake.twilio_accepted(message, form.get("StatusCallback", ""))
            if to == TWILIO_SLOW:
                fake.wait_slow()
            self._json(201, message)

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
            if local == EMAIL_DROP:
                self._drop()
                return
            message_id = secrets.token_urlsafe(16)
            fake.sendgrid_accepted(message_id, body)
            if local == EMAIL_SLOW:
                fake.wait_slow()
            self.send_response(202)
            self.send_header("X-Message-Id", message_id)
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
