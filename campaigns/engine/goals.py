"""Goals (DESIGN §5.5) and other exits: a met goal ends the enrollment at once, and its
queued messages are canceled."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from campaigns.models import Campaign, Enrollment, EnrollmentState
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.status import messages_transition
from patients.models import UPCOMING_STATUSES, Appointment, AppointmentStatus, Confirmation
from trackstat.models import Practice


def future_appointment_q(goal: dict, now: dt.datetime) -> Exists:
    """An upcoming scheduled or confirmed appointment booked after the patient entered."""
    appointments = Appointment.objects.filter(
        patient_id=OuterRef("patient_id"),
        status__in=UPCOMING_STATUSES,
        start__gt=now,
        booked_at__gt=OuterRef("entered_at"),
    )
    filters = goal.get("filters") or {}
    if filters.get("appointment_purposes"):
        appointments = appointments.filter(purpose__name__in=filters["appointment_purposes"])
    if filters.get("providers"):
        appointments = appointments.filter(provider__name__in=filters["providers"])
    return Exists(appointments)


def confirmed_q() -> Q:
    """The enrollment's appointment is confirmed: by the patient's answer or by the EMR."""
    return Q(appointment__confirmation=Confirmation.CONFIRMED) | Q(
        appointment__status=AppointmentStatus.CONFIRMED
    )


def goals_apply(
    *,
    now: dt.datetime,
    practice: Practice | None = None,
    patient_ids: Iterable[int] | None = None,
    practice_ids: Collection[int] | None = None,
) -> int:
    """End every active enrollment whose ``future_appointment`` or ``confirmed`` goal is met;
    return how many.

    Runs in every tick, right after appointments are synced and right after a patient's
    answer (for those patients only). ``clicked_link`` goals are met by the tracked-link click
    itself. ``practice_ids``: only these practices' campaigns (one tick group).
    """
    patient_ids = list(patient_ids) if patient_ids is not None else None
    campaigns = Campaign.objects.filter(goal__type__in=["future_appointment", "confirmed"])
    if practice is not None:
        campaigns = campaigns.filter(practice=practice)
    if practice_ids is not None:
        campaigns = campaigns.filter(practice_id__any=practice_ids)
    # One read of the campaigns with either goal; then one query per distinct
    # future_appointment goal (its purpose and provider filters), not per campaign: the goal's
    # condition does not depend on the campaign otherwise; and one for the confirmed goals,
    # only where a campaign has one (every tick pays this phase).
    by_goal: dict[str, tuple[dict, list[int]]] = {}
    confirmed_campaigns: list[int] = []
    for pk, goal in campaigns.values_list("pk", "goal").order_by("pk"):
        if goal.get("type") == "confirmed":
            confirmed_campaigns.append(pk)
            continue
        key = json.dumps(goal.get("filters") or {}, sort_keys=True)
        by_goal.setdefault(key, (goal, []))[1].append(pk)
    ids: list[int] = []
    if confirmed_campaigns:
        confirmed = Enrollment.objects.filter(
            campaign_id__any=confirmed_campaigns, state=EnrollmentState.ACTIVE
        ).filter(confirmed_q())
        if patient_ids is not None:
            confirmed = confirmed.filter(patient_id__any=patient_ids)
        ids += confirmed.order_by().values_list("pk", flat=True)
    for goal, campaign_ids in by_goal.values():
        enrollments = Enrollment.objects.filter(
            campaign_id__any=campaign_ids, state=EnrollmentState.ACTIVE
        )
        if patient_ids is not None:
            enrollments = enrollments.filter(patient_id__any=patient_ids)
        ids += (
            enrollments.filter(future_appointment_q(goal, now))
            .order_by()
            .values_list("pk", flat=True)
        )
    return enrollments_exit(enrollment_ids=ids, reason="goal_met", now=now)


@transaction.atomic
def enrollments_exit(
    *,
    enrollment_ids: list[int],
    reason: str,
    now: dt.datetime,
    states: tuple[str, ...] = (EnrollmentState.ACTIVE,),
) -> int:
    """End these enrollments (no later step is sent) and cancel their queued messages.

    Only enrollments in ``states`` exit (once: an exited one is left alone); a goal the
    patient meets after the last step went out also ends a ``completed`` one (see
    ``enrollment_goal_meet``).
    """
    if not enrollment_ids:
        return 0
    exited = Enrollment.objects.filter(pk__any=enrollment_ids, state__in=states).update(
        state=EnrollmentState.EXITED,
        exit_reason=reason,
        exited_at=now,
        next_step_at=None,
        report_pending=reason == "goal_met",  # a conversion, for the reports
    )
    queued = OutboundMessage.objects.filter(
        Q(status=MessageStatus.QUEUED), enrollment_id__any=enrollment_ids
    )
    messages_transition(
        messages=queued,
        status=MessageStatus.CANCELED,
        reason=reason.replace("_", " "),
        at=now,
        source="engine",
    )
    return exited


def goal_met_by_click(goal: dict | None, url: str) -> bool:
    """Whether opening ``url`` meets a campaign's goal (``clicked_link``, optionally only for
    its ``url``)."""
    if not goal or goal.get("type") != "clicked_link":
        return False
    wanted = goal.get("url")
    return not wanted or wanted.rstrip("/") == url.rstrip("/")


def enrollment_link_clicked(*, enrollment_id: int, url: str, now: dt.datetime) -> bool:
    """The patient opened a tracked link (to ``url``) of one of this enrollment's messages: a
    ``clicked_link`` goal of its campaign is met (``enrollment_goal_meet``). Returns whether
    this click met it."""
    enrollment = (
        Enrollment.objects.select_related("campaign")
        .filter(pk=enrollment_id)
        # A completed enrollment (the click came after its last step went out, or while that
        # step is still queued: it is canceled) meets the goal too: it counts as a conversion.
        .exclude(state=EnrollmentState.EXITED)
        .first()
    )
    if enrollment is None or not goal_met_by_click(enrollment.campaign.goal, url):
        return False
    return enrollment_goal_meet(enrollment_id=enrollment.pk, now=now)


def enrollment_goal_meet(*, enrollment_id: int, now: dt.datetime) -> bool:
    """The patient met the goal by their own action (a tracked-link click): the enrollment
    exits ``goal_met`` and counts as a conversion, once.

    A click can come after the last step went out, when the enrollment is already
    ``completed``: the goal still counts (the report's conversions), and the sequence stays
    over (an exited enrollment is never due again). Returns whether this call met it.
    """
    return bool(
        enrollments_exit(
            enrollment_ids=[enrollment_id],
            reason="goal_met",
            now=now,
            states=(EnrollmentState.ACTIVE, EnrollmentState.COMPLETED),
        )
    )
