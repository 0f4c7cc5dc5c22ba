"""The patient page's "Campaigns — why or why not?" panel (campaigns.selectors.explain),
served by campaigns (``campaigns.views.patient``) and loaded into the patient page by htmx."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from patients.models import Patient
from patients.sync.patients import patients_upsert
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
# Tuesday 10 March 2026, 11:00 in New York (the factories' practice time zone).
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def _campaign(practice, **data):
    data = {
        "name": "Happy birthday",
        "trigger": {"type": "birthday", "offset_days": 0},
        "filters": {"status": "active"},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [{"channel": "sms", "body": "Happy birthday!"}],
        **data,
    }
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def _patient(practice, **record) -> Patient:
    record = {"external_id": "P1", "first_name": "Ada", "last_name": "Lovelace", **record}
    result = patients_upsert(practice=practice, records=[{"_index": 0, **record}])
    assert result.errors == []
    return Patient.objects.get(practice=practice, external_id=record["external_id"])


def _why(client, patient, campaign, **kwargs):
    url = reverse("campaigns:patient_campaign_why", args=[patient.pk, campaign.pk])
    return client.get(url, **kwargs)


def _panel(client, patient, **kwargs):
    return client.get(reverse("campaigns:patient_why", args=[patient.pk]), **kwargs)


def test_user_plus_sees_the_practices_drip_campaigns_on_the_patient_page(member_client):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    patient = _patient(practice)
    birthday = _campaign(practice, enabled=True)
    _campaign(practice, name="Spring blast", kind="blast", trigger=None, schedule=None)

    page = client.get(reverse("patients:detail", args=[patient.pk])).text

    # The patient page holds the panel's place: htmx loads it, a plain link opens it.
    panel_url = reverse("campaigns:patient_why", args=[patient.pk])
    assert "Campaigns — why or why not?" in page
    assert f'hx-get="{panel_url}" hx-trigger="revealed" hx-swap="outerHTML"' in page
    assert f'<a href="{panel_url}">' in page  # works without JavaScript too

    panel = _panel(client, patient, headers=HTMX)

    assert panel.status_code == 200
    assert "<html" not in panel.text
    assert '<section class="panel" id="why"' in panel.text
    assert "Campaigns — why or why not?" in panel.text
    assert "Happy birthday" in panel.text
    assert "Spring blast" not in panel.text
    url = reverse("campaigns:patient_campaign_why", args=[patient.pk, birthday.pk])
    assert f'hx-get="{url}" hx-trigger="toggle once"' in panel.text
    assert f'href="{url}#why"' in panel.text  # works without JavaScript too


def test_without_javascript_the_panel_is_a_page_linking_back_to_the_patient(member_client):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    patient = _patient(practice)
    birthday = _campaign(practice)

    response = _panel(client, patient)

    assert response.status_code == 200
    assert "<html" in response.text
    assert reverse("patients:detail", args=[patient.pk]) in response.text
    assert "Ada Lovelace" in response.text
    assert "Campaigns — why or why not?" in response.text
    url = reverse("campaigns:patient_campaign_why", args=[patient.pk, birthday.pk])
    assert f'href="{url}#why"' in response.text


def test_a_user_does_not_see_the_panel_and_gets_403(member_client):
    client = member_client(Role.USER)
    practice = client.membership.practice
    patient = _patient(practice)
    campaign = _campaign(practice)
    page = client.get(reverse("patients:detail", args=[patient.pk]))
    assert page.status_code == 200
    assert "why or why not" not in page.text
    assert reverse("campaigns:patient_why", args=[patient.pk]) not in page.text
    assert _panel(client, patient, headers=HTMX).status_code == 403
    assert _panel(client, patient).status_code == 403
    assert _why(client, patient, campaign, headers=HTMX).status_code == 403


def test_explains_each_check_channels_and_quiet_hours(member_client):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    patient = _patient(
        practice, birth_date=dt.date(1980, 3, 10), status="inactive", email="ada@example.test"
    )
    campaign = _campaign(
        practice,
        messages=[
            {"channel": "sms", "body": "Hi"},
            {
                "channel": "email",
                "subject": "s",
                "body": "<p>x</p>",
                "delay": {"value": 1, "unit": "days"},
            },
        ],
    )

    response = _why(client, patient, campaign, headers=HTMX)

    assert response.status_code == 200
    text = response.text
    assert "<html" not in text
    assert "✗ Would not enter" in text
    assert "the campaign is off" in text
    assert '<li class="pass"><span class="mark" aria-hidden="true">✓</span>' in text
    assert "Trigger: On the patient&#x27;s birthday" in text
    assert "Born March 10; today is March 10, 2026." in text
    assert '<li class="fail"><span class="mark" aria-hidden="true">✗</span>' in text
    assert 'Fails: </span>Status <span class="muted">— active</span>' in text
    assert "Text ✗ No mobile phone." in text
    assert "Email ✓ usable" in text
    assert "texts go out 08:00-21:00; it is 11:00 now, so texts may go now" in text


def test_a_patient_who_would_enter(member_client):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    patient = _patient(practice, birth_date=dt.date(1980, 3, 10))
    campaign = _campaign(practice, enabled=True)
    text = _why(client, patient, campaign, headers=HTMX).text
    assert "✓ Would enter" in text
    assert "the campaign is off" not in text
    assert "✗" not in text.split("Channels")[0]


def test_without_javascript_the_page_opens_with_that_campaign_explained(member_client):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    patient = _patient(practice, birth_date=dt.date(1980, 3, 10))
    campaign = _campaign(practice)
    other = _campaign(practice, name="Other")
    response = _why(client, patient, campaign)
    assert response.status_code == 200
    assert "<html" in response.text
    assert "Would enter" in response.text
    assert '<details name="why" open' in response.text
    other_url = reverse("campaigns:patient_campaign_why", args=[patient.pk, other.pk])
    assert other_url + "#why" in response.text
    assert reverse("patients:detail", args=[patient.pk]) in response.text  # back to the patient


def test_another_practices_patient_or_campaign_is_404(member_client, other_practice):
    client = member_client(Role.USER_PLUS)
    practice = client.membership.practice
    mine_patient, mine_campaign = _patient(practice), _campaign(practice)
    their_patient = PatientFactory(practice=other_practice)
    their_campaign = _campaign(other_practice)
    blast = _campaign(practice, name="B", kind="blast", trigger=None, schedule=None)
    assert _why(client, their_patient, mine_campaign).status_code == 404
    assert _why(client, mine_patient, their_campaign).status_code == 404
    assert _why(client, mine_patient, blast).status_code == 404
    assert _panel(client, their_patient).status_code == 404
    assert _panel(client, their_patient, headers=HTMX).status_code == 404


def test_logged_out_is_sent_to_login_and_post_is_not_allowed(client, member_client):
    member = member_client(Role.USER_PLUS)
    practice = member.membership.practice
    patient, campaign = _patient(practice), _campaign(practice)
    for url in (
        reverse("campaigns:patient_campaign_why", args=[patient.pk, campaign.pk]),
        reverse("campaigns:patient_why", args=[patient.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        assert member.post(url).status_code == 405
