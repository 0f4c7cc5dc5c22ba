"""The patients app's events for the EMR (DESIGN §4.1.1): opt-outs and opt-ins.

``opt_out_event_emit`` is the one place an opt-out or opt-in becomes a ``patient.opted_out``
/ ``patient.opted_in`` event, whatever its source (staff, EMR sync, SMS reply, unsubscribe
link, provider report); call it wherever an opt-out is recorded, in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from trackstat.events import event_emit
from trackstat.models import EventType, Practice


def opt_out_event_emit(
    *, practice: Practice, patient_external_id: str, channel: str, opted_out: bool, source: str
) -> None:
    """Record that a patient opted out of (or back into) a channel. Ids only, no PHI."""
    event_emit(
        practice=practice,
        type=EventType.PATIENT_OPTED_OUT if opted_out else EventType.PATIENT_OPTED_IN,
        data={
            "patient_external_id": patient_external_id,
            "channel": channel,
            "source": str(source),
        },
    )


def confirmation_event_emit(
    *,
    practice: Practice,
    appointment,
    patient_external_id: str,
    emitted_at: dt.datetime | None = None,
) -> None:
    """``appointment.confirmation_changed``: the appointment's confirmation as it is now.

    ``emitted_at``: the instant of the change (a tick's ``now``, which ``manage.py tick --now``
    sets), so that its webhook deliveries fall due then; default the wall clock."""
    at = appointment.confirmation_at
    event_emit(
        practice=practice,
        type=EventType.APPOINTMENT_CONFIRMATION_CHANGED,
        at=emitted_at,
        data={
            "appointment_external_id": appointment.external_id,
            "patient_external_id": patient_external_id,
            "confirmation": appointment.confirmation,
            "confirmation_at": (
                at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if at else None
            ),
        },
    )
