"""The roll-up's queue of changed messages (issue 20): the roll-up never rewrites an outbox
row, and each change counts once whatever runs at the same time — a second roll-up, or a
webhook that changes a message while a roll-up is counting it (PostgreSQL, real threads).
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from campaigns.models import Campaign, MessageStep
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.status import message_transition
from reports import rollup, rollup_sql
from reports.models import MessageFacts, PendingMessage, RecipientDay, RollupState
from reports.rollup import rollups_refresh
from reports.selectors import campaign_report
from tests.factories import PatientFactory, PracticeFactory

DAY = dt.date(2026, 3, 2)
AT = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
OUTBOX_WRITE = re.compile(r'^\s*(WITH\b.*)?\bUPDATE\s+"?messaging_outboundmessage"?', re.I | re.S)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent roll-ups need PostgreSQL's snapshots and row locks; SQLite serializes "
    "writers, which proves nothing about concurrency",
)

postgres_settings = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's settings of the set-wise roll-up"
)


@pytest.fixture(params=["set-wise", "per-message"])
def counting(request, monkeypatch):
    if request.param == "set-wise" and connection.vendor != "postgresql":
        pytest.skip("the set-based roll-up is PostgreSQL's")
    monkeypatch.setattr(rollup, "set_wise", lambda: request.param == "set-wise")
    return request.param


def campaign_with_sent(count: int) -> tuple[Campaign, list[OutboundMessage]]:
    practice = PracticeFactory(time_zone="UTC")
    campaign = Campaign.objects.create(practice=practice, name="Queue", enabled=True)
    MessageStep.objects.create(
        practice=practice, campaign=campaign, position=1, channel="sms", body="Hi"
    )
    messages = [
        OutboundMessage.objects.create(
            practice=practice,
            campaign=campaign,
            step_position=1,
            patient=PatientFactory(practice=practice),
            channel="sms",
            to="+13125550100",
            status=MessageStatus.SENT,
            sent_at=AT,
            scheduled_for=AT,
        )
        for _ in range(count)
    ]
    return campaign, messages


def totals(campaign: Campaign):
    return campaign_report(campaign, date_from=DAY, date_to=DAY).totals


def deliver(message: OutboundMessage) -> None:
    message_transition(
        message, status=MessageStatus.DELIVERED, at=AT + dt.timedelta(minutes=1), source="test"
    )


@pytest.mark.django_db
def test_the_rollup_never_rewrites_an_outbox_row(counting):
    campaign, messages = campaign_with_sent(3)
    rollups_refresh()
    deliver(messages[0])
    OutboundMessage.objects.filter(pk=messages[1].pk).update(report_pending=True)  # a replay

    with CaptureQueriesContext(connection) as queries:
        assert rollups_refresh() >= 2

    writes = [q["sql"] for q in queries.captured_queries if OUTBOX_WRITE.search(q["sql"])]
    assert writes == []
    numbers = totals(campaign)
    assert (numbers.sent, numbers.delivered, numbers.recipients) == (3, 1, 3)


@pytest.mark.django_db
def test_in_flight_messages_wait_in_the_queue_until_they_land(counting):
    campaign, messages = campaign_with_sent(2)
    OutboundMessage.objects.filter(pk=messages[1].pk).update(status=MessageStatus.SENDING)
    rollups_refresh()
    assert totals(campaign).sent == 1
    # No status write marks it again (as a bulk update without report_pending would not):
    # the mark it got when it was created still stands.
    OutboundMessage.objects.filter(pk=messages[1].pk).update(status=MessageStatus.SENT)
    rollups_refresh()
    assert totals(campaign).sent == 2


def _in_thread(target, *args):
    """Run ``target`` in a thread with its own connection; returns (thread, errors)."""
    errors: list[BaseException] = []

    def run():
        try:
            target(*args)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _hold_after_counting(monkeypatch, counted: threading.Event, release: threading.Event):
    """Hold the next roll-up inside its transaction, after its batch was counted."""
    original = rollup.arm_messages_count

    def held(arm_facts):
        original(arm_facts)
        if not counted.is_set():
            counted.set()
            assert release.wait(20), "the test never released the roll-up"

    monkeypatch.setattr(rollup, "arm_messages_count", held)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_committed_while_a_rollup_counts_is_counted_by_the_next(counting, monkeypatch):
    campaign, messages = campaign_with_sent(1)
    counted, release = threading.Event(), threading.Event()
    _hold_after_counting(monkeypatch, counted, release)
    thread, errors = _in_thread(rollups_refresh)
    assert counted.wait(20)
    # The roll-up counted the message as sent and has not committed: a delivery receipt
    # arrives now. It must not wait for the roll-up (webhooks never queue behind it).
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")
        deliver(OutboundMessage.objects.get(pk=messages[0].pk))
    release.set()
    thread.join(30)
    assert errors == []
    assert (totals(campaign).sent, totals(campaign).delivered) == (1, 0)
    rollups_refresh()
    assert (totals(campaign).sent, totals(campaign).delivered) == (1, 1)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_not_yet_committed_when_a_rollup_runs_is_counted_once(counting):
    campaign, messages = campaign_with_sent(1)
    changed, commit = threading.Event(), threading.Event()

    def webhook():
        with transaction.atomic():
            deliver(OutboundMessage.objects.get(pk=messages[0].pk))
            changed.set()
            assert commit.wait(20)

    thread, errors = _in_thread(webhook)
    assert changed.wait(20)
    rollups_refresh()  # sees the message as it was: sent
    commit.set()
    thread.join(30)
    assert errors == []
    rollups_refresh()
    rollups_refresh()
    numbers = totals(campaign)
    assert (numbers.sent, numbers.delivered, numbers.recipients) == (1, 1, 1)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_rollups_at_once_count_each_change_once(counting, monkeypatch):
    campaign, messages = campaign_with_sent(12)
    for message in messages[:5]:
        deliver(message)
    RollupState.objects.get_or_create(name=rollup.ROLLUP_NAME)  # as after the first run
    counted, release = threading.Event(), threading.Event()
    _hold_after_counting(monkeypatch, counted, release)
    first, errors = _in_thread(lambda: rollups_refresh(batch=4))
    assert counted.wait(20)
    # Another roll-up starts while the first holds its batch: it finds it busy.
    second_counted: list[int] = []
    second, second_errors = _in_thread(lambda: second_counted.append(rollups_refresh(batch=4)))
    second.join(30)
    release.set()
    first.join(30)
    assert errors == second_errors == []
    assert second_counted == [0]
    rollups_refresh()
    numbers = totals(campaign)
    assert (numbers.sent, numbers.delivered, numbers.recipients) == (12, 5, 12)


@pytest.mark.django_db
def test_the_report_counts_recipients_from_day_counters_not_patient_rows(counting):
    """Distinct recipients come from per-day counters (a few hundred rows a campaign), never
    from a scan of the campaign's patient-day rows, which grow with its messages."""
    campaign, _ = campaign_with_sent(3)
    rollups_refresh()

    with CaptureQueriesContext(connection) as queries:
        report = campaign_report(campaign, date_from=DAY, date_to=DAY)

    assert report.totals.recipients == 3
    assert report.steps[0].numbers.recipients == 3
    patient_rows = re.compile(r"\breports_recipientday\b")
    assert not [q["sql"] for q in queries.captured_queries if patient_rows.search(q["sql"])]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_pending_messages_and_counted_facts_off_the_outbox():
    executor = MigrationExecutor(connection)
    (key,) = [
        key
        for key in executor.loader.disk_migrations
        if key[0] == "reports" and key[1].endswith("rollup_queue_and_message_facts")
    ]
    # Back to just before it in the reports app only: the other apps stay at their latest
    # state, which the models used below describe (a later migration of theirs, such as
    # messaging's, must not be unapplied under them).
    before = sorted(
        parent.key
        for parent in executor.loader.graph.node_map[key].parents
        if parent.key[0] == "reports"
    )
    executor.migrate(before)
    try:
        campaign, (pending, counted, test) = campaign_with_sent(3)
        OutboundMessage.objects.filter(pk=counted.pk).update(
            report_pending=False, report_flags=rollup.Fact.SENT, report_day=DAY
        )
        OutboundMessage.objects.filter(pk=test.pk).update(is_test=True)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert list(PendingMessage.objects.values_list("message_id", flat=True)) == [pending.pk]
    assert list(MessageFacts.objects.values_list("message_id", "flags", "day")) == [
        (counted.pk, rollup.Fact.SENT, DAY)
    ]
    rollups_refresh()
    assert (totals(campaign).sent, totals(campaign).recipients) == (1, 1)  # counted before
    deliver(OutboundMessage.objects.get(pk=counted.pk))  # the trigger queues it again
    rollups_refresh()
    assert (totals(campaign).sent, totals(campaign).delivered) == (1, 1)


@postgres_settings
@pytest.mark.django_db(transaction=True)
def test_a_set_wise_batch_sets_its_planner_settings_for_its_own_transaction_only():
    """The batch's sorts get more memory and its events are read by index (``SET LOCAL``);
    the connection, which serves other work afterwards, keeps the server's settings."""

    def settings() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('work_mem'), current_setting('enable_bitmapscan')"
            )
            return cursor.fetchone()

    before = settings()
    seen = []

    def spy(execute, sql, params, many, context):
        if sql.lstrip().startswith("WITH picked"):
            seen.append(settings())
        return execute(sql, params, many, context)

    campaign, _ = campaign_with_sent(2)
    with connection.execute_wrapper(spy):
        rollups_refresh()
    assert seen == [(rollup_sql.WORK_MEM, "off")]
    assert totals(campaign).sent == 2
    assert settings() == before


@postgres_settings
@pytest.mark.django_db
def test_recipient_days_leave_room_on_their_pages_for_prev_day_rewrites():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [RecipientDay._meta.db_table]
        )
        assert cursor.fetchone()[0] == ["fillfactor=70"]
