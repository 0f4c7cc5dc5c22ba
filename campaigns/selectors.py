"""Read-side queries of campaigns: lists, the audience at an instant, and "why?"."""

from __future__ import annotations

import datetime as dt

from django.db.models import CharField, Q, QuerySet, Value

from campaigns.explain import explain_patient
from campaigns.filters import appointment_q, filter_conditions, with_filter_annotations
from campaigns.models import Campaign, CampaignKind, Enrollment, MessageTemplate, TemplateFolder
from campaigns.spec import APPOINTMENT_TRIGGERS, VISIT_TRIGGERS
from campaigns.triggers import NO_APPOINTMENT, RunContext, trigger_audience
from messaging.models import OutboundMessage
from patients.models import Patient
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


def _campaign_sets(campaign: Campaign, ctx: RunContext) -> tuple[QuerySet, list[tuple[str, Q]]]:
    """The trigger's patients (annotated) and the filter conditions, before combining."""
    filters = campaign.filters or {}
    if campaign.kind == CampaignKind.BLAST:
        patients = Patient.objects.filter(practice=campaign.practice).annotate(
            occurrence_key=Value("blast", output_field=CharField()),
            trigger_appointment_id=NO_APPOINTMENT,
        )
        appointment_trigger = False
    else:
        trigger = campaign.trigger
        appointment_trigger = trigger["type"] in APPOINTMENT_TRIGGERS
        patients = trigger_audience(
            trigger,
            ctx,
            case_types=filters.get("case_types") if trigger["type"] in VISIT_TRIGGERS else None,
            appointment_q=appointment_q(filters) if appointment_trigger else None,
        )
    conditions = filter_conditions(filters, ctx, appointment_trigger=appointment_trigger)
    return with_filter_annotations(patients), conditions


def audience(campaign: Campaign, *, at: dt.datetime) -> QuerySet[Patient]:
    """Who would enter ``campaign`` if it ran at ``at``: one query, any number of patients.

    Each patient carries ``occurrence_key`` and ``trigger_appointment_id``. Blast recipients
    that staff removed are left out. (Exclusions that depend on what was already sent, opt-outs
    and channels are the engine's, at enrollment.)
    """
    ctx = RunContext(practice=campaign.practice, at=at)
    patients, conditions = _campaign_sets(campaign, ctx)
    # One filter() for all conditions: each call clones the query with its subqueries, a
    # cost the engine pays per campaign and tick.
    patients = patients.filter(*(condition for _name, condition in conditions))
    if campaign.kind == CampaignKind.BLAST:
        patients = patients.exclude(pk__in=campaign.exclusions.values("patient_id"))
    return patients.order_by("last_name", "first_name", "id")


def explain(campaign: Campaign, patient: Patient, *, at: dt.datetime) -> dict:
    """Why ``patient`` would or would not enter ``campaign`` at ``at``, condition by condition.

    A handful of queries for one patient (one per selected filter), never one per patient of
    the practice.
    """
    ctx = RunContext(practice=campaign.practice, at=at)
    patients, conditions = _campaign_sets(campaign, ctx)
    return explain_patient(campaign, patient, ctx, patients, conditions)
