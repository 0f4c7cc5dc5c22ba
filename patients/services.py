"""Services that write patients, cases, appointments, tags and opt-outs.

The sync services take records already validated by ``patients.sync.records`` and write them
set-wise: one query per step for a whole batch (lookups, existing rows, inserts, updates,
tags), never a query per record. A record that matches what is stored changes nothing, so
re-sending the same payload is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, ExtractDay, ExtractMonth, TruncDate
from django.utils import timezone

from patients.models import (
    CANCELLED_STATUSES,
    VISIT_STATUSES,
    Appointment,
    AppointmentService,
    Case,
    CaseDiagnosis,
    Lookup,
    LookupKind,
    OptOutSource,
    Patient,
    PatientTag,
    Sex,
    Tag,
)
from trackstat.audit import audit_record
from trackstat.models import Practice

PATIENT_LOOKUPS = {
    "primary_provider": LookupKind.PROVIDER,
    "referral_source": LookupKind.REFERRAL_SOURCE,
    "attorney": LookupKind.ATTORNEY,
    "care_package": LookupKind.CARE_PACKAGE,
    "fee_schedule": LookupKind.FEE_SCHEDULE,
    "insurance_company": LookupKind.INSURANCE_COMPANY,
}
CASE_LOOKUPS = {
    "case_type": LookupKind.CASE_TYPE,
    "attorney": LookupKind.ATTORNEY,
    "insurance_company": LookupKind.INSURANCE_COMPANY,
}
APPOINTMENT_LOOKUPS = {"purpose": LookupKind.PURPOSE, "provider": LookupKind.PROVIDER}
PATIENT_PLAIN_FIELDS = ["first_name", "last_name", "birth_date", "status", "paid_total"]
ADDRESS_FIELDS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
}


@dataclass
class UpsertResult:
    """What a batch did: counts, and per input index the outcome or the errors."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)
    # index → "created" | "updated" | "unchanged"
    outcomes: dict[int, str] = field(default_factory=dict)

    def as_response(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": sorted(self.errors, key=lambda e: e["index"]),
        }

    def record(self, index: int, outcome: str) -> None:
        self.outcomes[index] = outcome
        setattr(self, outcome, getattr(self, outcome) + 1)


def _record_error(result: UpsertResult, record: dict, field_name: str, message: str) -> None:
    result.errors.append(
        {
            "index": record["_index"],
            "external_id": record["external_id"],
            "errors": {field_name: [message]},
        }
    )


def lookups_ensure(*, practice: Practice, pairs: Iterable[tuple[str, str]]) -> dict:
    """Ids of the practice's lookups ``(kind, name)``, creating the ones not seen before."""
    wanted = {(kind, name) for kind, name in pairs if name}
    if not wanted:
        return {}
    Lookup.objects.bulk_create(
        [Lookup(practice=practice, kind=kind, name=name) for kind, name in wanted],
        ignore_conflicts=True,
    )
    condition = Q()
    for kind in {kind for kind, _ in wanted}:
        condition |= Q(kind=kind, name__in=[name for k, name in wanted if k == kind])
    return {
        (kind, name): pk
        for pk, kind, name in Lookup.objects.filter(condition, practice=practice).values_list(
            "pk", "kind", "name"
        )
    }


def tags_ensure(*, practice: Practice, names: Iterable[str]) -> dict[str, int]:
    """Ids of the practice's tags by name, creating missing ones."""
    wanted = {name.strip() for name in names if name and name.strip()}
    if not wanted:
        return {}
    Tag.objects.bulk_create(
        [Tag(practice=practice, name=name) for name in wanted], ignore_conflicts=True
    )
    return dict(Tag.objects.filter(practice=practice, name__in=wanted).values_list("name", "pk"))


def _set_changed(instance: models.Model, values: dict, changed: set[str]) -> None:
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed.add(name)


def _bulk_update(rows: list[models.Model], fields: set[str]) -> None:
    """Write ``fields`` of already-stored rows in one statement per batch.

    An insert that conflicts on the row's (practice, external_id) and updates those fields:
    Django's bulk_update builds a CASE expression per field and row, several times slower on
    5,000 rows. The rows are locked (select_for_update) and hold their current values in every
    other field, so nothing else changes.
    """
    model = type(rows[0])
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["practice", "external_id"],
        update_fields=[*sorted(fields), "updated_at"],
        batch_size=1000,
    )


