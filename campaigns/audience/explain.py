"""Why a patient would or would not enter a campaign at an instant (the "Why?" panel and
``GET /api/v1/campaigns/{id}/explain``): each trigger and filter condition, each exclusion
(naming the message or enrollment that excludes), channels and quiet hours."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from campaigns.audience.exclusions import pending_drip_enrollments, recent_drip_messages
from campaigns.audience.filters import with_filter_annotations
from campaigns.audience.triggers import RunContext
from campaigns.experiments.arms import (
    HELD_OUT,
    HOLDOUT,
    TREATMENT,
    arm_of,
    has_experiment,
    variant_weights,
)
from campaigns.language.filters import APPOINTMENT_FILTERS, CONDITION_LABELS
from campaigns.language.triggers import trigger_row
from campaigns.models import Campaign, CampaignKind, Enrollment
from messaging.models import Channel
from messaging.outbox.trust import trust_explain
from patients.models import VISIT_STATUSES, Appointment, Patient, PatientStatus


def _filter_value(campaign: Campaign, name: str):
    filters = campaign.filters or {}
    if name.startswith("tags."):
        return filters["tags"][name.split(".")[1]]
    if name == "appointment":
        return {k: filters[k] for k in APPOINTMENT_FILTERS if k in filters}
    return filters.get(name)


def _trigger_detail(campaign: Campaign, patient: Patient, ctx: RunContext) -> str:
    """What the patient's own data says about the trigger, in staff's words (by the ``evidence``
    of its row in the trigger table)."""
    trigger = campaign.trigger or {}
    row = trigger_row(trigger)
    evidence = row.evidence if row else None
    today = ctx.today
    if evidence == "birth_date":
        if not patient.birth_date:
            return "No birth date on file."
        return f"Born {patient.birth_date:%B %-d}; today is {today:%B %-d, %Y}."
    if evidence == "first_visit":
        if not patient.first_visit_date:
            return "No first visit on file."
        return f"First visit {patient.first_visit_date.isoformat()}; today is {today.isoformat()}."
    appointments = Appointment.objects.filter(patient=patient)
    if evidence == "last_visit":
        last = (
            appointments.filter(status__in=VISIT_STATUSES, start__lte=ctx.at)
            .order_by("-start")
            .first()
        )
        if last is None:
            return "No checked-in visit on file."
        days = (today - last.local_date).days
        return f"Latest visit {last.local_date.isoformat()} ({days} days before today)."
    if evidence == "last_scheduled":
        last = appointments.exclude(status__in=["cancelled", "rescheduled"]).order_by("-start")
        last = last.first()
        if last is None:
            return "No appointment on file."
        return f"Latest scheduled appointment {last.local_date.isoformat()}."
    if evidence == "appointments_near":
        near = appointments.filter(
            local_date__gte=today - dt.timedelta(days=1),
            local_date__lte=today + dt.timedelta(days=max(trigger.get("days", 0), 1)),
        ).order_by("start")
        if not near:
            return "No appointment around today."
        tz = campaign.practice.tz
        return "; ".join(
            f"{a.start.astimezone(tz):%Y-%m-%d %H:%M} {a.get_status_display()}" for a in near[:5]
        )
    return ""


def _channels(campaign: Campaign, patient: Patient) -> list[dict]:
    channels = []
    for channel in sorted({step.channel for step in campaign.steps.all()}):
        if channel == Channel.SMS:
            usable, reason = bool(patient.phone), "" if patient.phone else "No mobile phone."
            if patient.sms_opt_out:
                usable, reason = False, "Opted out of text messages."
        else:
            usable, reason = bool(patient.email), "" if patient.email else "No email address."
            if patient.email_opt_out:
                usable, reason = False, "Opted out of email."
        channels.append({"channel": channel, "usable": usable, "reason": reason})
    return channels


def _quiet_hours(campaign: Campaign, ctx: RunContext) -> dict:
    practice = campaign.practice
    local = ctx.at.astimezone(practice.tz)
    inside = practice.sending_window_start <= local.time() < practice.sending_window_end
    return {
        "window": f"{practice.sending_window_start:%H:%M}-{practice.sending_window_end:%H:%M}",
        "local_time": local.strftime("%H:%M"),
        "texts_may_go_now": inside,
    }


def _local(at: dt.datetime, campaign: Campaign) -> str:
    return f"{at.astimezone(campaign.practice.tz):%Y-%m-%d %H:%M}"


def _recent_detail(campaign: Campaign, patient: Patient, ctx: RunContext) -> str | None:
    """The message (or, within a tick, the enrollment) of another drip that excludes the
    patient, in staff's words; None when there is none."""
    message = (
        recent_drip_messages(campaign, at=ctx.at)
        .filter(patient=patient)
        .select_related("campaign")
        .order_by("-scheduled_for", "-id")
        .first()
    )
    if message is not None:
        if message.sent_at:
            when = f"sent {_local(message.sent_at, campaign)}"
        else:
            status = message.get_status_display().lower()
            when = f"{status}, due {_local(message.scheduled_for, campaign)}"
        channel = message.get_channel_display()
        return f"{channel} message {message.pk} of “{message.campaign.name}”, {when}."
    enrollment = (
        pending_drip_enrollments(campaign, at=ctx.at)
        .filter(patient=patient)
        .select_related("campaign")
        .order_by("-entered_at", "-id")
        .first()
    )
    if enrollment is not None:
        return (
            f"Entered “{enrollment.campaign.name}” at {_local(enrollment.entered_at, campaign)} "
            f"(enrollment {enrollment.pk}); its first message is not in the outbox yet."
        )
    return None


