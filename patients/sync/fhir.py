"""FHIR R4 import (DESIGN §4.1, ``POST /api/v1/fhir``).

A Bundle of Patient, Appointment and Encounter resources becomes the same patient and
appointment records as the REST API's, checked by the same serializers
(``patients.sync.records``) and written by the same upserts (``patients.sync.patients`` and
``patients.sync.appointments``). The mapping functions are pure; ``fhir_bundle_import`` is the
one service.

Mapping rules
-------------
Bundle
    ``resourceType`` is ``Bundle``; ``type`` is ``batch``, ``transaction`` or ``collection``;
    ``entry`` (absent means empty) is a list of at most 5,000 entries, each with a
    ``resource`` of type Patient, Appointment or Encounter; any other resource type is an error
    naming the entry. Entries' ``request`` is not read: every resource is an upsert by its
    external id.

External id (every resource type)
    The ``value`` of the identifier whose ``type.coding`` has the code ``MR`` (medical record
    number), else the first identifier's ``value``, else the resource's ``id``.

Patient
    ``name`` (the one with ``use: official``, else the first): ``given[0]`` → first_name,
    ``family`` → last_name. ``birthDate`` (a full date) → birth_date. ``gender`` male, female,
    other, unknown → M, F, X, U. ``telecom``: the ``phone`` with ``use: mobile``, else the
    first phone → phone; the first ``email`` → email. ``address[0]``: ``line[0]``,
    ``line[1]``, ``city``, ``state``, ``postalCode``. Status: ``deceasedBoolean: true`` or a
    ``deceasedDateTime`` → deceased, else ``active: false`` → inactive, else active. As for
    every record, an element that is absent leaves the stored value as it is; an element that
    is present sets every field it maps to (a ``name`` without ``given`` clears first_name).

References (Appointment participants, Encounter subject and appointment)
    A reference equal to an entry's ``fullUrl`` (``urn:uuid:…`` or absolute) is that entry;
    ``Type/<id>`` (relative or absolute, ``_history`` ignored) is the bundle's entry of that
    type and ``id`` (whose external id may differ from its id), else the bundle's entry of that
    type whose external id is ``<id>``, else the stored record whose external id is ``<id>``.
    A ``urn:`` reference that matches no entry is an error where the patient or the
    appointment depends on it.

Appointment
    The first participant whose actor is a Patient gives the patient; a participant whose
    actor is a Practitioner gives the provider by its ``display``. ``start`` (with an offset)
    → start; ``minutesDuration``, else ``end`` - ``start`` → duration_minutes. ``status``:
    proposed, pending, booked → scheduled; arrived, checked-in → checked_in; fulfilled →
    completed; cancelled, entered-in-error → cancelled; noshow → no_show; any other code
    (``waitlist``) is an error. ``serviceType[0]``'s ``text``, else its
    ``coding[0].display`` → purpose. ``created`` (with an offset) → booked_at.

Encounter
    Status ``finished`` or ``in-progress`` is a checked-in visit; other statuses are skipped
    (counted, nothing stored). When ``appointment[0].reference`` names an Appointment of the
    bundle or a stored appointment, that appointment becomes completed (finished) or
    checked_in (in-progress), with checked_in_at = ``period.start``; when several encounters
    name one appointment, the later entry wins. Otherwise the visit is stored as the
    appointment ``encounter-<external id>``: patient from ``subject``, start and checked_in_at
    = ``period.start``, duration from ``period.end``, provider from a Practitioner
    participant's ``individual.display``.

Entry by entry
    As with ``POST /patients:bulk``, the valid entries are imported and each invalid one is
    reported: ``errors`` lists ``{"index": i, "resource_type", "external_id", "errors":
    {element: [messages]}}`` per entry at fault, with FHIR element names, never patient data.
    An entry is at fault when it cannot be mapped, when its record fails validation, or when
    the database refuses it (a reference to a patient that is neither in the bundle nor
    stored, a value that does not fit). An Encounter whose appointment is not imported is
    not applied, and says so. Patients are written before appointments, in one transaction;
    only a bundle that is not a Bundle at all (its type, its ``entry``) answers 400 with
    nothing stored. Sending the same bundle again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction

from patients.models import Appointment
from patients.sync.appointments import appointments_upsert
from patients.sync.patients import patients_upsert
from patients.sync.records import (
    MAX_BULK_RECORDS,
    AppointmentRecordSerializer,
    PatientRecordSerializer,
    echoed_external_id,
    validate_records,
)
from patients.sync.upsert import UpsertResult
from trackstat.models import Practice

BUNDLE_TYPES = ("batch", "transaction", "collection")
RESOURCE_TYPES = ("Patient", "Appointment", "Encounter")
GENDERS = {"male": "M", "female": "F", "other": "X", "unknown": "U"}
APPOINTMENT_STATUSES = {
    "proposed": "scheduled",
    "pending": "scheduled",
    "booked": "scheduled",
    "arrived": "checked_in",
    "checked-in": "checked_in",
    "fulfilled": "completed",
    "cancelled": "cancelled",
    "entered-in-error": "cancelled",
    "noshow": "no_show",
}
VISIT_STATUSES = {"finished": "completed", "in-progress": "checked_in"}
ENCOUNTER_APPOINTMENT_PREFIX = "encounter-"

# Where each record field comes from, so that errors name the FHIR element the sender wrote.
PATIENT_FIELDS = {
    "external_id": "identifier",
    "first_name": "name.given",
    "last_name": "name.family",
    "birth_date": "birthDate",
    "sex": "gender",
    "phone": "telecom",
    "email": "telecom",
    "address.line1": "address.line",
    "address.line2": "address.line",
    "address.city": "address.city",
    "address.state": "address.state",
    "address.postal_code": "address.postalCode",
    "status": "active",
}
APPOINTMENT_FIELDS = {
    "external_id": "identifier",
    "patient_external_id": "participant",
    "start": "start",
    "duration_minutes": "minutesDuration",
    "status": "status",
    # Set by an Encounter of the bundle that names this appointment.
    "checked_in_at": "period.start",
    "booked_at": "created",
    "purpose": "serviceType",
    "provider": "participant",
}
ENCOUNTER_FIELDS = {
    "external_id": "identifier",
    "patient_external_id": "subject",
    "start": "period.start",
    "duration_minutes": "period.end",
    "status": "status",
    "checked_in_at": "period.start",
    "provider": "participant",
}
# An Encounter that updates a stored appointment: its record's external id is the reference.
ENCOUNTER_UPDATE_FIELDS = {**ENCOUNTER_FIELDS, "external_id": "appointment"}


class FhirBundleError(ValueError):
    """The bundle cannot be imported; ``errors`` is the API's ``{field: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("The FHIR bundle cannot be imported.")
        self.errors = errors


