"""One mapping per FHIR resource type: a Patient, an Appointment, an Encounter or a Consent
as the record (visit, consent statement) it stands for, and where each record field comes
from (for errors that name the FHIR element the sender wrote). The rules are in the package
docstring."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass

from patients.sync.consents import ConsentStatement
from patients.sync.fhir.reading import (
    BundleIndex,
    Problems,
    external_id_of,
    instant_of,
    minutes_between,
    read_object,
    read_objects,
    read_strings,
    text_of,
)

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
# Consent (DESIGN §5.8): the channel is a coding of ``category`` in TrackStat's code system;
# marketing is the purpose of use HMARKT in ``provision.purpose`` (else every message).
CONSENT_CHANNEL_SYSTEM = "urn:trackstat:consent-channel"
CONSENT_CHANNELS = ("sms", "email")
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MARKETING_PURPOSE = "HMARKT"
# Statuses that record a change, and the ones skipped (not in force, or a mistake).
CONSENT_STATUSES = ("active", "inactive", "rejected")
CONSENT_SKIPPED_STATUSES = ("draft", "proposed", "entered-in-error")
CONSENT_PROVISION_TYPES = ("permit", "deny")

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
CONSENT_FIELDS = {"patient_external_id": "patient", "at": "dateTime"}


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


def patient_record(resource: dict, problems: Problems) -> dict:
    """A Patient resource as a patient record (see the module docstring)."""
    record: dict = {"external_id": external_id_of(resource)}
    names = read_objects(resource.get("name"), "name", problems)
    if names:
        name = next((n for n in names if n.get("use") == "official"), names[0])
        given = read_strings(name.get("given"), "name.given", problems)
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
    telecom = read_objects(resource.get("telecom"), "telecom", problems)
    phones = [t for t in telecom if t.get("system") == "phone"]
    if phones:
        phone = next((t for t in phones if t.get("use") == "mobile"), phones[0])
        record["phone"] = phone.get("value")
    emails = [t for t in telecom if t.get("system") == "email"]
    if emails:
        record["email"] = emails[0].get("value")
    addresses = read_objects(resource.get("address"), "address", problems)
    if addresses:
        address = addresses[0]
        lines = read_strings(address.get("line"), "address.line", problems)
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
    for participant in read_objects(resource.get("participant"), "participant", problems):
        actor = read_object(participant.get("actor"), "participant.actor", problems)
        reference = actor.get("reference")
        resolved_type, external_id, _ = index.resolve(reference)
        if resolved_type is None and (text_of(reference) or "").startswith("urn:"):
            dangling = True
        resource_type = resolved_type or text_of(actor.get("type"))
        display = text_of(actor.get("display"))
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
        minutes = minutes_between(resource.get("start"), resource["end"], "end", problems)
        if minutes is not None:
            record["duration_minutes"] = minutes
    if "status" in resource:
        status = resource["status"]
        if isinstance(status, str) and status in APPOINTMENT_STATUSES:
            record["status"] = APPOINTMENT_STATUSES[status]
        else:
            problems.append(("status", f"Must be one of: {', '.join(APPOINTMENT_STATUSES)}."))
    service_types = read_objects(resource.get("serviceType"), "serviceType", problems)
    if service_types:
        codings = read_objects(service_types[0].get("coding"), "serviceType.coding", problems)
        purpose = text_of(service_types[0].get("text")) or (
            text_of(codings[0].get("display")) if codings else None
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
    period = read_object(resource.get("period"), "period", problems)
    visit.start = period.get("start")
    if visit.start is not None and instant_of(visit.start) is None:
        problems.append(("period.start", "Must be a date and time with an offset."))
    if period.get("end") is not None:
        visit.duration_minutes = minutes_between(visit.start, period["end"], "period.end", problems)

    appointments = read_objects(resource.get("appointment"), "appointment", problems)
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

    subject = read_object(resource.get("subject"), "subject", problems)
    if subject.get("reference") is not None:
        resource_type, external_id, _ = index.resolve(subject.get("reference"))
        if resource_type != "Patient":
            problems.append(("subject", "Must reference a Patient of the bundle or a stored one."))
        visit.patient_external_id = external_id if resource_type == "Patient" else None

    for participant in read_objects(resource.get("participant"), "participant", problems):
        individual = read_object(participant.get("individual"), "participant.individual", problems)
        resource_type, _, _ = index.resolve(individual.get("reference"))
        if resource_type == "Practitioner" and visit.provider is None:
            visit.provider = text_of(individual.get("display"))
    return visit


def _codings(concepts: list[dict], path: str, problems: Problems) -> list[dict]:
    return [
        coding
        for concept in concepts
        for coding in read_objects(concept.get("coding"), f"{path}.coding", problems)
    ]


def _plain_text(narrative) -> str:
    """The text of a narrative's XHTML ``div``, tags dropped and spaces collapsed."""
    text = html.unescape(re.sub(r"<[^>]*>", " ", narrative if isinstance(narrative, str) else ""))
    return " ".join(text.split())