def _exclusion_checks(
    campaign: Campaign,
    patient: Patient,
    ctx: RunContext,
    occurrence_key: str | None,
    enrolled_first_by: list[Campaign],
) -> list[dict]:
    """The exclusions a run applies (DESIGN §5.6), each naming what excludes."""
    checks = [
        {
            "check": "exclusion: the patient is not deceased",
            "passed": patient.status != PatientStatus.DECEASED,
            "detail": "Status: deceased." if patient.status == PatientStatus.DECEASED else None,
        }
    ]
    if campaign.exclude_recent_days:
        days = campaign.exclude_recent_days
        recent = _recent_detail(campaign, patient, ctx)
        checks.append(
            {
                "check": f"exclusion: no message of another drip campaign in the last {days} "
                f"day{'s' if days != 1 else ''}",
                "passed": recent is None,
                "detail": recent,
            }
        )
        checks.append(
            {
                "check": "exclusion: no other drip campaign enrolls the patient first in the "
                "same tick",
                "passed": not enrolled_first_by,
                "detail": "; ".join(
                    f"“{other.name}” runs before this campaign at this instant and enrolls "
                    "the patient."
                    for other in enrolled_first_by
                )
                or None,
            }
        )
    entered = None
    if occurrence_key is not None and campaign.pk is not None:
        entered = (
            Enrollment.objects.filter(
                campaign=campaign, patient=patient, occurrence_key=occurrence_key
            )
            .order_by("entered_at", "id")
            .first()
        )
    checks.append(
        {
            "check": "exclusion: this occurrence has not entered yet",
            "passed": entered is None,
            "detail": (
                f"Entered at {_local(entered.entered_at, campaign)} (enrollment {entered.pk}, "
                f"occurrence {occurrence_key})."
                if entered
                else occurrence_key
            ),
        }
    )
    return checks


def explain_patient(
    campaign: Campaign,
    patient: Patient,
    ctx: RunContext,
    patients: QuerySet,
    conditions: list[tuple[str, Q]],
    *,
    occurrence_key: str | None,
    enrolled_first_by: list[Campaign],
) -> dict:
    """The verdict on ``patient``: each trigger and filter condition, then each exclusion.

    ``occurrence_key`` is the occurrence a run at ``ctx.at`` would enroll (None when it would
    not), ``enrolled_first_by`` the drips that would enroll the patient earlier in the same
    tick: both from the engine's own queries, so ``would_enter`` is what a run would do.
    """
    matched = patients.filter(pk=patient.pk).values("occurrence_key").first()
    # Filters are judged on the patient alone, whatever the trigger says.
    mine = with_filter_annotations(Patient.objects.filter(pk=patient.pk))
    checks = []
    if campaign.kind == CampaignKind.DRIP:
        checks.append(
            {
                "check": f"trigger: {campaign.trigger['type']}",
                "passed": matched is not None,
                "detail": _trigger_detail(campaign, patient, ctx),
            }
        )
    for name, condition in conditions:
        checks.append(
            {
                "check": f"filter: {CONDITION_LABELS.get(name, name)}",
                "passed": mine.filter(condition).exists(),
                "detail": _filter_value(campaign, name),
            }
        )
    if campaign.kind == CampaignKind.BLAST:
        removed = campaign.exclusions.filter(patient=patient).exists()
        checks.append(
            {"check": "not removed from the blast", "passed": not removed, "detail": None}
        )
    checks += _exclusion_checks(
        campaign,
        patient,
        ctx,
        matched["occurrence_key"] if matched else None,
        enrolled_first_by,
    )
    channels = _channels(campaign, patient)
    arm = _arm(campaign, patient)
    return {
        "campaign": campaign.pk,
        "patient_external_id": patient.external_id,
        "at": ctx.at.isoformat(),
        "local_date": ctx.today.isoformat(),
        "enabled": campaign.enabled,
        "would_enter": occurrence_key is not None,
        "occurrence_key": occurrence_key,
        "checks": checks,
        "channels": channels,
        "reachable": any(c["usable"] for c in channels),
        "quiet_hours": _quiet_hours(campaign, ctx),
        **arm,
        # Purpose, the consent that decides per channel, caps with their numbers, state
        # rules and when a message due now would go out (DESIGN §5.8).
        "trust": trust_explain(
            practice=campaign.practice,
            patient=patient,
            purpose=campaign.purpose,
            channels=[c["channel"] for c in channels],
            at=ctx.at,
        ),
    }


def _arm(campaign: Campaign, patient: Patient) -> dict:
    """The experiment arm the patient enters (DESIGN §5.9): empty without an experiment."""
    steps = list(campaign.steps.all()) if campaign.pk else []
    if campaign.pk is None or not has_experiment(campaign, steps):
        return {"arm": None, "arm_detail": None}
    arm = arm_of(
        campaign_id=campaign.pk,
        patient_id=patient.pk,
        holdout_percent=campaign.holdout_percent,
        variants=variant_weights(steps),
    )
    if arm == HOLDOUT:
        detail = f"{HELD_OUT}: enters and is tracked, but is sent nothing."
    elif arm == TREATMENT:
        detail = "treatment: is sent the campaign's messages."
    else:
        detail = f"variant {arm}: is sent variant {arm} of each variant step."
    return {"arm": arm, "arm_detail": detail}