def _dedupe(records: list[dict], result: UpsertResult) -> list[dict]:
    """A batch may name each external_id once: later repeats are errors, not silent merges."""
    seen: set[str] = set()
    unique = []
    for record in records:
        if record["external_id"] in seen:
            _record_error(
                result, record, "external_id", "This external_id appears earlier in the request."
            )
        else:
            seen.add(record["external_id"])
            unique.append(record)
    return unique


def _patient_values(record: dict, lookup_ids: dict, now: dt.datetime) -> dict:
    """Model field values for the fields present in ``record``."""
    values: dict = {}
    for name in PATIENT_PLAIN_FIELDS:
        if name in record:
            values[name] = record[name]
    if "paid_total" in values:
        values["paid_total"] = Decimal(values["paid_total"])
    if "sex" in record:
        values["sex"] = record["sex"] or Sex.UNKNOWN
    for name in ("phone", "email"):
        if name in record:
            values[name] = record[name] or ""
    if "birth_date" in record:
        birth = record["birth_date"]
        values["birth_month"] = birth.month if birth else None
        values["birth_day"] = birth.day if birth else None
    if "first_visit_date" in record:
        values["emr_first_visit_date"] = record["first_visit_date"]
    for key, column in ADDRESS_FIELDS.items():
        if key in record.get("address", {}):
            values[column] = record["address"][key]
    for name, kind in PATIENT_LOOKUPS.items():
        if name in record:
            values[f"{name}_id"] = lookup_ids.get((kind, record[name]))
    return values


def _opt_out_values(patient: Patient, record: dict, now: dt.datetime) -> dict:
    values = {}
    for channel in ("sms", "email"):
        key = f"{channel}_opt_out"
        if key in record and record[key] != getattr(patient, key):
            values[key] = record[key]
            values[f"{key}_at"] = now if record[key] else None
            values[f"{key}_source"] = OptOutSource.EMR if record[key] else ""
    return values


@transaction.atomic
def patients_upsert(*, practice: Practice, records: list[dict], actor=None) -> UpsertResult:
    """Create or update patients from validated records (each with ``external_id``)."""
    result = UpsertResult()
    records = _dedupe(records, result)
    if not records:
        return result
    now = timezone.now()
    lookup_ids = lookups_ensure(
        practice=practice,
        pairs=[
            (kind, record[name])
            for record in records
            for name, kind in PATIENT_LOOKUPS.items()
            if record.get(name)
        ],
    )
    tag_ids = tags_ensure(
        practice=practice, names=[name for record in records for name in record.get("tags", [])]
    )
    existing = {
        patient.external_id: patient
        for patient in Patient.objects.select_for_update().filter(
            practice=practice, external_id__in=[r["external_id"] for r in records]
        )
    }

    to_create: list[Patient] = []
    to_update: list[Patient] = []
    update_fields: set[str] = set()
    opt_out_changes: list[tuple[Patient, dict, dict]] = []
    first_visit_refresh: list[int] = []
    outcome_by_external_id: dict[str, tuple[int, str]] = {}
    for record in records:
        values = _patient_values(record, lookup_ids, now)
        patient = existing.get(record["external_id"])
        if patient is None:
            patient = Patient(practice=practice, external_id=record["external_id"], **values)
            patient.first_visit_date = values.get("emr_first_visit_date")
            _set_first_visit_parts(patient)
            opt_outs = _opt_out_values(patient, record, now)
            for name, value in opt_outs.items():
                setattr(patient, name, value)
            to_create.append(patient)
            outcome_by_external_id[patient.external_id] = (record["_index"], "created")
            continue
        changed: set[str] = set()
        _set_changed(patient, values, changed)
        opt_outs = _opt_out_values(patient, record, now)
        if opt_outs:
            before = {k: getattr(patient, k) for k in ("sms_opt_out", "email_opt_out")}
            _set_changed(patient, opt_outs, changed)
            opt_out_changes.append((patient, before, {k: getattr(patient, k) for k in before}))
        if "emr_first_visit_date" in changed:
            first_visit_refresh.append(patient.pk)
        if changed:
            update_fields |= changed
            to_update.append(patient)
        outcome_by_external_id[patient.external_id] = (
            record["_index"],
            "updated" if changed else "unchanged",
        )

    Patient.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        _bulk_update(to_update, update_fields)

    patients = {p.external_id: p for p in [*to_create, *existing.values()]}
    tags_changed = _replace_links(
        model=PatientTag,
        practice=practice,
        owner_field="patient_id",
        target_field="tag_id",
        wanted={
            patients[r["external_id"]].pk: {
                tag_ids[name.strip()] for name in r["tags"] if name.strip()
            }
            for r in records
            if "tags" in r
        },
    )
    for patient in patients.values():
        index, outcome = outcome_by_external_id[patient.external_id]
        if patient.pk in tags_changed and outcome == "unchanged":
            outcome_by_external_id[patient.external_id] = (index, "updated")
    if first_visit_refresh:
        visit_facts_refresh(practice=practice, patient_ids=first_visit_refresh)
    for patient, before, after in opt_out_changes:
        audit_record(
            practice=practice,
            actor=actor,
            action="patient.opt_out_sync",
            target=patient,
            before=before,
            after=after,
        )
    for patient in to_create:
        if patient.sms_opt_out or patient.email_opt_out:
            audit_record(
                practice=practice,
                actor=actor,
                action="patient.opt_out_sync",
                target=patient,
                before=None,
                after={"sms_opt_out": patient.sms_opt_out, "email_opt_out": patient.email_opt_out},
            )
    for index, outcome in outcome_by_external_id.values():
        result.record(index, outcome)
    return result


