"""``fhir_bundle_import``: a bundle mapped, validated and written entry by entry."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from patients.models import Appointment
from patients.sync.appointments import appointments_upsert
from patients.sync.consents import emr_consents_record
from patients.sync.fhir.mapping import MappedBundle, bundle_map, visits_apply
from patients.sync.fhir.resources import Source
from patients.sync.patients import patients_upsert
from patients.sync.records import (
    AppointmentRecordSerializer,
    PatientRecordSerializer,
    validate_records,
)
from patients.sync.upsert import UpsertResult
from trackstat.models import Practice


def _flatten(errors, path: str = ""):
    """(path, message) pairs of a record's nested errors, ``address.city`` style."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _flatten(value, f"{path}.{key}" if path else str(key))
    elif isinstance(errors, list):
        for item in errors:
            yield from _flatten(item, path)
    else:
        yield path, str(errors)


def _record_faults(mapped: MappedBundle, errors: list[dict], sources: list[Source]) -> None:
    """Record errors (``validate_records``' or an upsert's) as faults of their entries."""
    for error in errors:
        source = sources[error["index"]]
        for path, message in _flatten(error["errors"]):
            mapped.fault(source.index, source.element(path), message)


def _counts(result: UpsertResult) -> dict:
    return {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}


def _without_faulty(records: list[dict], sources: list[Source], mapped: MappedBundle):
    """The records whose entries are not at fault (an entry is imported whole or not at all)."""
    return [r for r in records if sources[r["_index"]].index not in mapped.errors]


def _consents_to_record(mapped: MappedBundle) -> list:
    """The bundle's Consents not at fault whose patient is stored or was just imported."""
    statements = []
    for statement in mapped.consents:
        if statement.entry in mapped.errors:
            continue
        if statement.patient_entry is not None and statement.patient_entry in mapped.errors:
            mapped.fault(
                statement.entry,
                "patient",
                f"Not applied: the patient it names (entry[{statement.patient_entry}]) was "
                "not imported.",
            )
            continue
        statements.append(statement)
    return statements


def fhir_bundle_import(*, practice: Practice, bundle: dict, actor=None) -> dict:
    """Import a FHIR R4 Bundle into ``practice`` entry by entry (see the module docstring).

    Returns ``{"patients": counts, "appointments": counts, "encounters": {"applied",
    "skipped"}, "consents": {"recorded", "superseded", "unchanged", "skipped"}, "errors":
    [per entry at fault]}``; raises FhirBundleError (nothing stored) when the bundle itself
    is malformed.
    """
    mapped = bundle_map(bundle)
    stored_appointment_ids = set(
        Appointment.objects.filter(
            practice=practice, external_id__in=mapped.stored_appointment_candidates()
        ).values_list("external_id", flat=True)
    )
    visits_apply(mapped, stored_appointment_ids)
    patients, patient_errors = validate_records(PatientRecordSerializer, mapped.patients)
    appointments, appointment_errors = validate_records(
        AppointmentRecordSerializer, mapped.appointments
    )
    _record_faults(mapped, patient_errors, mapped.patient_sources)
    _record_faults(mapped, appointment_errors, mapped.appointment_sources)
    with transaction.atomic(durable=True):
        patient_result = patients_upsert(
            practice=practice,
            records=_without_faulty(patients, mapped.patient_sources, mapped),
            actor=actor,
        )
        _record_faults(mapped, patient_result.errors, mapped.patient_sources)
        appointment_result = appointments_upsert(
            practice=practice,
            records=_without_faulty(appointments, mapped.appointment_sources, mapped),
        )
        consent_result = emr_consents_record(
            practice=practice,
            statements=_consents_to_record(mapped),
            actor=actor,
            now=timezone.now(),
        )
    _record_faults(mapped, appointment_result.errors, mapped.appointment_sources)
    for entry, element, message in consent_result.faults:
        mapped.fault(entry, element, message)
    applied = 0
    for visit in mapped.visits:
        if visit.source.index in mapped.errors or visit.record_position is None:
            continue
        if visit.record_position in appointment_result.outcomes:
            applied += 1
        else:
            entry = mapped.appointment_sources[visit.record_position].index
            mapped.fault(
                visit.source.index,
                "appointment",
                f"Not applied: the appointment it names (entry[{entry}]) was not imported.",
            )
    return {
        "patients": _counts(patient_result),
        "appointments": _counts(appointment_result),
        "encounters": {"applied": applied, "skipped": mapped.skipped_encounters},
        "consents": {
            "recorded": consent_result.recorded,
            "superseded": consent_result.superseded,
            "unchanged": consent_result.unchanged,
            "skipped": mapped.skipped_consents,
        },
        "errors": [
            {
                "index": entry,
                "resource_type": mapped.resource_types[entry],
                "external_id": mapped.external_ids[entry],
                "errors": errors,
            }
            for entry, errors in sorted(mapped.errors.items())
        ],
    }
