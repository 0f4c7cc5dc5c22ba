"""Every campaign has a purpose (DESIGN §5.8): its default follows the trigger, staff may
change it in the wizard, the blast form and the API, and its messages carry it."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from campaigns.language.purpose import default_purpose
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from patients.sync.patients import patients_upsert
from trackstat.models import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "trigger", "purpose"),
    [
        ("drip", {"type": "scheduled_appointment", "when": "days_before", "days": 1}, "care"),
        ("drip", {"type": "missed_appointment", "minutes_after": 30}, "care"),
        ("drip", {"type": "last_visit_checked_in", "when": "today", "hours_after": 2}, "care"),
        ("drip", {"type": "last_visit_checked_in", "when": "yesterday"}, "care"),
        (
            "drip",
            {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
            "marketing",
        ),
        ("drip", {"type": "birthday"}, "marketing"),
        ("drip", {"type": "anniversary"}, "marketing"),
        ("blast", None, "notice"),
    ],
)
def test_default_purpose_by_trigger(kind, trigger, purpose):
    assert default_purpose(kind=kind, trigger=trigger) == purpose


def _payload(**extra) -> dict:
    return {
        "name": "Birthday",
        "trigger": {"type": "birthday"},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [{"channel": "sms", "body": "Happy birthday!"}],
        **extra,
    }


def test_api_defaults_reads_and_changes_purpose_and_priority(api):
    response = api.post("/api/v1/campaigns", _payload(), content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["purpose"], body["priority"]) == ("marketing", 0)

    url = f"/api/v1/campaigns/{body['id']}"
    response = api.patch(url, {"purpose": "care", "priority": 5}, content_type="application/json")
    assert response.status_code == 200, response.json()
    assert (response.json()["purpose"], response.json()["priority"]) == ("care", 5)
    assert api.get(url).json()["purpose"] == "care"

    response = api.patch(url, {"purpose": "promo"}, content_type="application/json")
    assert response.status_code == 400
    assert "purpose" in response.json()["errors"]
    response = api.patch(url, {"priority": "high"}, content_type="application/json")
    assert response.status_code == 400
    assert "priority" in response.json()["errors"]


def test_a_reminder_is_care_and_a_blast_is_notice_unless_staff_say_otherwise():
    reminder = CampaignSerializer(
        data=_payload(trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1})
    )
    assert reminder.is_valid(), reminder.errors
    assert reminder.validated_data["purpose"] == "care"
    blast = CampaignSerializer(data={**_payload(trigger=None, schedule=None), "kind": "blast"})
    assert blast.is_valid(), blast.errors
    assert blast.validated_data["purpose"] == "notice"
    chosen = CampaignSerializer(data={**_payload(), "purpose": "notice"})
    assert chosen.is_valid(), chosen.errors
    assert chosen.validated_data["purpose"] == "notice"


def test_blast_form_sets_purpose_and_priority(member_client):
    plus = member_client(Role.USER_PLUS)
    with time_machine.travel(dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC), tick=False):
        response = plus.post(
            reverse("campaigns:blast_new"),
            {
                "name": "Spring offer",
                "channel": "sms",
                "body": "Spring special!",
                "send_mode": "asap",
                "purpose": "marketing",
                "priority": "3",
            },
        )
        assert response.status_code == 302, response.text
        blast = Campaign.objects.get(practice=plus.membership.practice, kind="blast")
        assert (blast.purpose, blast.priority) == ("marketing", 3)
        response = plus.get(reverse("campaigns:blast_edit", args=[blast.pk]))
        assert response.status_code == 200, response
        page = response.text
    assert '<option value="marketing" selected>' in page


def test_wizard_audience_step_keeps_purpose_and_priority(member_client):
    plus = member_client(Role.USER_PLUS)
    plus.post(reverse("campaigns:drip_new_step", args=["name"]), {"name": "B", "action": "next"})
    response = plus.post(
        reverse("campaigns:drip_new_step", args=["audience"]),
        {
            "trigger-type": "birthday",
            "filter-status": "active",
            "schedule-frequency": "daily",
            "schedule-time": "10:00",
            "schedule-purpose": "notice",
            "schedule-priority": "2",
            "action": "next",
        },
    )
    assert response.status_code == 302, response.text
    page = plus.get(reverse("campaigns:drip_new_step", args=["audience"])).text
    assert '<option value="notice" selected>' in page
    assert 'name="schedule-priority" value="2"' in page


def test_blast_pages_say_when_texts_actually_go_out(member_client):
    """A marketing blast at 20:30: Florida patients' texts wait for 08:00 the next day."""
    plus = member_client(Role.USER_PLUS)
    practice = plus.membership.practice  # America/New_York
    patients_upsert(
        practice=practice,
        records=[
            {"_index": 0, "external_id": "F", "phone": "3125550101", "address": {"state": "FL"}},
            {"_index": 1, "external_id": "N", "phone": "3125550102", "address": {"state": "NY"}},
            {"_index": 2, "external_id": "M", "phone": "3125550103", "address": {"state": "NY"}},
        ],
    )
    with time_machine.travel(dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC), tick=False):
        response = plus.post(
            reverse("campaigns:blast_new"),
            {
                "name": "Spring offer",
                "channel": "sms",
                "body": "Spring special!",
                "send_mode": "at",
                "send_at": "2026-03-12T20:30",
                "purpose": "marketing",
            },
        )
        assert response.status_code == 302, response.text
        blast = Campaign.objects.get(practice=practice, kind="blast")
        detail = plus.get(response["Location"]).text
        form = plus.get(reverse("campaigns:blast_edit", args=[blast.pk])).text
    for page in (detail, form):
        assert "2 recipients at Thu 2026-03-12 8:30 PM EDT" in page
        assert "1 recipient at Fri 2026-03-13 8:00 AM EDT (the state rule of FL" in page


def test_marketing_email_needs_the_practice_postal_address_before_it_is_enabled(api, practice):
    practice.address_line1 = practice.city = practice.state = practice.postal_code = ""
    practice.save()
    email = {"channel": "email", "subject": "Hi", "body": "<p>Happy birthday</p>"}
    response = api.post(
        "/api/v1/campaigns",
        _payload(enabled=True, messages=[email]),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "postal address" in response.json()["errors"]["enabled"][0]
    draft = api.post(
        "/api/v1/campaigns", _payload(messages=[email]), content_type="application/json"
    )
    assert draft.status_code == 201
    url = f"/api/v1/campaigns/{draft.json()['id']}/enable"
    assert api.post(url).status_code == 400
    # Care email, or a text, needs no address.
    care = api.post(
        "/api/v1/campaigns",
        _payload(enabled=True, purpose="care", messages=[email]),
        content_type="application/json",
    )
    assert care.status_code == 201
    practice.address_line1, practice.city = "1 Main St", "Springfield"
    practice.save()
    assert api.post(url).status_code == 200