@dataclass(frozen=True)
class Source:
    """Where a record comes from: the entry's index and type, and its fields' FHIR names."""

    index: int
    resource_type: str
    fields: dict[str, str]

    def element(self, path: str) -> str:
        """The FHIR element a record field (``address.city``) comes from."""
        return self.fields.get(path, path)


@dataclass
class Visit:
    """A checked-in Encounter, before it is applied to an appointment."""

    source: Source
    external_id: str | None
    status: str
    start: object = None
    duration_minutes: int | None = None
    patient_external_id: str | None = None
    provider: str | None = None
    appointment_entry: int | None = None  # an Appointment entry of the bundle
    appointment_external_id: str | None = None  # maybe a stored appointment
    record_position: int | None = None  # the appointment record it sets (visits_apply)


@dataclass
class MappedBundle:
    """A bundle as API-shaped records, each with its source, plus the problems found."""

    patients: list[dict] = field(default_factory=list)
    patient_sources: list[Source] = field(default_factory=list)
    appointments: list[dict] = field(default_factory=list)
    appointment_sources: list[Source] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    skipped_encounters: int = 0
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


# Reading resources: a wrong shape is noted as a problem (path, message), never raised.
Problems = list[tuple[str, str]]


def _objects(value, path: str, problems: Problems) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append((path, "Must be a list of objects."))
        return []
    return value


def _object(value, path: str, problems: Problems) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((path, "Must be an object."))
        return {}
    return value


