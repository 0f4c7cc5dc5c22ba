"""Fault: the tick's database connection is killed in the middle of a tick (issue 9), also
in one of two workers running the groups of a fanned-out tick at once (issue 20).

Another connection terminates the tick's backend (``pg_terminate_backend``) just before the
tick writes, at each phase in turn: enrolling, materializing steps, claiming messages, and
recording a send the provider has just accepted. The tick must fail (raise), leave nothing
half-written that breaks exactly-once, and the following ticks must catch up: every due step
accepted by the provider once.
"""

from __future__ import annotations

from functools import partial

import psycopg
import pytest
from django.db import DatabaseError, connection

from campaigns.engine import TickSummary, tick, tick_group
from campaigns.engine.groups import practice_group
from campaigns.models import CampaignRun, Enrollment
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.dispatch import CLAIM_SECONDS
from messaging.outbox.reconcile import messages_reconcile
from tests.campaigns.builders import Clinic
from tests.campaigns.test_engine_exactly_once import run_in_parallel
from tests.faults.conftest import (
    DAY,
    MINUTE,
    RUN_AT,
    assert_each_step_accepted_once,
    birthday_patients,
    birthday_spec,
    campaign_for,
    due_steps,
    needs_postgres,
)

pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]

CLAIM = CLAIM_SECONDS * MINUTE / 60


def _writes(sql: str, verb: str, table: str) -> bool:
    head = sql.lstrip()[:80]
    return head.upper().startswith(verb) and table in head


def _enrolling(sql: str, params) -> bool:
    # A scheduled run's enrollments go in with its run record, in one statement (WITH run …).
    return _writes(sql, "INSERT", "campaigns_enrollment") or (
        sql.lstrip().startswith("WITH run AS") and "INSERT INTO campaigns_enrollment" in sql
    )


def _materializing(sql: str, params) -> bool:
    # The messages go in by COPY (trackstat.bulk), which no execute wrapper sees; the ids it
    # takes are drawn by the statement just before, in the same transaction.
    return _writes(sql, "INSERT", "messaging_outboundmessage") or (
        "nextval" in sql and "messaging_outboundmessage" in (params or ())
    )


def _claiming(sql: str, params) -> bool:
    return _writes(sql, "UPDATE", "messaging_outboundmessage") and "sending" in (params or ())


def _recording_the_send(sql: str, params) -> bool:
    # The "sent" event, written after the provider accepted the message.
    return _writes(sql, "INSERT", "messaging_messageevent") and "sent" in (params or ())


def kill_the_connection_before(matches):
    """An execute wrapper that, the first time a statement ``matches``, has another
    connection terminate this one's backend, then lets the statement run (and fail)."""
    killed: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if not killed and matches(sql, params):
            pid = context["connection"].connection.info.backend_pid
            db = connection.settings_dict
            with psycopg.connect(
                host=db["HOST"],
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"] or None,
                dbname=db["NAME"],
                autocommit=True,
            ) as other:
                # Waits (up to 5 s) until the backend is gone.
                assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
            killed.append(sql[:40])
        return execute(sql, params, many, context)

    wrapper.killed = killed
    return wrapper


