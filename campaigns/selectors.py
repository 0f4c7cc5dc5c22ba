"""Read-side queries of campaigns: lists, the audience at an instant, "why?", and the previews
of the campaign pages (a draft's live audience, a message rendered for a real patient, a
blast's recipients)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Count, Q, QuerySet

from campaigns.audience.explain import explain_patient
from campaigns.audience.query import (
    audience_candidates,
    campaign_sets,
    entering,
    entering_rows,
    tick_predecessors,
)
from campaigns.audience.triggers import RunContext
from campaigns.content.email_html import sanitize_email_html
from campaigns.content.render import render_message
from campaigns.content.sms import sms_counts
from campaigns.language.describe import describe_filters, describe_trigger
from campaigns.language.triggers import is_continuous
from campaigns.models import (
    BlastExclusion,
    Campaign,
    CampaignKind,
    Channel,
    Enrollment,
    MessageTemplate,
    TemplateFolder,
)
from messaging.models import OutboundMessage
from messaging.outbox.trust import sending_time, state_code, state_rule_for
from messaging.outbox.window import practice_next_sending_time
from patients.models import UPCOMING_STATUSES, Appointment, Patient
from patients.selectors import patient_list
from trackstat.models import Practice


def campaign_list(*, practice: Practice, kind: str | None = None) -> QuerySet[Campaign]:
    """The practice's campaigns in use (archived ones are left out), with their steps."""
    campaigns = Campaign.objects.filter(
        practice=practice, archived_at__isnull=True
    ).prefetch_related("steps")
    return campaigns.filter(kind=kind) if kind else campaigns


def campaign_has_history(campaign: Campaign) -> bool:
    """Whether anything was done in the campaign's name (an enrollment or an outbox row):
    then deleting it archives it (``services.campaign_delete``)."""
    return (
        Enrollment.objects.filter(campaign=campaign).exists()
        or OutboundMessage.objects.filter(campaign=campaign).exists()
    )


def template_folders(*, practice: Practice) -> QuerySet[TemplateFolder]:
    """The practice's folders and the operator's master library (read-only), with templates."""
    return (
        TemplateFolder.objects.filter(Q(practice=practice) | Q(practice__isnull=True))
        .prefetch_related("templates")
        .order_by("practice_id", "name")
    )


def template_visible(*, practice: Practice) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.filter(Q(practice=practice) | Q(practice__isnull=True))


def audience(campaign: Campaign, *, at: dt.datetime) -> QuerySet[Patient]:
    """Who would enter ``campaign`` if it ran at ``at``, after the same exclusions a run
    applies (DESIGN §4.1): ``audience_candidates`` whose occurrence has not entered yet, and
    with ``exclude_recent_days``, none whom a drip running before it in the same tick
    enrolls. Each patient carries ``occurrence_key`` and ``trigger_appointment_id``.

    The engine's own queries (``audience_candidates``, ``new_occurrences_sql``), so that the
    audience and ``explain`` agree with what a tick then does.
    """
    candidates = audience_candidates(campaign, at=at)
    patients = candidates.filter(pk__in=entering(campaign, candidates))
    if campaign.exclude_recent_days:
        # A patient whom an earlier drip of the tick enrolls has a pending enrollment by the
        # time this campaign runs (whether or not that drip's own exclusions kept her out of
        # it: then a drip before that one enrolled her).
        for earlier in tick_predecessors(campaign, at=at):
            patients = patients.exclude(
                pk__in=entering(earlier, audience_candidates(earlier, at=at))
            )
    return patients.order_by("last_name", "first_name", "id")


def explain(campaign: Campaign, patient: Patient, *, at: dt.datetime) -> dict:
    """Why ``patient`` would or would not enter ``campaign`` at ``at``, condition by condition
    and exclusion by exclusion; ``would_enter`` is what a run at ``at`` would do (the
    engine's queries, for this patient).

    A handful of queries for one patient (one per selected filter), never one per patient of
    the practice.
    """
    ctx = RunContext(practice=campaign.practice, at=at)
    patients, conditions = campaign_sets(campaign, ctx)
    rows = entering_rows(campaign, audience_candidates(campaign, at=at).filter(pk=patient.pk))
    earlier = []
    if campaign.exclude_recent_days:
        earlier = [
            other
            for other in tick_predecessors(campaign, at=at)
            if entering_rows(other, audience_candidates(other, at=at).filter(pk=patient.pk))
        ]
    return explain_patient(
        campaign,
        patient,
        ctx,
        patients,
        conditions,
        occurrence_key=rows[0][1] if rows and not earlier else None,
        enrolled_first_by=earlier,
    )


# --- Previews of the campaign pages ------------------------------------------------------------


def audience_live(
    *,
    practice: Practice,
    trigger: dict | None,
    filters: dict | None,
    at: dt.datetime,
    can_see_financials: bool,
) -> dict:
    """A draft's audience as the wizard shows it beside the form: how many would enter at
    ``at`` (``count``; None until the trigger and filters are valid) and the trigger and the
    selected filters in staff's words."""
    live = {
        "at": at,
        "filters": describe_filters(filters, can_see_financials=can_see_financials),
        "trigger": describe_trigger(trigger) if trigger else "",
        "count": None,
    }
    if trigger is not None and filters is not None:
        unsaved = Campaign(
            practice=practice, kind=CampaignKind.DRIP, trigger=trigger, filters=filters
        )
        live["count"] = audience(unsaved, at=at).count()
    return live


