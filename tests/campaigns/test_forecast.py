"""The 7-day forecast (issue 16, item 15) against what the engine then does: each scenario
takes the forecast at an instant, then drives ``manage.py tick --now …`` through the next two
local days and compares what went out (patient, step, minute) with what the forecast said for
today and tomorrow."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from campaigns.forecast import StepPlan, campaign_forecast
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, CampaignKind
from campaigns.services import campaign_create
from messaging.models import OutboundMessage
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, sms
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

# A Tuesday in May: no DST change in the window.
NOW = ny(2026, 5, 12, 12, 0)
LONG_AGO = ny(2026, 1, 5, 9, 0)
BIRTHDAY = {"type": "birthday", "offset_days": 0}
REMINDER = {"type": "scheduled_appointment", "when": "days_before", "days": 1}
REACTIVATION = {
    "type": "last_visit_checked_in",
    "when": "days_ago",
    "days": 30,
    "match": "at_least",
}
ANNIVERSARY = {"type": "anniversary", "offset_days": 0}
MISSED = {"type": "missed_appointment", "minutes_after": 30}
SAME_DAY = {"type": "last_visit_checked_in", "when": "today", "hours_after": 2}


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


def tick_through(start: dt.datetime, end: dt.datetime, extra=()) -> None:
    """``manage.py tick --now`` every 15 minutes from ``start`` to ``end``, and at ``extra``."""
    instants = set(extra)
    at = start
    while at <= end:
        instants.add(at)
        at += dt.timedelta(minutes=15)
    for instant in sorted(instants):
        if start <= instant <= end:
            call_command("tick", "--now", instant.isoformat(), stdout=StringIO())


def sent_on(
    campaign: Campaign, day: dt.date, since: dt.datetime
) -> list[tuple[int, int, dt.datetime]]:
    tz = campaign.practice.tz
    rows = OutboundMessage.objects.filter(campaign=campaign, sent_at__gte=since)
    return sorted(
        (m.patient_id, m.step_position, m.sent_at.astimezone(tz).replace(second=0, microsecond=0))
        for m in rows
        if m.sent_at.astimezone(tz).date() == day
    )


def skipped_on(campaign: Campaign, day: dt.date, old: set[int]) -> int:
    tz = campaign.practice.tz
    rows = OutboundMessage.objects.filter(campaign=campaign, status="skipped").exclude(pk__in=old)
    return sum(m.scheduled_for.astimezone(tz).date() == day for m in rows)


def forecast_on(forecast, day: dt.date) -> list[tuple[int, int, dt.datetime]]:
    (found,) = [d for d in forecast.days if d.day == day]
    return sorted(
        (s.patient.pk, s.step, s.at.replace(second=0, microsecond=0)) for s in found.sends
    )


def send_times(forecast) -> set[dt.datetime]:
    return {s.at for day in forecast.days for s in day.sends}


def compare(campaigns: list[Campaign], clinic: Clinic, *, now=NOW, days=2) -> dict:
    forecasts = {c.pk: campaign_forecast(c, now=now) for c in campaigns}
    old = set(OutboundMessage.objects.values_list("pk", flat=True))
    extra = set().union(*(send_times(f) for f in forecasts.values()))
    end = ny(now.year, now.month, now.day, 23, 59) + dt.timedelta(days=days - 1)
    tick_through(now, end, extra)
    for campaign in campaigns:
        for offset in range(days):
            day = now.date() + dt.timedelta(days=offset)
            assert forecast_on(forecasts[campaign.pk], day) == sent_on(campaign, day, now), (
                campaign.name,
                day,
            )
            (forecast_day,) = [d for d in forecasts[campaign.pk].days if d.day == day]
            assert forecast_day.skipped == skipped_on(campaign, day, old), (campaign.name, day)
    return forecasts


def test_scheduled_triggers_forecast_tomorrow_as_the_ticks_then_send(clinic):
    """Birthday (two steps, the second an email three hours later), a reminder at 18:00 whose
    follow-up falls in quiet hours, a weekly reactivation and an anniversary: the forecast for
    today and tomorrow is exactly what the ticks send, patient by patient and minute by
    minute."""
    tomorrow = NOW.date() + dt.timedelta(days=1)
    birthday_md = tomorrow.replace(year=1980)
    greeted = clinic.patient(birth_date=birthday_md, phone="+13125550101", email="g@example.test")
    no_email = clinic.patient(birth_date=birthday_md, phone="+13125550102", email="")
    sibling = clinic.patient(birth_date=birthday_md, phone="+13125550101", email="s@example.test")
    clinic.patient(birth_date=birthday_md, phone="+13125550104", status="deceased")
    clinic.patient(
        birth_date=dt.date(1980, 5, 20), phone="+13125550105"
    )  # outside the window's days
    birthday = drip(
        clinic,
        BIRTHDAY,
        enabled_at=LONG_AGO,
        name="Birthday",
        messages=[sms("Happy birthday!"), email("A gift", "<p>For you</p>", value=3, unit="hours")],
    )
    reminded = clinic.patient(phone="+13125550106")
    clinic.appointment(reminded, ny(2026, 5, 14, 9, 30))
    clinic.appointment(clinic.patient(phone="+13125550107"), ny(2026, 5, 14, 11, 0), "cancelled")
    reminder = drip(
        clinic,
        REMINDER,
        enabled_at=LONG_AGO,
        name="Reminder",
        schedule={"frequency": "daily", "time": "18:00"},
        messages=[sms("See you tomorrow"), sms("Parking is in lot B", value=4, unit="hours")],
    )
    lapsed = clinic.patient(phone="+13125550108")
    clinic.visit(lapsed, ny(2026, 4, 1, 10, 0))
    recent = clinic.patient(phone="+13125550109")
    clinic.visit(recent, ny(2026, 5, 1, 10, 0))
    reactivation = drip(
        clinic,
        REACTIVATION,
        enabled_at=LONG_AGO,
        name="Reactivation",
        schedule={"frequency": "weekly", "weekdays": ["wed"], "time": "09:00"},
        filters={"has_future_appointment": False},
    )
    loyal = clinic.patient(phone="+13125550110", first_visit_date=dt.date(2020, 5, 13))
    anniversary = drip(clinic, ANNIVERSARY, enabled_at=LONG_AGO, name="Anniversary")

    forecasts = compare([birthday, reminder, reactivation, anniversary], clinic)

    day = forecasts[birthday.pk].days[1]
    assert day.day == tomorrow
    # The sibling shares the greeted patient's phone: one text per address and day.
    assert [(s.patient, s.step, f"{s.at:%H:%M}") for s in day.sends] == [
        (greeted, 1, "10:00"),
        (no_email, 1, "10:00"),
        (greeted, 2, "13:00"),
        (sibling, 2, "13:00"),
    ]
    # The sibling's text and no_email's email; the deceased patient never enters.
    assert day.skipped == 2
    assert [(s.patient, f"{s.at:%a %H:%M}") for s in forecasts[reminder.pk].days[1].sends] == [
        (reminded, "Wed 18:00")
    ]
    # The follow-up is due at 22:00: quiet hours hold it to the next morning's window.
    assert [
        (s.patient, s.step, f"{s.at:%a %H:%M}") for s in forecasts[reminder.pk].days[2].sends
    ] == [(reminded, 2, "Thu 08:00")]
    assert [s.patient for s in forecasts[reactivation.pk].days[1].sends] == [lapsed]
    assert forecasts[reactivation.pk].total == 1  # weekly: no other Wednesday in the window
    assert [s.patient for s in forecasts[anniversary.pk].days[1].sends] == [loyal]
    assert recent not in {s.patient for d in forecasts[reactivation.pk].days for s in d.sends}


def test_an_occurrence_is_forecast_once_and_runs_already_made_are_not_repeated(clinic):
    """A daily reactivation: a lapsed patient enters on the first run of the window only;
    today's run having happened (the tick), today shows nothing new."""
    lapsed = clinic.patient(phone="+13125550120")
    clinic.visit(lapsed, ny(2026, 3, 1, 10, 0))
    campaign = drip(clinic, REACTIVATION, enabled_at=LONG_AGO, name="Daily reactivation")
    before = campaign_forecast(campaign, now=ny(2026, 5, 12, 9, 0))
    assert [d.count for d in before.days] == [1, 0, 0, 0, 0, 0, 0]
    assert [r.entering for r in before.runs] == [1, 0, 0, 0, 0, 0, 0]
    tick_through(ny(2026, 5, 12, 9, 0), ny(2026, 5, 12, 10, 15))
    after = campaign_forecast(campaign, now=ny(2026, 5, 12, 10, 30))
    assert after.total == 0
    assert len(after.runs) == 6  # today's run is done


