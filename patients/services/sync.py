"""EMR sync: set-wise upserts of patients, cases and appointments.

The services take records already validated by ``patients.sync.records`` and write them
set-wise: one query per step for a whole batch (lookups, existing rows, inserts, updates,
tags), never a query per record. A record that matches what is stored changes nothing, so
re-sending the same payload is harmless.

Integrity under concurrent syncs:

- Per patient, writes are serialized: every upsert that can change a patient's appointments or
  cases first locks the patient rows concerned, in id order (``patients_lock``), then the
  cases, then the appointments. The visit facts recomputed afterwards therefore see every
  other sync's committed appointments, and bulk requests with overlapping patients never
  deadlock.
- Two requests creating the same new external id at once: the insert that loses the race
  (the unique (practice, external_id) constraint) is rolled back to its savepoint and the
  batch written again, now as an update of the row the other request created
  (``_write_retrying``). Every caller gets 200 or 201, never an IntegrityError.
- A record that passed validation but that the database still refuses (a ``DataError`` or an
  ``IntegrityError``) costs only itself: the batch is halved, in savepoints, until the record
  is alone, and it is reported like a validation error (``_write_bisecting``).
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DataError, IntegrityError, models, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from patients.models import (
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
from patients.selectors import patient_ids_by_external_id
from patients.sync.visits import patients_lock, visit_facts_refresh
from patients.signals import appointments_synced, opt_out_changed
from trackstat.audit import audit_record
from trackstat.models import Practice

logger = logging.getLogger(__name__)

# A batch that lost the race for a new external id is written again; each retry finds the
# rows that other requests created, so it only fails again if yet another request created
# one of its ids meanwhile.
CONFLICT_RETRIES = 5
# What the database refuses about a record's values (too long, out of range, a constraint;
# psycopg refuses NUL characters and lone surrogates with a ValueError before sending).
WRITE_ERRORS = (DataError, IntegrityError, ValueError)
UNSTORABLE_MESSAGE = "This record could not be stored: one of its values does not fit the database."

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

    def merge(self, other: UpsertResult) -> None:
        self.errors += other.errors
        for index, outcome in other.outcomes.items():
            self.record(index, outcome)


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
    # In one order for every request: two requests creating the same values in opposite
    # orders would each wait for the other's insert (a deadlock).
    Lookup.objects.bulk_create(
        [Lookup(practice=practice, kind=kind, name=name) for kind, name in sorted(wanted)],
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
        [Tag(practice=practice, name=name) for name in sorted(wanted)], ignore_conflicts=True
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


def _write(
    *,
    practice: Practice,
    model: type[models.Model],
    to_create: list,
    to_update: list,
    update_fields: set[str],
    existing: dict,
    outcomes: dict[str, list],
    link_model: type[models.Model],
    owner_field: str,
    target_field: str,
    links: dict[str, set[int]],
) -> None:
    """Insert the new rows, update the changed ones, then make each row's links (tags,
    diagnoses, services) exactly ``links[external_id]``; a row whose links changed counts as
    updated."""
    # New external ids in one order for every request, so that two requests creating the
    # same ones wait for each other rather than deadlock (the loser then retries).
    model.objects.bulk_create(sorted(to_create, key=lambda row: row.external_id), batch_size=1000)
    if to_update:
        _bulk_update(to_update, update_fields)
    rows = {row.external_id: row for row in [*to_create, *existing.values()]}
    changed = _replace_links(
        model=link_model,
        practice=practice,
        owner_field=owner_field,
        target_field=target_field,
        wanted={rows[external_id].pk: targets for external_id, targets in links.items()},
    )
    for row in rows.values():
        if row.pk in changed and outcomes[row.external_id][1] == "unchanged":
            outcomes[row.external_id][1] = "updated"


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


def _external_id_taken(error: IntegrityError) -> bool:
    """Whether an insert lost the race for a new external id to a concurrent request."""
    diag = getattr(error.__cause__, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if constraint is not None:  # PostgreSQL names the constraint
        return constraint.endswith("_external_id_unique")
    return "external_id" in str(error)  # SQLite names the columns


def _write_retrying(write: Callable[..., UpsertResult], records: list[dict], **kwargs):
    """``write(records=…)`` in a savepoint, written again when one of its inserts lost the
    race for a new external id: the retry reads (and locks) the row the other request
    created and updates it."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            with transaction.atomic():
                return write(records=records, **kwargs)
        except IntegrityError as error:
            if attempt == CONFLICT_RETRIES - 1 or not _external_id_taken(error):
                raise
    raise AssertionError("unreachable")


def _write_bisecting(
    write: Callable[..., UpsertResult], records: list[dict], result: UpsertResult, **kwargs
) -> None:
    """Write ``records`` (one savepoint); if the database refuses the batch, halve it until
    the records it refuses are alone, and report each of them (``UNSTORABLE_MESSAGE``)."""
    if not records:
        return
    try:
        result.merge(_write_retrying(write, records, **kwargs))
        return
    except WRITE_ERRORS as error:
        if len(records) > 1:
            middle = len(records) // 2
            _write_bisecting(write, records[:middle], result, **kwargs)
            _write_bisecting(write, records[middle:], result, **kwargs)
            return
        # The message may quote the values (patient data): its kind and where, not what.
        logger.warning(
            "%s: record %s refused by the database (%s %s)\n%s",
            write.__name__.strip("_"),
            records[0]["_index"],
            type(error).__name__,
            getattr(getattr(error.__cause__, "diag", None), "sqlstate", "") or "",
            "".join(traceback.format_tb(error.__traceback__)),
        )
        _record_error(result, records[0], "non_field_errors", UNSTORABLE_MESSAGE)