def preview_appointment(*, patient: Patient, at: dt.datetime) -> Appointment | None:
    """The appointment a preview uses: the patient's next upcoming one, else their latest."""
    appointments = Appointment.objects.filter(patient=patient).select_related("provider")
    upcoming = appointments.filter(start__gt=at, status__in=UPCOMING_STATUSES)
    return upcoming.order_by("start").first() or appointments.order_by("-start").first()


def message_preview(
    *,
    practice: Practice,
    query: str,
    message: dict,
    at: dt.datetime,
    draft: dict | None = None,
) -> dict:
    """A message (``channel``, ``subject``, ``body``) rendered for a real patient: the first
    that ``query`` finds (by name or id); without a query, the first patient the ``draft``'s
    trigger and filters match now (someone the campaign would message, not an inactive
    patient it excludes), else the practice's first; ``error`` when none."""
    patient = None
    if not query.strip() and draft and draft.get("trigger"):
        unsaved = Campaign(
            practice=practice,
            kind=CampaignKind.DRIP,
            trigger=draft["trigger"],
            filters=draft.get("filters") or {},
        )
        try:
            patient = audience_candidates(unsaved, at=at).order_by("last_name", "pk").first()
        except (KeyError, TypeError, ValueError):  # a draft not complete yet
            patient = None
    if patient is None:
        patient = patient_list(practice=practice, query=query).first()
    if patient is None:
        return {"error": f"No patient matches “{query}”." if query else "No patients yet."}
    appointment = preview_appointment(patient=patient, at=at)
    subject, body = render_message(
        channel=message["channel"],
        subject=message["subject"],
        body=message["body"],
        patient=patient,
        practice=practice,
        appointment=appointment,
    )
    preview = {
        "patient": patient,
        "appointment": appointment,
        "channel": message["channel"],
        "subject": subject,
        "body": body,
    }
    if message["channel"] == Channel.EMAIL:
        preview["html"] = sanitize_email_html(body)
    else:
        preview.update(sms_counts(body))
    return preview


def blast_goes_out_at(campaign: Campaign, *, now: dt.datetime) -> dt.datetime:
    """When a blast's messages actually go out if it is enabled: its ``send_at`` (now, when
    that is absent or past), held for the practice's quiet hours."""
    due = max(campaign.send_at or now, now)
    return practice_next_sending_time(campaign.practice, due)


def blast_recipients(campaign: Campaign, *, at: dt.datetime) -> QuerySet[Patient]:
    """Who a blast not yet sent would reach at ``at``, in name order (``audience``)."""
    return audience(campaign, at=at).select_related("primary_provider")


def blast_removed(campaign: Campaign) -> QuerySet[BlastExclusion]:
    """The recipients staff took off the blast, in name order."""
    return (
        BlastExclusion.objects.filter(campaign=campaign)
        .select_related("patient")
        .order_by("patient__last_name", "patient__first_name", "patient_id")
    )


def blast_includes(campaign: Campaign, patient: Patient) -> bool:
    """Whether staff left ``patient`` on the blast (not removed)."""
    return not BlastExclusion.objects.filter(campaign=campaign, patient=patient).exists()


def send_forecast(campaign: Campaign, recipients: QuerySet[Patient], *, at: dt.datetime) -> list:
    """When a blast's message (or a step due at ``at``) actually goes out for these
    recipients: one line per sending time, with how many patients and the state rule that
    holds some of them back (quiet hours for everyone; marketing texts by the patient's
    state, DESIGN §5.8). One grouped query, whatever the number of recipients."""
    step = campaign.steps.first()
    if step is None:
        return []
    practice = campaign.practice
    groups: dict[tuple, int] = defaultdict(int)
    by_state = recipients.order_by().values_list("state").annotate(n=Count("id"))
    for state, count in by_state:
        rule = state_rule_for(
            practice=practice, patient_state=state, purpose=campaign.purpose, channel=step.channel
        )
        goes = sending_time(
            practice=practice,
            at=at,
            channel=step.channel,
            purpose=campaign.purpose,
            patient_state=state,
        )
        groups[(goes, state_code(state) if rule else "")] += count
    return [
        {"at": goes, "count": count, "state": state}
        for (goes, state), count in sorted(groups.items())
    ]


def same_trigger_overlaps(
    *,
    practice: Practice,
    trigger: dict,
    filters: dict,
    at: dt.datetime,
    campaign_id: int | None = None,
) -> dict:
    """Before a drip is turned on: the practice's other drips that are on and have the same
    trigger type, each with how many of this draft's audience at ``at`` it also reaches (its
    trigger and filters match them now, whether or not it has messaged them already), and a
    non-zero "skip patients messaged in the last N days" that keeps anyone from getting both
    (one day for the same-day triggers, a week otherwise).

    ``{"audience": n, "campaigns": [{"campaign", "shared"}], "suggested_days": n}``."""
    others = (
        Campaign.objects.filter(
            practice=practice,
            kind=CampaignKind.DRIP,
            enabled=True,
            archived_at__isnull=True,
            trigger__type=trigger.get("type"),
        )
        .exclude(pk=campaign_id)
        .order_by("name", "pk")
    )
    draft = Campaign(practice=practice, kind=CampaignKind.DRIP, trigger=trigger, filters=filters)
    mine = audience(draft, at=at)
    overlaps = [
        {
            "campaign": other,
            "shared": audience_candidates(other, at=at).filter(pk__in=mine.values("pk")).count(),
        }
        for other in others
    ]
    return {
        "audience": mine.count() if overlaps else None,
        "campaigns": overlaps,
        "suggested_days": 1 if is_continuous(trigger) else 7,
    }
