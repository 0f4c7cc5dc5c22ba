"""Read-side queries of campaigns: lists, the audience at an instant, and "why?"."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL

from campaigns.exclusions import pending_drip_enrollments, recent_drip_messages
from campaigns.explain import explain_patient
from campaigns.filters import appointment_q, filter_conditions, with_filter_annotations
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import TRIGGERS, is_continuous, trigger_row
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    Enrollment,
    MessageStep,
    MessageTemplate,
    TemplateFolder,
)
from campaigns.schedule import due_day
from campaigns.triggers import NO_APPOINTMENT, UTC_STAMP_SQL, RunContext, trigger_audience
from messaging.models import OutboundMessage
from patients.models import Appointment, Patient, PatientStatus
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
        row = TRIGGERS[trigger["type"]]
        appointment_trigger = row.has_appointment
        patients = trigger_audience(
            trigger,
            ctx,
            case_types=filters.get("case_types") if row.per_case else None,
            appointment_q=appointment_q(filters) if appointment_trigger else None,
        )
    conditions = filter_conditions(filters, ctx, appointment_trigger=appointment_trigger)
    return with_filter_annotations(patients), conditions


def audience_candidates(campaign: Campaign, *, at: dt.datetime) -> QuerySet[Patient]:
    """The patients a run of ``campaign`` at ``at`` would consider: the trigger's, narrowed
    by the filters, less the exclusions that do not depend on this campaign's enrollments
    (blast recipients staff removed, deceased patients, and with ``exclude_recent_days``
    patients with a recent or pending message of another drip). One query, any number of
    patients, each annotated with ``occurrence_key`` and ``trigger_appointment_id``.

    The engine enrolls from exactly this queryset (``new_occurrences_sql``); opt-outs and
    channels are judged per step, so they do not keep anyone out.
    """
    ctx = RunContext(practice=campaign.practice, at=at)
    patients, conditions = _campaign_sets(campaign, ctx)
    # One filter() for all conditions: each call clones the query with its subqueries, a
    # cost the engine pays per campaign and tick.
    patients = patients.filter(*(condition for _name, condition in conditions)).exclude(
        status=PatientStatus.DECEASED
    )
    if campaign.kind == CampaignKind.BLAST:
        patients = patients.exclude(pk__in=campaign.exclusions.values("patient_id"))
    if campaign.exclude_recent_days:
        mine = {"patient_id": OuterRef("pk")}
        patients = patients.exclude(
            Exists(recent_drip_messages(campaign, at=at).filter(**mine))
        ).exclude(Exists(pending_drip_enrollments(campaign, at=at).filter(**mine)))
    return patients


def new_occurrences_sql(campaign: Campaign, patients: QuerySet[Patient]) -> tuple[str, list]:
    """SQL (and its parameters) of the rows ``(patient_id, occurrence_key, appointment_id)``
    of ``patients`` (``audience_candidates``) whose occurrence has not entered ``campaign``
    yet: what the engine inserts as enrollments, and what ``audience`` and ``explain`` read.

    Every selected column gets an explicit alias, for the outer SELECT to name. An
    appointment's occurrence key is made from its id out here rather than selected: the ORM
    would compile (and PostgreSQL plan) the appointment's subquery once more for it.
    """
    row = trigger_row(campaign.trigger)
    columns = ["enrolling_patient_id", "trigger_appointment_id"]
    join = ""
    if row is None or not row.has_appointment:
        columns.append("occurrence_key")
        key_sql = "a.occurrence_key"
    elif row.occurrence == "appointment_start":  # a reminder: the appointment at its start
        join = f"JOIN {Appointment._meta.db_table} ap ON ap.id = a.trigger_appointment_id "
        stamp = UTC_STAMP_SQL[connection.vendor].format("ap.start")
        key_sql = f"'appointment:' || a.trigger_appointment_id || '@' || {stamp}"
    else:
        key_sql = "'appointment:' || a.trigger_appointment_id"
    select_sql, params = (
        patients.order_by().annotate(enrolling_patient_id=F("pk")).values_list(*columns).query
    ).sql_with_params()
    params = list(params)
    # Table names are the models'; select_sql is compiled by the ORM with its values kept
    # apart in params: no input is formatted into the statement.
    sql = (
        f"SELECT a.enrolling_patient_id AS patient_id, {key_sql} AS occurrence_key, "  # noqa: S608
        f"a.trigger_appointment_id AS appointment_id FROM ({select_sql}) AS a {join}"
    )
    if campaign.pk is not None:
        sql += (
            f"WHERE NOT EXISTS (SELECT 1 FROM {Enrollment._meta.db_table} e "  # noqa: S608
            "WHERE e.campaign_id = %s AND e.patient_id = a.enrolling_patient_id "
            f"AND e.occurrence_key = {key_sql})"
        )
        params.append(campaign.pk)
    return sql, params


def tick_predecessors(campaign: Campaign, *, at: dt.datetime) -> list[Campaign]:
    """The practice's other drip campaigns that a tick at ``at`` runs before ``campaign``
    (the engine runs due campaigns in id order; an unsaved campaign would come last): the
    continuous ones, and the scheduled ones due then that have not run that local day."""
    practice = campaign.practice
    others = (
        Campaign.objects.filter(
            Exists(MessageStep.objects.filter(campaign_id=OuterRef("pk"))),
            practice=practice,
            kind=CampaignKind.DRIP,
            enabled=True,
        )
        .exclude(pk=campaign.pk)
        .order_by("id")
    )
    if campaign.pk is not None:
        others = others.filter(pk__lt=campaign.pk)
    ran = set(
        CampaignRun.objects.filter(
            campaign__in=others, local_date=at.astimezone(practice.tz).date()
        ).values_list("campaign_id", flat=True)
    )
    earlier = []
    for other in others:
        other.practice = practice
        trigger = other.trigger or {}
        if is_continuous(trigger) or (
            other.pk not in ran
            and due_day(
                other.schedule or DEFAULT_SCHEDULE,
                enabled_at=other.enabled_at,
                tz=practice.tz,
                now=at,
            )
        ):
            earlier.append(other)
    return earlier


def _entering(campaign: Campaign, patients: QuerySet[Patient]) -> RawSQL:
    """The ids of ``patients`` whose occurrence would enter ``campaign`` (a subquery)."""
    sql, params = new_occurrences_sql(campaign, patients)
    return RawSQL(f"SELECT n.patient_id FROM ({sql}) AS n", params)  # noqa: S608, S611


def audience(campaign: Campaign, *, at: dt.datetime) -> QuerySet[Patient]:
    """Who would enter ``campaign`` if it ran at ``at``, after the same exclusions a run
    applies (DESIGN §4.1): ``audience_candidates`` whose occurrence has not entered yet, and
    with ``exclude_recent_days``, none whom a drip running before it in the same tick
    enrolls. Each patient carries ``occurrence_key`` and ``trigger_appointment_id``.

    The engine's own queries (``audience_candidates``, ``new_occurrences_sql``), so that the
    audience and ``explain`` agree with what a tick then does.
    """
    candidates = audience_candidates(campaign, at=at)
    patients = candidates.filter(pk__in=_entering(campaign, candidates))
    if campaign.exclude_recent_days:
        # A patient whom an earlier drip of the tick enrolls has a pending enrollment by the
        # time this campaign runs (whether or not that drip's own exclusions kept her out of
        # it: then a drip before that one enrolled her).
        for earlier in tick_predecessors(campaign, at=at):
            patients = patients.exclude(
                pk__in=_entering(earlier, audience_candidates(earlier, at=at))
            )
    return patients.order_by("last_name", "first_name", "id")


def _entering_rows(campaign: Campaign, patients: QuerySet[Patient]) -> list[tuple[int, str]]:
    sql, params = new_occurrences_sql(campaign, patients)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n.patient_id, n.occurrence_key FROM ({sql}) AS n", params)  # noqa: S608
        return list(cursor.fetchall())


def explain(campaign: Campaign, patient: Patient, *, at: dt.datetime) -> dict:
    """Why ``patient`` would or would not enter ``campaign`` at ``at``, condition by condition
    and exclusion by exclusion; ``would_enter`` is what a run at ``at`` would do (the
    engine's queries, for this patient).

    A handful of queries for one patient (one per selected filter), never one per patient of
    the practice.
    """
    ctx = RunContext(practice=campaign.practice, at=at)
    patients, conditions = _campaign_sets(campaign, ctx)
    entering = _entering_rows(campaign, audience_candidates(campaign, at=at).filter(pk=patient.pk))
    earlier = []
    if campaign.exclude_recent_days:
        earlier = [
            other
            for other in tick_predecessors(campaign, at=at)
            if _entering_rows(other, audience_candidates(other, at=at).filter(pk=patient.pk))
        ]
    return explain_patient(
        campaign,
        patient,
        ctx,
        patients,
        conditions,
        occurrence_key=entering[0][1] if entering and not earlier else None,
        enrolled_first_by=earlier,
    )
