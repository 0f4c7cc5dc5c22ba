"""The isolation sweep (DESIGN §3): every route of the URL configuration, with another
practice's ids and with every role below the one it needs.

Routes are enumerated from ``get_resolver()`` when the tests are collected, so a new route is
swept without anyone listing it. A route the sweep cannot handle fails: it must be in the
commented allow-list of public routes, have an entry in the role maps, and every path parameter
must have a factory that builds the object it names.

For each route with path parameters, each parameter in turn names an object of practice B while
the others name practice A's own objects; an Administrator of A (and, for the API, an API key of
A) gets 404 for every method, and practice B's rows are unchanged afterwards. The same URL with
A's own objects must answer something other than 404 (so the 404 is the other practice's, not a
broken URL). Each role below the required one gets 403; the required role gets past the check.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from django.utils import timezone

from tests.factories import AppointmentFactory, CaseFactory, MembershipFactory, PatientFactory
from trackstat.models import Practice, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SAFE = {"GET", "HEAD", "OPTIONS"}

# --- the allow-list: routes that are public or not tenant-scoped, on purpose ------------------

PUBLIC_ROUTES = {
    # Signing in and out and resetting a password happen before there is a practice.
    "login": "sign-in page",
    "favicon": "the site icon, a redirect to its static file",
    "logout": "sign-out",
    "password_reset": "password reset: asks for an email address",
    "password_reset_done": "password reset: 'sent' page",
    "password_reset_confirm": "password reset: protected by the emailed uid/token pair",
    "password_reset_complete": "password reset: 'done' page",
    # The OpenAPI schema and its docs page describe the API; they hold no tenant data.
    "api_schema": "OpenAPI schema (SPECTACULAR_SETTINGS SERVE_PERMISSIONS AllowAny)",
    "api_docs": "API docs page rendering the schema",
    # Reached from messages by patients: protected by unguessable tokens (DESIGN §7).
    "tracked_link": "tracked link /l/<token>: records the click and redirects",
    "unsubscribe": "email unsubscribe page /unsubscribe/<token>/",
    # Provider webhooks: protected by the provider's signature (DESIGN §7).
    "webhook_twilio_status": "Twilio status callback (X-Twilio-Signature)",
    "webhook_twilio_inbound": "Twilio inbound SMS (X-Twilio-Signature)",
    "webhook_sendgrid_events": "SendGrid event webhook (signed)",
}
PUBLIC_NAMESPACES = {
    # The operator's Django admin: staff accounts only, across practices by design.
    "admin": "Django admin (is_staff)",
}

# --- who may use each route (DESIGN §3) --------------------------------------------------------

SIGNED_IN = "signed-in"  # any signed-in user: the page is about the user, not a practice's data

PAGE_ROLES: dict[str, Role | str] = {
    "home": SIGNED_IN,  # the Today page (an account in no practice is told so)
    "today": SIGNED_IN,
    "profile": SIGNED_IN,
    "practice_switch": SIGNED_IN,  # switching to a foreign practice is tested in test_tenancy
    # Settings: Administrators.
    "settings_users": Role.ADMINISTRATOR,
    "settings_member_role": Role.ADMINISTRATOR,
    "settings_member_remove": Role.ADMINISTRATOR,
    "settings_practice": Role.ADMINISTRATOR,
    "settings_providers": Role.ADMINISTRATOR,
    "settings_policy": Role.ADMINISTRATOR,
    "settings_api_keys": Role.ADMINISTRATOR,
    "settings_api_key_revoke": Role.ADMINISTRATOR,
    "settings_webhooks": Role.ADMINISTRATOR,
    "settings_webhook_resend": Role.ADMINISTRATOR,
    # Campaigns and templates: User Plus; template folders: Manager.
    "campaigns:drip_list": Role.USER_PLUS,
    "campaigns:drip_new": Role.USER_PLUS,
    "campaigns:drip_new_step": Role.USER_PLUS,
    "campaigns:drip_new_trigger_options": Role.USER_PLUS,
    "campaigns:drip_new_audience_count": Role.USER_PLUS,
    "campaigns:drip_new_discard": Role.USER_PLUS,
    "campaigns:drip_detail": Role.USER_PLUS,
    "campaigns:drip_edit": Role.USER_PLUS,
    "campaigns:drip_edit_step": Role.USER_PLUS,
    "campaigns:drip_edit_trigger_options": Role.USER_PLUS,
    "campaigns:drip_edit_audience_count": Role.USER_PLUS,
    "campaigns:drip_edit_discard": Role.USER_PLUS,
    "campaigns:drip_toggle": Role.USER_PLUS,
    "campaigns:sms_count": Role.USER_PLUS,
    "campaigns:campaign_delete": Role.USER_PLUS,
    "campaigns:blast_list": Role.USER_PLUS,
    "campaigns:blast_new": Role.USER_PLUS,
    "campaigns:blast_detail": Role.USER_PLUS,
    "campaigns:blast_edit": Role.USER_PLUS,
    "campaigns:blast_enable": Role.USER_PLUS,
    "campaigns:blast_recipient": Role.USER_PLUS,
    "campaigns:template_list": Role.USER_PLUS,
    "campaigns:template_new": Role.USER_PLUS,
    "campaigns:template_edit": Role.USER_PLUS,
    "campaigns:template_folder_new": Role.MANAGER,
    # The patient page's "why or why not?" panel explains campaigns: User Plus.
    "campaigns:patient_why": Role.USER_PLUS,
    "campaigns:patient_campaign_why": Role.USER_PLUS,
    # Patients: everyone; bulk tagging and imports: Manager.
    "patients:list": Role.USER,
    "patients:bulk_tag": Role.MANAGER,
    "patients:import": Role.MANAGER,
    "patients:detail": Role.USER,
    "patients:tag_add": Role.USER,
    "patients:tag_remove": Role.USER,
    "patients:opt_out": Role.USER,
    "patients:marketing_consent": Role.USER,
    "patients:appointment_requests": Role.USER,
    # Inbox: everyone; canned replies are kept by Managers.
    "messaging:inbox": Role.USER,
    "messaging:sandbox": Role.USER,
    "messaging:message_list": Role.USER,
    "messaging:canned_add": Role.MANAGER,
    "messaging:canned_delete": Role.MANAGER,
    "messaging:unknown_thread": Role.USER,
    "messaging:thread": Role.USER,
    "messaging:reply": Role.USER,
    "messaging:patient_messages": Role.USER,  # the patient page's message history
    # Reports: everyone views; the CSV download is for Managers.
    "reports:index": Role.USER,
    "reports:campaign": Role.USER,
    "reports:campaign_csv": Role.MANAGER,
}

# API routes: the role a browser session needs, per method the endpoint implements (an API key
# may use every one). The set of methods must match what the view implements.
API_ROLES: dict[str, dict[str, Role]] = {
    "api_practice": {"GET": Role.USER, "PATCH": Role.ADMINISTRATOR},
    "api_patients": {"GET": Role.USER},
    "api_patients_bulk": {"POST": Role.MANAGER},
    "api_patient": {"GET": Role.USER, "PUT": Role.MANAGER},
    "api_cases": {"GET": Role.USER},
    "api_case": {"GET": Role.USER, "PUT": Role.MANAGER},
    "api_appointments": {"GET": Role.USER},
    "api_appointments_bulk": {"POST": Role.MANAGER},
    "api_appointment": {"GET": Role.USER, "PUT": Role.MANAGER},
    "api_patients_csv": {"POST": Role.MANAGER},
    "api_fhir": {"POST": Role.MANAGER},
    "api_campaigns": {"GET": Role.USER_PLUS, "POST": Role.USER_PLUS},
    "api_campaign": {
        "GET": Role.USER_PLUS,
        "PUT": Role.USER_PLUS,
        "PATCH": Role.USER_PLUS,
        "DELETE": Role.USER_PLUS,
    },
    "api_campaign_enable": {"POST": Role.USER_PLUS},
    "api_campaign_disable": {"POST": Role.USER_PLUS},
    "api_campaign_audience": {"GET": Role.USER_PLUS},
    "api_campaign_explain": {"GET": Role.USER_PLUS},
    "api_campaign_forecast": {"GET": Role.USER_PLUS},
    "api_campaign_report": {"GET": Role.USER},
    "api_messages": {"GET": Role.USER},
    "api_events": {"GET": Role.USER},
    "api_webhooks": {"GET": Role.ADMINISTRATOR, "POST": Role.ADMINISTRATOR},
    "api_webhook": {"DELETE": Role.ADMINISTRATOR},
}

# PUT by external id is an upsert of the caller's own record (external ids are the EMR's keys,
# unique per practice): another practice's id creates practice A's own record, so these answer
# 201 or 400, never 404 — and never touch practice B's row (checked like every other write).
UPSERT_METHODS = {("api_patient", "PUT"), ("api_case", "PUT"), ("api_appointment", "PUT")}

# --- the objects a path parameter names ------------------------------------------------------

_seq = itertools.count(1)


def _campaign(practice: Practice, kind: str):
    from campaigns.language.spec import CampaignSerializer
    from campaigns.services import campaign_create

    data = {
        "name": f"Campaign {next(_seq)}",
        "kind": kind,
        "messages": [{"channel": "sms", "body": "Hi {{PatientFirstName}}"}],
    }
    if kind == "drip":
        data |= {
            "trigger": {"type": "birthday", "offset_days": 0},
            "schedule": {"frequency": "daily", "time": "10:00"},
        }
    else:
        data["filters"] = {"status": "active"}
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    campaign = campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    return campaign.pk, campaign


def _patient(practice: Practice):
    patient = PatientFactory(practice=practice)
    return patient.pk, patient


def _template(practice: Practice):
    from campaigns.models import MessageTemplate, TemplateFolder

    folder = TemplateFolder.objects.create(practice=practice, name=f"Folder {next(_seq)}")
    template = MessageTemplate.objects.create(
        practice=practice, folder=folder, name="Welcome", channel="sms", body="Hi"
    )
    return template.pk, template


def _tag(practice: Practice):
    from patients.models import Tag

    tag = Tag.objects.create(practice=practice, name=f"tag {next(_seq)}")
    return tag.pk, tag


def _canned_reply(practice: Practice):
    from messaging.models import CannedReply

    canned = CannedReply.objects.create(practice=practice, title="Hours", body="9 to 5")
    return canned.pk, canned


def _unknown_number(practice: Practice):
    """An Inbox message from a number that matches no patient (the URL names its thread by an
    opaque token of the practice and the number)."""
    from messaging.inbox import unknown_thread_token
    from messaging.models import InboundHandling, InboundMessage

    n = next(_seq)
    message = InboundMessage.objects.create(
        practice=practice,
        from_number=f"+1415555{n:04d}",
        to_number=practice.sms_from,
        body="Who is this?",
        provider_message_id=f"SMsweep{n}",
        received_at=timezone.now(),
        handled_as=InboundHandling.INBOX,
    )
    return unknown_thread_token(practice_id=practice.pk, number=message.from_number), message


def _membership(practice: Practice):
    membership = MembershipFactory(practice=practice, role=Role.USER)
    return membership.pk, membership


def _api_key(practice: Practice):
    api_key = api_key_create(practice=practice, name="EMR").api_key
    return api_key.pk, api_key


def _webhook(practice: Practice):
    from trackstat.credentials import secret_encrypt
    from trackstat.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(
        practice=practice,
        url="https://hooks.emr.example/x",
        events=["message.failed"],
        secret_encrypted=secret_encrypt("whsec_sweep"),
    )
    return endpoint.pk, endpoint


def _webhook_delivery(practice: Practice):
    from trackstat.models import Event, WebhookDelivery

    _, endpoint = _webhook(practice)
    event = Event.objects.create(
        practice=practice, type="message.failed", data={}, created_at=timezone.now()
    )
    delivery = WebhookDelivery.objects.create(
        practice=practice,
        endpoint=endpoint,
        event=event,
        status="failed",
        attempts=9,
        first_due_at=event.created_at,
    )
    return delivery.pk, delivery


def _patient_external_id(practice: Practice):
    patient = PatientFactory(practice=practice)
    return patient.external_id, patient


def _case_external_id(practice: Practice):
    case = CaseFactory(patient__practice=practice)
    return case.external_id, case


def _appointment_external_id(practice: Practice):
    appointment = AppointmentFactory(patient__practice=practice)
    return appointment.external_id, appointment


Variant = Callable[[Practice], tuple[object, models.Model]]

# kwarg name → its variants (a URL is swept with each; campaign URLs take drips or blasts, so
# both kinds are tried and the right one proves the URL works with the practice's own object).
OBJECT_FACTORIES: dict[str, dict[str, Variant]] = {
    "campaign_id": {
        "drip": lambda p: _campaign(p, "drip"),
        "blast": lambda p: _campaign(p, "blast"),
    },
    "patient_id": {"patient": _patient},
    "template_id": {"template": _template},
    "tag_id": {"tag": _tag},
    "membership_id": {"membership": _membership},
    "api_key_id": {"api_key": _api_key},
    "token": {"unknown number": _unknown_number},
    "webhook_id": {"webhook": _webhook},
    "delivery_id": {"webhook delivery": _webhook_delivery},
}
# kwarg names that mean different objects on different routes: route name → variants.
ROUTE_OBJECT_FACTORIES: dict[str, dict[str, dict[str, Variant]]] = {
    "pk": {
        "patients:detail": {"patient": _patient},
        "patients:tag_add": {"patient": _patient},
        "patients:tag_remove": {"patient": _patient},
        "patients:opt_out": {"patient": _patient},
        "patients:marketing_consent": {"patient": _patient},
        "messaging:canned_delete": {"canned reply": _canned_reply},
    },
    "external_id": {
        "api_patient": {"patient": _patient_external_id},
        "api_case": {"case": _case_external_id},
        "api_appointment": {"appointment": _appointment_external_id},
    },
}
# Path parameters that name no object: a fixed valid value.
NON_OBJECT_KWARGS = {"step": "name"}  # the wizard step

# What writes send: plausible data, so a write that skipped the practice check would succeed.
PAGE_PAYLOADS: dict[str, dict] = {
    "settings_member_role": {"role": int(Role.ADMINISTRATOR)},
    "campaigns:drip_toggle": {"enabled": "true"},
    "campaigns:drip_edit_step": {"action": "next", "name": "Taken over"},
    "campaigns:blast_enable": {"enabled": "true"},
    "campaigns:blast_recipient": {"included": "false"},
    "campaigns:blast_edit": {"name": "Taken over", "channel": "sms", "body": "Hi"},
    "campaigns:template_edit": {"name": "Taken over", "channel": "sms", "body": "Hi"},
    "patients:tag_add": {"name": "taken over"},
    "patients:opt_out": {"channel": "sms", "opted_out": "true"},
    "patients:marketing_consent": {"channel": "sms", "granted": "true"},
    "messaging:reply": {"body": "Hello from another practice"},
}
API_PAYLOADS: dict[str, dict] = {
    "api_campaign": {"name": "Taken over", "enabled": True},
    "api_patient": {"first_name": "Taken", "last_name": "Over", "phone": "+13125550000"},
    "api_case": {"case_type": "Taken over"},
    "api_appointment": {"start": "2030-01-01T10:00:00+00:00", "status": "cancelled"},
}


# --- enumerating the URL configuration ---------------------------------------------------------


@dataclass
class Route:
    name: str | None
    route: str
    kwargs: list[str]
    callback: Callable
    namespace: str = ""
    public: str = field(default="")

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/v1/")

    def __str__(self) -> str:
        return self.name or self.route


def _converters(pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return list(pattern.converters)
    return list(pattern.regex.groupindex)


def walk(patterns, prefix: str = "", namespace: str = "", kwargs=()) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace or ""]))
            yield from walk(
                entry.url_patterns,
                prefix + str(entry.pattern),
                inner,
                (*kwargs, *_converters(entry.pattern)),
            )
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield Route(
                name=name,
                route=prefix + str(entry.pattern),
                kwargs=[*kwargs, *_converters(entry.pattern)],
                callback=entry.callback,
                namespace=namespace,
            )


def all_routes() -> list[Route]:
    routes = list(walk(get_resolver().url_patterns))
    for route in routes:
        top = route.namespace.split(":")[0]
        if top in PUBLIC_NAMESPACES:
            route.public = PUBLIC_NAMESPACES[top]
        elif route.name in PUBLIC_ROUTES:
            route.public = PUBLIC_ROUTES[route.name]
    return routes


ROUTES = all_routes()
SCOPED = [r for r in ROUTES if not r.public]


def test_every_route_is_known_to_the_sweep():
    """A new route must be named and be either in the public allow-list or in a role map."""
    problems = []
    names = [r.name for r in SCOPED]
    problems += [f"route {r.route!r} has no name" for r in SCOPED if not r.name]
    problems += [f"route name {n!r} is used twice" for n in set(names) if names.count(n) > 1]
    for r in SCOPED:
        roles = API_ROLES if r.is_api else PAGE_ROLES
        if r.name not in roles:
            which = "API_ROLES" if r.is_api else "PAGE_ROLES"
            problems.append(f"{r} ({r.route}) needs an entry in {which} (the role it requires)")
    known = {r.name for r in ROUTES}
    for stale in (set(PAGE_ROLES) | set(API_ROLES) | set(PUBLIC_ROUTES)) - known:
        problems.append(f"{stale!r} is listed in the sweep but is no longer a route")
    assert not problems, "\n".join(problems)
    assert len(SCOPED) > 50  # the walk really recursed into the includes


def test_api_role_map_lists_exactly_the_methods_each_endpoint_implements():
    problems = []
    for r in SCOPED:
        if r.is_api and r.name in API_ROLES:
            implemented = _api_methods(r)
            if set(API_ROLES[r.name]) != implemented:
                problems.append(
                    f"{r}: implements {sorted(implemented)}, map has {API_ROLES[r.name]}"
                )
    assert not problems, "\n".join(problems)


def _api_methods(route: Route) -> set[str]:
    view_class = getattr(route.callback, "cls", None)
    assert view_class is not None, f"{route} under /api/v1/ is not a DRF view"
    return {m for m in METHODS if hasattr(view_class, m.lower())} - {"HEAD", "OPTIONS"}


def _variants_for(route: Route) -> list[tuple[str, dict[str, Variant]]]:
    """Per object kwarg, its variants; fails with a clear message for an unknown kwarg."""
    result = []
    for kwarg in route.kwargs:
        if kwarg in NON_OBJECT_KWARGS:
            continue
        if kwarg in ROUTE_OBJECT_FACTORIES:
            by_route = ROUTE_OBJECT_FACTORIES[kwarg]
            assert route.name in by_route, (
                f"{route} ({route.route}): path parameter {kwarg!r} means different objects on "
                f"different routes; add {route.name!r} to ROUTE_OBJECT_FACTORIES[{kwarg!r}]"
            )
            result.append((kwarg, by_route[route.name]))
            continue
        assert kwarg in OBJECT_FACTORIES, (
            f"{route} ({route.route}): no factory for path parameter {kwarg!r}; add one to "
            "OBJECT_FACTORIES (or NON_OBJECT_KWARGS if it names no object)"
        )
        result.append((kwarg, OBJECT_FACTORIES[kwarg]))
    return result


# --- requests ------------------------------------------------------------------------------------


def _request(client: Client, route: Route, method: str, url: str, data: dict):
    if method == "GET":
        return client.get(url)
    if route.is_api:
        return client.generic(method, url, json.dumps(data), content_type="application/json")
    if method == "POST":
        return client.post(url, data)
    return client.generic(
        method, url, urlencode(data), content_type="application/x-www-form-urlencoded"
    )


def _payload(route: Route) -> dict:
    return (API_PAYLOADS if route.is_api else PAGE_PAYLOADS).get(route.name, {})


def _member(practice: Practice, role: Role) -> Client:
    client = Client()
    client.force_login(MembershipFactory(practice=practice, role=role).user)
    return client


def _api_client(practice: Practice) -> Client:
    secret = api_key_create(practice=practice, name="EMR").secret
    return Client(headers={"Authorization": f"Api-Key {secret}"})


def _tenant_models() -> list[type[models.Model]]:
    result = []
    for model in apps.get_models():
        practice_field = next((f for f in model._meta.fields if f.name == "practice"), None)
        if practice_field is not None and practice_field.related_model is Practice:
            result.append(model)
    return result


TENANT_MODELS = _tenant_models()


def snapshot(practice: Practice) -> dict:
    """Every row practice B owns, and its own row: a write through a leak changes this."""
    state = {"practice": list(Practice.objects.filter(pk=practice.pk).values())}
    for model in TENANT_MODELS:
        rows = model.objects.filter(practice=practice).order_by("pk").values()
        state[model._meta.label] = list(rows)
    return state


def cross_links(practice: Practice) -> list[str]:
    """Rows of ``practice`` that point at another practice's rows (there must be none)."""
    found = []
    for model in TENANT_MODELS:
        for fk in model._meta.get_fields():
            if not (fk.many_to_one and fk.related_model in TENANT_MODELS):
                continue
            bad = (
                model.objects.filter(practice=practice)
                .exclude(**{f"{fk.name}__isnull": True})
                .exclude(**{f"{fk.name}__practice": practice})
            )
            if fk.related_model.__name__ in {"TemplateFolder", "MessageTemplate"}:
                # The operator's master library (practice empty) is shared, read-only.
                bad = bad.exclude(**{f"{fk.name}__practice__isnull": True})
            if bad.exists():
                found.append(f"{model._meta.label}.{fk.name}")
    return found


