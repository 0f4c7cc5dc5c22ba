"""Step 3 of a tick: turn due steps of enrollments into outbound messages.

Enrollments whose ``next_step_at`` has come are claimed in batches with SKIP LOCKED; each
gets exactly one message for its next step (unique per enrollment and step), rendered for the
patient, or recorded as skipped with its reason. The batch is a fixed number of queries
however many patients it holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable

from django.db import connection, transaction
from django.db.models import Prefetch

from campaigns.content.render import render_message
from campaigns.engine.durability import commit_async
from campaigns.experiments.arms import HOLDOUT, step_variant
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import is_continuous
from campaigns.models import Campaign, Enrollment, EnrollmentState
from campaigns.timing import end_of_local_day, step_due
from messaging.links import links_track, postal_address_footer_add, unsubscribe_footer_add
from messaging.models import (
    NOT_RECEIVED,
    Channel,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    Purpose,
    TrackedLink,
    UnsubscribeToken,
)
from messaging.outbox.addresses import address_problem
from messaging.outbox.trust import messages_trust_apply
from messaging.outbox.window import next_sending_time
from messaging.unsubscribe import unsubscribe_token_new, unsubscribe_url
from patients.models import Appointment, Lookup, Patient, PatientStatus
from trackstat.bulk import models_insert
from trackstat.planner import reads_by_key

BATCH = 500
# The most due enrollments one pass reads (``steps_materialize``).
PASS = 50_000
# Skip reasons (DESIGN §5.6).
SHARED_ADDRESS = "shared_address"
DECEASED = "deceased"
# The advisory-lock namespace of the addresses being materialized (the two-key form).
ADDRESS_LOCKS = 0x54534144


def _recipient(patient: Patient, channel: str) -> tuple[str, str]:
    """As ``address_problem``; a deceased patient is sent nothing (DESIGN §5.6)."""
    if patient.status == PatientStatus.DECEASED:
        return "", DECEASED
    return address_problem(patient, channel)


def address_key(channel: str, to: str) -> str:
    """An address as one campaign sends to it once a day: phones are stored E.164 already;
    email addresses compare without case."""
    return to.strip().lower() if channel == Channel.EMAIL else to.strip()


def _address_day(enrollment: Enrollment) -> tuple[int, str, str, dt.date] | None:
    """(campaign, channel, address, local day) of the message the enrollment's next step
    would send (the day it may go out: its due day, or the next window's when it is due
    after hours); None when it sends none."""
    campaign, patient = enrollment.campaign, enrollment.patient
    steps = campaign.step_list
    if enrollment.steps_done >= len(steps) or enrollment.arm == HOLDOUT:
        return None
    channel = steps[enrollment.steps_done].channel
    to, _ = _recipient(patient, channel)
    if not to:
        return None
    practice = campaign.practice
    goes = next_sending_time(
        enrollment.next_step_at,
        start=practice.sending_window_start,
        end=practice.sending_window_end,
        tz=practice.tz,
    )
    return campaign.pk, channel, address_key(channel, to), goes.astimezone(practice.tz).date()


def _addresses_taken(
    keys: set[tuple[int, str, str, dt.date]],
) -> set[tuple[int, str, str, dt.date]]:
    """Of these (campaign, channel, address, day) keys, the ones a message in the outbox
    already holds (one that went or may still go out).

    On PostgreSQL each key is first locked for the rest of the transaction (an advisory
    lock, taken in one sorted order so that two batches never deadlock): a concurrent
    materialization with the same address waits for this one to commit, then finds its
    message here. The unique constraint ``one_message_per_address_per_day`` holds the rule
    whatever writes the outbox.
    """
    if not keys:
        return set()
    if connection.vendor == "postgresql":
        locks = sorted({_lock_id(key) for key in keys})
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(%s, k)) "
                "FROM (SELECT unnest(%s::int[]) AS k ORDER BY 1) AS ordered",
                [ADDRESS_LOCKS, locks],
            )
    held = (
        OutboundMessage.objects.filter(
            campaign_id__any={key[0] for key in keys},
            address_key__any={key[2] for key in keys},
            local_day__any={key[3] for key in keys},
        )
        .exclude(status__in=NOT_RECEIVED)
        .values_list("campaign_id", "channel", "address_key", "local_day")
    )
    return set(held) & keys


def _lock_id(key: tuple) -> int:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _events_record(message_ids: list[int], now: dt.datetime) -> None:
    """Each new message's first event (its status and reason, from the engine), copied from
    the rows just inserted in one statement rather than built as models."""
    if not message_ids:
        return
    events, outbox = MessageEvent._meta.db_table, OutboundMessage._meta.db_table
    if connection.vendor == "postgresql":
        where, ids = "m.id = ANY(%s)", [message_ids]
    else:  # a batch's ids are well under SQLite's limit of parameters
        where, ids = f"m.id IN ({', '.join(['%s'] * len(message_ids))})", message_ids
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {events} (practice_id, message_id, status, reason, at, source) "  # noqa: S608
            f"SELECT m.practice_id, m.id, m.status, m.status_reason, %s, 'engine' "
            f"FROM {outbox} m WHERE {where} ORDER BY m.id",
            [connection.ops.adapt_datetimefield_value(now), *ids],
        )


def _enrollments_advance(enrollments: list[Enrollment]) -> None:
    """Save the batch's new steps_done, next_step_at and state. On PostgreSQL one UPDATE from
    arrays; elsewhere one UPDATE per distinct combination (a campaign's step and due time).
    Not Django's bulk_update, whose per-row CASE expressions cost more than the rest of the
    batch."""
    if connection.vendor == "postgresql":
        _enrollments_advance_arrays(enrollments)
        return
    groups: dict[tuple, list[int]] = defaultdict(list)
    for e in enrollments:
        groups[(e.steps_done, e.next_step_at, e.state)].append(e.pk)
    for (steps_done, next_step_at, state), ids in groups.items():
        Enrollment.objects.filter(pk__in=ids).update(
            steps_done=steps_done, next_step_at=next_step_at, state=state
        )


def _enrollments_advance_arrays(enrollments: list[Enrollment]) -> None:
    if not enrollments:
        return
    table = Enrollment._meta.db_table
    columns = list(
        zip(*((e.pk, e.steps_done, e.next_step_at, e.state) for e in enrollments), strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} e SET steps_done = v.steps_done, "  # noqa: S608
            "next_step_at = v.next_step_at, state = v.state "
            "FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[], %s::text[]) "
            "AS v(id, steps_done, next_step_at, state) WHERE e.id = v.id",
            [list(column) for column in columns],
        )


def _advance(enrollment: Enrollment, position: int, due: dt.datetime) -> None:
    """Step ``position`` is done: the next one falls due its delay after ``due``."""
    campaign = enrollment.campaign
    steps = campaign.step_list
    enrollment.steps_done = position
    if position < len(steps):
        following = steps[position]
        enrollment.next_step_at = step_due(
            previous=due,
            value=following.delay_value,
            unit=following.delay_unit,
            schedule=campaign.schedule or DEFAULT_SCHEDULE,
            tz=campaign.practice.tz,
        )
    else:
        enrollment.state, enrollment.next_step_at = EnrollmentState.COMPLETED, None


def steps_materialize(
    *, now: dt.datetime, practice_ids: Collection[int] | None = None
) -> tuple[int, int]:
    """Materialize every due step (of ``practice_ids``' enrollments only, one tick group, when
    given); return (messages queued, messages skipped).

    Each pass reads the due enrollments' ids once, in due order (at most ``PASS`` of them),
    then claims and materializes them ``BATCH`` at a time. Claiming each batch from the whole
    due set instead read every enrollment still due at every batch: a cost growing with the
    square of the due steps (a tenth of a second at 12,000, three quarters at 24,000). Another
    pass follows while the last one claimed anything: it finds the steps that fell due
    meanwhile (a next step without a delay, an enrollment made by a concurrent run); a pass
    whose enrollments were all claimed by another tick, or are no longer due, ends it."""
    queued = skipped = 0
    while True:
        due = _due_ids(now, practice_ids)
        claimed = 0
        for start in range(0, len(due), BATCH):
            batch_queued, batch_skipped, size = _batch(now, due[start : start + BATCH])
            queued += batch_queued
            skipped += batch_skipped
            claimed += size
        if not claimed:
            return queued, skipped


def _providers_attach(patients: Iterable[Patient], appointments: Iterable[Appointment]) -> None:
    """Give the batch's patients and appointments their providers (which rendering names),
    read once each: a practice has a few providers, and a join made one model instance of a
    provider per patient and per appointment, a fifth of the instances a batch built."""
    patients, appointments = list(patients), list(appointments)
    providers = Lookup.objects.in_bulk(
        {p.primary_provider_id for p in patients if p.primary_provider_id}
        | {a.provider_id for a in appointments if a.provider_id}
    )
    for patient in patients:
        if patient.primary_provider_id in providers:
            patient.primary_provider = providers[patient.primary_provider_id]
    for appointment in appointments:
        if appointment.provider_id in providers:
            appointment.provider = providers[appointment.provider_id]


def _due_ids(now: dt.datetime, practice_ids: Collection[int] | None) -> list[int]:
    """The ids of the enrollments whose next step is due, in due order (not locked)."""
    due = Enrollment.objects.filter(
        state=EnrollmentState.ACTIVE, next_step_at__lte=now, campaign__enabled=True
    )
    if practice_ids is not None:
        due = due.filter(practice_id__any=practice_ids)
    return list(due.order_by("next_step_at", "id").values_list("id", flat=True)[:PASS])


@transaction.atomic
def _batch(now: dt.datetime, ids: list[int]) -> tuple[int, int, int]:
    # The enrollments a run just made are not in the statistics yet: read by key.
    reads_by_key()
    # Lock the batch's enrollments by primary key, skipping those another tick holds, and
    # keep those still due (another tick may have moved some on since the pass read them).
    # Due-ness is checked here, not in the statement: with it there, PostgreSQL may read the
    # whole due range of the due-steps index to find the batch's few rows.
    locked = (
        Enrollment.objects.filter(pk__any=ids, campaign__enabled=True)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by()
        .values_list("id", "state", "next_step_at")
    )
    claimed = [
        pk
        for pk, state, due_at in locked
        if state == EnrollmentState.ACTIVE and due_at is not None and due_at <= now
    ]
    if not claimed:
        return 0, 0, 0
    commit_async()  # a batch a crash lost is materialized again by the next tick
    # Each related table read by primary key on its own (not joined): plans that stay
    # cheap whatever the statistics say.
    enrollments = list(Enrollment.objects.filter(pk__any=claimed).order_by("next_step_at", "id"))
    patients = Patient.objects.in_bulk({e.patient_id for e in enrollments})
    appointments = Appointment.objects.in_bulk(
        {e.appointment_id for e in enrollments if e.appointment_id}
    )
    _providers_attach(patients.values(), appointments.values())
    for enrollment in enrollments:
        enrollment.patient = patients[enrollment.patient_id]
        if enrollment.appointment_id:
            enrollment.appointment = appointments.get(enrollment.appointment_id)
    # The batch's few campaigns (with practice and steps) once, not joined into every row.
    campaigns = Campaign.objects.select_related("practice").prefetch_related(
        Prefetch("steps", to_attr="step_list")  # a list: no related manager per enrollment
    )
    campaigns = campaigns.in_bulk({e.campaign_id for e in enrollments})
    for enrollment in enrollments:
        enrollment.campaign = campaigns[enrollment.campaign_id]
    addresses = {e.pk: _address_day(e) for e in enrollments}
    taken = _addresses_taken({key for key in addresses.values() if key is not None})
    messages: list[OutboundMessage] = []
    # Link rows of the batch, saved after the messages (their tokens need no message id).
    tracked_links: list[TrackedLink] = []
    unsubscribe_tokens: list[UnsubscribeToken] = []
    for enrollment in enrollments:
        campaign, patient = enrollment.campaign, enrollment.patient
        steps = campaign.step_list
        position = enrollment.steps_done + 1
        if position > len(steps):  # the campaign lost steps since: nothing left to send
            enrollment.state, enrollment.next_step_at = EnrollmentState.COMPLETED, None
            continue
        step = steps[position - 1]
        due = enrollment.next_step_at
        if enrollment.arm == HOLDOUT:
            # The control group walks the same steps at the same times (goals and outcomes
            # are tracked alike) but is sent nothing: no outbox row, whatever the step.
            _advance(enrollment, position, due)
            continue
        variant = step_variant(step, enrollment)
        subject_template, body_template = (
            (variant.get("subject", ""), variant["body"]) if variant else (step.subject, step.body)
        )
        to, reason = _recipient(patient, step.channel)
        address = addresses[enrollment.pk]
        if to and address is not None:
            # Families share phones and emails: one message per address per campaign per
            # local day, whatever the step (the first in due order gets it).
            if address in taken:
                to, reason = "", SHARED_ADDRESS
            taken.add(address)
        # Every email that goes out carries its own unsubscribe link.
        unsubscribe_token = unsubscribe_token_new() if to and step.channel == Channel.EMAIL else ""
        links = (
            {"UnsubscribeLink": unsubscribe_url(unsubscribe_token)} if unsubscribe_token else None
        )
        asks = (
            step.ask_confirmation
            and step.channel == Channel.SMS
            and enrollment.appointment_id is not None
        )
        if asks:
            body_template = (
                f"{body_template}\n"
                f"{campaign.practice.confirmation_wording('confirmation_request_text')}"
            )
        subject, body = render_message(
            channel=step.channel,
            subject=subject_template,
            body=body_template,
            patient=patient,
            practice=campaign.practice,
            appointment=enrollment.appointment,
            links=links,
        )
        if links:
            body = unsubscribe_footer_add(body=body, url=links["UnsubscribeLink"])
            if campaign.purpose == Purpose.MARKETING:
                body = postal_address_footer_add(
                    body=body, address=campaign.practice.postal_address
                )
        # The STOP footer of a patient's first text is decided when it is sent (the outbox).
        message = OutboundMessage(
            practice_id=enrollment.practice_id,
            enrollment=enrollment,
            campaign=campaign,
            step_position=position,
            patient=patient,
            channel=step.channel,
            to=to,
            subject=subject,
            body=body,
            status=MessageStatus.QUEUED if to else MessageStatus.SKIPPED,
            status_reason=reason,
            variant=variant["name"] if variant else None,
            purpose=campaign.purpose,
            priority=campaign.priority,
            scheduled_for=due,
            expires_at=end_of_local_day(due, campaign.practice.tz)
            if is_continuous(campaign.trigger or {})
            else None,
        )
        if address is not None:  # queued, or skipped for the address (it keeps the key)
            _, _, message.address_key, message.local_day = address
        if to:
            message.body = links_track(
                message=message, body=body, channel=step.channel, pending=tracked_links
            )
        if unsubscribe_token:
            unsubscribe_tokens.append(
                UnsubscribeToken(
                    practice_id=enrollment.practice_id, message=message, token=unsubscribe_token
                )
            )
        if to and enrollment.appointment_id:
            # Self-contained: if the appointment moves, the send re-renders the message from
            # the templates it was made from, whatever edits the campaign's steps had since.
            message.subject_template, message.body_template = subject_template, body_template
        if to and asks:
            message.confirmation_appointment_id = enrollment.appointment_id
        message.practice = campaign.practice  # for the trust rules, without a query
        messages.append(message)
        _advance(enrollment, position, due)
    # Consent, state hours and the practice's caps (DESIGN §5.8), for the batch at once.
    messages_trust_apply(messages)
    models_insert(messages)
    models_insert(tracked_links)
    models_insert(unsubscribe_tokens)
    _events_record([m.pk for m in messages], now)
    _enrollments_advance(enrollments)
    skipped = sum(m.status == MessageStatus.SKIPPED for m in messages)
    return len(messages) - skipped, skipped, len(enrollments)