def consent_statement(
    resource: dict, source: Source, index: BundleIndex, problems: Problems
) -> ConsentStatement | None:
    """A Consent as a change of the consent ledger; None for the statuses that are skipped
    (draft, proposed, entered-in-error). Rules: the package docstring."""
    status = resource.get("status")
    if isinstance(status, str) and status in CONSENT_SKIPPED_STATUSES:
        return None
    if not isinstance(status, str) or status not in CONSENT_STATUSES:
        statuses = CONSENT_STATUSES + CONSENT_SKIPPED_STATUSES
        problems.append(("status", f"Must be one of: {', '.join(statuses)}."))

    channels = {
        coding.get("code")
        for coding in _codings(
            read_objects(resource.get("category"), "category", problems), "category", problems
        )
        if coding.get("system") == CONSENT_CHANNEL_SYSTEM
    }
    if len(channels) != 1 or not channels <= set(CONSENT_CHANNELS):
        problems.append(
            (
                "category",
                f"Give exactly one coding of system {CONSENT_CHANNEL_SYSTEM} with code "
                f"{' or '.join(CONSENT_CHANNELS)} (the channel the Consent is about).",
            )
        )
    provision = read_object(resource.get("provision"), "provision", problems)
    purposes = read_objects(provision.get("purpose"), "provision.purpose", problems)
    marketing = any(
        p.get("system") == ACT_REASON_SYSTEM and p.get("code") == MARKETING_PURPOSE
        for p in purposes
    )
    scope = "marketing" if marketing else "all"
    provision_type = provision.get("type")
    if provision_type not in CONSENT_PROVISION_TYPES and (
        status == "active" or provision_type is not None
    ):
        problems.append(("provision.type", "Must be permit or deny."))
    if status == "inactive" and scope == "all":
        problems.append(
            (
                "status",
                "An inactive Consent about every message of a channel is not read (an opt-out "
                "ends only by an active permit); send status active.",
            )
        )
    if provision.get("provision") is not None:
        problems.append(("provision.provision", "Nested provisions are not supported."))
    period = read_object(provision.get("period"), "provision.period", problems)
    if period.get("end") is not None:
        problems.append(
            (
                "provision.period.end",
                "A consent that lapses is not supported; send a new Consent when it changes.",
            )
        )

    at = instant_of(resource.get("dateTime"))
    if at is None:
        problems.append(("dateTime", "Must be a date and time with an offset."))

    resource_id = text_of(resource.get("id")) or external_id_of(resource)
    if resource_id is None:
        problems.append(("id", "Give an id or an identifier."))
    meta = read_object(resource.get("meta"), "meta", problems)
    version = text_of(meta.get("versionId"))

    patient = read_object(resource.get("patient"), "patient", problems)
    resolved_type, patient_external_id, patient_entry = index.resolve(patient.get("reference"))
    if resolved_type != "Patient" or patient_external_id is None:
        problems.append(("patient", "Must reference a Patient of the bundle or a stored one."))

    if resource_id is not None and len(resource_id) > 64:
        problems.append(("id", "At most 64 characters."))
    if version is not None and len(version) > 64:  # FHIR's id type, as the ledger keeps it
        problems.append(("meta.versionId", "At most 64 characters."))
    if problems or at is None or resource_id is None:
        return None
    if status == "active":
        granted: bool | None = provision_type == "permit"
    elif status == "rejected":
        granted = False  # the patient refused it
    else:  # inactive, about marketing: no consent on record any more
        granted = None
    text = read_object(resource.get("text"), "text", problems)
    wording = _plain_text(text.get("div"))
    if not wording:
        attachment = read_object(resource.get("sourceAttachment"), "sourceAttachment", problems)
        wording = text_of(attachment.get("title")) or ""
    reference = (
        f"Consent/{resource_id}/_history/{version}"
        if version
        else f"Consent/{resource_id}@{at.astimezone(dt.UTC).isoformat()}"
    )
    return ConsentStatement(
        entry=source.index,
        reference=reference,
        channel=channels.pop(),
        scope=scope,
        granted=granted,
        at=at,
        wording=wording,
        patient_external_id=patient_external_id,
        patient_entry=patient_entry,
    )
