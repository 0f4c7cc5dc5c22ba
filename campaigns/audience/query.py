"""The engine's audience: the one query a run enrolls from, and the occurrences that would enter.

``audience_candidates`` combines a campaign's trigger, filters and the exclusions that do not
depend on its own enrollments into one queryset; ``new_occurrences_sql`` keeps the occurrences
that have not entered yet. The tick inserts exactly those rows (``campaigns.engine.enroll``),
and ``campaigns.selectors``' ``audience`` and ``explain`` read the same queries, so what staff
see is what a run does.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL

from campaigns.audience.exclusions import pending_drip_enrollments, recent_drip_messages
from campaigns.audience.filters import appointment_q, filter_conditions, with_filter_annotations
from campaigns.audience.triggers import NO_APPOINTMENT, UTC_STAMP_SQL, RunContext, trigger_audience
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import TRIGGERS, is_continuous, trigger_row
from campaigns.models import Campaign, CampaignKind, CampaignRun, Enrollment, MessageStep
from campaigns.schedule import due_day
from patients.models import Appointment, Patient, PatientStatus


def campaign_sets(campaign: Campaign, ctx: RunContext) -> tuple[QuerySet, list[tuple[str, Q]]]:
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


def audience_candidates(
    campaign: Campaign, *, at: dt.datetime, ctx: RunContext | None = None
) -> QuerySet[Patient]:
    """The patients a run of ``campaign`` at ``at`` would consider: the trigger's, narrowed
    by the filters, less the exclusions that do not depend on this campaign's enrollments
    (blast recipients staff removed, deceased patients, and with ``exclude_recent_days``
    patients with a recent or pending message of another drip). One query, any number of
    patients, each annotated with ``occurrence_key`` and ``trigger_appointment_id``.

    The engine enrolls from exactly this queryset (``new_occurrences_sql``); opt-outs and
    channels are judged per step, so they do not keep anyone out.
    """
    ctx = ctx or RunContext(practice=campaign.practice, at=at)
    patients, conditions = campaign_sets(campaign, ctx)
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
            Exists(recent_drip_messages(campaign, at=at, ctx=ctx).filter(**mine))
        ).exclude(Exists(pending_drip_enrollments(campaign, at=at, ctx=ctx).filter(**mine)))
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


def entering(campaign: Campaign, patients: QuerySet[Patient]) -> RawSQL:
    """The ids of ``patients`` whose occurrence would enter ``campaign`` (a subquery)."""
    sql, params = new_occurrences_sql(campaign, patients)
    return RawSQL(f"SELECT n.patient_id FROM ({sql}) AS n", params)  # noqa: S608, S611


def entering_rows(campaign: Campaign, patients: QuerySet[Patient]) -> list[tuple[int, str]]:
    sql, params = new_occurrences_sql(campaign, patients)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n.patient_id, n.occurrence_key FROM ({sql}) AS n", params)  # noqa: S608
        return list(cursor.fetchall())