def _upsert(write: Callable[..., UpsertResult], records: list[dict], **kwargs) -> UpsertResult:
    """One upsert service: duplicates refused, then the batch written (see the module
    docstring), all in the caller's transaction."""
    result = UpsertResult()
    _write_bisecting(write, _dedupe(records, result), result, **kwargs)
    return result


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
    """Create or update patients from validated records (each with ``external_id`` and
    ``_index``); a record the database refuses is reported, the others are written."""
    return _upsert(_patients_write, records, practice=practice, actor=actor)


def _patients_write(*, practice: Practice, records: list[dict], actor) -> UpsertResult:
    result = UpsertResult()
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
        for patient in Patient.objects.select_for_update()
        .filter(practice=practice, external_id__in=[r["external_id"] for r in records])
        .order_by("pk")  # the lock order of every upsert: no deadlock between batches
    }

    to_create: list[Patient] = []
    to_update: list[Patient] = []
    update_fields: set[str] = set()
    opt_out_changes: list[tuple[Patient, dict, dict]] = []
    first_visit_refresh: list[int] = []
    outcomes: dict[str, list] = {}
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
            outcomes[patient.external_id] = [record["_index"], "created"]
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
        outcomes[patient.external_id] = [record["_index"], "updated" if changed else "unchanged"]

    _write(
        practice=practice,
        model=Patient,
        to_create=to_create,
        to_update=to_update,
        update_fields=update_fields,
        existing=existing,
        outcomes=outcomes,
        link_model=PatientTag,
        owner_field="patient_id",
        target_field="tag_id",
        links={
            r["external_id"]: {tag_ids[name] for name in r["tags"]} for r in records if "tags" in r
        },
    )
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
        for channel in ("sms", "email"):
            key = f"{channel}_opt_out"
            if before[key] != after[key]:
                opt_out_changed.send(
                    sender=Patient,
                    practice=practice,
                    patient=patient,
                    channel=channel,
                    opted_out=after[key],
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
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result


def _set_first_visit_parts(patient: Patient) -> None:
    first = patient.first_visit_date
    patient.first_visit_month = first.month if first else None
    patient.first_visit_day = first.day if first else None


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
    """Create or update cases from validated records; a record the database refuses is
    reported, the others are written."""
    return _upsert(_cases_write, records, practice=practice)


def _cases_write(*, practice: Practice, records: list[dict]) -> UpsertResult:
    result = UpsertResult()
    patient_ids = patient_ids_by_external_id(
        practice, [r["patient_external_id"] for r in records if r.get("patient_external_id")]
    )
    external_ids = [r["external_id"] for r in records]
    # Patients first (the order of every upsert): the named ones and the cases' owners.
    locked = patients_lock(
        practice=practice,
        patient_ids=[
            *patient_ids.values(),
            *Case.objects.filter(practice=practice, external_id__in=external_ids).values_list(
                "patient_id", flat=True
            ),
        ],
    )
    existing = {
        case.external_id: case
        for case in Case.objects.select_for_update()
        .filter(practice=practice, external_id__in=external_ids)
        .order_by("pk")
    }
    # A case moved to another patient between the two reads (rare): lock its owner too.
    patients_lock(practice=practice, patient_ids={c.patient_id for c in existing.values()} - locked)
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
    _write(
        practice=practice,
        model=Case,
        to_create=to_create,
        to_update=to_update,
        update_fields=update_fields,
        existing=existing,
        outcomes=outcomes,
        link_model=CaseDiagnosis,
        owner_field="case_id",
        target_field="diagnosis_id",
        links={
            r["external_id"]: {lookup_ids[(LookupKind.DIAGNOSIS, c)] for c in r["diagnoses"]}
            for r in valid
            if "diagnoses" in r
        },
    )
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
    every patient and case whose appointments changed (before and after the change). A record
    the database refuses is reported, the others are written."""
    return _upsert(_appointments_write, records, practice=practice)


def _appointments_write(*, practice: Practice, records: list[dict]) -> UpsertResult:
    result = UpsertResult()
    now = timezone.now()
    patient_ids = patient_ids_by_external_id(
        practice, [r["patient_external_id"] for r in records if r.get("patient_external_id")]
    )
    external_ids = [r["external_id"] for r in records]
    # Serialized per patient (see the module docstring): the patients named and the current
    # owners of the appointments named are locked before anything is read or written, so
    # the visit facts recomputed at the end see every other sync of these patients.
    locked = patients_lock(
        practice=practice,
        patient_ids=[
            *patient_ids.values(),
            *Appointment.objects.filter(
                practice=practice, external_id__in=external_ids
            ).values_list("patient_id", flat=True),
        ],
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
        for appointment in Appointment.objects.select_for_update()
        .filter(practice=practice, external_id__in=external_ids)
        .order_by("pk")
    }
    # An appointment moved to another patient between the two reads (rare): lock its owner.
    patients_lock(practice=practice, patient_ids={a.patient_id for a in existing.values()} - locked)
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

    _write(
        practice=practice,
        model=Appointment,
        to_create=to_create,
        to_update=to_update,
        update_fields=update_fields,
        existing=existing,
        outcomes=outcomes,
        link_model=AppointmentService,
        owner_field="appointment_id",
        target_field="service_id",
        links={
            r["external_id"]: {lookup_ids[(LookupKind.SERVICE, code)] for code in r["services"]}
            for r in valid
            if "services" in r
        },
    )
    visit_facts_refresh(practice=practice, patient_ids=touched_patients, case_ids=touched_cases)
    if touched_patients:
        appointments_synced.send(
            sender=Appointment, practice=practice, patient_ids=sorted(touched_patients)
        )
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result
