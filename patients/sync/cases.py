"""The cases upsert: case types, diagnoses and the patient a case belongs to, set-wise."""

from __future__ import annotations

from django.db import transaction
from django.db.models import OuterRef, Subquery

from patients.models import Appointment, Case, CaseDiagnosis, LookupKind
from patients.selectors import patient_ids_by_external_id
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

CASE_LOOKUPS = {
    "case_type": LookupKind.CASE_TYPE,
    "attorney": LookupKind.ATTORNEY,
    "insurance_company": LookupKind.INSURANCE_COMPANY,
}


@transaction.atomic
def cases_upsert(*, practice: Practice, records: list[dict]) -> UpsertResult:
    """Create or update cases from validated records; a record the database refuses is
    reported, the others are written."""
    return batch_upsert(_cases_write, records, practice=practice)


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
            record_error(result, record, "patient_external_id", "No patient with this external_id.")
        elif not patient_external_id and record["external_id"] not in existing:
            record_error(result, record, "patient_external_id", "Required for a new case.")
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
        set_changed(case, values, changed)
        if "patient_id" in changed:
            refresh_patients |= {old_patient, case.patient_id}
        if changed:
            update_fields |= changed
            to_update.append(case)
        outcomes[case.external_id] = [record["_index"], "updated" if changed else "unchanged"]
    rows_write(
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