def test_a_campaign_switched_on_now_first_runs_on_its_next_due_day(clinic):
    clinic.patient(birth_date=dt.date(1990, 5, 12), phone="+13125550130")  # birthday today
    clinic.patient(birth_date=dt.date(1990, 5, 13), phone="+13125550131")
    campaign = drip(clinic, BIRTHDAY, enabled_at=LONG_AGO, name="Birthday")
    Campaign.objects.filter(pk=campaign.pk).update(enabled=False)
    campaign.refresh_from_db()
    forecast = campaign_forecast(campaign, now=NOW)  # 12:00, after today's 10:00
    assert forecast.assumes_on
    assert [d.count for d in forecast.days][:2] == [0, 1]
    # On and on in time, today's missed run would be caught up at once.
    Campaign.objects.filter(pk=campaign.pk).update(enabled=True)
    campaign.refresh_from_db()
    caught_up = campaign_forecast(campaign, now=NOW)
    assert [f"{s.at:%H:%M}" for s in caught_up.days[0].sends] == ["12:00"]
    compare([campaign], clinic)


def test_continuous_triggers_from_todays_recorded_events(clinic):
    """A missed appointment already past its delay enters at the next tick; a visit checked in
    today enters two hours after check-in; later days show only the booked appointments that
    could set them off."""
    missed = clinic.patient(phone="+13125550140")
    clinic.appointment(missed, ny(2026, 5, 12, 10, 0))
    visited = clinic.patient(phone="+13125550141")
    clinic.appointment(
        visited, ny(2026, 5, 12, 11, 0), "checked_in", checked_in_at=ny(2026, 5, 12, 11, 20)
    )
    late = clinic.patient(phone="+13125550142")  # checked in too late for today's window
    clinic.appointment(
        late, ny(2026, 5, 12, 19, 0), "checked_in", checked_in_at=ny(2026, 5, 12, 19, 30)
    )
    for day in (13, 13, 15):
        clinic.appointment(clinic.patient(), ny(2026, 5, day, 9, 0))
    follow_up = drip(clinic, MISSED, enabled_at=LONG_AGO, name="Missed")
    check_in = drip(clinic, SAME_DAY, enabled_at=LONG_AGO, name="Same day")

    evening = ny(2026, 5, 12, 20, 0)
    forecasts = {c.pk: campaign_forecast(c, now=evening) for c in (follow_up, check_in)}
    # No tick has run since noon: the 11:20 check-in enters at once; 19:30 + 2 hours is
    # 21:30, after quiet hours begin, and its text would expire at midnight.
    today = forecasts[check_in.pk].days[0]
    assert [(s.patient, f"{s.at:%H:%M}") for s in today.sends] == [(visited, "20:00")]
    assert today.expired == 1

    forecasts = compare([follow_up, check_in], clinic, days=1)
    assert [(s.patient, f"{s.at:%H:%M}") for s in forecasts[follow_up.pk].days[0].sends] == [
        (missed, "12:00")
    ]
    assert [(s.patient, f"{s.at:%H:%M}") for s in forecasts[check_in.pk].days[0].sends] == [
        (visited, "13:20")
    ]
    forecast = forecasts[follow_up.pk]
    assert forecast.continuous
    assert [d.possible for d in forecast.days] == [0, 2, 0, 1, 0, 0, 0]