def _set_first_visit_parts(patient: Patient) -> None:
    first = patient.first_visit_date
    patient.first_visit_month = first.month if first else None
    patient.first_visit_day = first.day if first else None


def _patients_by_external_id(practice: Practice, external_ids: Iterable[str]) -> dict[str, int]:
    return dict(
        Patient.objects.filter(practice=practice, external_id__in=set(external_ids)).values_list(
            "external_id", "pk"
        )
    )


def _replace_links(
    *, model, practice: Practice, owner_field: str, target_field: str, wanted: dict[int, set[int]]
) -> set[int]:
    """Set-wise replace of a many-to-many through table; return the owners changed."""
    if not wanted:
        return set()
    current: dict[int, set[int]] = {pk: set() for pk in wanted}
    for owner, target in model.objects.filter(**{f"{owner_field}__in": wanted}).values_list(
        owner_field, target_field
    ):
        current[owner].add(target)
    removals = Q()
    additions = []
    changed = set()
    for owner, targets in wanted.items():
        gone, new = current[owner] - targets, targets - current[owner]
        if gone:
            removals |= Q(**{owner_field: owner, f"{target_field}__in": gone})
        additions += [
            model(practice=practice, **{owner_field: owner, target_field: t}) for t in new
        ]
        if gone or new:
            changed.add(owner)
    if removals:
        model.objects.filter(removals).delete()
    model.objects.bulk_create(additions, ignore_conflicts=True, batch_size=1000)
    return changed


