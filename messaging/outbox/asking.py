"""A text that asks went out: its appointment now waits for an answer (DESIGN §7)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from patients.models import Appointment, Confirmation
from patients.services import appointment_confirmation_set
from trackstat.models import Practice


def confirmations_request(*, appointment_ids: Iterable[int], at: dt.datetime) -> int:
    """Mark these appointments ``requested`` unless the patient already answered (a later
    reminder that asks again does not undo a confirmation). Answers how many changed."""
    changed = 0
    appointments = Appointment.objects.filter(
        pk__in=set(appointment_ids), confirmation=Confirmation.NONE
    ).select_related("practice")
    for appointment in appointments:
        practice: Practice = appointment.practice
        changed += appointment_confirmation_set(
            practice=practice,
            appointment=appointment,
            confirmation=Confirmation.REQUESTED,
            at=at,
        )
    return changed
