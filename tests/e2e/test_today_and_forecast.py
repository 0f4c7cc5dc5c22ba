"""The Today page and the 7-day forecast in Chromium (issue 16, items 14 and 15): staff land on
Today after signing in, follow a number to the list behind it, open a campaign's page to see
what it would send over the next days, and see the same forecast on the wizard's review."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging.models import InboundMessage, MessageStatus, OutboundMessage
from tests.campaigns.builders import Clinic
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = [
    ("Grace", "Carter"),
    ("Luis", "Ortega"),
    ("Mia", "Chen"),
    ("Omar", "Haddad"),
    ("Ruth", "Baker"),
    ("Sam", "Nguyen"),
    ("Tara", "Singh"),
    ("Ivan", "Petrov"),
]


def _campaign(practice, **data):
    serializer = CampaignSerializer(data={"enabled": True, **data})
    assert serializer.is_valid(), serializer.errors
    return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def _practice_day(practice):
    """Birthdays over the coming days, appointments the day after tomorrow, a text sent
    today, a failed one, and an unread reply."""
    clinic = Clinic(practice)
    now = timezone.now()
    today = now.astimezone(practice.tz).date()
    patients = []
    for n, (first, last) in enumerate(NAMES):
        birthday = (today + dt.timedelta(days=1 + n % 4)).replace(year=1970 + n)
        patients.append(
            clinic.patient(
                first_name=first,
                last_name=last,
                birth_date=birthday,
                phone=f"+1312555{n + 100:04d}",
                email=f"{first.lower()}@example.test",
            )
        )
    for patient in patients[:3]:
        start = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(9), tzinfo=practice.tz)
        clinic.appointment(patient, start + dt.timedelta(minutes=30 * patients.index(patient)))
    birthday = _campaign(
        practice,
        name="Happy birthday",
        trigger={"type": "birthday", "offset_days": 0},
        schedule={"frequency": "daily", "time": "10:00"},
        messages=[
            {"channel": "sms", "body": "Happy birthday, {{PatientFirstName}}!"},
            {
                "channel": "email",
                "subject": "A gift for you",
                "body": "<p>10% off your next massage.</p>",
                "delay": {"value": 1, "unit": "days"},
            },
        ],
    )
    reminder = _campaign(
        practice,
        name="Appointment reminder",
        trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
        schedule={"frequency": "daily", "time": "17:00"},
        messages=[{"channel": "sms", "body": "See you tomorrow at {{AppointmentTime}}."}],
    )
    sent = OutboundMessage.objects.create(
        practice=practice,
        patient=patients[4],
        campaign=birthday,
        step_position=1,
        channel="sms",
        to=patients[4].phone,
        body="Happy birthday, Ruth!",
        status=MessageStatus.DELIVERED,
        scheduled_for=now - dt.timedelta(hours=2),
        sent_at=now - dt.timedelta(hours=2),
    )
    OutboundMessage.objects.create(
        practice=practice,
        patient=patients[5],
        campaign=birthday,
        step_position=1,
        channel="sms",
        to=patients[5].phone,
        body="Happy birthday, Sam!",
        status=MessageStatus.FAILED,
        status_reason="Unreachable destination handset",
        scheduled_for=now - dt.timedelta(hours=2),
        sent_at=now - dt.timedelta(hours=2),
    )
    tomorrow_nine = dt.datetime.combine(
        today + dt.timedelta(days=1), dt.time(9), tzinfo=practice.tz
    )
    for patient, due in [
        (patients[0], now + dt.timedelta(hours=3)),
        (patients[1], now + dt.timedelta(hours=3, minutes=30)),
        (patients[2], tomorrow_nine),
    ]:
        OutboundMessage.objects.create(
            practice=practice,
            patient=patient,
            campaign=reminder,
            step_position=1,
            channel="sms",
            to=patient.phone,
            body="See you soon.",
            status=MessageStatus.QUEUED,
            scheduled_for=due,
        )
    InboundMessage.objects.create(
        practice=practice,
        patient=patients[4],
        from_number=patients[4].phone,
        to_number=practice.sms_from,
        body="Thank you!",
        provider_message_id="SMtoday0001",
        received_at=now - dt.timedelta(hours=1),
        handled_as="inbox",
    )
    return {"birthday": birthday, "patients": patients, "sent": sent}


def test_staff_land_on_today_and_follow_its_numbers(page, login, shot, practice):
    data = _practice_day(practice)
    member = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    login(member.user.email, TEST_PASSWORD)

    # Signing in lands on Today.
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    tiles = page.get_by_role("region", name="At a glance")
    expect(tiles.get_by_role("link", name="2 sent today")).to_be_visible()
    expect(tiles.get_by_role("link", name="1 failed or bounced")).to_be_visible()
    expect(tiles.get_by_role("link", name="1 unread Inbox thread")).to_be_visible()
    expect(tiles.get_by_role("link", name="2 due the rest of today")).to_be_visible()
    expect(tiles.get_by_role("link", name="1 due tomorrow")).to_be_visible()
    problems = page.get_by_role("region", name="Failed or bounced: someone should look")
    expect(problems).to_contain_text("Nguyen, Sam")
    expect(problems).to_contain_text("Unreachable destination handset")
    shot("today")

    tiles.get_by_role("link", name="1 failed or bounced").click()
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    expect(page.locator("table.message-list tbody tr")).to_have_count(1)
    expect(page.locator("table.message-list")).to_contain_text("Unreachable destination handset")
    shot("failed list")

    page.go_back()
    page.get_by_role("region", name="At a glance").get_by_role(
        "link", name="1 unread Inbox thread"
    ).click()
    expect(page).to_have_url(re.compile(r"/inbox/\?filter=unread$"))
    expect(page.locator("li.thread")).to_have_count(1)

    # The campaign's own page: the forecast of the next 7 days.
    page.goto("/today/")
    page.get_by_role("region", name="By campaign").get_by_role(
        "link", name="Happy birthday"
    ).click()
    forecast = page.get_by_role("region", name="Next 7 days: what this campaign would send")
    expect(forecast).to_contain_text("Worked out from today's data")
    rows = forecast.locator("tbody tr")
    expect(rows).to_have_count(7)
    # Tomorrow: the two patients whose birthday it is get the text at 10:00.
    expect(rows.nth(1)).to_contain_text("Tomorrow")
    expect(rows.nth(1).locator("td").first).to_contain_text("2")
    expect(rows.nth(1)).to_contain_text("2 at 10:00")
    # The day after: two more texts, and tomorrow's two get the email a day later.
    expect(rows.nth(2).locator("td").first).to_contain_text("4")
    sample = forecast.locator("details[open]")
    expect(sample).to_contain_text("Carter, Grace")
    shot("forecast on the campaign page")

    # The wizard's review step shows the same forecast before saving.
    page.goto(f"/campaigns/drip/{data['birthday'].pk}/edit/review/")
    review = page.get_by_role("region", name="Next 7 days: what this campaign would send")
    expect(review.locator("tbody tr").nth(1)).to_contain_text("2 at 10:00")
    review.scroll_into_view_if_needed()
    shot("forecast on the review step")


def test_a_user_sees_today_without_campaign_links(page, login, shot, practice):
    _practice_day(practice)
    member = MembershipFactory(practice=practice, role=Role.USER)
    login(member.user.email, TEST_PASSWORD)
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    campaigns = page.get_by_role("region", name="By campaign")
    expect(campaigns).to_contain_text("Happy birthday")
    expect(campaigns.get_by_role("link", name="Happy birthday")).to_have_count(0)
    shot("today as a user")


def test_a_continuous_campaigns_forecast_says_what_it_cannot_know(page, login, shot, practice):
    _practice_day(practice)
    missed = _campaign(
        practice,
        name="Missed-appointment follow-up",
        trigger={"type": "missed_appointment", "minutes_after": 30},
        messages=[{"channel": "sms", "body": "We missed you today. Reply to rebook."}],
    )
    member = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    login(member.user.email, TEST_PASSWORD)
    page.goto(f"/campaigns/drip/{missed.pk}/")
    forecast = page.get_by_role("region", name="Next 7 days: what this campaign would send")
    expect(forecast).to_contain_text("Only what is already recorded is counted")
    expect(forecast.get_by_role("columnheader", name="Could start it")).to_be_visible()
    # The three appointments booked the day after tomorrow could each start it.
    expect(forecast.locator("tbody tr").nth(2).locator("td").last).to_have_text("3")
    shot("forecast of a continuous trigger")
