"""One message per address per campaign per local day (DESIGN §5.6; issue 13, item 4), held
where it cannot be bypassed: across materialization batches, across ticks running at the same
time on PostgreSQL, and by the database itself."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from campaigns.services import campaign_create
from messaging.models import MessageStatus, OutboundMessage
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine_exactly_once import needs_postgres, run_in_parallel

SEND_AT = ny(2026, 6, 15, 12, 0)
FAMILIES = 12


def blast(clinic: Clinic) -> Campaign:
    serializer = CampaignSerializer(
        data={
            "name": "Closed Monday",
            "kind": "blast",
            "enabled": True,
            "send_at": SEND_AT.isoformat(),
            "messages": [{"channel": "sms", "body": "We are closed Monday."}],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(SEND_AT - dt.timedelta(days=1), tick=False):
        return campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def families(clinic: Clinic, count: int, members: int = 3) -> None:
    """``count`` families of ``members`` patients, each family sharing one mobile number."""
    for family in range(count):
        for _ in range(members):
            clinic.patient(phone=f"+1312555{family:04d}")


def texts_per_number() -> Counter:
    """How many texts each number is to get (messages not skipped)."""
    return Counter(
        OutboundMessage.objects.exclude(status=MessageStatus.SKIPPED).values_list("to", flat=True)
    )


def assert_one_text_per_family() -> None:
    assert texts_per_number() == Counter({f"+1312555{n:04d}": 1 for n in range(FAMILIES)})
    skipped = OutboundMessage.objects.filter(status=MessageStatus.SKIPPED)
    assert skipped.count() == FAMILIES * 2
    assert set(skipped.values_list("status_reason", flat=True)) == {"shared_address"}


@pytest.mark.django_db
def test_batches_of_one_text_each_family_once(monkeypatch):
    monkeypatch.setattr("campaigns.engine.steps.BATCH", 1)
    clinic = Clinic()
    families(clinic, FAMILIES)
    blast(clinic)
    campaigns_run_due(now=SEND_AT)
    queued, skipped = steps_materialize(now=SEND_AT)
    assert (queued, skipped) == (FAMILIES, FAMILIES * 2)
    assert_one_text_per_family()


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("threads", [2, 4])
def test_materializations_running_at_once_text_each_family_once(monkeypatch, threads):
    monkeypatch.setattr("campaigns.engine.steps.BATCH", 1)
    clinic = Clinic()
    families(clinic, FAMILIES)
    blast(clinic)
    campaigns_run_due(now=SEND_AT)
    results = run_in_parallel(*[lambda: steps_materialize(now=SEND_AT)] * threads)
    assert sum(queued for queued, _ in results) == FAMILIES
    assert_one_text_per_family()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_twin_materialized_while_the_others_text_is_uncommitted_is_skipped(monkeypatch):
    """The race made certain: one materialization has written the first twin's text and not
    committed yet when another materializes the second twin. The second must wait for the
    first and then skip, not text the number too."""
    monkeypatch.setattr("campaigns.engine.steps.BATCH", 1)
    clinic = Clinic()
    first_twin = clinic.patient(phone="+13125550101")
    clinic.patient(phone="+13125550101")
    blast(clinic)
    campaigns_run_due(now=SEND_AT)
    written, second_reached = threading.Event(), threading.Event()

    def hold_after_writing(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # The messages go in by COPY (no execute wrapper sees it); their first events, copied
        # from them right after in the same transaction, show they are written.
        if sql.startswith("INSERT INTO messaging_messageevent") and not written.is_set():
            written.set()
            # Uncommitted until the second materialization has come to the outbox.
            assert second_reached.wait(timeout=30), "the second materialization never came"
        return result

    def signal_at_the_outbox(execute, sql, params, many, context):
        if "messaging_outboundmessage" in sql or "pg_advisory" in sql:
            second_reached.set()
        return execute(sql, params, many, context)

    def first() -> tuple[int, int]:
        # One transaction: the first twin's text stays uncommitted until the end.
        with connection.execute_wrapper(hold_after_writing), transaction.atomic():
            return steps_materialize(now=SEND_AT)

    def second() -> tuple[int, int]:
        assert written.wait(timeout=30), "the first materialization wrote nothing"
        with connection.execute_wrapper(signal_at_the_outbox):
            return steps_materialize(now=SEND_AT)

    run_in_parallel(first, second)
    texts = OutboundMessage.objects.exclude(status=MessageStatus.SKIPPED)
    assert [m.patient_id for m in texts] == [first_twin.pk]
    assert OutboundMessage.objects.get(status=MessageStatus.SKIPPED).status_reason == (
        "shared_address"
    )


@pytest.mark.django_db
def test_the_database_refuses_a_second_text_to_an_address_the_same_day():
    """Whatever writes the outbox, the constraint holds: no code path can bypass it."""
    clinic = Clinic()
    families(clinic, 1, members=2)
    blast(clinic)
    campaigns_run_due(now=SEND_AT)
    steps_materialize(now=SEND_AT)
    sent = OutboundMessage.objects.exclude(status=MessageStatus.SKIPPED).get()
    twin = OutboundMessage.objects.get(status=MessageStatus.SKIPPED)
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboundMessage.objects.filter(pk=twin.pk).update(status=MessageStatus.QUEUED)
    # Another day, or once the first is no longer going out, is allowed.
    OutboundMessage.objects.filter(pk=sent.pk).update(status=MessageStatus.CANCELED)
    OutboundMessage.objects.filter(pk=twin.pk).update(status=MessageStatus.QUEUED)