# --- the sweep ------------------------------------------------------------------------------------


def _methods(route: Route) -> list[str]:
    """API views say which methods they implement; a page view is probed with every method."""
    if route.is_api:
        return [m for m in METHODS if m in _api_methods(route)]
    return METHODS


def _probe_foreign(
    client, who: str, route: Route, url: str, failures: list[str], upserts: bool = False
) -> None:
    """Every method with a foreign id: 404 (405 where a page takes no such method).

    ``upserts``: only the upsert methods (they create practice A's own record with that
    external id, so they go after every other caller's probes).
    """
    answered_404 = False
    for method in _methods(route):
        if ((route.name, method) in UPSERT_METHODS) != upserts:
            continue
        code = _request(client, route, method, url, _payload(route)).status_code
        if upserts:
            if code not in (200, 201, 400):
                failures.append(f"{who} {method} {url}: upsert answered {code}")
            continue
        allowed = (404,) if route.is_api else (404, 405)
        if code not in allowed:
            failures.append(f"{who} {method} {url}: {code}, expected 404")
        answered_404 |= code == 404
    if not answered_404 and not upserts:
        failures.append(f"{who} {url}: no method answered 404")


def _gets_through(client, route: Route, url: str, methods=METHODS) -> bool:
    """Some method gets past the role check and the lookup."""
    for method in methods:
        code = _request(client, route, method, url, _payload(route)).status_code
        if code not in (403, 404, 405):
            return True
    return False