def test_patients_already_in_the_campaign_and_queued_messages_count(clinic):
    """A two-step welcome series: a patient who entered yesterday gets step 2 in the window,
    and a message already in the outbox goes out at its time."""
    new = clinic.patient(phone="+13125550150", first_visit_date=dt.date(2026, 5, 11))
    campaign = drip(
        clinic,
        {"type": "first_visit", "days_after": 0},
        enabled_at=LONG_AGO,
        name="Welcome",
        messages=[sms("Welcome!"), sms("How are you feeling?", value=2, unit="days")],
    )
    tick_through(ny(2026, 5, 11, 10, 0), ny(2026, 5, 11, 10, 0))
    assert OutboundMessage.objects.filter(campaign=campaign, sent_at__isnull=False).count() == 1
    forecast = campaign_forecast(campaign, now=NOW)
    assert [(s.patient, s.step, f"{s.at:%a %H:%M}", s.source) for s in forecast.days[1].sends] == [
        (new, 2, "Wed 10:00", "enrolled")
    ]
    compare([campaign], clinic)


def test_an_address_already_messaged_today_is_not_forecast_again(clinic):
    """One message per address per campaign and day, whatever the step: a second step due
    the same afternoon is skipped, as the engine skips it."""
    greeted = clinic.patient(birth_date=dt.date(1990, 5, 12), phone="+13125550155")
    campaign = drip(
        clinic,
        BIRTHDAY,
        enabled_at=LONG_AGO,
        name="Birthday",
        messages=[sms("Happy birthday!"), sms("Enjoy your day", value=3, unit="hours")],
    )
    tick_through(ny(2026, 5, 12, 10, 0), ny(2026, 5, 12, 10, 0))
    forecast = campaign_forecast(campaign, now=NOW)
    assert forecast.days[0].count == 0
    assert forecast.days[0].skipped == 1
    assert greeted.pk not in {s.patient.pk for s in forecast.days[0].sends}
    compare([campaign], clinic)


