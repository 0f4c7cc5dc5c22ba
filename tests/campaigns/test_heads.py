"""The campaign heads a tick reads (``campaigns.engine.heads``): on PostgreSQL a process keeps
the heads it decoded and reads a campaign again only when its row or its practice's row has a
new version. Every change that matters must show at the next read, in the same transaction
too (tests run in one; a worker never reads a transaction's rows before it commits)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine.heads import campaign_heads, heads_forget
from campaigns.models import Campaign, MessageStep
from tests.campaigns.builders import Clinic
from tests.campaigns.test_engine import drip
from trackstat.models import Practice

pytestmark = pytest.mark.django_db

ENABLED_AT = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
BIRTHDAY = {"type": "birthday", "offset_days": 0}
MISSED = {"type": "missed_appointment", "minutes_after": 15}


@pytest.fixture(autouse=True)
def _forget():
    heads_forget()
    yield
    heads_forget()


def by_pk() -> dict:
    return {head.pk: head for head in campaign_heads()}


def test_heads_are_every_enabled_campaign_with_steps_in_id_order():
    clinic, other = Clinic(), Clinic()
    first = drip(clinic, BIRTHDAY, enabled_at=ENABLED_AT)
    second = drip(other, MISSED, enabled_at=ENABLED_AT)
    drip(clinic, BIRTHDAY, enabled_at=ENABLED_AT, enabled=False)
    heads = campaign_heads()
    assert [head.pk for head in heads] == [first.pk, second.pk]
    assert heads[0].trigger == BIRTHDAY
    assert not heads[0].continuous
    assert heads[1].continuous
    assert heads[1].tz == zoneinfo.ZoneInfo("America/New_York")
    assert [head.pk for head in campaign_heads([other.practice.pk])] == [second.pk]


def test_every_change_that_matters_shows_at_the_next_read_in_the_same_transaction():
    clinic = Clinic()
    campaign = drip(clinic, BIRTHDAY, enabled_at=ENABLED_AT)
    assert by_pk()[campaign.pk].trigger == BIRTHDAY
    # Edited twice in this transaction: the same xmin, another row version each time.
    Campaign.objects.filter(pk=campaign.pk).update(trigger=MISSED)
    assert by_pk()[campaign.pk].trigger == MISSED
    assert by_pk()[campaign.pk].continuous
    Campaign.objects.filter(pk=campaign.pk).update(exclude_recent_days=7)
    assert by_pk()[campaign.pk].exclude_recent_days == 7
    Practice.objects.filter(pk=clinic.practice.pk).update(time_zone="Europe/Paris")
    assert by_pk()[campaign.pk].tz == zoneinfo.ZoneInfo("Europe/Paris")
    Campaign.objects.filter(pk=campaign.pk).update(enabled=False)
    assert campaign.pk not in by_pk()
    Campaign.objects.filter(pk=campaign.pk).update(enabled=True)
    assert campaign.pk in by_pk()
    MessageStep.objects.filter(campaign=campaign).delete()
    assert campaign.pk not in by_pk()
    added = drip(clinic, MISSED, enabled_at=ENABLED_AT)
    assert list(by_pk()) == [added.pk]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_read_with_nothing_changed_reads_only_the_row_versions():
    clinic, other = Clinic(), Clinic()
    drip(clinic, BIRTHDAY, enabled_at=ENABLED_AT)
    drip(other, MISSED, enabled_at=ENABLED_AT)
    before = campaign_heads()
    campaign_heads([clinic.practice.pk])  # a tick group's read keeps the other practices'
    with CaptureQueriesContext(connection) as queries:
        again = campaign_heads()
    assert again == before
    assert len(queries) == 1
    assert "trigger" not in queries[0]["sql"]
