"""Continuous triggers evaluated by what changed (issue 20): a tick runs a continuous campaign
only for the patients a moment crossed for (since the watermark) or whose EMR data changed,
and in full when the campaign is new or edited, on a new local day, after a pause, or for
the rules that are not incremental. The outcome must never differ from evaluating every
campaign in full at every tick (``CONTINUOUS_FULL_EVALUATION``): the property test below
plays random days of EMR changes and ticks both ways and compares the enrollments.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import partial

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine.enroll import campaigns_run_due
from campaigns.models import (
    Campaign,
    ContinuousEvaluation,
    Enrollment,
    PatientChange,
)
from campaigns.services import campaign_set_enabled
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms
from tests.campaigns.test_engine_exactly_once import needs_postgres, run_in_parallel
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db

MISSED = {"type": "missed_appointment", "minutes_after": 15}
VISIT = {"type": "last_visit_checked_in", "when": "today", "hours_after": 1}


def entered(campaign) -> list[str]:
    return sorted(
        Enrollment.objects.filter(campaign=campaign).values_list("patient__external_id", flat=True)
    )


def enroll_statements(at) -> int:
    """How many enrollment statements (audience queries) a tick at ``at`` runs, prepared ones
    (``campaigns.engine.prepared``) included."""
    with CaptureQueriesContext(connection) as queries:
        campaigns_run_due(now=at)
    return sum(
        q["sql"].startswith(("INSERT INTO campaigns_enrollment", "EXECUTE trackstat_"))
        for q in queries.captured_queries
    )


# --- what makes a tick skip a campaign, and what does not --------------------------------


def test_a_candidate_a_filter_keeps_out_is_not_evaluated_again_until_something_changes():
    clinic = Clinic()
    campaign = drip(
        clinic,
        MISSED,
        enabled_at=ny(2026, 6, 1),
        filters={"tags": {"include": [], "exclude": ["do not text"]}},
        messages=[sms("Missed you")],
    )
    ann = clinic.patient("ANN", phone="3125550101", tags=["do not text"])
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 15))
    assert entered(campaign) == []
    # Ann's missed appointment is still a trigger candidate that has not entered; nothing
    # crossed or changed since, so the campaign's audience query is not run again.
    expected = 0 if connection.vendor == "postgresql" else 1
    assert enroll_statements(ny(2026, 6, 15, 9, 16)) == expected
    assert enroll_statements(ny(2026, 6, 15, 9, 17)) == expected
    clinic.patient("ANN", phone="3125550101", tags=[])  # the EMR drops the tag
    campaigns_run_due(now=ny(2026, 6, 15, 9, 18))
    assert entered(campaign) == ["ANN"]


def test_an_appointment_the_emr_sends_late_with_a_start_already_past_enters():
    clinic = Clinic()
    campaign = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient("ANN", phone="3125550101")
    bob = clinic.patient("BOB", phone="3125550102")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 30))
    # At 11:00 the EMR first tells us about Bob's 09:00 appointment: its moment (09:15) is
    # long before the watermark, but the change log names Bob.
    clinic.appointment(bob, ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 11, 0))
    assert entered(campaign) == ["ANN", "BOB"]


def test_a_future_appointment_that_starts_lets_a_patient_into_a_no_future_campaign():
    """has_future_appointment: false changes with time alone: the start of the patient's
    later appointment is one of the moments the watermark looks at."""
    clinic = Clinic()
    campaign = drip(
        clinic, MISSED, enabled_at=ny(2026, 6, 1), filters={"has_future_appointment": False}
    )
    ann = clinic.patient("ANN", phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    clinic.appointment(ann, ny(2026, 6, 15, 14, 0), "cancelled")
    later = clinic.appointment(ann, ny(2026, 6, 15, 13, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 30))
    campaigns_run_due(now=ny(2026, 6, 15, 12, 59))
    assert entered(campaign) == []
    campaigns_run_due(now=ny(2026, 6, 15, 13, 1))  # 13:00 has passed: no future appointment
    assert entered(campaign) == ["ANN"]
    assert Enrollment.objects.get(campaign=campaign).appointment_id != later.pk


def test_a_campaign_edited_during_the_day_is_evaluated_from_scratch():
    clinic = Clinic()
    campaign = drip(
        clinic, MISSED, enabled_at=ny(2026, 6, 1), filters={"tags": {"include": ["vip"]}}
    )
    ann = clinic.patient("ANN", phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 8, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 10, 0))
    assert entered(campaign) == []
    with time_machine.travel(ny(2026, 6, 15, 10, 30), tick=False):
        campaign.filters = {}
        campaign.save()
    campaigns_run_due(now=ny(2026, 6, 15, 10, 31))
    assert entered(campaign) == ["ANN"]


def test_a_campaign_disabled_and_enabled_again_catches_up_the_days_events():
    clinic = Clinic()
    campaign = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient("ANN", phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 10, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 0))
    with time_machine.travel(ny(2026, 6, 15, 9, 1), tick=False):
        campaign_set_enabled(campaign=campaign, enabled=False, actor=None)
    campaigns_run_due(now=ny(2026, 6, 15, 10, 30))  # Ann's moment passes while disabled
    with time_machine.travel(ny(2026, 6, 15, 11, 0), tick=False):
        campaign_set_enabled(
            campaign=Campaign.objects.get(pk=campaign.pk), enabled=True, actor=None
        )
    campaigns_run_due(now=ny(2026, 6, 15, 11, 1))
    assert entered(campaign) == ["ANN"]


def test_a_paused_scheduler_catches_up_exactly_once_and_never_reaches_into_yesterday():
    clinic = Clinic()
    campaign = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1))
    ann, bob = clinic.patient("ANN", phone="3125550101"), clinic.patient("BOB", phone="31255501")
    clinic.appointment(ann, ny(2026, 6, 14, 22, 0))  # yesterday's
    clinic.appointment(bob, ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 14, 21, 0))
    # The scheduler is down from 21:00 until 11:00 the next day.
    assert campaigns_run_due(now=ny(2026, 6, 15, 11, 0))[1] == 1
    assert campaigns_run_due(now=ny(2026, 6, 15, 11, 1))[1] == 0
    assert entered(campaign) == ["BOB"]
    assert Enrollment.objects.get(campaign=campaign).entered_at == ny(2026, 6, 15, 11, 0)


def test_each_campaigns_watermark_and_version_are_recorded_on_postgresql_only():
    clinic = Clinic()
    campaign = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1))

    def recorded():
        return list(
            ContinuousEvaluation.objects.filter(campaign=campaign).values_list(
                "evaluated_until", "local_date"
            )
        )

    campaigns_run_due(now=ny(2026, 6, 15, 9, 0))
    if connection.vendor != "postgresql":
        assert recorded() == []  # evaluated in full at every tick
        return
    assert recorded() == [(ny(2026, 6, 15, 9, 0), dt.date(2026, 6, 15))]
    campaigns_run_due(now=ny(2026, 6, 15, 9, 5))
    assert recorded() == [(ny(2026, 6, 15, 9, 5), dt.date(2026, 6, 15))]
    # A tick back in time evaluates in full, up to its own instant: the next tick looks at
    # (08:00, now] again, which repeats work, never enrollments.
    campaigns_run_due(now=ny(2026, 6, 15, 8, 0))
    assert recorded() == [(ny(2026, 6, 15, 8, 0), dt.date(2026, 6, 15))]


def test_the_change_log_is_written_by_the_changing_transaction_and_emptied_by_a_tick():
    clinic = Clinic()
    drip(clinic, MISSED, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient("ANN", phone="3125550101")
    clinic.patient("BOB", phone="3125550102")  # no appointment today: never read
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    logged = set(PatientChange.objects.values_list("patient_id", flat=True))
    if connection.vendor != "postgresql":
        assert logged == set()  # no change log: every tick evaluates in full
        return
    assert ann.pk in logged
    assert len(logged) == 2
    # Another practice, with no continuous campaign: its rows are dropped too.
    other = Clinic()
    other.appointment(other.patient("CAT", phone="3125550103"), ny(2026, 6, 15, 9, 0))
    assert PatientChange.objects.filter(practice_id=other.practice.pk).exists()
    campaigns_run_due(now=ny(2026, 6, 15, 8, 0))
    assert not PatientChange.objects.exists()
    clinic.patient("ANN", phone="3125550101", tags=["vip"])
    assert list(PatientChange.objects.values_list("patient_id", flat=True)) == [ann.pk]


# --- the property: by what changed == everything at every tick ---------------------------

CAMPAIGNS = [
    ("Missed 15", MISSED, {"tags": {"include": [], "exclude": ["do not text"]}}),
    ("Missed 30 no future", MISSED | {"minutes_after": 30}, {"has_future_appointment": False}),
    ("Visit 1h active", VISIT, {"status": "active"}),
    ("Visit vip", VISIT | {"hours_after": 0}, {"tags": {"include": ["vip"], "exclude": []}}),
    ("Visit injury", VISIT | {"hours_after": 2}, {"case_types": ["Personal Injury"]}),
]
TAGS = [[], ["vip"], ["do not text"], ["vip", "do not text"]]
STATUSES = ["scheduled", "confirmed", "checked_in", "completed", "no_show", "cancelled"]


class Site:
    """One practice of the random day: its campaigns and EMR data, and its hours (as New York
    wall time: a Los Angeles practice's day is three hours later)."""

    def __init__(self, rng: random.Random, time_zone: str, late: int):
        self.clinic = Clinic(PracticeFactory(time_zone=time_zone))
        self.late = dt.timedelta(hours=late)
        self.campaigns = [
            drip(self.clinic, trigger, enabled_at=ny(2026, 6, 1), name=name, filters=filters)
            for name, trigger, filters in CAMPAIGNS[:3]
        ]
        self.patients = [self.clinic.patient(f"P{i}", phone=f"31255501{i:02d}") for i in range(5)]
        self.cases = [
            self.clinic.case(p, rng.choice(["Personal Injury", "Wellness"])) for p in self.patients
        ]
        self.appointments = []

    def start(self, rng: random.Random) -> dt.datetime:
        return ny(2026, 6, 15, 7, 0) + self.late + dt.timedelta(minutes=rng.randrange(0, 840, 5))

    def change(self, rng: random.Random, now: dt.datetime) -> None:
        """One random EMR change (or campaign edit) at ``now``."""
        clinic, patients, appointments = self.clinic, self.patients, self.appointments
        what = rng.random()
        if what < 0.35 or not appointments:
            patient = rng.randrange(len(patients))
            start = self.start(rng)
            if appointments and rng.random() < 0.4:  # a later one for the same patient
                earlier = rng.choice(appointments)
                patient = next(i for i, p in enumerate(patients) if p.pk == earlier.patient_id)
                start = earlier.start + dt.timedelta(minutes=rng.choice([10, 40, 90, 200]))
            status = rng.choice(STATUSES[:2] * 3 + STATUSES[2:])
            fields = {}
            if status in ("checked_in", "completed"):
                fields["checked_in_at"] = start - dt.timedelta(minutes=rng.choice([-20, 0, 5]))
            case = self.cases[patient] if rng.random() < 0.7 else None
            appointments.append(
                clinic.appointment(patients[patient], start, status, case=case, **fields)
            )
        elif what < 0.6:
            appointment = rng.choice(appointments)
            status = rng.choice(STATUSES)
            fields = {"status": status}
            if status in ("checked_in", "completed"):
                fields["checked_in_at"] = appointment.start + dt.timedelta(
                    minutes=rng.choice([-10, 0, 30])
                )
            if rng.random() < 0.2:
                fields["start"] = self.start(rng)
            clinic.change(appointment, **fields)
        elif what < 0.8:
            i = rng.randrange(len(patients))
            record = {"phone": f"31255501{i:02d}", "tags": rng.choice(TAGS)}
            if rng.random() < 0.3:
                record["status"] = rng.choice(["active", "inactive", "active", "deceased"])
            clinic.patient(f"P{i}", **record)
        elif what < 0.88:
            i = len(patients)
            patients.append(clinic.patient(f"P{i}", phone=f"31255501{i:02d}"))
            self.cases.append(clinic.case(patients[-1], "Personal Injury"))
        elif what < 0.94 and len(self.campaigns) < len(CAMPAIGNS):
            name, trigger, filters = CAMPAIGNS[len(self.campaigns)]
            self.campaigns.append(drip(clinic, trigger, enabled_at=now, name=name, filters=filters))
        else:
            campaign = rng.choice(self.campaigns)
            with time_machine.travel(now, tick=False):
                campaign.filters = rng.choice([{}, {"status": "active"}, campaign.filters])
                campaign.save()


def play(seed: int, *, full: bool, settings) -> set[tuple]:
    """One random day (and the start of the next) of EMR changes and ticks at a New York and
    a Los Angeles practice; the enrollments."""
    settings.CONTINUOUS_FULL_EVALUATION = full
    rng = random.Random(seed)
    sites = [Site(rng, "America/New_York", 0), Site(rng, "America/Los_Angeles", 3)]
    now = ny(2026, 6, 15, 6, 0)
    while now < ny(2026, 6, 16, 4, 0):  # past midnight in Los Angeles too
        for _ in range(rng.randint(0, 3)):
            rng.choice(sites).change(rng, now)
        campaigns_run_due(now=now)
        now += dt.timedelta(minutes=rng.choice([0, 1, 5, 10, 15, 20, 30, 45, 60, 240]))
    rows = set()
    for number, site in enumerate(sites):
        practice = site.clinic.practice
        rows |= {
            (number, *row)
            for row in Enrollment.objects.filter(campaign__practice=practice).values_list(
                "campaign__name", "patient__external_id", "appointment__external_id", "entered_at"
            )
        }
        Campaign.objects.filter(practice=practice).update(enabled=False)
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_by_what_changed_enrolls_exactly_what_evaluating_everything_enrolls(seed, settings):
    everything = play(seed, full=True, settings=settings)
    by_change = play(seed, full=False, settings=settings)
    assert {row[0] for row in everything} == {0, 1}, "both practices enroll someone"
    assert by_change == everything


# --- ticks at once ------------------------------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_enroll_each_occurrence_once_and_keep_the_later_watermark():
    clinic = Clinic()
    missed = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="Missed")
    visit = drip(clinic, VISIT, enabled_at=ny(2026, 6, 1), name="Visit")
    patients = [clinic.patient(f"P{n}", phone=f"31255501{n:02d}") for n in range(6)]
    for n, patient in enumerate(patients):
        clinic.appointment(patient, ny(2026, 6, 15, 9, 0) + n * dt.timedelta(minutes=10))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 0))  # evaluated in full: watermarks set
    # Half of them come in (checked in), the others miss theirs; the EMR's changes are logged.
    for patient in patients[::2]:
        patient.appointments.update(status="checked_in", checked_in_at=ny(2026, 6, 15, 9, 5))

    first, later = ny(2026, 6, 15, 11, 0), ny(2026, 6, 15, 11, 1)
    run_in_parallel(
        partial(campaigns_run_due, now=first),
        partial(campaigns_run_due, now=later),
        partial(campaigns_run_due, now=first),
    )

    assert entered(visit) == ["P0", "P2", "P4"]
    assert entered(missed) == ["P1", "P3", "P5"]
    assert Enrollment.objects.count() == 6  # each occurrence once, whichever tick won
    watermarks = ContinuousEvaluation.objects.values_list("evaluated_until", flat=True)
    assert set(watermarks) == {later}  # never moved back by the tick at the earlier instant
    assert not PatientChange.objects.exists()
