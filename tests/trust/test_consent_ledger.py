"""The consent ledger (DESIGN §5.8): every change of a patient's consent, from every source,
with its time, source, wording and actor; the patient JSON carries ``consent``; the patient
page shows the current state and the history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from patients.models import ConsentChange, Patient
from patients.sync.csv import patients_csv_import
from tests.factories import PatientFactory, PracticeFactory
from tests.messaging.test_webhooks import (
    TOKEN,
    inbound,
    outbound,
    sendgrid_post,
    sg_event,
    status_callback,
)
from trackstat.models import AuditEvent, Role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


def ledger(patient) -> list[tuple]:
    return list(
        ConsentChange.objects.filter(patient=patient)
        .order_by("at", "id")
        .values_list("channel", "scope", "granted", "source", "wording")
    )


def test_api_records_consent_and_opt_outs_in_the_ledger(api, practice):
    response = api.put(
        "/api/v1/patients/E1",
        {"first_name": "Ann", "consent": {"sms_marketing": True, "email_marketing": None}},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.json()
    body = api.get("/api/v1/patients/E1").json()
    assert body["consent"] == {"sms_marketing": True, "email_marketing": None}
    patient = Patient.objects.get(practice=practice, external_id="E1")
    assert ledger(patient) == [("sms", "marketing", True, "api", "")]

    api.put(
        "/api/v1/patients/E1",
        {"sms_opt_out": True, "consent": {"sms_marketing": True}},
        content_type="application/json",
    )
    assert ledger(patient)[1:] == [("sms", "all", False, "api", "")]
    # The same again changes nothing.
    api.put("/api/v1/patients/E1", {"sms_opt_out": True}, content_type="application/json")
    assert len(ledger(patient)) == 2


def test_bad_consent_is_a_400_naming_the_field(api):
    response = api.put(
        "/api/v1/patients/E1",
        {"consent": {"sms_marketing": "perhaps"}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "sms_marketing" in response.json()["errors"]["consent"]
    response = api.put("/api/v1/patients/E1", {"consent": "yes"}, content_type="application/json")
    assert response.status_code == 400
    assert "consent" in response.json()["errors"]


def test_csv_columns_record_consent_from_the_emr(member_client):
    manager = member_client(Role.MANAGER)
    practice = manager.membership.practice
    content = (
        b"external_id,first_name,sms_marketing_consent,email_marketing_consent\nC1,Cy,yes,no\n"
    )

    result = patients_csv_import(practice=practice, content=content)
    assert result["created"] == 1, result
    patient = Patient.objects.get(practice=practice, external_id="C1")
    assert (patient.sms_marketing_consent, patient.email_marketing_consent) == (True, False)
    assert sorted(ledger(patient)) == [
        ("email", "marketing", False, "emr", ""),
        ("sms", "marketing", True, "emr", ""),
    ]


def test_staff_record_consent_on_the_patient_page(member_client):
    user = member_client(Role.USER)
    practice = user.membership.practice
    patient = PatientFactory(practice=practice, phone="+13125550123")
    url = reverse("patients:marketing_consent", args=[patient.pk])

    response = user.post(url, {"channel": "sms", "granted": "true"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.sms_marketing_consent is True
    change = ConsentChange.objects.get(patient=patient)
    assert (change.source, change.actor_id, change.actor_label) == (
        "staff",
        user.membership.user.pk,
        user.membership.user.email,
    )
    assert AuditEvent.objects.filter(action="patient.sms_marketing_consent").count() == 1

    user.post(
        reverse("patients:opt_out", args=[patient.pk]), {"channel": "sms", "opted_out": "true"}
    )
    page = user.get(reverse("patients:detail", args=[patient.pk])).text
    assert "Marketing texts: <strong>given</strong>" in page
    assert "Consent history (2)" in page
    assert "opted out" in page

    response = user.post(url, {"channel": "fax", "granted": "true"})
    assert response.status_code == 400
    assert "channel" in response.text


def test_other_practices_patient_is_a_404(member_client, other_practice):
    user = member_client(Role.USER)
    foreign = PatientFactory(practice=other_practice)
    url = reverse("patients:marketing_consent", args=[foreign.pk])
    assert user.post(url, {"channel": "sms", "granted": "true"}).status_code == 404
    assert user.get(url).status_code == 405


def test_keyword_provider_and_bounce_sources(sendgrid_key):
    practice = PracticeFactory(name="Spine", phone="+13125550100", sms_from="+13125559999")
    patient = PatientFactory(practice=practice, phone="+13125550123", email="p@example.test")
    inbound(practice, "Stop", sid="SM1")
    inbound(practice, "START", sid="SM2")
    status_callback(outbound(patient), "failed", ErrorCode="21610")
    email = outbound(patient, channel="email", provider_id="sg1")
    assert sendgrid_post(sendgrid_key, [sg_event(email, "bounce", "ev-1")]).status_code == 204
    assert ledger(patient) == [
        ("sms", "all", False, "keyword", "Stop"),
        ("sms", "all", True, "keyword", "START"),
        ("sms", "all", False, "provider", ""),
        ("email", "all", False, "bounce", ""),
    ]
