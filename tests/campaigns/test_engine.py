"""Scenario tests of the engine, one per seed use case (DESIGN §5.1), driven by explicit
instants: each tick runs in process (``send="inline"``) through the sandbox provider."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.language.triggers import is_continuous
from campaigns.models import Campaign, Enrollment
from campaigns.services import blast_recipient_set, campaign_create
from messaging.models import OutboundMessage, SandboxMessage
from patients.models import Appointment, Patient
from patients.services import patient_opt_out_set
from tests.campaigns.builders import Clinic, ny
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


def sms(body: str, **delay) -> dict:
    return {"channel": "sms", "body": body, "delay": delay or {"value": 0, "unit": "days"}}


def email(subject: str, body: str, **delay) -> dict:
    return {
        "channel": "email",
        "subject": subject,
        "body": body,
        "delay": delay or {"value": 0, "unit": "days"},
    }


def drip(clinic: Clinic, trigger: dict | None, *, enabled_at: dt.datetime, **data) -> Campaign:
    """An enabled campaign, created (and so enabled) at ``enabled_at``."""
    data = {
        "name": "Campaign",
        "enabled": True,
        "trigger": trigger,
        "messages": [sms("Hi {{PatientFirstName}}")],
        **data,
    }
    if trigger and not is_continuous(trigger):
        data.setdefault("schedule", {"frequency": "daily", "time": "10:00"})
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(enabled_at, tick=False):
        return campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def run(at: dt.datetime) -> dict:
    return tick(now=at, send="inline")


def received(patient: Patient) -> list[tuple[str, int, str]]:
    """What reached the patient: (campaign name, step, body) of each message that left."""
    return [
        (m.campaign.name, m.step_position, m.body)
        for m in OutboundMessage.objects.filter(patient=patient, sent_at__isnull=False)
        .select_related("campaign")
        .order_by("sent_at", "id")
    ]


def statuses(patient: Patient) -> list[tuple[int, str, str]]:
    return list(
        OutboundMessage.objects.filter(patient=patient)
        .order_by("step_position", "id")
        .values_list("step_position", "status", "status_reason")
    )


# --- birthday ------------------------------------------------------------------------------


def test_happy_birthday_once_a_year_at_the_campaign_time(clinic):
    ann = clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), phone="3125550101")
    clinic.patient(first_name="Bob", birth_date=dt.date(1980, 6, 16), phone="3125550102")
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        name="Birthday",
        messages=[sms("Happy birthday, {{PatientFirstName}}!")],
    )
    assert run(ny(2026, 6, 15, 9, 59))["enrollments_created"] == 0
    summary = run(ny(2026, 6, 15, 10, 0))
    assert summary["enrollments_created"] == 1
    assert summary["messages_sent"] == 1
    assert received(ann) == [("Birthday", 1, "Happy birthday, Ann!\nReply STOP to opt out")]
    run(ny(2026, 6, 15, 10, 1))
    run(ny(2026, 6, 15, 16, 0))
    assert len(received(ann)) == 1  # once that year
    run(ny(2027, 6, 15, 10, 0))
    assert [body for *_, body in received(ann)][1] == "Happy birthday, Ann!"  # no STOP footer again
    assert SandboxMessage.objects.count() == 2


def test_a_missed_run_is_caught_up_the_same_day_but_never_later(clinic):
    ann = clinic.patient(birth_date=dt.date(1980, 6, 15), phone="3125550101")
    bob = clinic.patient(birth_date=dt.date(1980, 6, 16), phone="3125550102")
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))
    run(ny(2026, 6, 15, 18, 30))  # the scheduler was down at 10:00
    assert len(received(ann)) == 1
    run(ny(2026, 6, 17, 10, 0))  # down all of 16 June: Bob's day is not caught up later
    assert received(bob) == []


def test_a_campaign_enabled_after_todays_time_first_runs_on_the_next_due_day(clinic):
    ann = clinic.patient(birth_date=dt.date(1980, 6, 15), phone="3125550101")
    clinic.patient(birth_date=dt.date(1980, 6, 16), phone="3125550102")
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 15, 11, 0))
    run(ny(2026, 6, 15, 11, 1))
    assert received(ann) == []
    assert run(ny(2026, 6, 16, 10, 0))["enrollments_created"] == 1


# --- new-patient welcome series stopped by a booked appointment (goal) -----------------------


def welcome(clinic: Clinic) -> Campaign:
    return drip(
        clinic,
        {"type": "first_visit", "days_after": 0},
        enabled_at=ny(2026, 6, 1),
        name="Welcome",
        messages=[
            sms("Welcome, {{PatientFirstName}}!"),
            email("How are you feeling?", "<p>Hi {{PatientFirstName}}</p>", value=3, unit="days"),
            sms("Time for your next visit? {{OnlineSchedulingLink}}", value=7, unit="days"),
        ],
        goal={"type": "future_appointment"},
    )


def test_welcome_series_sends_each_step_on_its_day(clinic):
    welcome(clinic)
    ann = clinic.patient(first_name="Ann", phone="3125550101", email="ann@example.test")
    clinic.visit(ann, ny(2026, 6, 15, 8, 30))
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 18, 9, 59))
    assert [step for _, step, _ in received(ann)] == [1]
    run(ny(2026, 6, 18, 10, 0))
    run(ny(2026, 6, 25, 10, 0))
    assert [step for _, step, _ in received(ann)] == [1, 2, 3]
    assert Enrollment.objects.get().state == "completed"


def test_a_booked_appointment_stops_the_series_at_once(clinic):
    welcome(clinic)
    ann = clinic.patient(phone="3125550101", email="ann@example.test")
    clinic.visit(ann, ny(2026, 6, 15, 8, 30))
    run(ny(2026, 6, 15, 10, 0))
    # On 17 June the EMR syncs a booking for 1 July: the goal is met right away.
    with time_machine.travel(ny(2026, 6, 17, 12, 0), tick=False):
        clinic.appointment(ann, ny(2026, 7, 1, 9, 0), booked_at=ny(2026, 6, 17, 11, 55))
    enrollment = Enrollment.objects.get()
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "goal_met")
    run(ny(2026, 6, 18, 10, 0))
    run(ny(2026, 6, 25, 10, 0))
    assert [step for _, step, _ in received(ann)] == [1]


def test_an_appointment_booked_before_entering_is_not_the_goal(clinic):
    welcome(clinic)
    ann = clinic.patient(phone="3125550101", email="ann@example.test")
    clinic.visit(ann, ny(2026, 6, 15, 8, 30))
    clinic.appointment(ann, ny(2026, 7, 1, 9, 0), booked_at=ny(2026, 6, 15, 8, 45))
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 18, 10, 0))
    assert [step for _, step, _ in received(ann)] == [1, 2]


def test_goal_met_between_ticks_cancels_the_queued_step(clinic):
    """Even a step already queued is not sent once the goal is met (re-checked at send)."""
    welcome(clinic)
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101", email="ann@example.test")
    clinic.visit(ann, ny(2026, 6, 15, 8, 30))
    run(ny(2026, 6, 15, 10, 0))  # step 1 (SMS) waits for the 12:00 window
    assert statuses(ann) == [(1, "queued", "")]
    # The booking arrives without the sync hook (say, a direct database import).
    Appointment.objects.create(
        practice=clinic.practice,
        external_id="direct",
        patient=ann,
        start=ny(2026, 7, 1, 9, 0),
        local_date=dt.date(2026, 7, 1),
        status="scheduled",
        booked_at=ny(2026, 6, 15, 11, 0),
    )
    run(ny(2026, 6, 15, 12, 0))
    assert statuses(ann) == [(1, "canceled", "goal met")]
    assert received(ann) == []


# --- anniversary ------------------------------------------------------------------------------


def test_first_visit_anniversary(clinic):
    ann = clinic.patient(phone="3125550101")
    clinic.visit(ann, ny(2024, 6, 15, 9, 0))
    drip(clinic, {"type": "anniversary"}, enabled_at=ny(2025, 1, 1))
    run(ny(2025, 6, 15, 10, 0))
    run(ny(2026, 6, 14, 10, 0))
    run(ny(2026, 6, 15, 10, 0))
    assert len(received(ann)) == 2  # 2025 and 2026
    assert set(Enrollment.objects.values_list("occurrence_key", flat=True)) == {
        "anniversary:2025",
        "anniversary:2026",
    }


# --- appointment reminder -------------------------------------------------------------------


def reminder(clinic: Clinic, **data) -> Campaign:
    data.setdefault("messages", [sms("See you {{AppointmentDate}} at {{AppointmentTime}}")])
    return drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        enabled_at=ny(2026, 6, 1),
        name="Reminder",
        **data,
    )


def test_reminder_the_day_before_with_date_and_time(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))
    assert received(ann) == [
        ("Reminder", 1, "See you Tuesday, June 16 at 9:30 AM\nReply STOP to opt out")
    ]


def test_reminder_follows_a_moved_appointment(clinic):
    reminder(clinic)
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))  # queued until the 12:00 window
    clinic.change(visit, start=ny(2026, 6, 20, 14, 0))  # moved to Saturday
    run(ny(2026, 6, 15, 12, 0))
    assert statuses(ann)[0][1:] == ("queued", "appointment moved: reminder rescheduled")
    run(ny(2026, 6, 19, 10, 0))  # the day before the new date, but before the window
    assert received(ann) == []
    run(ny(2026, 6, 19, 12, 0))
    assert received(ann) == [
        ("Reminder", 1, "See you Saturday, June 20 at 2:00 PM\nReply STOP to opt out")
    ]


def test_reminder_is_canceled_with_its_appointment(clinic):
    reminder(clinic)
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))
    clinic.change(visit, status="cancelled")
    run(ny(2026, 6, 15, 12, 0))
    assert statuses(ann) == [(1, "canceled", "appointment cancelled")]
    assert received(ann) == []


# --- post-visit check-ins ---------------------------------------------------------------------


def test_same_day_check_in_two_hours_after_the_visit(clinic):
    drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        enabled_at=ny(2026, 6, 1),
    )
    ann = clinic.patient(phone="3125550101")
    clinic.visit(ann, ny(2026, 6, 15, 9, 0), checked_in_at=ny(2026, 6, 15, 9, 5))
    run(ny(2026, 6, 15, 11, 4))
    assert received(ann) == []
    run(ny(2026, 6, 15, 11, 5))
    run(ny(2026, 6, 15, 11, 6))
    assert len(received(ann)) == 1


def test_continuous_triggers_never_reach_back_into_past_days(clinic):
    ann = clinic.patient(phone="3125550101")
    clinic.visit(ann, ny(2026, 6, 14, 9, 0))
    drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        enabled_at=ny(2026, 6, 15, 8, 0),
    )
    run(ny(2026, 6, 15, 12, 0))
    assert received(ann) == []


def test_next_morning_soreness_check(clinic):
    drip(clinic, {"type": "last_visit_checked_in", "when": "yesterday"}, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient(phone="3125550101")
    clinic.visit(ann, ny(2026, 6, 14, 17, 0))
    run(ny(2026, 6, 14, 18, 0))
    assert received(ann) == []
    run(ny(2026, 6, 15, 10, 0))
    assert len(received(ann)) == 1


def test_message_on_visit_number_three(clinic):
    drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 0},
        filters={"visit_count": {"eq": 3}},
        enabled_at=ny(2026, 6, 1),
    )
    third, second = clinic.patient(phone="3125550101"), clinic.patient(phone="3125550102")
    for day in (1, 8, 15):
        clinic.visit(third, ny(2026, 6, day, 9, 0))
    for day in (8, 15):
        clinic.visit(second, ny(2026, 6, day, 9, 0))
    run(ny(2026, 6, 15, 9, 30))
    assert len(received(third)) == 1
    assert received(second) == []


# --- missed appointment ---------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 25, 30])
def test_missed_appointment_after_n_minutes(clinic, minutes):
    drip(
        clinic,
        {"type": "missed_appointment", "minutes_after": minutes},
        enabled_at=ny(2026, 6, 1),
        name="Missed",
        messages=[sms("We missed you at {{AppointmentTime}}")],
    )
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, minutes - 1))
    assert received(ann) == []
    run(ny(2026, 6, 15, 9, minutes))
    assert received(ann) == [("Missed", 1, "We missed you at 9:00 AM\nReply STOP to opt out")]


def test_no_missed_text_after_check_in_or_for_cancelled(clinic):
    drip(clinic, {"type": "missed_appointment", "minutes_after": 15}, enabled_at=ny(2026, 6, 1))
    here, cancelled = clinic.patient(phone="3125550101"), clinic.patient(phone="3125550102")
    clinic.appointment(here, ny(2026, 6, 15, 9, 0), status="checked_in")
    clinic.appointment(cancelled, ny(2026, 6, 15, 9, 0), status="cancelled")
    run(ny(2026, 6, 15, 9, 20))
    assert received(here) == []
    assert received(cancelled) == []


def test_missed_text_is_canceled_when_the_patient_checks_in_before_it_goes(clinic):
    drip(clinic, {"type": "missed_appointment", "minutes_after": 15}, enabled_at=ny(2026, 6, 1))
    clinic.practice.sending_window_start = dt.time(9, 30)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    late = clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))  # queued: the window opens at 09:30
    clinic.change(late, status="checked_in", checked_in_at=ny(2026, 6, 15, 9, 20))
    run(ny(2026, 6, 15, 9, 30))
    assert statuses(ann) == [(1, "canceled", "patient checked in")]


def test_continuous_messages_expire_at_the_end_of_their_day(clinic):
    drip(clinic, {"type": "missed_appointment", "minutes_after": 15}, enabled_at=ny(2026, 6, 1))
    clinic.practice.sending_window_end = dt.time(20, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 19, 50))
    run(ny(2026, 6, 15, 20, 5))  # after the window: waits for tomorrow…
    run(ny(2026, 6, 16, 8, 0))  # …but it was for yesterday
    assert statuses(ann) == [(1, "expired", "not sent on its day")]


# --- reactivation ---------------------------------------------------------------------------


def test_reactivation_with_case_types_and_no_future_appointment(clinic):
    drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        filters={
            "has_future_appointment": False,
            "case_types": ["Personal Injury"],
            "tags": {"include": [], "exclude": ["moved", "not qualified"]},
        },
        enabled_at=ny(2026, 6, 1),
    )
    lapsed = clinic.patient(phone="3125550101")
    booked = clinic.patient(phone="3125550102")
    wellness = clinic.patient(phone="3125550103")
    moved = clinic.patient(phone="3125550104", tags=["moved"])
    for patient, case_type in [
        (lapsed, "Personal Injury"),
        (booked, "Personal Injury"),
        (wellness, "Wellness"),
        (moved, "Personal Injury"),
    ]:
        clinic.visit(patient, ny(2025, 11, 1, 9, 0), case=clinic.case(patient, case_type))
    clinic.appointment(booked, ny(2026, 6, 20, 9, 0))
    run(ny(2026, 6, 15, 10, 0))
    assert [len(received(p)) for p in (lapsed, booked, wellness, moved)] == [1, 0, 0, 0]
    run(ny(2026, 6, 16, 10, 0))  # the same lapse enrolls once
    assert len(received(lapsed)) == 1


def test_reactivation_again_after_a_newer_visit_lapses(clinic):
    drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        enabled_at=ny(2025, 1, 1),
    )
    ann = clinic.patient(phone="3125550101")
    clinic.visit(ann, ny(2025, 1, 10, 9, 0))
    run(ny(2025, 7, 10, 10, 0))
    clinic.visit(ann, ny(2025, 8, 1, 9, 0))
    run(ny(2025, 9, 1, 10, 0))
    run(ny(2026, 1, 28, 10, 0))
    assert len(received(ann)) == 2


# --- exclusions, shared addresses, opt-outs ---------------------------------------------------


def test_exclude_recent_days(clinic):
    drip(
        clinic,
        {"type": "missed_appointment", "minutes_after": 15},
        enabled_at=ny(2026, 6, 1),
        name="Missed",
    )
    born = dt.date(1990, 6, 15)
    ann = clinic.patient(phone="3125550101", birth_date=born)
    bob = clinic.patient(phone="3125550102", birth_date=born)
    clinic.appointment(ann, ny(2026, 6, 10, 9, 0))
    run(ny(2026, 6, 10, 9, 15))  # Ann got a drip message on 10 June
    drip(
        clinic,
        {"type": "birthday"},
        exclude_recent_days=7,
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
    )
    run(ny(2026, 6, 15, 10, 0))
    assert [name for name, *_ in received(ann)] == ["Missed"]
    assert [name for name, *_ in received(bob)] == ["Birthday"]


def test_one_message_per_shared_phone_per_run(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))
    twin_a = clinic.patient(birth_date=dt.date(2010, 6, 15), phone="3125550101")
    twin_b = clinic.patient(birth_date=dt.date(2010, 6, 15), phone="3125550101")
    run(ny(2026, 6, 15, 10, 0))
    assert len(received(twin_a)) + len(received(twin_b)) == 1
    skipped = OutboundMessage.objects.get(status="skipped")
    assert skipped.status_reason == "shared_address"


def test_opted_out_or_unreachable_patients_are_skipped_with_the_reason(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Hi"), email("Hi", "<p>Hi</p>", value=1, unit="hours")],
    )
    stop = clinic.patient(
        birth_date=dt.date(1990, 6, 15),
        phone="3125550101",
        sms_opt_out=True,
        email="stop@example.test",
    )
    nophone = clinic.patient(birth_date=dt.date(1990, 6, 15))
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 15, 11, 0))
    assert statuses(stop) == [(1, "skipped", "opted out of text messages"), (2, "delivered", "")]
    assert statuses(nophone) == [
        (1, "skipped", "no mobile phone"),
        (2, "skipped", "no email address"),
    ]


def test_an_opt_out_cancels_queued_messages_at_once(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550101")
    run(ny(2026, 6, 15, 10, 0))
    patient_opt_out_set(
        practice=clinic.practice,
        patient=ann,
        channel="sms",
        opted_out=True,
        source="sms_reply",
        actor=None,
    )
    assert statuses(ann) == [(1, "canceled", "patient opted out")]
    run(ny(2026, 6, 15, 12, 0))
    assert received(ann) == []


# --- quiet hours across a DST change ----------------------------------------------------------


def test_quiet_hours_across_the_spring_forward_night(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        schedule={"frequency": "daily", "time": "20:30"},
        enabled_at=ny(2026, 3, 1),
        messages=[sms("Hi"), sms("Again", value=1, unit="hours")],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 3, 7), phone="3125550101")
    run(ny(2026, 3, 7, 20, 30))  # step 1 at 20:30 EST; step 2 due 21:30, outside the window
    run(ny(2026, 3, 7, 21, 30))
    assert [step for _, step, _ in received(ann)] == [1]
    run(ny(2026, 3, 8, 7, 59))  # EDT now: still before the window
    assert [step for _, step, _ in received(ann)] == [1]
    run(ny(2026, 3, 8, 8, 0))
    assert [step for _, step, _ in received(ann)] == [1, 2]
    second = OutboundMessage.objects.get(step_position=2)
    assert second.sent_at == ny(2026, 3, 8, 8, 0)
    assert second.sent_at - ny(2026, 3, 7, 21, 30) < dt.timedelta(hours=10.5)  # not 11 wall hours


# --- blast ------------------------------------------------------------------------------------


def test_a_blast_sends_once(clinic):
    ann, bob, cy = (clinic.patient(phone=f"312555010{n}") for n in (1, 2, 3))
    serializer = CampaignSerializer(
        data={
            "name": "Closed Monday",
            "kind": "blast",
            "enabled": True,
            "send_at": ny(2026, 6, 15, 12, 0).isoformat(),
            "messages": [sms("We are closed Monday.")],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 14), tick=False):
        blast = campaign_create(
            practice=clinic.practice, data=serializer.validated_data, actor=None
        )
    blast_recipient_set(campaign=blast, patient=cy, included=False, actor=None)
    run(ny(2026, 6, 15, 11, 59))
    assert received(ann) == []
    run(ny(2026, 6, 15, 12, 0))
    run(ny(2026, 6, 15, 12, 1))
    run(ny(2026, 6, 16, 12, 0))
    assert [len(received(p)) for p in (ann, bob, cy)] == [1, 1, 0]
    blast.refresh_from_db()
    assert blast.sent_at == ny(2026, 6, 15, 12, 0)


# --- the messages API -------------------------------------------------------------------------


def test_messages_api_lists_the_outbox_with_history(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550101")
    run(ny(2026, 6, 15, 10, 0))
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    body = api.get(f"/api/v1/messages?patient={ann.external_id}").json()
    assert body["count"] == 1
    message = body["results"][0]
    assert message["patient_external_id"] == ann.external_id
    assert message["status"] == "delivered"
    assert [event["status"] for event in message["history"]] == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]
    assert api.get("/api/v1/messages?status=nope").status_code == 400


# --- pacing -----------------------------------------------------------------------------------


def test_one_practices_blast_does_not_delay_anothers_reminder(settings):
    settings.SEND_RATE_PER_PRACTICE_PER_MINUTE = 5
    busy, quiet = Clinic(), Clinic()
    for n in range(12):
        busy.patient(phone=f"+1312555{1000 + n:04d}")
    serializer = CampaignSerializer(
        data={
            "name": "Big blast",
            "kind": "blast",
            "enabled": True,
            "messages": [sms("News!")],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 14), tick=False):
        campaign_create(practice=busy.practice, data=serializer.validated_data, actor=None)
    reminder(quiet)
    ann = quiet.patient(phone="3125550101")
    quiet.appointment(ann, ny(2026, 6, 16, 9, 30))
    summary = run(ny(2026, 6, 15, 10, 0))
    assert summary["messages_created"] == 13
    assert len(received(ann)) == 1  # the reminder went out in the first tick
    sent_by_busy = OutboundMessage.objects.filter(practice=busy.practice, sent_at__isnull=False)
    assert sent_by_busy.count() == 5  # the blast goes at its practice's pace…
    run(ny(2026, 6, 15, 10, 1))
    run(ny(2026, 6, 15, 10, 2))
    assert sent_by_busy.count() == 12  # …and finishes in later ticks


def test_messages_api_shows_only_the_practices_own_messages(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))
    clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550101")
    run(ny(2026, 6, 15, 10, 0))
    other = Clinic()
    key = api_key_create(practice=other.practice, name="EMR").secret
    response = Client(headers={"Authorization": f"Api-Key {key}"}).get("/api/v1/messages")
    assert response.json()["count"] == 0
    assert Client().get("/api/v1/messages").status_code == 401


def test_a_moved_reminder_keeps_its_tracked_link(clinic):
    reminder(clinic, messages=[sms("See you {{AppointmentDate}}. Directions: https://maps.test/x")])
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))
    clinic.change(visit, start=ny(2026, 6, 20, 14, 0))
    run(ny(2026, 6, 15, 12, 0))
    run(ny(2026, 6, 19, 12, 0))
    [(_, _, body)] = received(ann)
    assert body.startswith("See you Saturday, June 20. Directions: https://trackstat.test/l/")
    assert "maps.test" not in body
