"""A drip's audience statement is compiled once per shape (kind, trigger, filters), time zone
and local day into a template, and each run fills in its practice, campaign, instant and
patients (``campaigns.engine.compiled``): the filled-in statement must be exactly the one
compiling it for that campaign at that instant gives, for every trigger and every filter."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from campaigns.audience import query
from campaigns.audience.triggers import RunContext
from campaigns.engine import compiled
from campaigns.engine.compiled import _TracingContext, audience_rows_sql
from campaigns.engine.enroll import campaigns_run_due
from campaigns.models import Campaign
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="templates are for PostgreSQL's ticks"
    ),
]

AT = ny(2026, 6, 15, 9, 1) + dt.timedelta(seconds=7, microseconds=3)
LATER = ny(2026, 6, 15, 17, 43) + dt.timedelta(seconds=59)  # the same local day

TRIGGERS = [
    {"type": "missed_appointment", "minutes_after": 30},
    {"type": "missed_appointment", "minutes_after": 120},
    {"type": "last_visit_checked_in", "when": "today", "hours_after": 0},
    {"type": "last_visit_checked_in", "when": "today", "hours_after": 5},
    # The triggers run on the campaign's schedule, once a day.
    {"type": "birthday", "offset_days": -3},
    {"type": "first_visit", "days_after": 2},
    {"type": "anniversary", "offset_days": 0},
    {"type": "last_visit_checked_in", "when": "yesterday"},
    {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
    {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "exact"},
    {"type": "scheduled_appointment", "when": "days_before", "days": 1},
    {"type": "scheduled_appointment", "when": "booked"},
]
FILTERS = [
    {},
    {"tags": {"include": ["VIP"], "exclude": ["No texts"]}},
    {"status": "active"},
    {"status": "inactive"},
    {"has_future_appointment": True},
    {"has_future_appointment": False},
    {"appointment_purposes": ["Adjustment"], "providers": {"names": ["Dr. Rivera"]}},
    {"providers": {"names": ["Dr. Chen"], "match": "primary"}},
    {"case_types": ["Personal Injury"]},
    {"diagnoses": ["M54.5"]},
    {"attorneys": ["Saul Goodman"], "insurance_companies": ["Acme Mutual"]},
    {"care_packages": ["Gold"], "fee_schedules": ["Cash"], "referral_sources": ["Google"]},
    {"services": ["98940"]},
    {"paid_total": {"min": 10, "max": 5000}},
    {"age": {"min": 18, "max": 65}, "sex": ["F"]},
    {"address": {"states": ["IL"], "cities": ["Chicago"], "postal_codes": ["60601"]}},
    {"visit_count": {"min": 2, "max": 9}},
]


@pytest.fixture(autouse=True)
def _empty_cache():
    compiled.cache_clear()
    yield
    compiled.cache_clear()


def shaped(trigger: dict, filters: dict, clinic: Clinic | None = None) -> Campaign:
    campaign = drip(clinic or Clinic(), trigger, filters=filters, enabled_at=ny(2026, 6, 1))
    return Campaign.objects.select_related("practice").get(pk=campaign.pk)


def direct(campaign: Campaign, at: dt.datetime, patients: list[int] | None):
    return compiled._compiled(campaign, RunContext(practice=campaign.practice, at=at), patients)


def utc(params: list) -> list:
    return [p.astimezone(dt.UTC) if isinstance(p, dt.datetime) else p for p in params]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: "-".join(map(str, t.values())))
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_the_template_filled_in_is_the_statement_compiled_for_that_campaign_then(trigger, filters):
    campaign = shaped(trigger, filters)
    other = shaped(trigger, filters)  # another practice's campaign of the same shape
    audience_rows_sql(campaign, AT, None)  # the day's first run compiles the template
    (template,) = compiled._cache.values()
    assert template is not None  # every trigger and filter makes one

    for run, at, patients in [
        (campaign, LATER, [3, 1, 2]),
        (campaign, LATER, None),
        (other, AT, [7]),
        (other, LATER, None),
    ]:
        sql, params = template.render(run, at, patients)
        expected_sql, expected_params = direct(run, at, patients)
        assert sql == expected_sql
        assert utc(params) == utc(expected_params)


def test_a_shape_is_compiled_once_a_day_and_again_when_edited(monkeypatch):
    campaign = shaped({"type": "missed_appointment", "minutes_after": 30}, {})
    compiles = []
    real = query.new_occurrences_sql
    monkeypatch.setattr(compiled, "new_occurrences_sql", lambda *a: compiles.append(1) or real(*a))
    monkeypatch.setattr(compiled.settings, "AUDIENCE_TEMPLATE_VERIFY", False)

    for minute in range(5):
        audience_rows_sql(campaign, AT + dt.timedelta(minutes=minute), [1])
    assert len(compiles) == 1
    # Another practice's campaign of the same shape, in the same time zone, shares it.
    audience_rows_sql(shaped(campaign.trigger, {}), AT, None)
    assert len(compiles) == 1

    audience_rows_sql(campaign, ny(2026, 6, 16, 9, 0), [1])  # a new local day
    assert len(compiles) == 2

    campaign.filters = {"status": "active"}
    campaign.save()
    audience_rows_sql(campaign, ny(2026, 6, 16, 9, 1), [1])
    assert len(compiles) == 3


def test_an_instant_not_taken_from_the_context_fails_the_check(monkeypatch):
    # The contract: every instant of the audience is ctx.at or ctx.before(delta). One derived
    # some other way would pass for a constant; the check the tests run catches it.
    monkeypatch.setattr(
        _TracingContext, "before", lambda self, delta: self.at.astimezone(dt.UTC) - delta
    )
    campaign = shaped({"type": "missed_appointment", "minutes_after": 30}, {})
    audience_rows_sql(campaign, AT, None)

    with pytest.raises(AssertionError, match="template drifted"):
        audience_rows_sql(campaign, LATER, None)


def test_ticks_enroll_from_the_template():
    clinic = Clinic()
    drip(clinic, {"type": "missed_appointment", "minutes_after": 30}, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient(phone="3125550123")
    bob = clinic.patient(phone="3125550124")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    clinic.appointment(bob, ny(2026, 6, 15, 10, 0))

    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 45)) == (1, 1)  # full: compiled
    assert [t is not None for t in compiled._cache.values()] == [True]
    assert campaigns_run_due(now=ny(2026, 6, 15, 10, 45))[1] == 1  # narrowed: filled in


def test_a_drip_with_exclude_recent_days_has_a_template_of_its_own_window():
    # Its window (X times 24 hours before the run) is an instant of the context, and X is part
    # of the shape: a campaign with 7 days never runs the statement of one with 3.
    trigger, filters = {"type": "birthday", "offset_days": 0}, {}
    week, other_week = shaped(trigger, filters), shaped(trigger, filters)
    three = shaped(trigger, filters)
    Campaign.objects.filter(pk__in=[week.pk, other_week.pk]).update(exclude_recent_days=7)
    Campaign.objects.filter(pk=three.pk).update(exclude_recent_days=3)
    week, other_week, three = (
        Campaign.objects.select_related("practice").get(pk=c.pk) for c in (week, other_week, three)
    )
    audience_rows_sql(week, AT, None)
    audience_rows_sql(three, AT, None)
    templates = list(compiled._cache.values())
    assert len(templates) == 2
    assert all(t is not None for t in templates)

    for run in (week, other_week, three):
        key = compiled.template_key(run, LATER)
        sql, params = compiled._cache[key].render(run, LATER, None)
        expected_sql, expected_params = direct(run, LATER, None)
        assert sql == expected_sql
        assert utc(params) == utc(expected_params)