def _combos(route: Route) -> list[tuple[str, list[tuple[str, Variant]]]]:
    """Each combination of variants: (label, [(kwarg, make), ...])."""
    kwarg_variants = _variants_for(route)
    result = []
    for combo in itertools.product(*[list(v.items()) for _, v in kwarg_variants]):
        pairs = [(kwarg, make) for (kwarg, _), (_, make) in zip(kwarg_variants, combo, strict=True)]
        label = ", ".join(
            f"{k}={name}" for (k, _), (name, _) in zip(kwarg_variants, combo, strict=True)
        )
        result.append((label, pairs))
    return result


def _fixed(route: Route) -> dict:
    return {k: v for k, v in NON_OBJECT_KWARGS.items() if k in route.kwargs}


@pytest.mark.parametrize("route", [r for r in SCOPED if r.kwargs], ids=str)
def test_another_practices_ids_are_404(route):
    practice_a = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    practice_b = Practice.objects.create(name="B", slug="b", time_zone="America/New_York")
    admin = _member(practice_a, Role.ADMINISTRATOR)
    callers = [("Administrator of A", admin)]
    if route.is_api:
        callers.append(("API key of A", _api_client(practice_a)))

    cases = []
    for label, pairs in _combos(route):
        own = {kwarg: make(practice_a)[0] for kwarg, make in pairs}
        foreign = {kwarg: make(practice_b)[0] for kwarg, make in pairs}
        cases.append((label, own, foreign))
    before = snapshot(practice_b)

    failures: list[str] = []
    for label, own, foreign in cases:
        for kwarg in foreign:
            # One parameter names practice B's object, the others practice A's own.
            url = reverse(route.name, kwargs={**_fixed(route), **own, kwarg: foreign[kwarg]})
            for upserts in (False, True):
                for who, client in callers:
                    who = f"{who} [{label}; foreign {kwarg}]"
                    _probe_foreign(client, who, route, url, failures, upserts)
    assert not failures, "\n".join(failures)
    assert snapshot(practice_b) == before, f"{route} changed practice B's data"

    own_urls = [reverse(route.name, kwargs={**_fixed(route), **own}) for _, own, _ in cases]
    assert any(_gets_through(admin, route, url, _methods(route)) for url in own_urls), (
        f"{route}: even practice A's own objects answer 404, so the sweep proves nothing; "
        "fix the factory or the payload"
    )
    assert cross_links(practice_a) == [], f"{route} linked practice A's rows to practice B's"


