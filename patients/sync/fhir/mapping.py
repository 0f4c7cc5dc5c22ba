"""A whole bundle as patient and appointment records and consent statements (``bundle_map``,
no database), and its visits applied to the appointments they name (``visits_apply``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from patients.sync.fhir.reading import RESOURCE_TYPES, BundleIndex, Problems, bundle_entries
from patients.sync.fhir.resources import (
    APPOINTMENT_FIELDS,
    CONSENT_FIELDS,
    ENCOUNTER_FIELDS,
    ENCOUNTER_UPDATE_FIELDS,
    PATIENT_FIELDS,
    ConsentStatement,
    Source,
    Visit,
    appointment_record,
    consent_statement,
    encounter_visit,
    patient_record,
)
from patients.sync.records import echoed_external_id

ENCOUNTER_APPOINTMENT_PREFIX = "encounter-"


@dataclass
class MappedBundle:
    """A bundle as API-shaped records, each with its source, plus the problems found."""

    patients: list[dict] = field(default_factory=list)
    patient_sources: list[Source] = field(default_factory=list)
    appointments: list[dict] = field(default_factory=list)
    appointment_sources: list[Source] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    skipped_encounters: int = 0
    consents: list[ConsentStatement] = field(default_factory=list)
    skipped_consents: int = 0
    # Entry index of each Appointment → its record's position in ``appointments``.
    appointment_positions: dict[int, int] = field(default_factory=dict)
    # Entry index → {FHIR element: [messages]}: the entries at fault so far.
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    # Entry index → resource type and external id, to name an entry in ``errors``.
    resource_types: dict[int, str | None] = field(default_factory=dict)
    external_ids: dict[int, str | None] = field(default_factory=dict)

    def fault(self, entry: int, element: str, message: str) -> None:
        self.errors.setdefault(entry, {}).setdefault(element, []).append(message)

    def stored_appointment_candidates(self) -> set[str]:
        """External ids that encounters name and that are not Appointments of the bundle."""
        return {v.appointment_external_id for v in self.visits if v.appointment_external_id}


def bundle_map(bundle) -> MappedBundle:
    """Map a Bundle to patient and appointment records, visits and problems (no database)."""
    entries = bundle_entries(bundle)
    mapped = MappedBundle()
    index = BundleIndex()
    resources: dict[int, dict] = {}
    problems: dict[int, Problems] = {}
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        mapped.resource_types[i] = None
        mapped.external_ids[i] = None
        if not isinstance(resource, dict):
            mapped.fault(i, "resource", "Each entry must have a resource object.")
            continue
        resource_type = resource.get("resourceType")
        if resource_type not in RESOURCE_TYPES:
            mapped.fault(i, "resourceType", f"Not supported; send {', '.join(RESOURCE_TYPES)}.")
            continue
        mapped.resource_types[i] = resource_type
        resources[i] = resource
        problems[i] = []
        index.add(i, entry, resource, problems[i])
        mapped.external_ids[i] = echoed_external_id(index.external_ids[i])

    for i, resource in resources.items():
        resource_type = resource["resourceType"]
        if resource_type == "Patient":
            mapped.patients.append(patient_record(resource, problems[i]))
            mapped.patient_sources.append(Source(i, resource_type, PATIENT_FIELDS))
        elif resource_type == "Appointment":
            mapped.appointment_positions[i] = len(mapped.appointments)
            mapped.appointments.append(appointment_record(resource, index, problems[i]))
            mapped.appointment_sources.append(Source(i, resource_type, APPOINTMENT_FIELDS))
        elif resource_type == "Consent":
            source = Source(i, resource_type, CONSENT_FIELDS)
            statement = consent_statement(resource, source, index, problems[i])
            if statement is not None:
                mapped.consents.append(statement)
            elif not problems[i]:
                mapped.skipped_consents += 1
        else:
            source = Source(i, resource_type, ENCOUNTER_FIELDS)
            visit = encounter_visit(resource, source, index, problems[i])
            if visit is None:
                mapped.skipped_encounters += 1
            else:
                mapped.visits.append(visit)
        for path, message in problems[i]:
            mapped.fault(i, path, message)
    return mapped


def visits_apply(mapped: MappedBundle, stored_appointment_ids: set[str]) -> None:
    """Turn the visits into appointment records: updates of the bundle's or stored
    appointments they name, or new ``encounter-<id>`` appointments. An Encounter at fault
    sets nothing."""
    stored_positions: dict[str, int] = {}
    for visit in mapped.visits:
        if visit.source.index in mapped.errors:
            continue
        values: dict = {"status": visit.status}
        if visit.start is not None:
            values["checked_in_at"] = visit.start
        if visit.appointment_entry is not None:
            visit.record_position = mapped.appointment_positions[visit.appointment_entry]
            mapped.appointments[visit.record_position].update(values)
        elif visit.appointment_external_id in stored_appointment_ids:
            external_id = visit.appointment_external_id
            if external_id in stored_positions:
                visit.record_position = stored_positions[external_id]
                mapped.appointments[visit.record_position].update(values)
            else:
                visit.record_position = stored_positions[external_id] = len(mapped.appointments)
                mapped.appointments.append({"external_id": external_id, **values})
                mapped.appointment_sources.append(
                    Source(visit.source.index, "Encounter", ENCOUNTER_UPDATE_FIELDS)
                )
        elif visit.external_id is None:
            mapped.fault(visit.source.index, "identifier", "Give an identifier or id.")
        else:
            visit.record_position = len(mapped.appointments)
            record = {
                "external_id": f"{ENCOUNTER_APPOINTMENT_PREFIX}{visit.external_id}",
                **values,
            }
            if visit.start is not None:
                record["start"] = visit.start
            if visit.patient_external_id:
                record["patient_external_id"] = visit.patient_external_id
            if visit.duration_minutes is not None:
                record["duration_minutes"] = visit.duration_minutes
            if visit.provider:
                record["provider"] = visit.provider
            mapped.appointments.append(record)
            mapped.appointment_sources.append(visit.source)