def _strings(value, path: str, problems: Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append((path, "Must be a list of strings."))
        return []
    return value


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _instant(value) -> dt.datetime | None:
    """An ISO 8601 date and time with an offset, or None."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except (AttributeError, TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _minutes_between(start, end, path: str, problems: Problems) -> int | None:
    start_at, end_at = _instant(start), _instant(end)
    if start_at is None:
        return None  # the start's own validation reports it
    if end_at is None:
        problems.append((path, "Must be a date and time with an offset."))
        return None
    if end_at < start_at:
        problems.append((path, "Must not be before the start."))
        return None
    return int((end_at - start_at).total_seconds() // 60)


def external_id_of(resource: dict) -> str | None:
    """The MR identifier's value, else the first identifier's value, else the id."""
    identifiers = resource.get("identifier")
    identifiers = (
        [i for i in identifiers if isinstance(i, dict)] if isinstance(identifiers, list) else []
    )
    for identifier in identifiers:
        identifier_type = identifier.get("type")
        codings = identifier_type.get("coding") if isinstance(identifier_type, dict) else None
        is_mr = isinstance(codings, list) and any(
            isinstance(coding, dict) and coding.get("code") == "MR" for coding in codings
        )
        if is_mr and _text(identifier.get("value")):
            return _text(identifier["value"])
    if identifiers and _text(identifiers[0].get("value")):
        return _text(identifiers[0]["value"])
    return _text(resource.get("id"))


class BundleIndex:
    """The bundle's entries by ``fullUrl``, ``Type/id`` and external id, to resolve references."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        # (type, external id) → entry: ``Appointment/APT-9`` may name the entry whose
        # identifier is APT-9, so that it is not mistaken for a stored appointment.
        self.by_external_id: dict[tuple[str, str], int] = {}
        self.types: dict[int, str] = {}
        self.external_ids: dict[int, str | None] = {}

    def add(self, index: int, entry: dict, resource: dict, problems: Problems) -> None:
        resource_type = resource["resourceType"]
        self.types[index] = resource_type
        self.external_ids[index] = external_id_of(resource)
        full_url = _text(entry.get("fullUrl"))
        if full_url:
            if full_url in self.keys:
                problems.append(("fullUrl", "Appears on an earlier entry of the bundle."))
            self.keys[full_url] = index
        resource_id = _text(resource.get("id"))
        if resource_id:
            self.keys.setdefault(f"{resource_type}/{resource_id}", index)
        if self.external_ids[index]:
            self.by_external_id.setdefault((resource_type, self.external_ids[index]), index)

    def resolve(self, reference) -> tuple[str | None, str | None, int | None]:
        """(type, external id, entry index or None when not in the bundle) of a reference.

        The type is None when the reference cannot be read (or is a ``urn:`` matching no
        entry); the external id is None when the entry it names has none.
        """
        reference = _text(reference)
        if reference is None:
            return None, None, None
        if reference in self.keys:
            index = self.keys[reference]
            return self.types[index], self.external_ids[index], index
        if reference.startswith("urn:"):
            return None, None, None
        parts = reference.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) < 2 or not parts[-2].isalpha() or not parts[-2][:1].isupper():
            return None, None, None
        resource_type, resource_id = parts[-2], parts[-1].strip()
        if not resource_id:
            return None, None, None
        index = self.keys.get(f"{resource_type}/{resource_id}")
        if index is None or self.types[index] != resource_type:
            index = self.by_external_id.get((resource_type, resource_id))
        if index is not None:
            return resource_type, self.external_ids[index], index
        return resource_type, resource_id, None


def bundle_entries(bundle) -> list:
    """The entries of a bundle; FhirBundleError naming the field if the bundle is malformed."""
    if not isinstance(bundle, dict):
        raise FhirBundleError({"non_field_errors": ["Send a FHIR Bundle as a JSON object."]})
    if bundle.get("resourceType") != "Bundle":
        raise FhirBundleError({"resourceType": ["Must be Bundle."]})
    if bundle.get("type") not in BUNDLE_TYPES:
        raise FhirBundleError({"type": [f"Must be one of: {', '.join(BUNDLE_TYPES)}."]})
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirBundleError({"entry": ["Must be a list of entries."]})
    if len(entries) > MAX_BULK_RECORDS:
        raise FhirBundleError({"entry": [f"At most {MAX_BULK_RECORDS} entries per bundle."]})
    return entries


def patient_record(resource: dict, problems: Problems) -> dict:
    """A Patient resource as a patient record (see the module docstring)."""
    record: dict = {"external_id": external_id_of(resource)}
    names = _objects(resource.get("name"), "name", problems)
    if names:
        name = next((n for n in names if n.get("use") == "official"), names[0])
        given = _strings(name.get("given"), "name.given", problems)
        record["first_name"] = given[0] if given else ""
        record["last_name"] = name.get("family") or ""
    if "birthDate" in resource:
        record["birth_date"] = resource["birthDate"]
    if "gender" in resource:
        gender = resource["gender"]
        if isinstance(gender, str) and gender in GENDERS:
            record["sex"] = GENDERS[gender]
        else:
            problems.append(("gender", f"Must be one of: {', '.join(GENDERS)}."))
    telecom = _objects(resource.get("telecom"), "telecom", problems)
    phones = [t for t in telecom if t.get("system") == "phone"]
    if phones:
        phone = next((t for t in phones if t.get("use") == "mobile"), phones[0])
        record["phone"] = phone.get("value")
    emails = [t for t in telecom if t.get("system") == "email"]
    if emails:
        record["email"] = emails[0].get("value")
    addresses = _objects(resource.get("address"), "address", problems)
    if addresses:
        address = addresses[0]
        lines = _strings(address.get("line"), "address.line", problems)
        record["address"] = {
            "line1": lines[0] if lines else "",
            "line2": lines[1] if len(lines) > 1 else "",
            "city": address.get("city") or "",
            "state": address.get("state") or "",
            "postal_code": address.get("postalCode") or "",
        }
    if resource.get("deceasedBoolean") is True or resource.get("deceasedDateTime"):
        record["status"] = "deceased"
    elif resource.get("active") is False:
        record["status"] = "inactive"
    else:
        record["status"] = "active"
    return record


