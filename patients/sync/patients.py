"""The patients upsert: demographics, lookups, tags and EMR opt-outs, set-wise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from patients.consent import consent_change, consent_changes_record
from patients.events import opt_out_event_emit
from patients.models import (
    ConsentScope,
    ConsentSource,
    LookupKind,
    OptOutSource,
    Patient,
    PatientTag,
    Sex,
    Tag,
)
from patients.signals import opt_out_changed
from patients.sync.upsert import (
    UpsertResult,
    batch_upsert,
    lookups_ensure,
    rows_write,
    set_changed,
)
from patients.sync.visits import visit_facts_refresh
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
PATIENT_PLAIN_FIELDS = ["first_name", "last_name", "birth_date", "status", "paid_total"]
ADDRESS_FIELDS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
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


def _consent_values(patient: Patient, record: dict) -> dict:
    """The marketing consent the record changes (its ``consent`` object, DESIGN §5.8)."""
    values = {}
    for channel in ("sms", "email"):
        given = record.get("consent", {})
        key = f"{channel}_marketing"
        if key in given and given[key] is not getattr(patient, f"{key}_consent"):
            values[f"{key}_consent"] = given[key]
    return values


def _ledger_rows(
    *, practice: Practice, patient: Patient, before: dict, source: str, actor, now
) -> list:
    """Ledger rows for what the sync changed of the patient's opt-outs and consent."""
    rows = []
    for channel in ("sms", "email"):
        for field, scope, granted in (
            (f"{channel}_opt_out", ConsentScope.ALL, lambda v: not v),
            (f"{channel}_marketing_consent", ConsentScope.MARKETING, lambda v: v),
        ):
            after = getattr(patient, field)
            if before.get(field, None if scope == ConsentScope.MARKETING else False) != after:
                rows.append(
                    consent_change(
                        practice=practice,
                        patient=patient,
                        channel=channel,
                        scope=scope,
                        granted=granted(after),
                        source=source,
                        actor=actor,
                        at=now,
                    )
                )
    return rows


CONSENT_FIELDS = (
    "sms_opt_out",
    "email_opt_out",
    "sms_marketing_consent",
    "email_marketing_consent",
)


@transaction.atomic
def patients_upsert(
    *,
    practice: Practice,
    records: list[dict],
    actor=None,
    consent_source: str = ConsentSource.EMR,
) -> UpsertResult:
    """Create or update patients from validated records (each with ``external_id`` and
    ``_index``); a record the database refuses is reported, the others are written.
    Changes of opt-outs and marketing consent go to the consent ledger with
    ``consent_source`` (``emr``: CSV and FHIR; ``api``: the REST records)."""
    return batch_upsert(
        _patients_write,
        records,
        practice=practice,
        actor=actor,
        consent_source=consent_source,
    )


def _patients_write(
    *, practice: Practice, records: list[dict], actor, consent_source: str = ConsentSource.EMR
) -> UpsertResult:
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
    consent_befores: list[tuple[Patient, dict]] = []
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
            for name, value in {**opt_outs, **_consent_values(patient, record)}.items():
                setattr(patient, name, value)
            to_create.append(patient)
            consent_befores.append((patient, {}))
            outcomes[patient.external_id] = [record["_index"], "created"]
            continue
        changed: set[str] = set()
        set_changed(patient, values, changed)
        consent = _consent_values(patient, record)
        opt_outs = _opt_out_values(patient, record, now)
        if consent or opt_outs:
            consent_befores.append((patient, {k: getattr(patient, k) for k in CONSENT_FIELDS}))
        if consent:
            set_changed(patient, consent, changed)
        if opt_outs:
            before = {k: getattr(patient, k) for k in ("sms_opt_out", "email_opt_out")}
            set_changed(patient, opt_outs, changed)
            opt_out_changes.append((patient, before, {k: getattr(patient, k) for k in before}))
        if "emr_first_visit_date" in changed:
            first_visit_refresh.append(patient.pk)
        if changed:
            update_fields |= changed
            to_update.append(patient)
        outcomes[patient.external_id] = [record["_index"], "updated" if changed else "unchanged"]

    rows_write(
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
    consent_changes_record(
        [
            row
            for patient, before in consent_befores
            if patient.pk is not None  # a refused record wrote nothing
            for row in _ledger_rows(
                practice=practice,
                patient=patient,
                before=before,
                source=consent_source,
                actor=actor,
                now=now,
            )
        ]
    )
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
                opt_out_event_emit(
                    practice=practice,
                    patient_external_id=patient.external_id,
                    channel=channel,
                    opted_out=after[key],
                    source=OptOutSource.EMR,
                )
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
            for channel in ("sms", "email"):
                if getattr(patient, f"{channel}_opt_out"):
                    opt_out_event_emit(
                        practice=practice,
                        patient_external_id=patient.external_id,
                        channel=channel,
                        opted_out=True,
                        source=OptOutSource.EMR,
                    )
    for index, outcome in outcomes.values():
        result.record(index, outcome)
    return result


def _set_first_visit_parts(patient: Patient) -> None:
    first = patient.first_visit_date
    patient.first_visit_month = first.month if first else None
    patient.first_visit_day = first.day if first else None