def test_a_wizard_draft_is_forecast_with_its_own_steps_before_it_is_saved(clinic):
    clinic.patient(birth_date=dt.date(1990, 5, 13), phone="+13125550160")
    clinic.patient(birth_date=dt.date(1990, 5, 13), phone="", email="x@example.test")
    unsaved = Campaign(
        practice=clinic.practice,
        kind=CampaignKind.DRIP,
        trigger=BIRTHDAY,
        filters={},
        schedule={"frequency": "daily", "time": "09:30"},
    )
    steps = [StepPlan.from_draft({"channel": "sms", "delay": {"value": 0, "unit": "days"}})]
    forecast = campaign_forecast(unsaved, now=NOW, steps=steps)
    assert forecast.assumes_on
    assert [(d.count, d.skipped) for d in forecast.days][:2] == [(0, 0), (1, 1)]
    assert f"{forecast.days[1].sends[0].at:%H:%M}" == "09:30"


def test_another_practices_patients_never_appear(clinic):
    other = Clinic()
    other.patient(birth_date=dt.date(1990, 5, 13), phone="+13125550170")
    campaign = drip(clinic, BIRTHDAY, enabled_at=LONG_AGO, name="Birthday")
    assert campaign_forecast(campaign, now=NOW).total == 0


def test_a_blast_is_forecast_at_its_send_time(clinic):
    patient = clinic.patient(phone="+13125550180")
    data = {
        "name": "Closed",
        "kind": "blast",
        "enabled": False,
        "send_at": ny(2026, 5, 13, 7, 0).isoformat(),
        "messages": [sms("We are closed Monday.")],
    }
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    blast = campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)
    forecast = campaign_forecast(blast, now=NOW)
    # 07:00 is before the window opens: the texts go out at 08:00.
    assert [(s.patient, f"{s.at:%a %H:%M}") for s in forecast.days[1].sends] == [
        (patient, "Wed 08:00")
    ]