def appointment_record(resource: dict, index: BundleIndex, problems: Problems) -> dict:
    """An Appointment resource as an appointment record (see the module docstring)."""
    record: dict = {"external_id": external_id_of(resource)}
    dangling = False
    for participant in _objects(resource.get("participant"), "participant", problems):
        actor = _object(participant.get("actor"), "participant.actor", problems)
        reference = actor.get("reference")
        resolved_type, external_id, _ = index.resolve(reference)
        if resolved_type is None and (_text(reference) or "").startswith("urn:"):
            dangling = True
        resource_type = resolved_type or _text(actor.get("type"))
        display = _text(actor.get("display"))
        if resource_type == "Patient" and "patient_external_id" not in record and external_id:
            record["patient_external_id"] = external_id
        elif resource_type == "Practitioner" and "provider" not in record and display:
            record["provider"] = display
    if dangling and "patient_external_id" not in record:
        problems.append(("participant", "A urn: reference matches no entry's fullUrl."))
    if "start" in resource:
        record["start"] = resource["start"]
    if resource.get("minutesDuration") is not None:
        record["duration_minutes"] = resource["minutesDuration"]
    elif resource.get("end") is not None:
        minutes = _minutes_between(resource.get("start"), resource["end"], "end", problems)
        if minutes is not None:
            record["duration_minutes"] = minutes
    if "status" in resource:
        status = resource["status"]
        if isinstance(status, str) and status in APPOINTMENT_STATUSES:
            record["status"] = APPOINTMENT_STATUSES[status]
        else:
            problems.append(("status", f"Must be one of: {', '.join(APPOINTMENT_STATUSES)}."))
    service_types = _objects(resource.get("serviceType"), "serviceType", problems)
    if service_types:
        codings = _objects(service_types[0].get("coding"), "serviceType.coding", problems)
        purpose = _text(service_types[0].get("text")) or (
            _text(codings[0].get("display")) if codings else None
        )
        if purpose:
            record["purpose"] = purpose
    if resource.get("created") is not None:
        record["booked_at"] = resource["created"]
    return record


def encounter_visit(
    resource: dict, source: Source, index: BundleIndex, problems: Problems
) -> Visit | None:
    """A finished or in-progress Encounter as a visit; None for the statuses that are skipped."""
    status = resource.get("status")
    if not isinstance(status, str) or status not in VISIT_STATUSES:
        return None
    visit = Visit(
        source=source, external_id=external_id_of(resource), status=VISIT_STATUSES[status]
    )
    period = _object(resource.get("period"), "period", problems)
    visit.start = period.get("start")
    if visit.start is not None and _instant(visit.start) is None:
        problems.append(("period.start", "Must be a date and time with an offset."))
    if period.get("end") is not None:
        visit.duration_minutes = _minutes_between(
            visit.start, period["end"], "period.end", problems
        )

    appointments = _objects(resource.get("appointment"), "appointment", problems)
    if appointments:
        reference = appointments[0].get("reference")
        resource_type, external_id, entry = index.resolve(reference)
        if resource_type != "Appointment":
            problems.append(
                ("appointment", "Must reference an Appointment of the bundle or a stored one.")
            )
        elif entry is not None:
            visit.appointment_entry = entry
        else:
            visit.appointment_external_id = external_id

    subject = _object(resource.get("subject"), "subject", problems)
    if subject.get("reference") is not None:
        resource_type, external_id, _ = index.resolve(subject.get("reference"))
        if resource_type != "Patient":
            problems.append(("subject", "Must reference a Patient of the bundle or a stored one."))
        visit.patient_external_id = external_id if resource_type == "Patient" else None

    for participant in _objects(resource.get("participant"), "participant", problems):
        individual = _object(participant.get("individual"), "participant.individual", problems)
        resource_type, _, _ = index.resolve(individual.get("reference"))
        if resource_type == "Practitioner" and visit.provider is None:
            visit.provider = _text(individual.get("display"))
    return visit


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


def fhir_bundle_import(*, practice: Practice, bundle: dict, actor=None) -> dict:
    """Import a FHIR R4 Bundle into ``practice`` entry by entry (see the module docstring).

    Returns ``{"patients": counts, "appointments": counts, "encounters": {"applied",
    "skipped"}, "errors": [per entry at fault]}``; raises FhirBundleError (nothing stored)
    when the bundle itself is malformed.
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
    with transaction.atomic():
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
    _record_faults(mapped, appointment_result.errors, mapped.appointment_sources)
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
