"""Goals (DESIGN §5.5) and other exits: a met goal ends the enrollment at once, and its
queued messages are canceled."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from campaigns.models import Campaign, Enrollment, EnrollmentState
from messaging.models import MessageStatus, OutboundMessage
from messaging.status import messages_transition
from patients.models import UPCOMING_STATUSES, Appointment
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


def goals_apply(
    *,
    now: dt.datetime,
    practice: Practice | None = None,
    patient_ids: Iterable[int] | None = None,
) -> int:
    """End every active enrollment whose ``future_appointment`` goal is met; return how many.

    Runs in every tick, and right after appointments are synced (for those patients only).
    ``clicked_link`` goals are met by the tracked-link click itself.
    """
    campaigns = Campaign.objects.filter(goal__type="future_appointment")
    if practice is not None:
        campaigns = campaigns.filter(practice=practice)
    met = 0
    for campaign in campaigns:
        enrollments = Enrollment.objects.filter(campaign=campaign, state=EnrollmentState.ACTIVE)
        if patient_ids is not None:
            enrollments = enrollments.filter(patient_id__in=list(patient_ids))
        ids = list(
            enrollments.filter(future_appointment_q(campaign.goal, now)).values_list(
                "pk", flat=True
            )
        )
        met += enrollments_exit(enrollment_ids=ids, reason="goal_met", now=now)
    return met


@transaction.atomic
def enrollments_exit(*, enrollment_ids: list[int], reason: str, now: dt.datetime) -> int:
    """End these enrollments (no later step is sent) and cancel their queued messages."""
    if not enrollment_ids:
        return 0
    exited = Enrollment.objects.filter(pk__in=enrollment_ids, state=EnrollmentState.ACTIVE).update(
        state=EnrollmentState.EXITED,
        exit_reason=reason,
        exited_at=now,
        next_step_at=None,
        report_pending=reason == "goal_met",  # a conversion, for the reports
    )
    queued = OutboundMessage.objects.filter(
        Q(status=MessageStatus.QUEUED), enrollment_id__in=enrollment_ids
    )
    messages_transition(
        messages=queued,
        status=MessageStatus.CANCELED,
        reason=reason.replace("_", " "),
        at=now,
        source="engine",
    )
    return exited
