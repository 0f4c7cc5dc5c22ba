"""Beat's tick fanned out into groups of practices (issue 20), run by workers in parallel.

Beat's task enqueues one task per group (``practice_id % TICK_GROUPS``) for the same instant;
workers run the groups side by side. The exactly-once rules (DESIGN §6) must hold as they do
for one process: each test builds several practices spread over the groups and judges the
outcome by what patients received (the helpers of ``test_engine_exactly_once``). Two workers
are two threads, each with its own database connection, released together; on PostgreSQL
only where they run at once (SQLite serializes writers).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from functools import partial

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine import tick, tick_group
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.groups import group_practice_ids, practice_group
from campaigns.engine.steps import steps_materialize
from campaigns.models import CampaignRun, Enrollment, EnrollmentState, SchedulerHeartbeat
from campaigns.tasks import run_tick_group_task, run_tick_task
from messaging import send_queue
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.dispatch import messages_dispatch
from messaging.tasks import send_messages_task
from patients.models import Patient
from tests.campaigns.builders import Clinic
from tests.campaigns.test_engine_exactly_once import (
    BIRTHDAY,
    BLAST_AT,
    CLAIM,
    MINUTE,
    MISSED,
    MISSED_START,
    RUN_AT,
    STEP_2_AT,
    assert_each_step_received_once,
    birthday_patients,
    campaign,
    needs_postgres,
    once_each,
    provider_calls,  # noqa: F401 (a fixture)
    run_in_parallel,
)
from trackstat.models import Practice

GROUPS = 3
PATIENTS = 5
SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@pytest.fixture
def groups(settings) -> int:
    settings.TICK_GROUPS = GROUPS
    return GROUPS


@pytest.fixture
def send_tasks_run_here(monkeypatch):
    """The send tasks a group's tick hands its claims to run at once, in the tick's thread
    (the worker that takes them), not through the broker."""
    monkeypatch.setattr(send_queue, "messages_enqueue", lambda ids: send_messages_task(ids))


def clinics(count: int) -> list[Clinic]:
    """``count`` practices (consecutive ids: every group gets one, ``count`` ≥ GROUPS), each
    with birthday patients whose 9:00 appointment was missed, a two-step birthday drip and a
    missed-appointment text."""
    built = []
    for _ in range(count):
        clinic = Clinic()
        for patient in birthday_patients(clinic, PATIENTS):
            clinic.appointment(patient, MISSED_START)
        campaign(clinic.practice, BIRTHDAY)
        campaign(clinic.practice, MISSED)
        built.append(clinic)
    assert {practice_group(c.practice.pk) for c in built} == set(range(GROUPS))
    return built


def summed(summaries) -> Counter:
    total: Counter = Counter()
    for summary in summaries:
        total.update({key: value for key, value in summary.items() if key != "now"})
    return total


# How a tick at ``now`` runs: in one process, or its groups on two workers at once.


def one_process(now: dt.datetime) -> Counter:
    return summed([tick(now=now, send="inline")])


def two_workers_splitting_the_groups(now: dt.datetime) -> Counter:
    """Beat's tasks shared out: one worker takes the even groups, the other the odd ones."""

    def worker(first: int) -> list:
        return [tick_group(group=g, now=now, send="inline") for g in range(first, GROUPS, 2)]

    return summed(
        s for results in run_in_parallel(partial(worker, 0), partial(worker, 1)) for s in results
    )


def two_workers_each_running_every_group(now: dt.datetime) -> Counter:
    """Every group's task delivered twice, the copies run at the same time by two workers,
    in opposite orders: the middle group meets its own copy, the others each other."""

    def worker(order: list[int]) -> list:
        return [tick_group(group=g, now=now, send="inline") for g in order]

    forward = list(range(GROUPS))
    results = run_in_parallel(partial(worker, forward), partial(worker, forward[::-1]))
    return summed(s for summaries in results for s in summaries)


RUNNERS = [one_process, two_workers_splitting_the_groups, two_workers_each_running_every_group]