def test_the_query_count_does_not_grow_with_the_patients(clinic):
    campaign = drip(
        clinic,
        BIRTHDAY,
        enabled_at=LONG_AGO,
        name="Birthday",
        exclude_recent_days=3,
        messages=[sms("Happy birthday!"), sms("Still celebrating?", value=1, unit="days")],
    )
    drip(clinic, REACTIVATION, enabled_at=LONG_AGO, name="Earlier drip")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            forecast = campaign_forecast(campaign, now=NOW)
        return len(captured), forecast.total

    for n in range(3):
        clinic.patient(birth_date=dt.date(1990, 5, 13 + n), phone=f"+1312555019{n}")
    few, total_few = queries()
    for n in range(12):
        clinic.patient(birth_date=dt.date(1991, 5, 13 + n % 5), phone=f"+1312555020{n:02d}")
    many, total_many = queries()
    assert total_many > total_few
    assert many == few
    assert many <= 40


def test_the_api_answers_the_forecast(clinic):
    lapsed = clinic.patient(phone="+13125550190")
    clinic.visit(lapsed, ny(2026, 3, 1, 10, 0))
    campaign = drip(clinic, REACTIVATION, enabled_at=LONG_AGO, name="Daily reactivation")
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    url = f"/api/v1/campaigns/{campaign.pk}/forecast"
    body = api.get(url, {"at": ny(2026, 5, 12, 9, 0).isoformat()}).json()
    assert body["total"] == 1
    assert [day["count"] for day in body["days"]] == [1, 0, 0, 0, 0, 0, 0]
    assert body["days"][0]["date"] == "2026-05-12"
    assert body["days"][0]["times"] == [{"at": "2026-05-12T10:00:00-04:00", "count": 1}]
    assert body["days"][0]["sample"] == [
        {
            "patient_external_id": lapsed.external_id,
            "at": "2026-05-12T10:00:00-04:00",
            "step": 1,
            "channel": "sms",
        }
    ]
    assert api.get(url, {"at": "yesterday"}).status_code == 400
    other = Clinic()
    theirs = drip(other, REACTIVATION, enabled_at=LONG_AGO, name="Theirs")
    assert api.get(f"/api/v1/campaigns/{theirs.pk}/forecast").status_code == 404


def test_held_out_patients_are_not_forecast(clinic):
    """A campaign with a control group (DESIGN §5.9): the held-out patients enter but are
    sent nothing, so the forecast leaves them out, patient by patient as the ticks then do,
    both for new entries and for patients already in the campaign."""
    tomorrow = NOW.date() + dt.timedelta(days=1)
    for n in range(12):
        clinic.patient(birth_date=tomorrow.replace(year=1980), phone=f"+131255502{n:02d}")
    birthday = drip(
        clinic,
        BIRTHDAY,
        enabled_at=LONG_AGO,
        name="Birthday with a control group",
        holdout_percent=50,
        messages=[sms("Happy birthday!"), sms("A gift", value=1, unit="days")],
    )
    forecasts = compare([birthday], clinic)
    sent = forecast_on(forecasts[birthday.pk], tomorrow)
    assert 0 < len(sent) < 12  # some of the twelve are held out
    # The day after, the patients already in the campaign: held out ones still get nothing.
    after = campaign_forecast(birthday, now=ny(2026, 5, 14, 0, 5))
    assert {s.patient.pk for s in after.days[0].sends} == {pk for pk, _, _ in sent}


def test_a_marketing_text_to_a_florida_patient_is_forecast_when_the_state_allows_it(clinic):
    """State rules (DESIGN §5.8): a marketing text due at 20:30 goes out then to a New York
    patient and at 08:00 the next morning to a Florida one, in the forecast as the ticks."""
    florida = clinic.patient(phone="+13125550301", address={"state": "FL"})
    new_york = clinic.patient(phone="+13125550302", address={"state": "NY"})
    for patient in (florida, new_york):
        clinic.visit(patient, ny(2026, 3, 1, 10, 0))
    reactivation = drip(
        clinic,
        REACTIVATION,
        enabled_at=LONG_AGO,
        name="Evening reactivation",
        schedule={"frequency": "daily", "time": "20:30"},
    )
    assert reactivation.purpose == "marketing"
    forecasts = compare([reactivation], clinic)
    days = forecasts[reactivation.pk].days
    assert [(s.patient, f"{s.at:%H:%M}") for s in days[0].sends] == [(new_york, "20:30")]
    assert [(s.patient, f"{s.at:%H:%M}") for s in days[1].sends] == [(florida, "08:00")]
