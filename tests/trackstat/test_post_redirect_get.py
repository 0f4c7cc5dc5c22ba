"""Issue 16, item 9: every staff form that creates or changes something answers a done POST
with a redirect (Post/Redirect/Get), and the page it lands on, loaded again as a refresh
does, writes nothing: no row of any of our tables is added twice.

Forms answered in place by htmx swap a part of the page without changing its address, so a
refresh there is a GET of the page too; their plain (no-JavaScript) POST is what is swept."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import TemplateFolder
from patients.models import Tag
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

OUR_APPS = ("trackstat", "patients", "campaigns", "messaging", "reports")


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in OUR_APPS
    }


def _patient(practice):
    return PatientFactory(practice=practice, external_id="P1", phone="+13125550111")


# name → (role, build(practice) → (url, data))
FORMS: dict[str, tuple[Role, Callable]] = {
    "profile": (
        Role.USER,
        lambda p: (
            reverse("profile"),
            {"first_name": "Ann", "last_name": "Able", "phone": "(312) 555-0142"},
        ),
    ),
    "invite a user": (
        Role.ADMINISTRATOR,
        lambda p: (reverse("settings_users"), {"email": "new@example.test", "role": Role.USER}),
    ),
    "create an API key": (
        Role.ADMINISTRATOR,
        lambda p: (reverse("settings_api_keys"), {"name": "EMR connector"}),
    ),
    "new template folder": (
        Role.MANAGER,
        lambda p: (reverse("campaigns:template_folder_new"), {"name": "Reminders"}),
    ),
    "new template": (
        Role.USER_PLUS,
        lambda p: (
            reverse("campaigns:template_new"),
            {
                "folder": TemplateFolder.objects.create(practice=p, name="Mine").pk,
                "name": "Welcome",
                "channel": "sms",
                "body": "Welcome {{PatientFirstName}}",
            },
        ),
    ),
    "new blast": (
        Role.USER_PLUS,
        lambda p: (
            reverse("campaigns:blast_new"),
            {"name": "Closed Friday", "channel": "sms", "body": "Hi", "send_mode": "asap"},
        ),
    ),
    "wizard step 1": (
        Role.USER_PLUS,
        lambda p: (
            reverse("campaigns:drip_new_step", args=["name"]),
            {"name": "Birthday", "action": "next"},
        ),
    ),
    "new canned reply": (
        Role.MANAGER,
        lambda p: (reverse("messaging:canned_add"), {"title": "Thanks", "body": "Thank you!"}),
    ),
    "inbox reply": (
        Role.USER,
        lambda p: (reverse("messaging:reply", args=[_patient(p).pk]), {"body": "See you soon"}),
    ),
    "tag a patient": (
        Role.USER,
        lambda p: (
            reverse("patients:tag_add", args=[_patient(p).pk]),
            {"name": Tag.objects.create(practice=p, name="VIP").name},
        ),
    ),
    "disable texts": (
        Role.USER,
        lambda p: (
            reverse("patients:opt_out", args=[_patient(p).pk]),
            {"channel": "sms", "opted_out": "true"},
        ),
    ),
    "marketing consent": (
        Role.USER,
        lambda p: (
            reverse("patients:marketing_consent", args=[_patient(p).pk]),
            {"channel": "sms", "granted": "true"},
        ),
    ),
    "bulk tagging": (
        Role.MANAGER,
        lambda p: (
            reverse("patients:bulk_tag"),
            {"name": "VIP", "external_ids": _patient(p).external_id},
        ),
    ),
    "CSV import": (
        Role.MANAGER,
        lambda p: (
            reverse("patients:import"),
            {"file": SimpleUploadedFile("p.csv", b"external_id,first_name\nP9,Ann\n", "text/csv")},
        ),
    ),
}


@pytest.mark.parametrize("name", FORMS)
def test_a_done_post_redirects_and_a_refresh_writes_nothing(member_client, name):
    role, build = FORMS[name]
    client = member_client(role)
    url, data = build(client.membership.practice)
    before = _row_counts()

    response = client.post(url, data)

    assert response.status_code in (302, 303), (name, response.status_code)
    written = _row_counts()
    assert written != before or name in ("profile", "wizard step 1"), "the POST did its work"
    for _ in range(2):  # the page the redirect lands on, then a refresh of it
        landed = client.get(response["Location"])
        assert landed.status_code == 200, (name, response["Location"])
    assert _row_counts() == written