def _own_urls(route: Route, practice: Practice) -> list[str]:
    """The URL with each combination of the practice's own objects."""
    return [
        reverse(route.name, kwargs={**_fixed(route), **{k: make(practice)[0] for k, make in pairs}})
        for _, pairs in _combos(route)
    ]


ROLE_SCOPED = [
    r for r in SCOPED if (API_ROLES if r.is_api else PAGE_ROLES).get(r.name) != SIGNED_IN
]


@pytest.mark.parametrize("route", ROLE_SCOPED, ids=str)
def test_every_role_below_the_required_one_gets_403(route):
    """Each weaker role: 403. The required role: past the check (so the map is exact)."""
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    if route.is_api:
        needed = API_ROLES[route.name]
    else:
        # The role check sits in front of the method check or behind it (405 first); GET and
        # POST between them reach it on every page.
        needed = dict.fromkeys(["GET", "POST"], PAGE_ROLES[route.name])
    urls = _own_urls(route, practice)
    failures = []
    for role in Role:
        weaker_than_needed = [m for m, required in needed.items() if role < required]
        if not weaker_than_needed:
            continue
        client = _member(practice, role)
        codes = []
        for method in weaker_than_needed:
            code = _request(client, route, method, urls[0], _payload(route)).status_code
            codes.append(code)
            if code not in (403, 405):
                failures.append(f"{role.label} {method} {urls[0]}: {code}, expected 403")
        if 403 not in codes:
            failures.append(f"{role.label} {route}: no method answered 403 ({codes})")

    for required in sorted(set(needed.values())):
        client = _member(practice, required)
        methods = [m for m, r in needed.items() if r == required]
        if not route.is_api:
            methods = METHODS
            urls = _own_urls(route, practice)  # fresh objects: a probe may have changed them
        if not any(_gets_through(client, route, url, methods) for url in urls):
            failures.append(f"{required.label} {methods} {route}: did not get past the check")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("route", SCOPED, ids=str)
def test_signed_out_visitors_get_nothing(route, client):
    practice = Practice.objects.create(name="A", slug="a", time_zone="America/New_York")
    url = _own_urls(route, practice)[0]
    methods = _methods(route) if route.is_api else ["GET", "POST"]
    codes = [_request(client, route, m, url, _payload(route)).status_code for m in methods]
    if route.is_api:
        assert set(codes) <= {401, 403}, (route, codes)
        return
    assert set(codes) <= {302, 405}, (route, codes)
    assert 302 in codes, (route, codes)
    response = _request(client, route, methods[codes.index(302)], url, {})
    assert response["Location"].startswith(reverse("login")), (route, response["Location"])
