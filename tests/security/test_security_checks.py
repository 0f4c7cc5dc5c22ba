"""Security checks (issue 9, part 5): CSRF on every form, the Content Security Policy, the
production cookie and transport settings, API keys stored hashed, no PHI in logs, and audit
entries for campaign changes not covered elsewhere.

Already tested elsewhere, so not repeated here: login throttling (the 429 answers, in
tests/trackstat/test_accounts.py), secure cookie flags and HSTS as settings values
(tests/trackstat/test_production_settings.py), the audit entries of a role change
(tests/trackstat/test_settings_pages.py), of the opt-out switch (tests/patients/test_pages.py)
and of enabling a campaign through the API (tests/campaigns/test_api.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
import zoneinfo
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from tests.factories import MembershipFactory, PatientFactory
from tests.security.test_isolation_sweep import (
    ROUTES,
    Route,
    _api_methods,
    _own_urls,
)
from trackstat.models import ApiKey, AuditEvent, Practice, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
NY = zoneinfo.ZoneInfo("America/New_York")

# --- CSRF --------------------------------------------------------------------------------------

# Routes that take POSTs from outside the browser session on purpose, so they carry no CSRF
# token; each is protected another way.
CSRF_EXEMPT = {
    "webhook_twilio_status": "Twilio posts it; X-Twilio-Signature is verified instead",
    "webhook_twilio_inbound": "Twilio posts it; X-Twilio-Signature is verified instead",
    "webhook_sendgrid_events": "SendGrid posts it; the ECDSA signature is verified instead",
    "unsubscribe": "RFC 8058 one-click List-Unsubscribe-Post from mail clients; the token is "
    "unguessable and the action only opts the address out",
}
# Not swept for CSRF: Django's own admin (CSRF-protected by Django; its URL patterns take
# admin-specific arguments) and the read-only OpenAPI schema view (no session authentication).
CSRF_NOT_SWEPT_NAMESPACES = {"admin"}
CSRF_NOT_SWEPT = {"api_schema"}
# Path parameters of public routes (the sweep's factories cover the tenant routes).
PUBLIC_KWARGS = {"uidb64": "MQ", "token": "set-password"}
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


def _csrf_routes() -> list[Route]:
    return [
        r
        for r in ROUTES
        if r.namespace.split(":")[0] not in CSRF_NOT_SWEPT_NAMESPACES
        and r.name not in CSRF_NOT_SWEPT
        and r.name not in CSRF_EXEMPT
        # Read-only API endpoints take no unsafe method at all (DRF answers 405 after auth).
        and not (r.is_api and not set(UNSAFE) & _api_methods(r))
    ]


def _url(route: Route, practice: Practice) -> str:
    if route.public:
        return reverse(route.name, kwargs={k: PUBLIC_KWARGS[k] for k in route.kwargs})
    return _own_urls(route, practice)[0]


def _is_csrf_failure(response) -> bool:
    return response.status_code == 403 and "CSRF" in response.content.decode(errors="replace")


def _send(client: Client, route: Route, method: str, url: str, **extra):
    if route.is_api:
        return client.generic(method, url, "{}", content_type="application/json", **extra)
    return client.generic(
        method, url, "x=1", content_type="application/x-www-form-urlencoded", **extra
    )


def test_exactly_the_listed_routes_are_exempt_from_csrf():
    """A view marked ``csrf_exempt`` must be in the list above, with its reason."""
    exempt = {
        r.name
        for r in ROUTES
        if getattr(r.callback, "csrf_exempt", False)
        and not hasattr(r.callback, "cls")  # DRF views: SessionAuthentication checks CSRF
        and r.namespace.split(":")[0] not in CSRF_NOT_SWEPT_NAMESPACES
    }
    assert exempt == set(CSRF_EXEMPT)


@pytest.mark.parametrize("route", _csrf_routes(), ids=str)
def test_every_unsafe_request_without_a_csrf_token_is_refused(route):
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    user = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR).user
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = _url(route, practice)
    methods = [m for m in UNSAFE if m in _api_methods(route)] if route.is_api else UNSAFE
    for method in methods:
        response = _send(client, route, method, url)
        assert _is_csrf_failure(response), (method, url, response.status_code)

    # The same request with the token gets past the check: the 403 above was the CSRF check.
    client.get(reverse("profile"))  # renders a form, so the csrftoken cookie is set
    token = client.cookies["csrftoken"].value
    response = _send(client, route, methods[0], url, headers={"X-CSRFToken": token})
    assert not _is_csrf_failure(response), (methods[0], url)


class _FormScanner(HTMLParser):
    """Collects the POST forms of a page and whether each holds a csrfmiddlewaretoken."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None
        self.hx_writes = 0
        self.body_csrf_header = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body_csrf_header = attrs.get("hx-headers", "")
        if any(f"hx-{verb}" in attrs for verb in ("post", "put", "patch", "delete")):
            self.hx_writes += 1
        if tag == "form" and (attrs.get("method") or "get").lower() == "post":
            self._open = {"action": attrs.get("action"), "token": False}
            self.forms.append(self._open)
        elif (
            tag == "input"
            and self._open is not None
            and attrs.get("name") == "csrfmiddlewaretoken"
            and attrs.get("value")
        ):
            self._open["token"] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def _seed(practice: Practice) -> None:
    """Rows that make the list pages render their per-row forms."""
    from tests.security.test_isolation_sweep import (
        _campaign,
        _canned_reply,
        _tag,
        _template,
        _unknown_number,
    )

    _campaign(practice, "drip")
    _campaign(practice, "blast")
    _template(practice)
    _canned_reply(practice)
    _unknown_number(practice)
    _tag(practice)
    PatientFactory(practice=practice)
    MembershipFactory(practice=practice, role=Role.USER)
    api_key_create(practice=practice, name="EMR")


