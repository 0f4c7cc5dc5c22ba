"""FHIR Consent resources in ``POST /api/v1/fhir``: changes of the consent ledger
(DESIGN §5.8, patients.sync.consents)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client

from patients.models import ConsentChange, OptOutSource, Patient
from patients.services import patient_opt_out_set
from tests.factories import PatientFactory, PracticeFactory
from trackstat.models import Event
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

URL = "/api/v1/fhir"
CHANNEL_SYSTEM = "urn:trackstat:consent-channel"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def post(client: Client, *resources) -> dict:
    body = {"resourceType": "Bundle", "type": "batch"}
    body["entry"] = [{"resource": resource} for resource in resources]
    response = client.post(URL, json.dumps(body), content_type="application/fhir+json")
    assert response.status_code == 200, response.content
    return response.json()


def consent(
    resource_id: str = "c1",
    *,
    channel: str | None = "sms",
    marketing: bool = False,
    provision_type: str | None = "permit",
    status: str = "active",
    at: str = "2026-03-09T09:35:00-05:00",
    patient_ref: str = "Patient/MRN-1",
    version: str | None = None,
    **fields,
) -> dict:
    resource: dict = {
        "resourceType": "Consent",
        "id": resource_id,
        "status": status,
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient_ref},
        "dateTime": at,
        "provision": {},
    }
    if channel:
        resource["category"].append({"coding": [{"system": CHANNEL_SYSTEM, "code": channel}]})
    if provision_type:
        resource["provision"]["type"] = provision_type
    if marketing:
        resource["provision"]["purpose"] = [{"system": ACT_REASON, "code": "HMARKT"}]
    if version:
        resource["meta"] = {"versionId": version}
    resource.update(fields)
    return resource


@pytest.fixture
def stored(practice):
    return PatientFactory(practice=practice, external_id="MRN-1")


def errors_of(outcome: dict) -> dict[int, dict]:
    return {error["index"]: error["errors"] for error in outcome["errors"]}


def test_marketing_permit_for_a_patient_of_the_bundle(api, practice):
    outcome = post(
        api,
        {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "MRN-1"}]},
        consent(
            marketing=True,
            patient_ref="Patient/p1",
            version="3",
            text={"status": "generated", "div": "<div>Yes, text me <b>offers</b> &amp; news</div>"},
        ),
    )
    assert outcome["errors"] == []
    assert outcome["consents"] == {"recorded": 1, "superseded": 0, "unchanged": 0, "skipped": 0}
    patient = Patient.objects.get(practice=practice, external_id="MRN-1")
    assert patient.sms_marketing_consent is True
    assert patient.email_marketing_consent is None
    assert patient.sms_opt_out is False
    row = ConsentChange.objects.get(patient=patient)
    assert (row.channel, row.scope, row.granted, row.source) == ("sms", "marketing", True, "emr")
    assert row.at == dt.datetime(2026, 3, 9, 14, 35, tzinfo=dt.UTC)
    assert row.wording == "Yes, text me offers & news"
    assert row.emr_reference == "Consent/c1/_history/3"
    assert row.actor_label  # the API key that sent it


def test_deny_of_every_message_opts_the_channel_out_at_the_consents_time(api, practice, stored):
    outcome = post(api, consent(channel="email", provision_type="deny"))
    assert outcome["consents"]["recorded"] == 1
    stored.refresh_from_db()
    assert stored.email_opt_out is True
    assert stored.email_opt_out_source == OptOutSource.EMR
    assert stored.email_opt_out_at == dt.datetime(2026, 3, 9, 14, 35, tzinfo=dt.UTC)
    assert stored.sms_opt_out is False
    row = ConsentChange.objects.get(patient=stored)
    assert (row.channel, row.scope, row.granted) == ("email", "all", False)
    assert row.emr_reference == "Consent/c1@2026-03-09T14:35:00+00:00"
    # Announced like every opt-out (ids only).
    event = Event.objects.get(practice=practice, type="patient.opted_out")
    assert event.data == {"patient_external_id": "MRN-1", "channel": "email", "source": "emr"}

    # A later permit opts back in; marketing consent is left as it was.
    post(api, consent("c2", channel="email", at="2026-03-10T09:00:00-05:00"))
    stored.refresh_from_db()
    assert stored.email_opt_out is False
    assert stored.email_marketing_consent is None


def test_the_same_consent_sent_twice_is_recorded_once(api, practice, stored):
    resource = consent(marketing=True, version="1")
    post(api, resource)
    outcome = post(api, resource)
    assert outcome["consents"] == {"recorded": 0, "superseded": 0, "unchanged": 1, "skipped": 0}
    assert ConsentChange.objects.filter(patient=stored).count() == 1
    # Twice in one bundle: once.
    outcome = post(api, consent("c9", version="1"), consent("c9", version="1"))
    assert outcome["consents"]["recorded"] == 1
    assert outcome["consents"]["unchanged"] == 1
    # A new version of the same Consent is a new change.
    post(api, consent(marketing=True, version="2", provision_type="deny"))
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is False
    assert ConsentChange.objects.filter(patient=stored, scope="marketing").count() == 2


def test_an_older_consent_does_not_override_a_newer_change(api, practice, stored):
    # The patient texted STOP (now); the EMR then sends a permit signed earlier.
    patient_opt_out_set(
        practice=practice,
        patient=stored,
        channel="sms",
        opted_out=True,
        source=OptOutSource.SMS_REPLY,
        actor=None,
    )
    outcome = post(api, consent(at="2026-03-09T09:35:00-05:00"))
    assert outcome["consents"] == {"recorded": 0, "superseded": 1, "unchanged": 0, "skipped": 0}
    stored.refresh_from_db()
    assert stored.sms_opt_out is True
    # Kept as history at its own time, behind the newer change.
    latest = ConsentChange.objects.filter(patient=stored, channel="sms").first()
    assert latest.source == "keyword"
    assert latest.granted is False
    assert ConsentChange.objects.filter(patient=stored, emr_reference__startswith="Consent/c1")


def test_the_newest_of_a_bundles_consents_holds_whatever_their_order(api, practice, stored):
    outcome = post(
        api,
        consent("new", marketing=True, provision_type="deny", at="2026-03-10T09:00:00-05:00"),
        consent("old", marketing=True, provision_type="permit", at="2026-03-09T09:00:00-05:00"),
    )
    assert outcome["consents"]["recorded"] == 2
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is False
    # Later, an even older one: history only.
    outcome = post(api, consent("older", marketing=True, at="2026-03-01T09:00:00-05:00"))
    assert outcome["consents"]["superseded"] == 1
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is False


def test_statuses(api, practice, stored):
    outcome = post(
        api,
        consent("d", status="draft"),
        consent("p", status="proposed"),
        consent("e", status="entered-in-error"),
    )
    assert outcome["consents"]["skipped"] == 3
    assert not ConsentChange.objects.exists()

    post(api, consent("m1", marketing=True, at="2026-03-01T09:00:00-05:00"))
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is True
    # Inactive marketing consent: unknown again; rejected: refused.
    post(api, consent("m2", marketing=True, status="inactive", at="2026-03-02T09:00:00-05:00"))
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is None
    post(api, consent("m3", marketing=True, status="rejected", at="2026-03-03T09:00:00-05:00"))
    stored.refresh_from_db()
    assert stored.sms_marketing_consent is False
    post(api, consent("r", status="rejected", at="2026-03-03T09:00:00-05:00"))
    stored.refresh_from_db()
    assert stored.sms_opt_out is True


@pytest.mark.parametrize(
    ("resource", "element", "message"),
    [
        (consent(channel=None), "category", "urn:trackstat:consent-channel"),
        (consent(channel="fax"), "category", "sms or email"),
        (consent(provision_type=None), "provision.type", "permit or deny"),
        (consent(provision_type="maybe"), "provision.type", "permit or deny"),
        (consent(status="waiting"), "status", "Must be one of"),
        (consent(status="inactive"), "status", "inactive Consent"),
        (consent(at="2026-03-09"), "dateTime", "with an offset"),
        (consent(at="2099-01-01T00:00:00+00:00"), "dateTime", "future"),
        (consent(patient_ref="Practitioner/x"), "patient", "Must reference a Patient"),
        (consent(patient_ref="Patient/nobody"), "patient", "No patient of the practice"),
        (consent(id=None), "id", "Give an id"),
        (consent(provision={"type": "deny", "provision": [{}]}), "provision.provision", "Nested"),
        (
            consent(provision={"type": "deny", "period": {"end": "2026-04-01"}}),
            "provision.period.end",
            "lapses",
        ),
        (consent(category="sms"), "category", "list of objects"),
        (consent(version="v" * 65), "meta.versionId", "At most 64 characters"),
    ],
)
def test_unmappable_consents_are_entry_errors_and_write_nothing(
    api, practice, stored, resource, element, message
):
    outcome = post(api, {"resourceType": "Patient", "id": "MRN-2"}, resource)
    errors = errors_of(outcome)
    assert list(errors) == [1]
    assert outcome["errors"][0]["resource_type"] == "Consent"
    assert any(message in text for text in errors[1][element]), errors
    assert outcome["patients"]["created"] == 1  # the valid entry is imported
    assert not ConsentChange.objects.exists()
    stored.refresh_from_db()
    assert (stored.sms_opt_out, stored.sms_marketing_consent) == (False, None)


def test_a_consent_whose_patient_entry_is_at_fault_is_not_applied(api, practice):
    outcome = post(
        api,
        {"resourceType": "Patient", "id": "MRN-3", "birthDate": "not a date"},
        consent(patient_ref="Patient/MRN-3"),
    )
    errors = errors_of(outcome)
    assert "entry[0]" in errors[1]["patient"][0]
    assert not ConsentChange.objects.exists()


def test_another_practices_patient_is_never_touched(api, practice):
    other = PracticeFactory(name="Other")
    theirs = PatientFactory(practice=other, external_id="MRN-1")
    outcome = post(api, consent(provision_type="deny"))
    assert errors_of(outcome)[0] == {"patient": ["No patient of the practice has this id."]}
    theirs.refresh_from_db()
    assert theirs.sms_opt_out is False
    assert not ConsentChange.objects.exists()

    # With a patient of the same id in each practice, only the sender's changes.
    ours = PatientFactory(practice=practice, external_id="MRN-1")
    post(api, consent(provision_type="deny"))
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.sms_opt_out, theirs.sms_opt_out) == (True, False)
    # The other practice may send a Consent of the same id: its own record.
    other_key = api_key_create(practice=other, name="EMR").secret
    other_api = Client(headers={"Authorization": f"Api-Key {other_key}"})
    assert post(other_api, consent(provision_type="deny"))["consents"]["recorded"] == 1
    theirs.refresh_from_db()
    assert theirs.sms_opt_out is True
