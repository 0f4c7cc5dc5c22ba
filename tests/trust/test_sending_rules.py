"""Scenario tests of the trust rules in the engine (DESIGN §5.8), one per rule, driven by
explicit instants through the sandbox provider: caps across campaigns and channels, priority
when a cap separates two messages, state hours and caps, marketing consent under an opt-in
policy, and the re-check before sending that keeps two ticks from both slipping under a cap."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.engine import tick
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from messaging.models import OutboundMessage
from messaging.outbox.dispatch import messages_dispatch
from messaging.outbox.send import messages_send
from messaging.outbox.trust import sending_time
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, sms

pytestmark = pytest.mark.django_db

BIRTHDAY = {"type": "birthday"}
REMINDER = {"type": "scheduled_appointment", "when": "days_before", "days": 1}


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


def policy(clinic: Clinic, **values) -> None:
    clinic.practice.messaging_policy = values
    clinic.practice.save()


def outcome(patient) -> list[tuple[str, int, str, str]]:
    return list(
        OutboundMessage.objects.filter(patient=patient)
        .order_by("scheduled_for", "id")
        .values_list("campaign__name", "step_position", "status", "status_reason")
    )


def test_third_marketing_message_in_7_days_is_capped_while_a_reminder_goes(clinic):
    policy(clinic, marketing_per_7d=2)
    drip(
        clinic,
        BIRTHDAY,
        name="Birthday week",
        enabled_at=ny(2026, 6, 1),
        messages=[
            sms("Happy birthday"),
            email("A gift", "<p>For you</p>", value=2, unit="days"),
            sms("Last chance", value=2, unit="days"),
        ],
    )
    drip(clinic, REMINDER, name="Reminder", enabled_at=ny(2026, 6, 1), messages=[sms("See you")])
    ann = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="+13125550123", email="ann@example.test"
    )
    clinic.appointment(ann, ny(2026, 6, 20, 9, 0))
    for day in (15, 17, 19):
        tick(now=ny(2026, 6, day, 10, 0), send="inline")
    assert outcome(ann) == [
        ("Birthday week", 1, "delivered", ""),
        ("Birthday week", 2, "delivered", ""),  # another channel, the same purpose
        ("Birthday week", 3, "skipped", "frequency_cap"),
        ("Reminder", 1, "delivered", ""),  # care is never capped by marketing
    ]


def test_two_campaigns_on_one_morning_send_only_the_higher_priority(clinic):
    policy(clinic, marketing_per_24h=1)
    drip(clinic, BIRTHDAY, name="Birthday", enabled_at=ny(2026, 6, 1), messages=[sms("HB")])
    drip(
        clinic,
        {"type": "anniversary"},
        name="Anniversary",
        priority=5,
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy anniversary")],
    )
    ann = clinic.patient(
        birth_date=dt.date(1990, 6, 15), first_visit_date=dt.date(2020, 6, 15), phone="3125550123"
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert sorted(outcome(ann)) == [
        ("Anniversary", 1, "delivered", ""),
        ("Birthday", 1, "skipped", "frequency_cap"),
    ]


def test_equal_priority_the_campaign_created_first_goes(clinic):
    policy(clinic, marketing_per_24h=1)
    drip(
        clinic,
        {"type": "anniversary"},
        name="Anniversary",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy anniversary")],
    )
    drip(clinic, BIRTHDAY, name="Birthday", enabled_at=ny(2026, 6, 1), messages=[sms("HB")])
    ann = clinic.patient(
        birth_date=dt.date(1990, 6, 15), first_visit_date=dt.date(2020, 6, 15), phone="3125550123"
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert sorted(outcome(ann)) == [
        ("Anniversary", 1, "delivered", ""),
        ("Birthday", 1, "skipped", "frequency_cap"),
    ]


def test_purposes_never_cap_each_other_and_no_caps_by_default(clinic):
    drip(clinic, BIRTHDAY, name="Birthday", enabled_at=ny(2026, 6, 1), messages=[sms("HB")])
    drip(
        clinic,
        {"type": "anniversary"},
        name="Anniversary",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy anniversary")],
    )
    ann = clinic.patient(
        birth_date=dt.date(1990, 6, 15), first_visit_date=dt.date(2020, 6, 15), phone="3125550123"
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert [row[2] for row in outcome(ann)] == ["delivered", "delivered"]


def test_florida_marketing_text_at_2030_waits_until_0800(clinic):
    drip(
        clinic,
        BIRTHDAY,
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        schedule={"frequency": "daily", "time": "20:30"},
        messages=[sms("HB")],
    )
    fran = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="3125550123", address={"state": "FL"}
    )
    nick = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="3125550124", address={"state": "NY"}
    )
    tick(now=ny(2026, 6, 15, 20, 30), send="inline")
    assert outcome(nick)[0][2] == "delivered"
    message = OutboundMessage.objects.get(patient=fran)
    assert (message.status, message.scheduled_for) == ("queued", ny(2026, 6, 16, 8, 0))
    tick(now=ny(2026, 6, 16, 7, 59), send="inline")
    assert OutboundMessage.objects.get(patient=fran).status == "queued"
    tick(now=ny(2026, 6, 16, 8, 0), send="inline")
    assert outcome(fran)[0][2] == "delivered"


def test_texas_sunday_marketing_text_waits_until_noon_and_care_does_not(clinic):
    drip(clinic, BIRTHDAY, name="Birthday", enabled_at=ny(2026, 6, 1), messages=[sms("HB")])
    drip(clinic, REMINDER, name="Reminder", enabled_at=ny(2026, 6, 1), messages=[sms("See you")])
    tex = clinic.patient(
        birth_date=dt.date(1990, 6, 14), phone="3125550123", address={"state": "Texas"}
    )
    clinic.appointment(tex, ny(2026, 6, 15, 9, 0))
    tick(now=ny(2026, 6, 14, 10, 0), send="inline")  # Sunday 14 June 2026
    assert sorted(outcome(tex)) == [
        ("Birthday", 1, "queued", ""),
        ("Reminder", 1, "delivered", ""),
    ]
    assert OutboundMessage.objects.get(campaign__name="Birthday").scheduled_for == ny(
        2026, 6, 14, 12, 0
    )
    tick(now=ny(2026, 6, 14, 12, 0), send="inline")
    assert OutboundMessage.objects.get(campaign__name="Birthday").status == "delivered"


def test_state_rules_can_be_turned_off(clinic):
    policy(clinic, state_rules=False)
    drip(
        clinic,
        BIRTHDAY,
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        schedule={"frequency": "daily", "time": "20:30"},
        messages=[sms("HB")],
    )
    fran = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="3125550123", address={"state": "FL"}
    )
    tick(now=ny(2026, 6, 15, 20, 30), send="inline")
    assert outcome(fran)[0][2] == "delivered"


def test_florida_allows_three_marketing_texts_in_24_hours(clinic):
    for n in range(4):
        drip(
            clinic,
            BIRTHDAY,
            name=f"Birthday {n}",
            enabled_at=ny(2026, 6, 1),
            messages=[sms(f"HB {n}")],
        )
    fran = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="3125550123", address={"state": "FL"}
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert sorted(row[2:] for row in outcome(fran)) == [
        ("delivered", ""),
        ("delivered", ""),
        ("delivered", ""),
        ("skipped", "frequency_cap"),
    ]


def test_marketing_sms_without_consent_under_opt_in_is_skipped(clinic):
    policy(clinic, sms_marketing_requires_opt_in=True)
    drip(clinic, BIRTHDAY, name="Birthday", enabled_at=ny(2026, 6, 1), messages=[sms("HB")])
    drip(clinic, REMINDER, name="Reminder", enabled_at=ny(2026, 6, 1), messages=[sms("See you")])
    unknown = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    clinic.appointment(unknown, ny(2026, 6, 16, 9, 0))
    agreed = clinic.patient(
        birth_date=dt.date(1990, 6, 15), phone="3125550124", consent={"sms_marketing": True}
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert sorted(outcome(unknown)) == [
        ("Birthday", 1, "skipped", "no_marketing_consent"),
        ("Reminder", 1, "delivered", ""),
    ]
    assert outcome(agreed) == [("Birthday", 1, "delivered", "")]


def test_refused_marketing_consent_skips_marketing_email_without_a_policy(clinic):
    drip(
        clinic,
        BIRTHDAY,
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[email("HB", "<p>Hi</p>")],
    )
    no = clinic.patient(
        birth_date=dt.date(1990, 6, 15),
        email="no@example.test",
        consent={"email_marketing": False},
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert outcome(no) == [("Birthday", 1, "skipped", "no_marketing_consent")]


def test_marketing_email_carries_the_practice_postal_address(clinic):
    clinic.practice.address_line1 = "12 Main St"
    clinic.practice.city = "Springfield"
    clinic.practice.state = "IL"
    clinic.practice.postal_code = "62701"
    clinic.practice.save()
    drip(
        clinic,
        BIRTHDAY,
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[email("HB", "<p>Hi</p>")],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), email="ann@example.test")
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert "12 Main St, Springfield, IL 62701" in OutboundMessage.objects.get(patient=ann).body


def test_a_cap_is_rechecked_before_sending_so_two_sends_never_both_slip_under(clinic):
    """Two marketing texts made before the cap was set, claimed together and sent by two
    separate batches (two workers): the first batch's re-check and the second's take turns,
    and only one goes, the higher priority one, whichever batch runs first."""
    drip(clinic, BIRTHDAY, name="Low", enabled_at=ny(2026, 6, 1), messages=[sms("low")])
    drip(
        clinic,
        BIRTHDAY,
        name="High",
        priority=3,
        enabled_at=ny(2026, 6, 1),
        messages=[sms("high")],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    tick(now=ny(2026, 6, 15, 9, 59), send="inline")  # before the run: nothing yet
    campaigns_run_due(now=ny(2026, 6, 15, 10, 0))
    steps_materialize(now=ny(2026, 6, 15, 10, 0))
    policy(clinic, marketing_per_24h=1)
    claimed = messages_dispatch(now=ny(2026, 6, 15, 10, 0))
    low = OutboundMessage.objects.get(campaign__name="Low")
    high = OutboundMessage.objects.get(campaign__name="High")
    assert set(claimed) == {low.pk, high.pk}
    messages_send(message_ids=[low.pk], now=ny(2026, 6, 15, 10, 0))
    messages_send(message_ids=[high.pk], now=ny(2026, 6, 15, 10, 0))
    assert sorted(row[:4] for row in outcome(ann)) == [
        ("High", 1, "delivered", ""),
        ("Low", 1, "skipped", "frequency_cap"),
    ]


def test_a_message_already_sent_is_never_displaced(clinic):
    drip(clinic, BIRTHDAY, name="Low", enabled_at=ny(2026, 6, 1), messages=[sms("low")])
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    policy(clinic, marketing_per_24h=1)
    drip(
        clinic,
        {"type": "anniversary"},
        name="High",
        priority=9,
        enabled_at=ny(2026, 6, 1),
        schedule={"frequency": "daily", "time": "11:00"},
        messages=[sms("high")],
    )
    clinic.patient(ann.external_id, first_visit_date=dt.date(2020, 6, 15))
    tick(now=ny(2026, 6, 15, 11, 0), send="inline")
    assert sorted(row[:4] for row in outcome(ann)) == [
        ("High", 1, "skipped", "frequency_cap"),
        ("Low", 1, "delivered", ""),
    ]


@pytest.mark.parametrize(
    ("state", "at", "expected"),
    [
        ("FL", (2026, 6, 15, 20, 0), (2026, 6, 16, 8, 0)),  # 20:00 itself is outside
        ("FL", (2026, 6, 15, 19, 59), (2026, 6, 15, 19, 59)),
        ("MD", (2026, 6, 15, 7, 0), (2026, 6, 15, 8, 0)),
        ("TX", (2026, 6, 13, 8, 30), (2026, 6, 13, 9, 0)),  # Saturday
        ("TX", (2026, 6, 14, 8, 30), (2026, 6, 14, 12, 0)),  # Sunday
        ("TX", (2026, 6, 13, 21, 30), (2026, 6, 14, 12, 0)),  # Saturday night → Sunday noon
        ("NY", (2026, 6, 15, 20, 30), (2026, 6, 15, 20, 30)),
        ("NY", (2026, 6, 15, 21, 30), (2026, 6, 16, 8, 0)),  # the practice's quiet hours
    ],
)
def test_sending_time_for_a_marketing_text(clinic, state, at, expected):
    goes = sending_time(
        practice=clinic.practice,
        at=ny(*at),
        channel="sms",
        purpose="marketing",
        patient_state=state,
    )
    assert goes == ny(*expected)
    assert goes.tzinfo is not None