def _pages(client: Client, practice: Practice) -> dict[str, object]:
    """Every page route that answers a GET with HTML (signed in as an Administrator)."""
    pages = {}
    for route in ROUTES:
        if route.is_api or route.namespace.split(":")[0] == "admin" or route.name == "logout":
            continue
        if route.public and route.name not in {"login", "password_reset"}:
            continue
        url = _url(route, practice)
        response = (Client() if route.public else client).get(url)
        if response.status_code == 200 and "text/html" in response.get("Content-Type", ""):
            pages[url] = response
    return pages


def test_every_post_form_carries_a_csrf_token_and_htmx_sends_the_header():
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    _seed(practice)
    client = Client()
    client.force_login(MembershipFactory(practice=practice, role=Role.ADMINISTRATOR).user)
    pages = _pages(client, practice)
    assert len(pages) > 25  # the page sweep reached the pages
    forms = 0
    hx_pages = 0
    for url, response in pages.items():
        scanner = _FormScanner()
        scanner.feed(response.content.decode())
        missing = [f["action"] for f in scanner.forms if not f["token"]]
        assert not missing, f"{url}: POST forms without csrfmiddlewaretoken: {missing}"
        forms += len(scanner.forms)
        if scanner.hx_writes:
            # htmx requests outside a form carry the token in a header, set on <body>.
            hx_pages += 1
            header = json.loads(scanner.body_csrf_header or "{}")
            assert header.get("X-CSRFToken"), f"{url}: hx-post without an X-CSRFToken header"
    assert forms > 30
    assert hx_pages > 0


# --- Content Security Policy ------------------------------------------------------------------