@transaction.atomic
def cases_upsert(*, practice: Practice, records: list[dict]) -> UpsertResult:
    """Create or update cases from validated records."""
    result = UpsertResult()
    records = _dedupe(records, result)
    patient_ids = _patients_by_external_id(
        practice, [r["patient_external_id"] for r in records if r.get("patient_external_id")]
    )
    existing = {
        case.external_id: case
        for case in Case.objects.select_for_update().filter(
            practice=practice, external_id__in=[r["external_id"] for r in records]
        )
    }
    valid = []
    for record in records:
        patient_external_id = record.get("patient_external_id")
        if patient_external_id and patient_external_id not in patient_ids:
            _record_error(
                result, record, "patient_external_id", "No patient with this external_id."
            )
        elif not patient_external_id and record["external_id"] not in existing:
            _record_error(result, record, "patient_external_id", "Required for a new case.")
        else:
            valid.append(record)
    lookup_ids = lookups_ensure(
        practice=practice,
        pairs=[(kind, r[n]) for r in valid for n, kind in CASE_LOOKUPS.items() if r.get(n)]
        + [(LookupKind.DIAGNOSIS, code) for r in valid for code in r.get("diagnoses", [])],
    )
    to_create, to_update, update_fields, outcomes = [], [], set(), {}
    refresh_patients: set[int] = set()
    for record in valid:
        values = {}
        if record.get("patient_external_id"):
            values["patient_id"] = patient_ids[record["patient_external_id"]]
        if "status" in record:
            values["status"] = record["status"]
        for name, kind in CASE_LOOKUPS.items():
            if name in record:
                values[f"{name}_id"] = lookup_ids.get((kind, record[name]))
        case = existing.get(record["external_id"])
        if case is None:
            case = Case(practice=practice, external_id=record["external_id"], **values)
            to_create.append(case)
            outcomes[case.external_id] = [record["_index"], "created"]
            continue
        changed: set[str] = set()
        old_patient = case.patient_id
        _set_changed(case, values, changed)
        if "patient_id" in changed:
            refresh_patients |= {old_patient, case.patient_id}
        if changed:
            update_fields |= changed
            to_update.append(case)
        outcomes[case.external_id] = [record["_index"], "updated" if changed else "unchanged"]
    Case.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        _bulk_update(to_update, update_fields)
    cases = {c.external_id: c for c in [*to_create, *existing.values()]}
    changed_cases = _replace_links(
        model=CaseDiagnosis,
        practice=practice,
        owner_field="case_id",
        target_field="diagnosis_id",
        wanted={
            cases[r["external_id"]].pk: {
                lookup_ids[(LookupKind.DIAGNOSIS, c)] for c in r["diagnoses"]
            }
            for r in valid
            if "diagnoses" in r
        },
    )
    for case in cases.values():
        if case.pk in changed_cases and outcomes[case.external_id][1] == "unchanged":
            outcomes[case.external_id][1] = "updated"
    if refresh_patients:
        # Moving a case between patients moves its appointments' visits with it.
        Appointment.objects.filter(
            case__in=[c for c in to_update if c.patient_id in refresh_patients]
        ).update(
            patient_id=Subquery(Case.objects.filter(pk=OuterRef("case_id")).values("patient_id"))
        )
        visit_facts_refresh(practice=practice, patient_ids=refresh_patients)
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result


def local_date(instant: dt.datetime, practice: Practice) -> dt.date:
    return instant.astimezone(practice.tz).date()