@pytest.mark.parametrize(
    "phase", [_enrolling, _materializing, _claiming, _recording_the_send], ids=lambda f: f.__name__
)
def test_a_connection_killed_mid_tick_fails_the_tick_and_the_next_ticks_catch_up(start_fake, phase):
    fake = start_fake()
    clinic = Clinic()
    birthday_patients(clinic, 4)
    campaign = campaign_for(clinic.practice, birthday_spec(steps=2))

    wrapper = kill_the_connection_before(phase)
    with pytest.raises(DatabaseError), connection.execute_wrapper(wrapper):
        tick(now=RUN_AT, send="inline")
    assert wrapper.killed, "the fault was never injected"
    connection.close()  # what a worker does after a failed task: a fresh connection

    # Nothing half-written: each phase's writes are one transaction, in or out.
    enrolled = Enrollment.objects.filter(campaign=campaign).count()
    if phase is _enrolling:
        assert (enrolled, CampaignRun.objects.count(), OutboundMessage.objects.count()) == (0, 0, 0)
    elif phase is _materializing:
        assert enrolled == 4
        assert not OutboundMessage.objects.exists()
        assert set(Enrollment.objects.values_list("steps_done", flat=True)) == {0}
    elif phase is _claiming:
        assert set(OutboundMessage.objects.values_list("status", flat=True)) == {
            MessageStatus.QUEUED
        }
    if phase is not _recording_the_send:
        assert fake.accepted == [], "the provider was called by the failed tick"

    # The beat's next ticks, a minute apart, then after the claims ran out.
    for now in (RUN_AT, RUN_AT + MINUTE, RUN_AT + CLAIM + MINUTE, RUN_AT + CLAIM + 2 * MINUTE):
        tick(now=now, send="inline")
    messages_reconcile(now=RUN_AT + CLAIM + 5 * MINUTE)

    step_1 = OutboundMessage.objects.filter(step_position=1)
    if phase is _recording_the_send:
        # The provider took one message but we never heard its sid: never sent again, it
        # went unknown and reconciliation found it at the provider, with the sid it gave.
        [(lost_pk, lost_sid)] = fake.accepted[:1]
        lost = step_1.get(pk=lost_pk)
        assert (lost.status, lost.provider_id) == (MessageStatus.SENT, lost_sid)
        assert list(lost.events.values_list("status", "source"))[-2:] == [
            (MessageStatus.UNKNOWN, "engine"),
            (MessageStatus.SENT, "reconcile"),
        ]
    assert set(step_1.values_list("status", flat=True)) == {MessageStatus.SENT}
    tick(now=RUN_AT + DAY, send="inline")  # the second step, on a healthy connection
    assert_each_step_accepted_once(fake, due_steps(campaign, [1, 2]))


@pytest.mark.parametrize(
    "phase", [_enrolling, _materializing, _claiming, _recording_the_send], ids=lambda f: f.__name__
)
def test_a_connection_killed_in_one_of_two_workers_running_the_groups(start_fake, settings, phase):
    """Beat's tick fanned out (issue 20): two workers run the groups of a tick at once and
    one of them loses its connection mid-group. The other group is done in full; the killed
    group's work is caught up by the next ticks, run by two workers again; every due step of
    both practices is accepted by the provider once."""
    settings.TICK_GROUPS = 2
    fake = start_fake()
    clinics = [Clinic(), Clinic()]  # consecutive ids: one practice in each group
    campaigns = []
    for clinic in clinics:
        birthday_patients(clinic, 4)
        campaigns.append(campaign_for(clinic.practice, birthday_spec(steps=2)))
    killed, healthy = (practice_group(clinic.practice.pk) for clinic in clinics)
    assert killed != healthy
    wrapper = kill_the_connection_before(phase)

    def killed_worker() -> None:
        with pytest.raises(DatabaseError), connection.execute_wrapper(wrapper):
            tick_group(group=killed, now=RUN_AT, send="inline")

    def healthy_worker() -> TickSummary:
        return tick_group(group=healthy, now=RUN_AT, send="inline")

    _, summary = run_in_parallel(killed_worker, healthy_worker)

    assert wrapper.killed, "the fault was never injected"
    assert summary["messages_sent"] == 4  # the other group never noticed
    healthy_outbox = OutboundMessage.objects.filter(campaign=campaigns[1])
    assert set(healthy_outbox.values_list("status", flat=True)) == {MessageStatus.SENT}
    if phase is not _recording_the_send:
        assert not OutboundMessage.objects.filter(
            campaign=campaigns[0], status=MessageStatus.SENT
        ).exists(), "the provider was called by the failed group"

    def both_groups(now) -> None:
        run_in_parallel(
            *(partial(tick_group, group=g, now=now, send="inline") for g in (killed, healthy))
        )

    for now in (RUN_AT, RUN_AT + MINUTE, RUN_AT + CLAIM + MINUTE, RUN_AT + CLAIM + 2 * MINUTE):
        both_groups(now)
    messages_reconcile(now=RUN_AT + CLAIM + 5 * MINUTE)
    assert set(
        OutboundMessage.objects.filter(step_position=1).values_list("status", flat=True)
    ) == {MessageStatus.SENT}
    both_groups(RUN_AT + DAY)  # the second steps
    assert_each_step_accepted_once(
        fake, due_steps(campaigns[0], [1, 2]) | due_steps(campaigns[1], [1, 2])
    )