def _csp(response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy", "")
    directives = {}
    for part in filter(None, (p.strip() for p in header.split(";"))):
        name, *values = part.split()
        directives[name] = values
    return directives


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def test_every_page_sends_a_strict_csp_and_needs_nothing_it_forbids():
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    _seed(practice)
    client = Client()
    client.force_login(MembershipFactory(practice=practice, role=Role.ADMINISTRATOR).user)
    pages = _pages(client, practice)
    pages["404"] = client.get("/no-such-page/")
    scripts = set()
    for url, response in pages.items():
        csp = _csp(response)
        assert csp.get("script-src") == ["'self'"], (url, csp)
        assert csp.get("default-src") == ["'self'"], (url, csp)
        assert csp.get("frame-ancestors") == ["'none'"], (url, csp)
        for values in csp.values():
            assert "'unsafe-inline'" not in values, (url, csp)
            assert "'unsafe-eval'" not in values, (url, csp)
        html = response.content.decode()
        # What the policy would block must not be on the page: it would silently not work.
        assert not INLINE_SCRIPT.search(html), f"{url}: inline <script>"
        assert not EVENT_HANDLER.search(html), f"{url}: inline event handler attribute"
        assert not STYLE_ATTRIBUTE.search(html), f"{url}: style attribute (style-src 'self')"
        assert "javascript:" not in html.lower(), f"{url}: javascript: URL"
        scripts.update(SCRIPT_SRC.findall(html))
    assert scripts, "no page loads a script: the check above proves nothing"
    assert all(src.startswith("/") and not src.startswith("//") for src in scripts), scripts


# --- production settings -----------------------------------------------------------------------

GOOD_KEY = "v8J2-qL0zR7t_Xw5mN1cY4bH9kP3sD6fG0aE2uI8oT5yW7eQ"
PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
from django.test import Client
c = Client(SERVER_NAME="app.example.com")
plain = c.get("/accounts/login/")
secure = c.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
cookie = secure.cookies.get("csrftoken")
print(json.dumps({
    "session_httponly": s.SESSION_COOKIE_HTTPONLY,
    "session_secure": s.SESSION_COOKIE_SECURE,
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location", ""),
    "secure_status": secure.status_code,
    "hsts": secure.get("Strict-Transport-Security", ""),
    "csp": secure.get("Content-Security-Policy", ""),
    "csrf_cookie_secure": bool(cookie and cookie["secure"]),
}))
"""


def test_production_redirects_to_https_and_sends_hsts_and_secure_cookies(tmp_path):
    """With DEBUG off, through the real middleware: http is redirected to https, https answers
    carry HSTS and the CSP, and cookies are marked Secure (the session cookie HttpOnly too)."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update(
        DEBUG="0",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="app.example.com",
        DJANGO_SETTINGS_MODULE="trackstat.settings",
        # Its own var/ (static files, broker folders), collected as a deployment does: DEBUG
        # off serves static files from the manifest collectstatic writes.
        TRACKSTAT_VAR_DIR=str(tmp_path),
    )
    env.pop("SECURE_SSL_REDIRECT", None)
    env.pop("SECURE_HSTS_SECONDS", None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["session_httponly"] is True
    assert seen["session_secure"] is True
    assert seen["ssl_redirect"] is True
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://app.example.com/accounts/login/"
    assert seen["secure_status"] == 200
    max_age = int(re.search(r"max-age=(\d+)", seen["hsts"]).group(1))
    assert max_age >= 60 * 60 * 24 * 180
    assert "includeSubDomains" in seen["hsts"]
    assert "script-src 'self'" in seen["csp"]
    assert seen["csrf_cookie_secure"] is True


def test_the_session_cookie_is_http_only(client):
    from tests.factories import TEST_PASSWORD

    user = MembershipFactory(role=Role.USER).user
    response = client.post(reverse("login"), {"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response.cookies["sessionid"]["httponly"] is True
    assert response.cookies["sessionid"]["samesite"].lower() in {"lax", "strict"}


# --- API keys ----------------------------------------------------------------------------------


def _every_stored_value() -> list[str]:
    values = []
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields]
        for row in model.objects.values_list(*fields):
            values.extend(str(v) for v in row if v is not None)
    return values


def test_an_api_key_secret_is_nowhere_in_the_database():
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    admin = Client()
    admin.force_login(MembershipFactory(practice=practice, role=Role.ADMINISTRATOR).user)
    response = admin.post(reverse("settings_api_keys"), {"name": "ChiroTouch"}, follow=True)
    secret = response.context["issued"]["secret"]
    # The key works (so it is the real secret), and using it stores nothing of it either.
    api = Client(headers={"Authorization": f"Api-Key {secret}"})
    assert api.get("/api/v1/practice").json()["id"] == practice.pk

    assert ApiKey.objects.filter(name="ChiroTouch").exists()
    random_part = secret.split("_", 2)[2]  # <kind>_<prefix>_<random>
    assert len(random_part) >= 32
    for value in _every_stored_value():
        assert secret not in value
        assert random_part not in value
    assert secret not in admin.get(reverse("settings_api_keys")).content.decode()


# --- no PHI in logs ------------------------------------------------------------------------------

PATIENTS = {
    "ZQ-1": {
        "first_name": "Zebulon",
        "last_name": "Quackenbush",
        "phone": "(312) 555-0177",
        "email": "zebulon.quackenbush@example.test",
    },
    "PV-2": {
        "first_name": "Philomena",
        "last_name": "Vandersnoot",
        "phone": "+1 312 555 0188",
        "email": "philomena.vandersnoot@example.test",
    },
}
E164 = {"ZQ-1": "+13125550177", "PV-2": "+13125550188"}
TWILIO_TOKEN = "phi-test-twilio-token"


def _phi_strings() -> list[str]:
    found = []
    for external_id, record in PATIENTS.items():
        e164 = E164[external_id]
        ten = e164.removeprefix("+1")
        found += [record["first_name"], record["last_name"], record["email"], e164, ten]
        found += [f"({ten[:3]}) {ten[3:6]}-{ten[6:]}", f"{ten[:3]}-{ten[3:6]}-{ten[6:]}"]
        found += [record["email"].split("@")[0]]
    return found


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []
        self.loggers: set[str] = set()

    def emit(self, record):
        self.loggers.add(record.name)
        text = self.format(record)  # with the traceback, when there is one
        self.lines.append(f"{text} {record.args!r} {record.__dict__.get('extra', '')}")


@pytest.fixture
def capture_all_logs():
    names = ["", "django", "django.request", "celery", "twilio", "sendgrid", "trackstat"]
    names += ["campaigns", "messaging", "patients", "reports"]
    handler = _Capture()
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        logger.addHandler(handler)
    yield handler
    for logger, level, disabled in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


@pytest.fixture
def eager_tasks():
    """Webhooks and replies hand work to Celery tasks; here the tasks run in process."""
    from trackstat.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def _twilio_inbound(practice_number: str, from_number: str, body: str, sid: str):
    params = {"MessageSid": sid, "From": from_number, "To": practice_number, "Body": body}
    path = reverse("webhook_twilio_inbound")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        "https://trackstat.test" + path, params
    )
    return Client().post(path, params, headers={"X-Twilio-Signature": signature})


def test_no_patient_data_reaches_the_logs(
    settings, capture_all_logs, capsys, monkeypatch, eager_tasks
):
    from campaigns.engine import tick
    from messaging.models import InboundMessage, MessageStatus, OutboundMessage, SandboxMessage
    from messaging.providers.base import ProviderError
    from messaging.providers.sandbox import SandboxProvider
    from patients.models import Patient

    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    practice = Practice.objects.create(
        name="Spine & Co",
        slug="spine",
        time_zone="America/New_York",
        sms_from="+13125559999",
        email_from="office@spine.test",
    )
    api = Client(
        headers={"Authorization": f"Api-Key {api_key_create(practice=practice, name='EMR').secret}"}
    )
    staff = Client()
    staff.force_login(MembershipFactory(practice=practice, role=Role.ADMINISTRATOR).user)

    # 1. EMR sync through the API: one PUT, one bulk with a bad record.
    response = api.put(
        "/api/v1/patients/ZQ-1",
        {**PATIENTS["ZQ-1"], "birth_date": "1980-02-03"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    bulk = {
        "patients": [
            {"external_id": "PV-2", **PATIENTS["PV-2"]},
            {"external_id": "BAD", "phone": "12"},
        ]
    }
    response = api.post("/api/v1/patients:bulk", bulk, content_type="application/json")
    assert response.json()["created"] == 1
    assert api.get("/api/v1/patients/NOPE-404").status_code == 404  # logs a warning

    # 2. Blasts by SMS and by email; a tick sends them through the sandbox, and the provider
    # fails one send with an error that names the number (as Twilio's errors do).
    for channel, message in [
        ("sms", {"channel": "sms", "body": "Hi {{PatientFirstName}}!"}),
        ("email", {"channel": "email", "subject": "Hello", "body": "<p>{{PatientFullName}}</p>"}),
    ]:
        campaign = {
            "name": f"Open house {channel}",
            "kind": "blast",
            "enabled": True,
            "filters": {"status": "active"},
            "messages": [message],
        }
        response = api.post("/api/v1/campaigns", campaign, content_type="application/json")
        assert response.status_code == 201, response.content
    real_send = SandboxProvider.send

    def failing_send(self, outgoing):
        if outgoing.to == E164["PV-2"]:
            raise ProviderError("21211", f"The 'To' number {outgoing.to} is not a valid number.")
        return real_send(self, outgoing)

    monkeypatch.setattr(SandboxProvider, "send", failing_send)
    local_noon = dt.datetime.combine(
        timezone.now().astimezone(NY).date() + dt.timedelta(days=1), dt.time(12), tzinfo=NY
    )
    summary = tick(now=local_noon, send="inline")
    assert summary["messages_dispatched"] == 4, summary
    monkeypatch.setattr(SandboxProvider, "send", real_send)
    assert OutboundMessage.objects.filter(status=MessageStatus.FAILED).count() == 1
    assert SandboxMessage.objects.filter(to=E164["ZQ-1"], body__contains="Zebulon").exists()
    assert SandboxMessage.objects.filter(to=PATIENTS["ZQ-1"]["email"]).exists()

    # 3. Inbound SMS through the signed webhook: STOP (delivered twice), a reply for the Inbox,
    # and a text to a number no practice has.
    for _ in range(2):
        response = _twilio_inbound(practice.sms_from, E164["ZQ-1"], "STOP", "SMphi0001")
        assert response.status_code == 200
    response = _twilio_inbound(practice.sms_from, E164["PV-2"], "Can Philomena move?", "SMphi02")
    assert response.status_code == 200
    response = _twilio_inbound("+13125550000", E164["PV-2"], "Hello Zebulon", "SMphi0003")
    assert response.status_code == 200
    zebulon = Patient.objects.get(practice=practice, external_id="ZQ-1")
    philomena = Patient.objects.get(practice=practice, external_id="PV-2")
    assert zebulon.sms_opt_out is True
    assert InboundMessage.objects.filter(patient=philomena, handled_as="inbox").exists()

    # 4. Staff read the thread and answer it, look the patient up, open the reports.
    assert staff.get(reverse("messaging:thread", args=[philomena.pk])).status_code == 200
    response = staff.post(reverse("messaging:reply", args=[philomena.pk]), {"body": "Sure!"})
    assert response.status_code == 302
    assert staff.get(reverse("patients:list"), {"q": "Quackenbush"}).status_code == 200
    assert staff.get(reverse("patients:detail", args=[zebulon.pk])).status_code == 200
    # The panels the patient page loads: its message history and "why or why not?".
    for panel in ("messaging:patient_messages", "campaigns:patient_why"):
        assert staff.get(reverse(panel, args=[zebulon.pk])).status_code == 200
    assert staff.get(reverse("reports:index")).status_code == 200
    for campaign_id in OutboundMessage.objects.values_list("campaign", flat=True).distinct():
        if campaign_id:
            assert staff.get(reverse("reports:campaign", args=[campaign_id])).status_code == 200
    assert api.get("/api/v1/messages").status_code == 200

    captured = "\n".join(capture_all_logs.lines)
    printed = capsys.readouterr()
    everything = "\n".join([captured, printed.out, printed.err])
    # The capture worked: the 404, the duplicate webhook and the unknown number were logged.
    assert len(capture_all_logs.lines) >= 3, capture_all_logs.lines
    assert "NOPE-404" in captured
    assert "messaging.webhook_services" in capture_all_logs.loggers
    leaked = [s for s in _phi_strings() if s.lower() in everything.lower()]
    assert not leaked, f"patient data in the logs: {leaked}"


# --- audit ----------------------------------------------------------------------------------------


def test_campaign_created_through_the_api_is_audited_with_its_state(api, practice):
    campaign = {
        "name": "Spring blast",
        "kind": "blast",
        "filters": {"status": "active"},
        "messages": [{"channel": "sms", "body": "Hi"}],
    }
    response = api.post("/api/v1/campaigns", campaign, content_type="application/json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="campaign.create")
    assert event.practice == practice
    assert event.target_id == str(response.json()["id"])
    assert event.after["name"] == "Spring blast"
    assert event.after["enabled"] is False
    assert event.actor_label.startswith("api-key:")


def test_toggling_a_drip_on_the_page_records_before_and_after(member_client):
    from tests.security.test_isolation_sweep import _campaign

    client = member_client(Role.USER_PLUS)
    campaign_id, _ = _campaign(client.membership.practice, "drip")
    response = client.post(
        reverse("campaigns:drip_toggle", args=[campaign_id]),
        {"enabled": "true", "confirmed": "yes"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="campaign.update", target_id=str(campaign_id))
    assert event.actor == client.membership.user
    assert (event.before["enabled"], event.after["enabled"]) == (False, True)


def test_removing_a_blast_recipient_on_the_page_is_audited(member_client):
    from tests.security.test_isolation_sweep import _campaign

    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    campaign_id, _ = _campaign(practice, "blast")
    patient = PatientFactory(practice=practice)
    url = reverse("campaigns:blast_recipient", args=[campaign_id, patient.pk])

    assert client.post(url, {"included": "false"}).status_code == 302
    event = AuditEvent.objects.get(action="campaign.blast_recipient_removed")
    assert event.actor == client.membership.user
    assert event.target_id == str(campaign_id)
    assert event.after == {"patient_external_id": patient.external_id}

    assert client.post(url, {"included": "true"}).status_code == 302
    assert AuditEvent.objects.filter(action="campaign.blast_recipient_included").count() == 1