@transaction.atomic
def appointments_upsert(*, practice: Practice, records: list[dict]) -> UpsertResult:
    """Create or update appointments from validated records, then refresh the visit facts of
    every patient and case whose appointments changed (before and after the change)."""
    result = UpsertResult()
    records = _dedupe(records, result)
    now = timezone.now()
    patient_ids = _patients_by_external_id(
        practice, [r["patient_external_id"] for r in records if r.get("patient_external_id")]
    )
    case_rows = {
        external_id: (pk, patient_id)
        for external_id, pk, patient_id in Case.objects.filter(
            practice=practice,
            external_id__in={r["case_external_id"] for r in records if r.get("case_external_id")},
        ).values_list("external_id", "pk", "patient_id")
    }
    existing = {
        appointment.external_id: appointment
        for appointment in Appointment.objects.select_for_update().filter(
            practice=practice, external_id__in=[r["external_id"] for r in records]
        )
    }
    valid = []
    for record in records:
        current = existing.get(record["external_id"])
        patient_external_id = record.get("patient_external_id")
        patient_id = patient_ids.get(patient_external_id) if patient_external_id else None
        if patient_external_id and patient_id is None:
            _record_error(
                result, record, "patient_external_id", "No patient with this external_id."
            )
            continue
        if current is None and patient_id is None:
            _record_error(result, record, "patient_external_id", "Required for a new appointment.")
            continue
        if current is None and "start" not in record:
            _record_error(result, record, "start", "Required for a new appointment.")
            continue
        case_external_id = record.get("case_external_id")
        if case_external_id:
            case = case_rows.get(case_external_id)
            owner = patient_id or current.patient_id
            if case is None:
                _record_error(result, record, "case_external_id", "No case with this external_id.")
                continue
            if case[1] != owner:
                _record_error(
                    result, record, "case_external_id", "This case belongs to another patient."
                )
                continue
        valid.append(record)

    lookup_ids = lookups_ensure(
        practice=practice,
        pairs=[(k, r[n]) for r in valid for n, k in APPOINTMENT_LOOKUPS.items() if r.get(n)]
        + [(LookupKind.SERVICE, code) for r in valid for code in r.get("services", [])],
    )
    to_create, to_update, update_fields, outcomes = [], [], set(), {}
    touched_patients: set[int] = set()
    touched_cases: set[int] = set()
    for record in valid:
        values: dict = {}
        if record.get("patient_external_id"):
            values["patient_id"] = patient_ids[record["patient_external_id"]]
        if "case_external_id" in record:
            values["case_id"] = (
                case_rows[record["case_external_id"]][0] if record["case_external_id"] else None
            )
        if "start" in record:
            values["start"] = record["start"]
            values["local_date"] = local_date(record["start"], practice)
        for name in ("duration_minutes", "status", "checked_in_at"):
            if name in record:
                values[name] = record[name]
        if record.get("booked_at"):
            values["booked_at"] = record["booked_at"]
        for name, kind in APPOINTMENT_LOOKUPS.items():
            if name in record:
                values[f"{name}_id"] = lookup_ids.get((kind, record[name]))
        appointment = existing.get(record["external_id"])
        if appointment is None:
            values.setdefault("booked_at", now)
            appointment = Appointment(
                practice=practice, external_id=record["external_id"], **values
            )
            to_create.append(appointment)
            touched_patients.add(appointment.patient_id)
            if appointment.case_id:
                touched_cases.add(appointment.case_id)
            outcomes[appointment.external_id] = [record["_index"], "created"]
            continue
        before_patient, before_case = appointment.patient_id, appointment.case_id
        changed: set[str] = set()
        _set_changed(appointment, values, changed)
        if changed:
            update_fields |= changed
            to_update.append(appointment)
            touched_patients |= {before_patient, appointment.patient_id}
            touched_cases |= {c for c in (before_case, appointment.case_id) if c}
        outcomes[appointment.external_id] = [
            record["_index"],
            "updated" if changed else "unchanged",
        ]

    Appointment.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        _bulk_update(to_update, update_fields)
    appointments = {a.external_id: a for a in [*to_create, *existing.values()]}
    changed_services = _replace_links(
        model=AppointmentService,
        practice=practice,
        owner_field="appointment_id",
        target_field="service_id",
        wanted={
            appointments[r["external_id"]].pk: {
                lookup_ids[(LookupKind.SERVICE, code)] for code in r["services"]
            }
            for r in valid
            if "services" in r
        },
    )
    for appointment in appointments.values():
        if (
            appointment.pk in changed_services
            and outcomes[appointment.external_id][1] == "unchanged"
        ):
            outcomes[appointment.external_id][1] = "updated"
    visit_facts_refresh(practice=practice, patient_ids=touched_patients, case_ids=touched_cases)
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result


def _facts_of(owner_field: str) -> dict:
    """Subqueries computing the visit facts of one patient or case from its appointments."""

    def aggregate(function, statuses=None, excluded=None):
        appointments = Appointment.objects.filter(**{owner_field: OuterRef("pk")})
        if statuses:
            appointments = appointments.filter(status__in=statuses)
        if excluded:
            appointments = appointments.exclude(status__in=excluded)
        return Subquery(
            appointments.order_by().values(owner_field).annotate(value=function).values("value")[:1]
        )

    return {
        "visit_count": Coalesce(aggregate(Count("pk"), statuses=VISIT_STATUSES), Value(0)),
        "last_visit_checked_in": aggregate(Max("local_date"), statuses=VISIT_STATUSES),
        "last_visit_scheduled": aggregate(Max("local_date"), excluded=CANCELLED_STATUSES),
        "first_visit_date": aggregate(Min("local_date"), statuses=VISIT_STATUSES),
    }


def visit_facts_refresh(
    *,
    practice: Practice,
    patient_ids: Iterable[int] = (),
    case_ids: Iterable[int] = (),
) -> None:
    """Recompute the derived visit facts of these patients and cases from their appointments.

    Recomputing from the appointments (rather than adjusting counters) keeps the facts right
    whatever order appointments arrive in, and after updates, cancellations and moves.
    """
    patient_ids = {pk for pk in patient_ids if pk}
    case_ids = {pk for pk in case_ids if pk}
    if patient_ids:
        _patient_facts_update(Patient.objects.filter(practice=practice, pk__in=patient_ids))
    if case_ids:
        Case.objects.filter(practice=practice, pk__in=case_ids).update(**_facts_of("case"))


