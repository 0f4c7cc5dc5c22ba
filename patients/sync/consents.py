"""Consent statements from the EMR (a FHIR Consent) written to the consent ledger
(DESIGN §5.8), each at the time the EMR gives it.

A statement changes the patient's state (the channel's opt-out, or its marketing consent)
through the same services as every other source, so it is audited, announced and cancels
queued messages like them. Two rules keep a ledger that the EMR may feed late or twice:

- a statement already recorded (the same ``emr_reference``) is not recorded again;
- a statement older than the latest change of the same patient, channel and scope (from any
  source: a STOP yesterday beats a Consent signed last week) is kept as history in the ledger
  at its own time and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Max

from patients.consent import (
    consent_change,
    consent_changes_record,
    patient_marketing_consent_set,
)
from patients.models import ConsentChange, ConsentScope, ConsentSource, OptOutSource, Patient
from patients.services import patient_opt_out_set
from trackstat.models import Practice

# A clock a little ahead of ours is not "the future".
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass
class ConsentStatement:
    """One change of the consent ledger as the EMR states it (a FHIR Consent)."""

    entry: int  # where it came from (a bundle's entry), for errors
    reference: str  # the EMR's record: ``Consent/<id>/_history/<version>``, …
    channel: str
    scope: str  # ``all`` or ``marketing`` (ConsentScope)
    granted: bool | None
    at: dt.datetime
    wording: str = ""
    patient_external_id: str | None = None
    patient_entry: int | None = None  # a Patient entry of the bundle


@dataclass
class ConsentsResult:
    recorded: int = 0  # changes that now hold
    superseded: int = 0  # older than the ledger's latest: history only
    unchanged: int = 0  # recorded before (the same Consent sent again)
    faults: list[tuple[int, str, str]] = field(default_factory=list)  # (entry, element, msg)


def _granted_now(patient: Patient, statement: ConsentStatement) -> bool | None:
    if statement.scope == ConsentScope.ALL:
        return not getattr(patient, f"{statement.channel}_opt_out")
    return getattr(patient, f"{statement.channel}_marketing_consent")


def emr_consents_record(
    *,
    practice: Practice,
    statements: list[ConsentStatement],
    actor,
    now: dt.datetime,
) -> ConsentsResult:
    """Record the statements of the practice's patients (joins the caller's transaction)."""
    result = ConsentsResult()
    if not statements:
        return result
    patients = {
        p.external_id: p
        for p in Patient.objects.select_for_update()
        .filter(practice=practice, external_id__in={s.patient_external_id for s in statements})
        .order_by("pk")  # the lock order of every upsert
    }
    known = set(
        ConsentChange.objects.filter(
            practice=practice, emr_reference__in=[s.reference for s in statements]
        ).values_list("emr_reference", flat=True)
    )
    latest = {
        (row["patient_id"], row["channel"], row["scope"]): row["latest"]
        for row in ConsentChange.objects.filter(
            practice=practice, patient__in=[p.pk for p in patients.values()]
        )
        .values("patient_id", "channel", "scope")
        .annotate(latest=Max("at"))
    }
    history: list[ConsentChange] = []
    # Oldest first, so that of a bundle's statements about one consent the newest holds.
    for statement in sorted(statements, key=lambda s: s.at):
        entry = statement.entry
        if statement.at > now + CLOCK_SKEW:
            result.faults.append((entry, "dateTime", "Must not be in the future."))
            continue
        patient = patients.get(statement.patient_external_id)
        if patient is None:
            result.faults.append((entry, "patient", "No patient of the practice has this id."))
            continue
        if statement.reference in known:
            result.unchanged += 1
            continue
        known.add(statement.reference)
        key = (patient.pk, statement.channel, statement.scope)
        row = {
            "practice": practice,
            "patient": patient,
            "channel": statement.channel,
            "scope": statement.scope,
            "granted": statement.granted,
            "source": ConsentSource.EMR,
            "actor": actor,
            "wording": statement.wording,
            "at": statement.at,
            "emr_reference": statement.reference,
        }
        if latest.get(key) is not None and statement.at < latest[key]:
            history.append(consent_change(**row))
            result.superseded += 1
            continue
        latest[key] = statement.at
        result.recorded += 1
        if _granted_now(patient, statement) == statement.granted:
            # Nothing changes, but the EMR's statement is the record behind the state.
            history.append(consent_change(**row))
        elif statement.scope == ConsentScope.ALL:
            patients[patient.external_id] = patient_opt_out_set(
                practice=practice,
                patient=patient,
                channel=statement.channel,
                opted_out=not statement.granted,
                source=OptOutSource.EMR,
                consent_source=ConsentSource.EMR,
                actor=actor,
                wording=statement.wording,
                at=statement.at,
                emr_reference=statement.reference,
            )
        else:
            patients[patient.external_id] = patient_marketing_consent_set(
                practice=practice,
                patient=patient,
                channel=statement.channel,
                granted=statement.granted,
                source=ConsentSource.EMR,
                actor=actor,
                wording=statement.wording,
                at=statement.at,
                emr_reference=statement.reference,
            )
    consent_changes_record(history)
    return result