# --- the mapping -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_practice_is_in_exactly_one_group_which_never_changes(groups):
    practices = [Clinic().practice.pk for _ in range(7)]
    members = {g: group_practice_ids(g) for g in range(GROUPS)}
    everyone = [pk for ids in members.values() for pk in ids]
    assert sorted(everyone) == sorted(Practice.objects.values_list("pk", flat=True))
    assert set(practices) <= set(everyone)
    for g, ids in members.items():
        assert all(practice_group(pk) == g for pk in ids)
        assert len(ids) in (2, 3)  # seven consecutive ids over three groups: 3, 2, 2
    # Stable: the id alone decides, in any process (no per-process hash seed).
    assert practice_group(7, groups=3) == 1
    assert practice_group(9, groups=3) == 0
    with pytest.raises(ValueError, match="group"):
        group_practice_ids(GROUPS)


# --- one group's tick ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_group_tick_touches_only_its_own_practices(groups, provider_calls):  # noqa: F811
    built = clinics(GROUPS)
    mine, stuck, pending = (clinic.practice for clinic in built)
    # Another group's messages, claimed by a worker that died: their recovery, once the
    # claim runs out, is their group's work.
    campaigns_run_due(now=RUN_AT, practice_ids=[stuck.pk])
    steps_materialize(now=RUN_AT, practice_ids=[stuck.pk])
    assert len(messages_dispatch(now=RUN_AT, practice_ids=[stuck.pk])) == 2 * PATIENTS
    claimed = OutboundMessage.objects.filter(practice=stuck)
    # A third group's enrollments: due steps, and a goal met since (each patient booked).
    goal = {"type": "future_appointment", "filters": {}}
    drip = campaign(pending, {**BIRTHDAY, "name": "Birthday with a goal", "goal": goal})
    campaigns_run_due(now=RUN_AT, practice_ids=[pending.pk])
    waiting = Enrollment.objects.filter(campaign=drip)
    assert waiting.count() == PATIENTS
    for patient in Patient.objects.filter(practice=pending):
        built[2].appointment(patient, RUN_AT + dt.timedelta(days=7), booked_at=RUN_AT + MINUTE)

    summary = tick_group(group=practice_group(mine.pk), now=RUN_AT + CLAIM + MINUTE, send="inline")

    assert summary["enrollments_created"] == 2 * PATIENTS
    assert summary["messages_sent"] == 2 * PATIENTS
    assert summary["goals_met"] == 0
    sent = OutboundMessage.objects.filter(status=MessageStatus.DELIVERED)
    assert set(sent.values_list("practice_id", flat=True)) == {mine.pk}
    assert sorted(provider_calls) == sorted(sent.values_list("pk", flat=True))
    assert set(claimed.values_list("status", flat=True)) == {MessageStatus.SENDING}
    assert set(waiting.values_list("state", "steps_done")) == {(EnrollmentState.ACTIVE, 0)}
    assert not OutboundMessage.objects.filter(practice=pending).exists()

    # Their own groups' ticks do it: the claims recovered and sent, the goal applied.
    for practice in (stuck, pending):
        tick_group(group=practice_group(practice.pk), now=RUN_AT + CLAIM + MINUTE, send="inline")
    assert set(claimed.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
    assert set(waiting.values_list("state", "exit_reason")) == {
        (EnrollmentState.EXITED, "goal_met")
    }


# --- the groups of a tick on two workers -----------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", RUNNERS, ids=lambda f: f.__name__)
def test_a_tick_run_as_groups_by_two_workers_does_what_one_process_does(
    groups,
    run,
    provider_calls,  # noqa: F811
):
    """The same outcome whichever way the tick runs: one process, the groups shared out
    between two workers, or every group run twice at once."""
    built = clinics(GROUPS + 1)
    practices = len(built)

    first = run(RUN_AT)

    enrollments = Enrollment.objects.all()
    assert Counter(enrollments.values_list("campaign_id", "patient_id")) == once_each(
        enrollments.values_list("campaign_id", "patient_id").distinct()
    )
    assert enrollments.count() == practices * 2 * PATIENTS
    assert CampaignRun.objects.count() == practices  # each birthday drip ran once today
    # (campaigns_run is not compared: a continuous trigger that another worker's copy of
    # the group has just run counts as run again, enrolling nobody.)
    assert first["enrollments_created"] == practices * 2 * PATIENTS
    assert first["messages_created"] == first["messages_sent"] == practices * 2 * PATIENTS
    step_1 = {(pk, 1) for pk in enrollments.values_list("pk", flat=True)}
    assert_each_step_received_once(step_1, provider_calls)

    second = run(STEP_2_AT)  # the birthday drips' second step, the next day

    assert enrollments.count() == practices * 2 * PATIENTS
    assert second["messages_sent"] == practices * PATIENTS
    step_2 = {
        (pk, 2)
        for pk in enrollments.filter(campaign__name=BIRTHDAY["name"]).values_list("pk", flat=True)
    }
    assert_each_step_received_once(step_1 | step_2, provider_calls)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_group_run_by_two_workers_at_once_sends_a_blast_once(
    groups,
    send_tasks_run_here,
    time_machine,
    provider_calls,  # noqa: F811
):
    clinic = Clinic()
    patients = birthday_patients(clinic, 20)
    blast = campaign(
        clinic.practice,
        {
            "name": "Closed Friday",
            "kind": "blast",
            "send_at": BLAST_AT.isoformat(),
            "messages": [{"channel": "sms", "body": "We are closed this Friday."}],
        },
    )
    group = practice_group(clinic.practice.pk)
    time_machine.move_to(BLAST_AT, tick=False)  # the send tasks read the wall clock
    # The task itself, as a worker runs it (its claims handed to the send tasks).
    same_group = partial(run_tick_group_task, group, BLAST_AT.isoformat())

    results = run_in_parallel(same_group, same_group)

    assert sorted(summary["campaigns_run"] for summary in results) == [0, 1]
    assert sum(summary["messages_dispatched"] for summary in results) == 20
    enrollments = Enrollment.objects.filter(campaign=blast)
    assert Counter(enrollments.values_list("patient_id", flat=True)) == once_each(
        patient.pk for patient in patients
    )
    # Queued for the send tasks (which run eagerly here): each recipient gets it once.
    recipients = {(pk, 1) for pk in enrollments.values_list("pk", flat=True)}
    assert_each_step_received_once(recipients, provider_calls)


# --- beat's task and the heartbeat -----------------------------------------------------------


@pytest.mark.django_db
def test_beat_enqueues_one_task_per_group_with_only_its_number_and_the_instant(
    groups,
    monkeypatch,
    time_machine,
    provider_calls,  # noqa: F811
):
    built = clinics(GROUPS)
    time_machine.move_to(RUN_AT, tick=False)
    sent: list[dict] = []
    with pytest.MonkeyPatch.context() as broker:
        broker.setattr(
            run_tick_group_task,
            "apply_async",
            lambda args, **options: sent.append({"args": args, **options}),
        )
        fanned = run_tick_task.apply().get()

    instant = RUN_AT.astimezone(dt.UTC).isoformat()
    assert fanned == {"now": instant, "groups": GROUPS}
    # No patient data travels: a group number and an instant.
    assert [call["args"] for call in sent] == [[g, instant] for g in range(GROUPS)]
    assert {call["expires"] for call in sent} == {RUN_AT + dt.timedelta(seconds=55)}
    assert not SchedulerHeartbeat.objects.exists()

    # The workers run them (one delivered twice): everything once, the heartbeat at RUN_AT.
    monkeypatch.setattr(send_queue, "messages_enqueue", lambda ids: send_messages_task(ids))
    for call in [*sent, sent[0]]:
        run_tick_group_task.apply(args=call["args"]).get()
    expected = {(pk, 1) for pk in Enrollment.objects.values_list("pk", flat=True)}
    assert len(expected) == len(built) * 2 * PATIENTS
    assert_each_step_received_once(expected, provider_calls)
    assert SchedulerHeartbeat.objects.get(name="tick").ticked_at == RUN_AT


@pytest.mark.django_db
def test_the_tick_heartbeat_is_the_newest_instant_every_group_has_finished(groups, client):
    clinics(GROUPS)
    later = RUN_AT + MINUTE

    for g in range(GROUPS - 1):
        tick_group(group=g, now=RUN_AT, send="inline")
    # A group has never ticked: no instant covers every practice yet.
    assert not SchedulerHeartbeat.objects.filter(name="tick").exists()
    assert client.get("/healthz").json()["last_tick"] is None

    tick_group(group=GROUPS - 1, now=RUN_AT, send="inline")
    heartbeat = SchedulerHeartbeat.objects.get(name="tick")
    assert heartbeat.ticked_at == RUN_AT
    groups_rows = SchedulerHeartbeat.objects.exclude(name="tick")
    assert sorted(groups_rows.values_list("name", flat=True)) == [
        f"tick:{g}" for g in range(GROUPS)
    ]
    assert heartbeat.summary["groups"] == GROUPS
    assert heartbeat.summary["enrollments_created"] == GROUPS * 2 * PATIENTS  # added up
    assert sum(row.summary["practices"] for row in groups_rows) == GROUPS

    # One group's worker is stuck: the others move on, the heartbeat waits for it.
    for g in range(1, GROUPS):
        tick_group(group=g, now=later, send="inline")
    assert SchedulerHeartbeat.objects.get(name="tick").ticked_at == RUN_AT
    assert client.get("/healthz").json()["last_tick"] == RUN_AT.astimezone(dt.UTC).isoformat()
    tick_group(group=0, now=later, send="inline")
    assert SchedulerHeartbeat.objects.get(name="tick").ticked_at == later

    # manage.py tick covers every practice: the heartbeat moves to its instant, and the
    # groups' older ticks never move it back.
    call_command("tick", "--now", (later + MINUTE).isoformat(), stdout=None)
    tick_group(group=0, now=later + 2 * MINUTE, send="inline")
    assert SchedulerHeartbeat.objects.get(name="tick").ticked_at == later + MINUTE


@pytest.mark.django_db
def test_an_idle_group_tick_costs_the_same_few_queries_however_many_practices_it_has(groups):
    def idle_group_queries(now: dt.datetime) -> int:
        for g in range(GROUPS):
            tick_group(group=g, now=RUN_AT, send="inline")  # the day's work, done
        with CaptureQueriesContext(connection) as queries:
            summary = tick_group(group=0, now=now, send="inline")
        assert summary["enrollments_created"] == summary["messages_created"] == 0
        return len([q for q in queries if not q["sql"].startswith(SAVEPOINTS)])

    def birthday_clinics(count: int) -> None:
        # (No continuous trigger: on SQLite, with no pre-check, each runs its audience query
        # at every tick, one per campaign, fanned out or not.)
        for _ in range(count):
            clinic = Clinic()
            birthday_patients(clinic, PATIENTS)
            campaign(clinic.practice, BIRTHDAY)

    birthday_clinics(GROUPS)
    few = idle_group_queries(RUN_AT + MINUTE)
    birthday_clinics(3 * GROUPS)  # four times the practices in every group
    assert idle_group_queries(RUN_AT + 2 * MINUTE) == few
    assert few <= 20


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_groups_finishing_at_once_move_the_tick_heartbeat(settings):
    """Each group reads the groups' rows to move the ``tick`` heartbeat. Two groups finishing
    at once must not each read the other's previous tick (neither would then move it): the
    second waits for the first to commit. Here the first, having read, waits (up to 3 s) for
    the second to read too."""
    settings.TICK_GROUPS = 2
    for _ in range(2):
        Clinic()
    for g in range(2):
        tick_group(group=g, now=RUN_AT, send="inline")
    later = RUN_AT + MINUTE
    first_read, second_read = threading.Event(), threading.Event()

    def reads_the_groups(sql: str) -> bool:
        return sql.startswith('SELECT "campaigns_schedulerheartbeat"."ticked_at"') and (
            "IN (" in sql
        )

    def first_waits(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if reads_the_groups(sql):
            first_read.set()
            second_read.wait(timeout=3)  # a fixed engine keeps the second from reading yet
        return result

    def second_reads(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if reads_the_groups(sql):
            second_read.set()
        return result

    def group_0() -> None:
        with connection.execute_wrapper(first_waits):
            tick_group(group=0, now=later, send="inline")

    def group_1() -> None:
        assert first_read.wait(timeout=30)
        with connection.execute_wrapper(second_reads):
            tick_group(group=1, now=later, send="inline")

    run_in_parallel(group_0, group_1)

    assert SchedulerHeartbeat.objects.get(name="tick").ticked_at == later
