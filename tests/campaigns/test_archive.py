"""Deleting a campaign never destroys history (issue 13, item 10).

A campaign that enrolled anyone is archived, not deleted: it stops for good and leaves the
drip and blast lists and the API, while its messages, their tracked and unsubscribe links,
the patient's history and its report keep working. A campaign that never enrolled anyone is
deleted outright; a sent blast cannot be removed by any path (API, page, admin). Cascades
that would erase sent messages by accident (a campaign, an enrollment or a patient deleted
alone) are refused by the database layer; deleting a whole practice still removes it all.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.db.models import RestrictedError
from django.test import Client
from django.urls import reverse

from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, Enrollment, EnrollmentState
from campaigns.services import campaign_create, campaign_delete, campaign_set_enabled
from messaging.models import (
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TrackedLink,
    UnsubscribeToken,
)
from patients.models import Patient
from reports.models import CampaignDayStat
from reports.rollup import rollups_refresh
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, run, sms
from tests.factories import MembershipFactory, UserFactory
from trackstat.models import AuditEvent, Practice, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

BASE = "https://trackstat.test"  # PUBLIC_BASE_URL of the test settings
BOOKING = "https://book.example.test/spine"
BIRTHDAY = dt.date(1990, 6, 15)
SENT_ON = ny(2026, 6, 15, 10, 0)
REPORT_RANGE = {"from": "2026-06-15", "to": "2026-06-15"}


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


@pytest.fixture
def api(clinic) -> Client:
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    return Client(headers={"Authorization": f"Api-Key {key}"})


@pytest.fixture
def plus(clinic) -> Client:
    membership = MembershipFactory(practice=clinic.practice, role=Role.USER_PLUS)
    client = Client()
    client.force_login(membership.user)
    return client


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _ann(clinic: Clinic) -> Patient:
    return clinic.patient(
        "ANN", first_name="Ann", birth_date=BIRTHDAY, phone="3125550101", email="ann@example.test"
    )


def _sent_email_campaign(clinic: Clinic) -> tuple[Campaign, OutboundMessage]:
    """A birthday drip whose first email went out (and was delivered) to Ann; a second step
    is still to come."""
    campaign = drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        name="Birthday",
        messages=[
            email("Happy birthday", f'<p>Treat yourself: <a href="{BOOKING}">book</a></p>'),
            sms("Still time to book", value=3, unit="days"),
        ],
    )
    patient = _ann(clinic)
    run(SENT_ON)
    message = OutboundMessage.objects.get(campaign=campaign, patient=patient, step_position=1)
    assert message.status == MessageStatus.DELIVERED, message.status_reason
    rollups_refresh()
    return campaign, message


def _links(message: OutboundMessage) -> tuple[str, str]:
    """(tracked link path, unsubscribe path) of an email, as the patient got them."""
    tracked = re.search(re.escape(BASE) + r"(/l/[\w-]+)", message.body).group(1)
    unsubscribe = re.search(re.escape(BASE) + r"(/unsubscribe/[\w-]+/)", message.body).group(1)
    return tracked, unsubscribe


# --- the API -------------------------------------------------------------------------------


def test_deleting_a_campaign_that_sent_archives_it_and_keeps_its_history(clinic, api):
    campaign, message = _sent_email_campaign(clinic)
    tracked, unsubscribe = _links(message)
    events = MessageEvent.objects.filter(message=message).count()
    url = f"/api/v1/campaigns/{campaign.pk}"

    response = api.delete(url)

    assert response.status_code == 204
    # Gone from the campaign API and its list; a second DELETE finds nothing.
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    assert campaign.pk not in [c["id"] for c in api.get("/api/v1/campaigns").json()["results"]]
    # Kept, and stopped for good.
    campaign.refresh_from_db()
    assert campaign.archived_at is not None
    assert campaign.enabled is False
    assert AuditEvent.objects.get(action="campaign.archive").before["name"] == "Birthday"
    # The message log and its history.
    logged = api.get("/api/v1/messages", {"campaign": campaign.pk}).json()["results"]
    assert [m["id"] for m in logged] == [message.pk]
    assert MessageEvent.objects.filter(message=message).count() == events
    # The report still shows the numbers.
    report = api.get(f"{url}/report", REPORT_RANGE)
    assert report.status_code == 200
    totals = report.json()["totals"]
    assert (totals["recipients"], totals["sent"], totals["delivered"]) == (1, 1, 1)
    # The links in the delivered email keep working.
    assert Client().get(tracked)["Location"] == BOOKING
    assert Client().get(unsubscribe).status_code == 200
    assert Client().post(unsubscribe).status_code == 200
    message.patient.refresh_from_db()
    assert message.patient.email_opt_out is True


def test_an_archived_campaign_never_runs_again(clinic, api):
    campaign, message = _sent_email_campaign(clinic)
    enrollment = message.enrollment
    assert enrollment.state == EnrollmentState.ACTIVE  # step 2 is still to come

    assert api.delete(f"/api/v1/campaigns/{campaign.pk}").status_code == 204

    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == (
        EnrollmentState.EXITED,
        "campaign_archived",
    )
    assert api.post(f"/api/v1/campaigns/{campaign.pk}/enable").status_code == 404
    campaign.refresh_from_db()
    with pytest.raises(ValidationError):
        campaign_set_enabled(campaign=campaign, enabled=True, actor=None)
    # Next year's birthday, and step 2's day: nothing enrolls, nothing is sent.
    for at in (ny(2026, 6, 18, 10, 0), ny(2027, 6, 15, 10, 0)):
        summary = run(at)
        assert (summary["enrollments_created"], summary["messages_created"]) == (0, 0)
    assert list(OutboundMessage.objects.values_list("step_position", flat=True)) == [1]


def test_archiving_cancels_the_messages_still_queued(clinic, api):
    campaign = drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy birthday {{PatientFirstName}}")],
    )
    patient = _ann(clinic)
    run(ny(2026, 6, 15, 22, 30))  # caught up after the sending window: the text waits
    queued = OutboundMessage.objects.get(patient=patient)
    assert queued.status == MessageStatus.QUEUED

    assert api.delete(f"/api/v1/campaigns/{campaign.pk}").status_code == 204

    queued.refresh_from_db()
    assert (queued.status, queued.status_reason) == (MessageStatus.CANCELED, "campaign archived")
    run(ny(2026, 6, 16, 9, 0))
    queued.refresh_from_db()
    assert queued.sent_at is None


def test_a_campaign_that_never_enrolled_anyone_is_deleted(clinic, api):
    campaign = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))

    assert api.delete(f"/api/v1/campaigns/{campaign.pk}").status_code == 204

    assert not Campaign.objects.filter(pk=campaign.pk).exists()
    assert AuditEvent.objects.filter(action="campaign.delete").exists()


def _sent_blast(clinic: Clinic) -> Campaign:
    serializer = CampaignSerializer(
        data={
            "name": "Closed Monday",
            "kind": "blast",
            "enabled": True,
            "messages": [sms("We are closed on Monday")],
        }
    )
    assert serializer.is_valid(), serializer.errors
    blast = campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)
    _ann(clinic)
    run(ny(2026, 6, 1, 12, 0))
    blast.refresh_from_db()
    assert blast.sent_at is not None
    assert OutboundMessage.objects.filter(campaign=blast, sent_at__isnull=False).exists()
    return blast


def _unchanged(blast: Campaign) -> None:
    after = Campaign.objects.get(pk=blast.pk)
    assert after.archived_at is None
    assert (after.name, after.updated_at) == (blast.name, blast.updated_at)
    assert OutboundMessage.objects.filter(campaign=blast).count() == 1


def test_a_sent_blast_cannot_be_removed_through_the_api(clinic, api):
    blast = _sent_blast(clinic)

    response = api.delete(f"/api/v1/campaigns/{blast.pk}")

    assert response.status_code == 400
    assert "campaign" in response.json()["errors"]
    _unchanged(blast)
    assert api.get(f"/api/v1/campaigns/{blast.pk}").status_code == 200


def test_a_sent_blast_cannot_be_removed_through_the_service(clinic):
    blast = _sent_blast(clinic)

    with pytest.raises(ValidationError) as refused:
        campaign_delete(campaign=blast, actor=None)

    assert "campaign" in refused.value.message_dict
    _unchanged(blast)


# --- the pages -----------------------------------------------------------------------------


def test_the_delete_page_archives_a_campaign_with_history(clinic, plus):
    campaign, message = _sent_email_campaign(clinic)
    url = reverse("campaigns:campaign_delete", args=[campaign.pk])
    assert "archived" in plus.get(url).content.decode()

    response = plus.post(url)

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.archived_at is not None
    drips = plus.get(reverse("campaigns:drip_list")).content.decode()
    assert reverse("campaigns:drip_edit", args=[campaign.pk]) not in drips
    # Its pages are gone, its report and the patient's history are not.
    assert plus.get(url).status_code == 404
    assert plus.get(reverse("campaigns:drip_edit", args=[campaign.pk])).status_code == 404
    report = plus.get(reverse("reports:campaign", args=[campaign.pk]), REPORT_RANGE)
    assert report.status_code == 200
    assert "Archived" in report.content.decode()
    history = plus.get(reverse("messaging:patient_messages", args=[message.patient_id]))
    assert "Happy birthday" in history.content.decode()


def test_a_sent_blast_cannot_be_removed_through_the_page(clinic, plus):
    blast = _sent_blast(clinic)

    response = plus.post(reverse("campaigns:campaign_delete", args=[blast.pk]))

    assert response.status_code == 400
    _unchanged(blast)


# --- the Django admin ----------------------------------------------------------------------


def test_the_admin_archives_through_the_service_and_refuses_a_sent_blast(clinic, operator):
    blast = _sent_blast(clinic)
    drip_campaign, _ = _sent_email_campaign(clinic)
    changelist = reverse("admin:campaigns_campaign_changelist")

    assert (
        operator.get(reverse("admin:campaigns_campaign_delete", args=[blast.pk])).status_code == 403
    )
    response = operator.post(
        changelist,
        {"action": "archive", "_selected_action": [blast.pk, drip_campaign.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "cannot be removed" in response.content.decode()
    _unchanged(blast)
    drip_campaign.refresh_from_db()
    assert drip_campaign.archived_at is not None
    assert Campaign.objects.filter(pk=blast.pk).exists()


# --- cascades ------------------------------------------------------------------------------


def test_deleting_a_campaign_with_history_directly_is_refused(clinic):
    """The ORM (a shell, a future code path) cannot cascade a campaign into its messages."""
    campaign, message = _sent_email_campaign(clinic)

    with pytest.raises(RestrictedError):
        Campaign.objects.filter(pk=campaign.pk).delete()
    with pytest.raises(RestrictedError):
        Enrollment.objects.filter(pk=message.enrollment_id).delete()

    assert OutboundMessage.objects.filter(pk=message.pk).exists()
    assert TrackedLink.objects.filter(message=message).exists()
    assert UnsubscribeToken.objects.filter(message=message).exists()
    assert CampaignDayStat.objects.filter(campaign=campaign).exists()


def test_deleting_a_patient_with_history_is_refused(clinic):
    _, message = _sent_email_campaign(clinic)

    with pytest.raises(RestrictedError):
        Patient.objects.filter(pk=message.patient_id).delete()

    assert OutboundMessage.objects.filter(pk=message.pk).exists()


def test_deleting_a_whole_practice_removes_all_of_it(clinic):
    """The operator offboarding a practice is the one legitimate cascade."""
    other = Clinic()
    _, kept = _sent_email_campaign(other)
    _sent_email_campaign(clinic)
    _sent_blast(clinic)
    # EMR data with lookups (a provider, diagnoses, services) goes with the practice too.
    ann = clinic.patient("ANN", primary_provider="Dr. Lee")
    case = clinic.case(ann, "Personal Injury", diagnoses=["M54.5"])
    clinic.visit(ann, ny(2026, 5, 1, 9, 0), case=case, services=["98940"])

    Practice.objects.filter(pk=clinic.practice.pk).delete()

    assert not Practice.objects.filter(pk=clinic.practice.pk).exists()

    assert not Campaign.objects.filter(practice=clinic.practice).exists()
    assert not OutboundMessage.objects.filter(practice=clinic.practice).exists()
    assert not Patient.objects.filter(practice=clinic.practice).exists()
    assert list(OutboundMessage.objects.values_list("pk", flat=True)) == [kept.pk]