def _patient_facts_update(patients: models.QuerySet) -> None:
    facts = _facts_of("patient")
    facts["first_visit_date"] = Coalesce("emr_first_visit_date", facts["first_visit_date"])
    patients.update(**facts)
    # Month and day of the (possibly new) first visit, for the anniversary trigger's index.
    patients.update(
        first_visit_month=ExtractMonth("first_visit_date"),
        first_visit_day=ExtractDay("first_visit_date"),
    )


@transaction.atomic
def practice_local_dates_refresh(*, practice: Practice) -> None:
    """After a change of the practice's time zone: every appointment's local date, and every
    patient's and case's visit facts, in the new zone (a few set-wise statements)."""
    Appointment.objects.filter(practice=practice).update(
        local_date=TruncDate("start", tzinfo=practice.tz)
    )
    _patient_facts_update(Patient.objects.filter(practice=practice))
    Case.objects.filter(practice=practice).update(**_facts_of("case"))


@transaction.atomic
def patient_tag_add(*, practice: Practice, patient: Patient, name: str, actor) -> Tag:
    """Tag one patient (staff, from the patient page); creates the tag on first use."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a tag name."})
    if len(name) > 100:
        raise ValidationError({"name": "At most 100 characters."})
    tag, _ = Tag.objects.get_or_create(practice=practice, name=name)
    PatientTag.objects.get_or_create(practice=practice, patient=patient, tag=tag)
    return tag


@transaction.atomic
def patient_tag_remove(*, practice: Practice, patient: Patient, tag_id: int, actor) -> None:
    PatientTag.objects.filter(practice=practice, patient=patient, tag_id=tag_id).delete()


@dataclass
class BulkTagResult:
    tag: Tag
    tagged: int
    already: int
    unknown: list[str]


@transaction.atomic
def patients_tag_bulk(
    *, practice: Practice, name: str, external_ids: Iterable[str], actor
) -> BulkTagResult:
    """Tag many patients by external id (how a practice marks its "no marketing" patients)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a tag name."})
    wanted = list(dict.fromkeys(i.strip() for i in external_ids if i and i.strip()))
    if not wanted:
        raise ValidationError({"external_ids": "List at least one external id."})
    tag, _ = Tag.objects.get_or_create(practice=practice, name=name)
    found = _patients_by_external_id(practice, wanted)
    already = set(
        PatientTag.objects.filter(tag=tag, patient_id__in=found.values()).values_list(
            "patient_id", flat=True
        )
    )
    PatientTag.objects.bulk_create(
        [
            PatientTag(practice=practice, patient_id=pk, tag=tag)
            for pk in found.values()
            if pk not in already
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return BulkTagResult(
        tag=tag,
        tagged=len(found) - len(already),
        already=len(already),
        unknown=[external_id for external_id in wanted if external_id not in found],
    )


@transaction.atomic
def patient_opt_out_set(
    *, practice: Practice, patient: Patient, channel: str, opted_out: bool, source: str, actor
) -> Patient:
    """Turn a patient's SMS or email opt-out on or off, recording when, how and by whom.

    Called by staff ("Disable Text" / "Disable Email"), inbound STOP/START, unsubscribe links
    and provider reports. Every change is audited.
    """
    if channel not in ("sms", "email"):
        raise ValidationError({"channel": "Use 'sms' or 'email'."})
    patient = Patient.objects.select_for_update().get(pk=patient.pk, practice=practice)
    key = f"{channel}_opt_out"
    if getattr(patient, key) == opted_out:
        return patient
    before = {key: getattr(patient, key)}
    setattr(patient, key, opted_out)
    setattr(patient, f"{key}_at", timezone.now() if opted_out else None)
    setattr(patient, f"{key}_source", source if opted_out else "")
    patient.save(update_fields=[key, f"{key}_at", f"{key}_source", "updated_at"])
    audit_record(
        practice=practice,
        actor=actor,
        action=f"patient.{channel}_opt_out" if opted_out else f"patient.{channel}_opt_in",
        target=patient,
        before=before,
        after={key: opted_out, "source": source},
    )
    return patient
