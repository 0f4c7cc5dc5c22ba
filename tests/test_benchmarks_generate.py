"""The benchmark data generator (``benchmarks/generate.py``) at a tiny size: the shapes it
promises, derived columns that agree with the app's own recomputation, and campaigns that
pass the campaign spec.

The generator loads with PostgreSQL COPY from two loader processes, so it runs on
PostgreSQL only, outside a test transaction (the loaders use connections of their own).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count, F

from benchmarks.generate import BENCH_DAY, CAMPAIGNS, LOOKUPS, generate
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from campaigns.services import campaign_as_json
from patients.models import Appointment, Case, CaseDiagnosis, Patient, PatientTag
from patients.sync.visits import practice_local_dates_refresh
from trackstat.models import Practice

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the generator loads with PostgreSQL COPY (psycopg cursor.copy); SQLite has "
        "no COPY, and the benchmarks it feeds measure PostgreSQL only",
    ),
    pytest.mark.django_db(transaction=True),
]

PRACTICES, PER_PRACTICE = 3, 60
PATIENT_FACTS = [
    "birth_month",
    "birth_day",
    "visit_count",
    "first_visit_date",
    "first_visit_month",
    "first_visit_day",
    "last_visit_checked_in",
    "last_visit_scheduled",
]
CASE_FACTS = ["visit_count", "first_visit_date", "last_visit_checked_in", "last_visit_scheduled"]


@pytest.fixture
def generated():
    return generate(practices=PRACTICES, patients_per_practice=PER_PRACTICE, verbose=False)


def test_counts_per_practice(generated):
    assert generated.patients == Patient.objects.count() == PRACTICES * PER_PRACTICE
    per_practice = Counter(Patient.objects.values_list("practice_id", flat=True))
    assert sorted(per_practice.values()) == [PER_PRACTICE] * PRACTICES
    campaigns = Counter(Campaign.objects.values_list("practice_id", flat=True))
    assert sorted(campaigns.values()) == [len(CAMPAIGNS)] * PRACTICES
    assert generated.campaigns == PRACTICES * len(CAMPAIGNS)
    # One to three cases per patient; about ten appointments each; diagnoses and tags.
    cases = Patient.objects.annotate(n=Count("cases")).values_list("n", flat=True)
    assert set(cases) <= {1, 2, 3}
    assert len(set(cases)) > 1
    assert 5 <= Appointment.objects.count() / generated.patients <= 15
    assert CaseDiagnosis.objects.count() >= Case.objects.count()
    assert PatientTag.objects.exists()
    # Every row is consistent with its practice (the load runs without FK triggers).
    assert not Appointment.objects.exclude(patient__practice_id=F("practice_id")).exists()
    assert (
        not Appointment.objects.exclude(case__isnull=True)
        .exclude(case__patient_id=F("patient_id"))
        .exists()
    )
    assert not Case.objects.exclude(patient__practice_id=F("practice_id")).exists()
    assert not Patient.objects.exclude(primary_provider__practice_id=F("practice_id")).exists()
    assert not PatientTag.objects.exclude(tag__practice_id=F("practice_id")).exists()


def test_shapes(generated):
    births = Patient.objects.values_list("birth_date", flat=True)
    assert min(births) >= dt.date(1940, 1, 1)
    assert max(births) <= dt.date(2015, 12, 31)
    first_visits = [d for d in Patient.objects.values_list("first_visit_date", flat=True) if d]
    assert min(first_visits) >= BENCH_DAY - dt.timedelta(days=3650)
    assert max(first_visits) <= BENCH_DAY
    statuses = Counter(Appointment.objects.values_list("status", flat=True))
    total = sum(statuses.values())
    assert statuses["completed"] > total / 2
    for status in ("no_show", "cancelled", "scheduled", "confirmed"):
        assert statuses[status] > 0, status
    assert Appointment.objects.filter(start__gt=dt.datetime(2026, 5, 13, tzinfo=dt.UTC)).exists()
    assert Appointment.objects.filter(local_date=BENCH_DAY).exists()
    case_types = set(Case.objects.values_list("case_type__name", flat=True))
    assert len(case_types) >= 3
    assert case_types <= set(LOOKUPS["case_type"])


def test_derived_columns_agree_with_the_apps_refresh(generated):
    patients_before = {
        p["id"]: p for p in Patient.objects.values("id", "birth_date", *PATIENT_FACTS)
    }
    cases_before = {c["id"]: c for c in Case.objects.values("id", *CASE_FACTS)}
    local_dates_before = dict(Appointment.objects.values_list("id", "local_date"))
    for patient in patients_before.values():
        assert (patient["birth_month"], patient["birth_day"]) == (
            patient["birth_date"].month,
            patient["birth_date"].day,
        )

    for practice in Practice.objects.all():
        practice_local_dates_refresh(practice=practice)

    assert dict(Appointment.objects.values_list("id", "local_date")) == local_dates_before
    assert {p["id"]: p for p in Patient.objects.values("id", "birth_date", *PATIENT_FACTS)} == (
        patients_before
    )
    assert {c["id"]: c for c in Case.objects.values("id", *CASE_FACTS)} == cases_before
    assert any(p["visit_count"] for p in patients_before.values())


def test_every_campaign_passes_the_spec(generated):
    triggers = set()
    for campaign in Campaign.objects.prefetch_related("steps"):
        serializer = CampaignSerializer(data=campaign_as_json(campaign))
        assert serializer.is_valid(), (campaign.name, serializer.errors)
        if campaign.trigger:
            triggers.add(campaign.trigger["type"])
    assert triggers == {
        "birthday",
        "first_visit",
        "anniversary",
        "scheduled_appointment",
        "missed_appointment",
        "last_visit_checked_in",
        "last_visit_scheduled",
    }
    assert Campaign.objects.filter(kind="blast").count() == PRACTICES
