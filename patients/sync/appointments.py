"""The appointments upsert, and the visit facts and ``appointments_synced`` signal after it."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from patients.events import confirmation_event_emit
from patients.models import (
    Appointment,
    AppointmentService,
    Case,
    Confirmation,
    LookupKind,
    Patient,
)
from patients.selectors import patient_ids_by_external_id
from patients.signals import appointments_synced
from patients.sync.upsert import (
    UpsertResult,
    batch_upsert,
    lookups_ensure,
    record_error,
    rows_write,
    set_changed,
)
from patients.sync.visits import patients_lock, visit_facts_refresh
from trackstat.models import Practice

APPOINTMENT_LOOKUPS = {"purpose": LookupKind.PURPOSE, "provider": LookupKind.PROVIDER}


def local_date(instant: dt.datetime, practice: Practice) -> dt.date:
    return instant.astimezone(practice.tz).date()


@transaction.atomic
def appointments_upsert(*, practice: Practice, records: list[dict]) -> UpsertResult:
    """Create or update appointments from validated records, then refresh the visit facts of
    every patient and case whose appointments changed (before and after the change). A record
    the database refuses is reported, the others are written."""
    return batch_upsert(_appointments_write, records, practice=practice)


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
            record_error(result, record, "patient_external_id", "No patient with this external_id.")
            continue
        if current is None and patient_id is None:
            record_error(result, record, "patient_external_id", "Required for a new appointment.")
            continue
        if current is None and "start" not in record:
            record_error(result, record, "start", "Required for a new appointment.")
            continue
        case_external_id = record.get("case_external_id")
        if case_external_id:
            case = case_rows.get(case_external_id)
            owner = patient_id or current.patient_id
            if case is None:
                record_error(result, record, "case_external_id", "No case with this external_id.")
                continue
            if case[1] != owner:
                record_error(
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
    confirmation_resets: list[Appointment] = []
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
        set_changed(appointment, values, changed)
        if "start" in changed and appointment.confirmation != Confirmation.NONE:
            # The new time was not the one the patient confirmed (DESIGN §7).
            appointment.confirmation = Confirmation.NONE
            appointment.confirmation_at = now
            changed |= {"confirmation", "confirmation_at"}
            confirmation_resets.append(appointment)
        if changed:
            update_fields |= changed
            to_update.append(appointment)
            touched_patients |= {before_patient, appointment.patient_id}
            touched_cases |= {c for c in (before_case, appointment.case_id) if c}
        outcomes[appointment.external_id] = [
            record["_index"],
            "updated" if changed else "unchanged",
        ]

    rows_write(
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
    if confirmation_resets:
        external_ids = dict(
            Patient.objects.filter(
                practice=practice, pk__in={a.patient_id for a in confirmation_resets}
            ).values_list("pk", "external_id")
        )
        for appointment in confirmation_resets:
            confirmation_event_emit(
                practice=practice,
                appointment=appointment,
                patient_external_id=external_ids[appointment.patient_id],
            )
    visit_facts_refresh(practice=practice, patient_ids=touched_patients, case_ids=touched_cases)
    if touched_patients:
        appointments_synced.send(
            sender=Appointment, practice=practice, patient_ids=sorted(touched_patients)
        )
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result
