"""Issue 14, "Exactly right": the engine's six defects and the nine rules settled in DESIGN
§4.1, §5.1, §5.4, §5.6 and §7, each as a scenario driven by explicit instants through the API
and ``tick(now=…)`` (sending inline through the sandbox provider)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, CampaignRun, Enrollment
from campaigns.services import campaign_create
from messaging.inbox import inbox_reply_send
from messaging.models import OutboundMessage
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, received, run, sms, statuses
from tests.factories import UserFactory
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
REACTIVATION = {
    "type": "last_visit_checked_in",
    "when": "days_ago",
    "days": 180,
    "match": "at_least",
}
MISSED = {"type": "missed_appointment", "minutes_after": 15}


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


@pytest.fixture
def api(clinic) -> Client:
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    return Client(headers={"Authorization": f"Api-Key {key}"})


def blast(clinic: Clinic, *, send_at: dt.datetime, created_at: dt.datetime, **data) -> Campaign:
    data = {
        "name": "Blast",
        "kind": "blast",
        "enabled": True,
        "send_at": send_at.isoformat(),
        "messages": [sms("We are closed Monday.")],
        **data,
    }
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(created_at, tick=False):
        return campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def entered(campaign: Campaign, at: dt.datetime | None = None) -> set[str]:
    """External ids of the patients who entered ``campaign`` (at ``at``, if given)."""
    enrollments = Enrollment.objects.filter(campaign=campaign)
    if at is not None:
        enrollments = enrollments.filter(entered_at=at)
    return set(enrollments.values_list("patient__external_id", flat=True))


def lapsed(
    clinic: Clinic, visit_day: dt.datetime, external_id: str | None = None, **fields
) -> Patient:
    """A patient whose only visit was at ``visit_day``."""
    patient = clinic.patient(external_id, **fields)
    clinic.visit(patient, visit_day)
    return patient


# --- 1. a blast is not a drip message for exclude_recent_days ------------------------------


def test_a_blast_does_not_keep_a_patient_out_of_a_drip_with_exclude_recent_days(clinic):
    today = ny(2026, 6, 15, 10, 0)
    ann = lapsed(clinic, today - 200 * DAY, phone="3125550101")
    blast(clinic, send_at=ny(2026, 6, 15, 9, 30), created_at=ny(2026, 6, 14))
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    run(ny(2026, 6, 15, 9, 30))
    assert [name for name, *_ in received(ann)] == ["Blast"]
    run(today)
    assert entered(reactivation) == {ann.external_id}
    assert [name for name, *_ in received(ann)] == ["Blast", "Reactivation"]


# --- 9. exclude_recent_days: other drips, sent or queued, X x 24 hours, within one tick --------


def test_exclude_recent_days_counts_messages_of_other_drips_in_the_last_x_times_24_hours(clinic):
    missed = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="Missed")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    run_at = ny(2026, 6, 15, 10, 0)
    inside = lapsed(clinic, run_at - 180 * DAY, phone="3125550101")
    outside = lapsed(clinic, run_at - 180 * DAY, phone="3125550102")
    # Missed appointments 7 x 24 hours + 1 minute and - 1 minute before the run (texts sent
    # at the minute they were missed by 15).
    clinic.appointment(outside, ny(2026, 6, 8, 9, 44))
    clinic.appointment(inside, ny(2026, 6, 8, 9, 46))
    # The reactivation campaign runs daily; their visits lapse (180 days) only on the 15th.
    run(ny(2026, 6, 8, 9, 59))
    run(ny(2026, 6, 8, 10, 1))
    assert [len(received(p)) for p in (outside, inside)] == [1, 1]
    assert entered(missed) == {inside.external_id, outside.external_id}
    run(run_at)
    assert entered(reactivation) == {outside.external_id}


def test_a_campaigns_own_messages_tests_and_inbox_replies_do_not_exclude(clinic):
    user = UserFactory(phone="+13125550999")
    missed = drip(
        clinic,
        MISSED,
        enabled_at=ny(2026, 6, 1),
        name="Missed",
        exclude_recent_days=7,
        messages=[sms("We missed you")],
    )
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    clinic.appointment(ann, ny(2026, 6, 17, 9, 0))
    run(ny(2026, 6, 15, 9, 15))
    with time_machine.travel(ny(2026, 6, 16, 12, 0), tick=False):
        inbox_reply_send(practice=clinic.practice, patient=ann, body="See you soon", user=user)
    run(ny(2026, 6, 17, 9, 15))  # its own text two days ago does not keep her out
    texts = OutboundMessage.objects.filter(patient=ann, sent_at__isnull=False)
    assert [m.campaign_id for m in texts.order_by("sent_at")] == [missed.pk, None, missed.pk]
    assert Enrollment.objects.filter(campaign=missed, patient=ann).count() == 2


def test_a_queued_message_of_another_drip_excludes(clinic):
    clinic.practice.sending_window_start = dt.time(10, 30)
    clinic.practice.save()
    drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="Missed")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=1
    )
    run_at = ny(2026, 6, 15, 10, 0)
    ann = lapsed(clinic, run_at - 200 * DAY, phone="3125550101")
    bob = lapsed(clinic, run_at - 200 * DAY, phone="3125550102")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))  # Ann's text waits for the 10:30 window
    assert statuses(ann) == [(1, "queued", "")]
    run(run_at)
    assert entered(reactivation) == {bob.external_id}


def test_two_drips_due_in_the_same_tick_never_both_enroll_a_patient(clinic):
    birthday = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    run_at = ny(2026, 6, 15, 10, 0)
    ann = lapsed(clinic, run_at - 200 * DAY, phone="3125550101", birth_date=dt.date(1980, 6, 15))
    bob = lapsed(clinic, run_at - 200 * DAY, phone="3125550102")
    summary = run(run_at)
    assert summary["campaigns_run"] == 2
    assert entered(birthday) == {ann.external_id}
    assert entered(reactivation) == {bob.external_id}
    assert [name for name, *_ in received(ann)] == ["Birthday"]


# --- 2, 3, 13. explain and audience apply the exclusions a run applies ----------------------


def explain_api(api: Client, campaign: Campaign, patient: Patient, at: dt.datetime) -> dict:
    response = api.get(
        f"/api/v1/campaigns/{campaign.pk}/explain",
        {"patient": patient.external_id, "at": at.isoformat()},
    )
    assert response.status_code == 200, response.content
    return response.json()


def audience_api(api: Client, campaign: Campaign, at: dt.datetime) -> dict:
    response = api.get(f"/api/v1/campaigns/{campaign.pk}/audience", {"at": at.isoformat()})
    assert response.status_code == 200, response.content
    return response.json()


def failing(verdict: dict) -> dict[str, object]:
    return {c["check"]: c["detail"] for c in verdict["checks"] if not c["passed"]}


def test_explain_and_audience_name_the_message_that_excludes(clinic, api):
    missed = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="Missed")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    run_at = ny(2026, 6, 15, 10, 0)
    ann = lapsed(clinic, run_at - 200 * DAY, phone="3125550101")
    bob = lapsed(clinic, run_at - 200 * DAY, phone="3125550102")
    clinic.appointment(ann, ny(2026, 6, 12, 9, 0))
    run(ny(2026, 6, 12, 9, 15))
    text = OutboundMessage.objects.get(patient=ann, campaign=missed)

    verdict = explain_api(api, reactivation, ann, run_at)
    assert verdict["would_enter"] is False
    assert verdict["occurrence_key"] is None
    [(check, detail)] = failing(verdict).items()
    assert check == "exclusion: no message of another drip campaign in the last 7 days"
    assert f"message {text.pk}" in detail
    assert "“Missed”" in detail
    assert "2026-06-12 09:15" in detail
    body = audience_api(api, reactivation, run_at)
    assert (body["count"], [p["external_id"] for p in body["results"]]) == (1, [bob.external_id])
    assert explain_api(api, reactivation, bob, run_at)["would_enter"] is True

    run(run_at)
    assert entered(reactivation) == {bob.external_id}


def test_explain_says_when_the_occurrence_has_already_entered(clinic, api):
    birthday = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    ann = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 15))
    run_at = ny(2026, 6, 15, 10, 0)
    assert explain_api(api, birthday, ann, run_at)["would_enter"] is True
    run(run_at)
    enrollment = Enrollment.objects.get(campaign=birthday, patient=ann)
    later = ny(2026, 6, 15, 15, 0)
    verdict = explain_api(api, birthday, ann, later)
    assert verdict["would_enter"] is False
    [(check, detail)] = failing(verdict).items()
    assert check == "exclusion: this occurrence has not entered yet"
    assert f"enrollment {enrollment.pk}" in detail
    assert "birthday:2026" in detail
    assert "2026-06-15 10:00" in detail
    assert audience_api(api, birthday, later)["count"] == 0
    # Next year is a new occurrence.
    assert explain_api(api, birthday, ann, ny(2027, 6, 15, 10, 0))["would_enter"] is True


def test_explain_names_the_drip_that_enrolls_the_patient_first_in_the_same_tick(clinic, api):
    birthday = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    run_at = ny(2026, 6, 15, 10, 0)
    ann = lapsed(clinic, run_at - 200 * DAY, phone="3125550101", birth_date=dt.date(1980, 6, 15))
    verdict = explain_api(api, reactivation, ann, run_at)
    assert verdict["would_enter"] is False
    [(check, detail)] = failing(verdict).items()
    assert check == "exclusion: no other drip campaign enrolls the patient first in the same tick"
    assert "“Birthday”" in detail
    assert explain_api(api, birthday, ann, run_at)["would_enter"] is True
    # Before the birthday campaign's time it does not run in the same tick.
    assert explain_api(api, reactivation, ann, ny(2026, 6, 15, 9, 0))["would_enter"] is True
    run(run_at)
    enrollment = Enrollment.objects.get(campaign=birthday)
    assert entered(reactivation) == set()
    # After the tick, the birthday enrollment itself (its text now sent) is what excludes.
    later = explain_api(api, reactivation, ann, run_at + dt.timedelta(minutes=1))
    assert later["would_enter"] is False
    [detail] = failing(later).values()
    assert "“Birthday”" in detail
    assert str(enrollment.messages.get().pk) in detail


def test_explain_and_audience_agree_with_what_a_tick_then_does(clinic, api):
    """For patients covering every exclusion, ``explain``'s would_enter and the audience at an
    instant are exactly the patients a tick at that instant enrolls."""
    clinic.practice.sending_window_start = dt.time(9, 30)
    clinic.practice.save()
    run_at = ny(2026, 6, 15, 10, 0)
    missed = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="Missed")
    birthday = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    reactivation = drip(
        clinic, REACTIVATION, enabled_at=ny(2026, 6, 1), name="Reactivation", exclude_recent_days=7
    )
    assert missed.pk < birthday.pk < reactivation.pk
    lapse = run_at - 180 * DAY  # reactivation matches from today on…
    fields = {
        "PLAIN": {},
        "BLAST_ONLY": {"tags": ["newsletter"]},
        "OPTED_OUT": {"sms_opt_out": True},
        "OLD_MESSAGE": {},
        "RECENT_MESSAGE": {},
        "QUEUED_MESSAGE": {},
        "BIRTHDAY_FIRST": {"birth_date": dt.date(1990, 6, 15)},
        "DECEASED": {"status": "deceased"},
        "ENTERED": {},
        "NOT_LAPSED": {},
        "EMAIL_ONLY": {"phone": "", "email": "only@example.test"},
    }
    patients = {
        name: lapsed(
            clinic,
            # …and from yesterday on for ENTERED, who entered then.
            lapse - DAY if name == "ENTERED" else lapse + DAY if name == "NOT_LAPSED" else lapse,
            name,
            **{"phone": f"31255501{number:02d}", **values},
        )
        for number, (name, values) in enumerate(fields.items())
    }
    blast(
        clinic,
        send_at=ny(2026, 6, 13, 11, 0),
        created_at=ny(2026, 6, 12),
        filters={"tags": {"include": ["newsletter"], "exclude": []}},
    )
    clinic.appointment(patients["OLD_MESSAGE"], ny(2026, 6, 7, 11, 0))
    clinic.appointment(patients["RECENT_MESSAGE"], ny(2026, 6, 12, 11, 0))
    clinic.appointment(patients["QUEUED_MESSAGE"], ny(2026, 6, 15, 8, 0))
    for at in (
        ny(2026, 6, 7, 11, 15),
        ny(2026, 6, 12, 11, 15),
        ny(2026, 6, 13, 11, 0),
        ny(2026, 6, 14, 10, 0),
        ny(2026, 6, 15, 8, 15),  # the text waits for the 09:30 window…
        ny(2026, 6, 15, 9, 0),  # …still queued, though before the reactivation's time
    ):
        run(at)
    assert entered(reactivation) == {"ENTERED"}
    assert statuses(patients["QUEUED_MESSAGE"]) == [(1, "queued", "")]

    explained = {
        name: explain_api(api, reactivation, patient, run_at) for name, patient in patients.items()
    }
    would_enter = {name for name, verdict in explained.items() if verdict["would_enter"]}
    listed = audience_api(api, reactivation, run_at)
    audience_ids = {p["external_id"] for p in listed["results"]}
    keys = {p["external_id"]: p["occurrence_key"] for p in listed["results"]}

    run(run_at)

    now_entered = entered(reactivation, at=run_at)
    assert now_entered == {"PLAIN", "BLAST_ONLY", "OPTED_OUT", "OLD_MESSAGE", "EMAIL_ONLY"}
    assert would_enter == now_entered
    assert audience_ids == now_entered
    assert listed["count"] == len(now_entered)
    assert keys == dict(
        Enrollment.objects.filter(campaign=reactivation, entered_at=run_at).values_list(
            "patient__external_id", "occurrence_key"
        )
    )
    for name, verdict in explained.items():
        # Every verdict says why: would_enter exactly when every check passed.
        assert verdict["would_enter"] == all(c["passed"] for c in verdict["checks"]), name
    exclusions = {name: list(failing(verdict)) for name, verdict in explained.items()}
    assert exclusions["RECENT_MESSAGE"] == [
        "exclusion: no message of another drip campaign in the last 7 days"
    ]
    assert exclusions["QUEUED_MESSAGE"] == exclusions["RECENT_MESSAGE"]
    assert exclusions["BIRTHDAY_FIRST"] == [
        "exclusion: no other drip campaign enrolls the patient first in the same tick"
    ]
    assert exclusions["DECEASED"] == ["exclusion: the patient is not deceased"]
    assert exclusions["ENTERED"] == ["exclusion: this occurrence has not entered yet"]
    assert exclusions["NOT_LAPSED"] == ["trigger: last_visit_checked_in"]
    opted_out = explained["OPTED_OUT"]["channels"]
    assert opted_out == [
        {"channel": "sms", "usable": False, "reason": "Opted out of text messages."}
    ]


# --- 4. the STOP footer is decided when a text is sent -------------------------------------


def test_the_stop_footer_goes_on_the_first_text_that_is_actually_sent(clinic):
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        enabled_at=ny(2026, 6, 1),
        name="Reminder",
        messages=[sms("See you {{AppointmentDate}}")],
    )
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        name="Birthday",
        messages=[sms("Happy birthday!")],
    )
    ann = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 15))
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))  # both texts wait for the 12:00 window
    assert [status for _, status, _ in statuses(ann)] == ["queued", "queued"]
    assert not OutboundMessage.objects.filter(body__contains="STOP").exists()
    clinic.change(visit, status="cancelled")
    run(ny(2026, 6, 15, 12, 0))
    assert received(ann) == [("Birthday", 1, "Happy birthday!\nReply STOP to opt out")]
    reminder = OutboundMessage.objects.get(campaign__name="Reminder")
    assert (reminder.status, reminder.body) == ("canceled", "See you Tuesday, June 16")
    run(ny(2027, 6, 15, 12, 0))
    assert received(ann)[-1] == ("Birthday", 1, "Happy birthday!")


def test_a_skipped_text_does_not_use_up_the_stop_footer(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), messages=[sms("Hi")])
    ann = clinic.patient(birth_date=dt.date(1980, 6, 15), phone="3125550101", sms_opt_out=True)
    run(ny(2026, 6, 15, 10, 0))
    assert statuses(ann) == [(1, "skipped", "opted out of text messages")]
    ann.sms_opt_out = False
    ann.save()
    run(ny(2027, 6, 15, 10, 0))
    assert [body for *_, body in received(ann)] == ["Hi\nReply STOP to opt out"]


# --- 5, 11. one message per address per campaign per local day, whatever the step ------------


def test_a_blast_texts_a_shared_number_once_across_batches(clinic, monkeypatch):
    monkeypatch.setattr("campaigns.engine.steps.BATCH", 1)
    twins = [clinic.patient(phone="+13125550101") for _ in range(3)]
    others = [clinic.patient(phone=f"+1312555020{n}") for n in range(3)]
    blast(clinic, send_at=ny(2026, 6, 15, 12, 0), created_at=ny(2026, 6, 14))
    run(ny(2026, 6, 15, 12, 0))
    assert sum(len(received(p)) for p in twins) == 1
    assert [len(received(p)) for p in others] == [1, 1, 1]
    skipped = OutboundMessage.objects.filter(status="skipped")
    assert set(skipped.values_list("status_reason", flat=True)) == {"shared_address"}
    assert set(skipped.values_list("patient_id", flat=True)) < {p.pk for p in twins}
    assert skipped.count() == 2


def test_a_family_gets_one_message_of_a_campaign_a_day_whatever_the_step(clinic):
    welcome = drip(
        clinic,
        {"type": "first_visit", "days_after": 0},
        enabled_at=ny(2026, 6, 1),
        name="Welcome",
        messages=[sms("Welcome!"), sms("How are you?", value=1, unit="days")],
    )
    mom = clinic.patient(phone="3125550101", email="family@example.test")
    kid = clinic.patient(phone="3125550101", email="FAMILY@example.test")
    clinic.visit(mom, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 10, 0))
    clinic.visit(kid, ny(2026, 6, 16, 9, 0))
    run(ny(2026, 6, 16, 10, 0))  # mom's step 2 and the kid's step 1, the same morning
    assert [(step, body) for _, step, body in received(mom)] == [
        (1, "Welcome!\nReply STOP to opt out"),
        (2, "How are you?"),
    ]
    assert statuses(kid) == [(1, "skipped", "shared_address")]
    run(ny(2026, 6, 17, 10, 0))  # another day: the kid's step 2 goes out
    assert [step for _, step, _ in received(kid)] == [2]
    assert entered(welcome) == {mom.external_id, kid.external_id}


def test_another_campaign_may_text_a_shared_number_the_same_day(clinic):
    drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1), name="Birthday")
    blast(clinic, send_at=ny(2026, 6, 15, 12, 0), created_at=ny(2026, 6, 14))
    mom = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 15))
    kid = clinic.patient(phone="3125550101")
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 15, 12, 0))
    left = [name for p in (mom, kid) for name, *_ in received(p)]
    assert sorted(left) == ["Birthday", "Blast"]


def test_the_email_and_the_text_of_a_family_are_different_addresses(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Hi"), email("Hi", "<p>Hi</p>", value=1, unit="hours")],
    )
    born = dt.date(1980, 6, 15)
    mom = clinic.patient(phone="3125550101", email="mom@example.test", birth_date=born)
    kid = clinic.patient(phone="3125550101", email="kid@example.test", birth_date=born)
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 15, 11, 0))
    channels = sorted(
        OutboundMessage.objects.exclude(status="skipped").values_list("patient_id", "channel")
    )
    assert channels in (
        [(mom.pk, "email"), (mom.pk, "sms"), (kid.pk, "email")],
        [(mom.pk, "email"), (kid.pk, "email"), (kid.pk, "sms")],
    )


# --- 6. a missed-appointment campaign's later steps --------------------------------------------


def missed_series(clinic: Clinic, **data) -> Campaign:
    return drip(
        clinic,
        MISSED,
        enabled_at=ny(2026, 6, 1),
        name="Missed",
        messages=[sms("We missed you"), sms("Book again", value=1, unit="days")],
        **data,
    )


def test_a_missed_appointment_campaigns_next_day_step_goes_out(clinic):
    missed_series(clinic)
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))
    run(ny(2026, 6, 16, 10, 0))
    assert [step for _, step, _ in received(ann)] == [1, 2]


def test_a_missed_appointments_later_step_stops_when_it_really_moved_or_was_checked_in(clinic):
    missed_series(clinic)
    moved, late = clinic.patient(phone="3125550101"), clinic.patient(phone="3125550102")
    moved_visit = clinic.appointment(moved, ny(2026, 6, 15, 9, 0))
    late_visit = clinic.appointment(late, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))
    clinic.change(moved_visit, start=ny(2026, 6, 22, 9, 0))  # rebooked for next week
    clinic.change(late_visit, status="checked_in", checked_in_at=ny(2026, 6, 15, 9, 40))
    run(ny(2026, 6, 16, 10, 0))
    assert statuses(moved) == [(1, "delivered", ""), (2, "canceled", "appointment moved")]
    assert statuses(late) == [(1, "delivered", ""), (2, "canceled", "patient checked in")]


# --- 7. offset_days: the trigger's day is the birthday (anniversary) + offset ---------------


def test_a_negative_offset_greets_three_days_before_the_birthday_and_anniversary(clinic):
    drip(clinic, {"type": "birthday", "offset_days": -3}, enabled_at=ny(2026, 6, 1), name="Soon")
    drip(
        clinic,
        {"type": "anniversary", "offset_days": -3},
        enabled_at=ny(2026, 6, 1),
        name="Anniversary soon",
    )
    ann = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 18))
    bob = clinic.patient(phone="3125550102")
    clinic.visit(bob, ny(2024, 6, 18, 9, 0))
    for day in (14, 16, 17, 18):
        run(ny(2026, 6, day, 10, 0))
    assert received(ann) == []
    assert received(bob) == []
    run(ny(2026, 6, 15, 10, 0))
    assert [name for name, *_ in received(ann)] == ["Soon"]
    assert [name for name, *_ in received(bob)] == ["Anniversary soon"]


def test_a_positive_offset_greets_after_the_birthday(clinic):
    drip(clinic, {"type": "birthday", "offset_days": 2}, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 13))
    run(ny(2026, 6, 11, 10, 0))
    assert received(ann) == []
    run(ny(2026, 6, 15, 10, 0))
    assert len(received(ann)) == 1


# --- 8. a moved appointment whose reminder went out is reminded again ----------------------


def reminder(clinic: Clinic) -> Campaign:
    return drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        enabled_at=ny(2026, 6, 1),
        name="Reminder",
        messages=[sms("See you {{AppointmentDate}} at {{AppointmentTime}}")],
    )


def test_a_moved_appointment_whose_reminder_went_out_is_reminded_again(clinic):
    campaign = reminder(clinic)
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))
    clinic.change(visit, start=ny(2026, 6, 20, 14, 0))
    run(ny(2026, 6, 18, 10, 0))
    run(ny(2026, 6, 19, 10, 0))
    run(ny(2026, 6, 19, 15, 0))
    assert [body for *_, body in received(ann)] == [
        "See you Tuesday, June 16 at 9:30 AM\nReply STOP to opt out",
        "See you Saturday, June 20 at 2:00 PM",
    ]
    assert Enrollment.objects.filter(campaign=campaign).count() == 2


def test_a_reminder_still_queued_follows_the_move_and_is_not_sent_twice(clinic):
    campaign = reminder(clinic)
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))  # queued until 12:00
    clinic.change(visit, start=ny(2026, 6, 20, 14, 0))
    run(ny(2026, 6, 15, 12, 0))  # follows the appointment: rescheduled for the 19th
    run(ny(2026, 6, 19, 10, 0))  # the campaign runs the day before the new date
    run(ny(2026, 6, 19, 12, 0))
    assert [body for *_, body in received(ann)] == [
        "See you Saturday, June 20 at 2:00 PM\nReply STOP to opt out"
    ]
    assert Enrollment.objects.filter(campaign=campaign).count() == 1


# --- 10. deceased patients are never sent anything ------------------------------------------


def test_deceased_patients_never_enter_whatever_the_filters(clinic):
    inactive_blast = blast(
        clinic,
        send_at=ny(2026, 6, 15, 12, 0),
        created_at=ny(2026, 6, 14),
        filters={"status": "inactive"},
    )
    birthday = drip(clinic, {"type": "birthday"}, enabled_at=ny(2026, 6, 1))
    born = dt.date(1980, 6, 15)
    gone = clinic.patient(phone="3125550101", birth_date=born, status="deceased")
    away = clinic.patient(phone="3125550102", birth_date=born, status="inactive")
    done = clinic.patient(phone="3125550103", birth_date=born, status="discharged")
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 15, 12, 0))
    assert entered(birthday) == {away.external_id, done.external_id}
    assert entered(inactive_blast) == {away.external_id, done.external_id}
    assert not OutboundMessage.objects.filter(patient=gone).exists()


def test_a_patient_who_dies_after_entering_is_sent_nothing_more(clinic):
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Hi"), sms("Again", value=1, unit="days")],
    )
    queued = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 6, 15))
    later = clinic.patient(phone="3125550102", birth_date=dt.date(1980, 6, 15))
    run(ny(2026, 6, 15, 10, 0))  # both texts wait for 12:00
    clinic.patient(queued.external_id, status="deceased")
    run(ny(2026, 6, 15, 12, 0))
    clinic.patient(later.external_id, status="deceased")
    run(ny(2026, 6, 16, 12, 0))
    assert statuses(queued) == [(1, "skipped", "deceased"), (2, "skipped", "deceased")]
    assert statuses(later) == [(1, "delivered", ""), (2, "skipped", "deceased")]


# --- 12. the sending window applies to email too ----------------------------------------------


def test_the_sending_window_holds_email_too(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        schedule={"frequency": "daily", "time": "07:00"},
        messages=[email("Happy birthday", "<p>Hi</p>")],
    )
    ann = clinic.patient(email="ann@example.test", birth_date=dt.date(1980, 6, 15))
    run(ny(2026, 6, 15, 7, 0))
    assert received(ann) == []
    assert [status for _, status, _ in statuses(ann)] == ["queued"]
    run(ny(2026, 6, 15, 8, 0))
    [message] = OutboundMessage.objects.filter(patient=ann)
    assert message.sent_at == ny(2026, 6, 15, 8, 0)


# --- 14. continuous triggers: day-delayed steps at schedule.time, else 10:00 -------------------


def test_a_continuous_campaigns_day_delayed_step_goes_at_its_schedule_time(clinic):
    missed_series(clinic, schedule={"frequency": "daily", "time": "09:15"})
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))
    run(ny(2026, 6, 16, 9, 14))
    assert [step for _, step, _ in received(ann)] == [1]
    run(ny(2026, 6, 16, 9, 15))
    assert OutboundMessage.objects.get(step_position=2).sent_at == ny(2026, 6, 16, 9, 15)


def test_a_continuous_campaign_without_a_time_sends_day_delayed_steps_at_ten(clinic, api):
    body = {
        "name": "Missed",
        "enabled": True,
        "trigger": MISSED,
        "messages": [
            {"channel": "sms", "body": "We missed you"},
            {"channel": "sms", "body": "Book again", "delay": {"value": 1, "unit": "days"}},
        ],
    }
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        response = api.post("/api/v1/campaigns", body, content_type="application/json")
    assert response.status_code == 201, response.content
    ann = clinic.patient(phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    run(ny(2026, 6, 15, 9, 15))
    run(ny(2026, 6, 16, 9, 59))
    assert [step for _, step, _ in received(ann)] == [1]
    run(ny(2026, 6, 16, 10, 0))
    assert [step for _, step, _ in received(ann)] == [1, 2]


# --- 15. DST: a skipped time runs once after the gap; a repeated time, at its first ----------


def test_a_daily_time_skipped_by_spring_forward_runs_once_after_the_gap(clinic):
    campaign = drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 3, 1),
        schedule={"frequency": "daily", "time": "02:30"},
    )
    ann = clinic.patient(phone="3125550101", birth_date=dt.date(1980, 3, 8))
    for hour, minute in [(1, 59), (3, 0), (3, 29)]:  # 01:59 EST, then 03:00 and 03:29 EDT
        assert run(ny(2026, 3, 8, hour, minute))["campaigns_run"] == 0
    assert run(ny(2026, 3, 8, 3, 30))["campaigns_run"] == 1  # 07:30 UTC
    for hour, minute in [(3, 31), (10, 0), (23, 59)]:
        assert run(ny(2026, 3, 8, hour, minute))["campaigns_run"] == 0
    [run_row] = CampaignRun.objects.filter(campaign=campaign)
    assert run_row.ran_at == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)
    assert Enrollment.objects.get(patient=ann).entered_at == ny(2026, 3, 8, 3, 30)


def test_a_daily_time_repeated_by_fall_back_runs_once_at_its_first_occurrence(clinic):
    campaign = drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 10, 1),
        schedule={"frequency": "daily", "time": "01:30"},
    )
    clinic.patient(phone="3125550101", birth_date=dt.date(1980, 11, 1))
    assert run(ny(2026, 11, 1, 1, 29))["campaigns_run"] == 0
    assert run(ny(2026, 11, 1, 1, 30))["campaigns_run"] == 1  # 01:30 EDT, 05:30 UTC
    assert run(ny(2026, 11, 1, 1, 30, fold=1))["campaigns_run"] == 0  # 01:30 EST, an hour later
    assert run(ny(2026, 11, 1, 10, 0))["campaigns_run"] == 0
    [run_row] = CampaignRun.objects.filter(campaign=campaign)
    assert run_row.ran_at == dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)
