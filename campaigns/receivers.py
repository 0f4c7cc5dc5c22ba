"""The engine's answers to what the apps below announce (``patients.signals``,
``messaging.signals``)."""

from __future__ import annotations

from django.dispatch import receiver
from django.utils import timezone

from campaigns.engine.goals import enrollment_link_clicked, enrollments_exit, goals_apply
from campaigns.models import Enrollment, EnrollmentState
from messaging.signals import confirmation_answered, link_clicked
from patients.signals import appointments_synced


@receiver(appointments_synced, dispatch_uid="campaigns.goals_on_sync")
def goals_on_sync(sender, *, practice, patient_ids, **kwargs) -> None:
    """A booked appointment ends a ``future_appointment`` enrollment right away."""
    goals_apply(now=timezone.now(), practice=practice, patient_ids=patient_ids)


@receiver(link_clicked, dispatch_uid="campaigns.goal_on_click")
def goal_on_click(sender, *, message, url, at, **kwargs) -> None:
    """A tracked-link click meets a ``clicked_link`` goal of the message's campaign."""
    if message.enrollment_id is not None:
        enrollment_link_clicked(enrollment_id=message.enrollment_id, url=url, now=at)


@receiver(confirmation_answered, dispatch_uid="campaigns.on_confirmation_answered")
def reminders_on_answer(sender, *, practice, appointment, answer, at, **kwargs) -> None:
    """A confirmation meets ``confirmed`` goals at once; a request to cancel or reschedule
    stops the later reminders about that appointment (reason ``patient_replied``)."""
    if answer == "confirm":
        goals_apply(now=at, practice=practice, patient_ids=[appointment.patient_id])
        return
    enrollment_ids = list(
        Enrollment.objects.filter(
            practice=practice, appointment=appointment, state=EnrollmentState.ACTIVE
        ).values_list("pk", flat=True)
    )
    enrollments_exit(enrollment_ids=enrollment_ids, reason="patient_replied", now=at)
