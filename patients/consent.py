"""The consent ledger (DESIGN §5.8): every change of a patient's consent, per channel and
scope (every message of the channel, or marketing), with when, where from, in what words and
by whom.

Opt-outs keep their flags on the patient (``sms_opt_out``, ``email_opt_out``: what the
engine reads) and marketing consent its own (``sms_marketing_consent``,
``email_marketing_consent``); the ledger is their history, written by the same services that
change them, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from patients.models import ConsentChange, ConsentScope, ConsentSource, OptOutSource, Patient
from trackstat.audit import audit_record
from trackstat.models import Practice

CHANNELS = ("sms", "email")
# The ledger's source of an opt-out recorded with the older opt-out source names.
SOURCE_OF_OPT_OUT = {
    OptOutSource.STAFF: ConsentSource.STAFF,
    OptOutSource.EMR: ConsentSource.EMR,
    OptOutSource.SMS_REPLY: ConsentSource.KEYWORD,
    OptOutSource.UNSUBSCRIBE: ConsentSource.UNSUBSCRIBE_LINK,
    OptOutSource.PROVIDER: ConsentSource.PROVIDER,
}
WORDING_LENGTH = 500


def _actor(actor: Any) -> tuple[Any, str]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    label = user.email if user is not None else str(actor or "system")
    return user, label[:200]


def consent_change(
    *,
    practice: Practice,
    patient: Patient,
    channel: str,
    scope: str,
    granted: bool | None,
    source: str,
    actor: Any,
    wording: str = "",
    at: dt.datetime | None = None,
    emr_reference: str = "",
) -> ConsentChange:
    """A ledger row (not saved): for ``consent_changes_record``."""
    user, label = _actor(actor)
    return ConsentChange(
        practice=practice,
        patient=patient,
        channel=channel,
        scope=scope,
        granted=granted,
        at=at or timezone.now(),
        source=source,
        wording=(wording or "")[:WORDING_LENGTH],
        actor=user,
        actor_label=label,
        emr_reference=emr_reference,
    )


def consent_changes_record(changes: list[ConsentChange]) -> None:
    """Write ledger rows, set-wise (the EMR sync records a batch's changes at once)."""
    ConsentChange.objects.bulk_create(changes, batch_size=1000)


@transaction.atomic
def patient_marketing_consent_set(
    *,
    practice: Practice,
    patient: Patient,
    channel: str,
    granted: bool | None,
    source: str,
    actor: Any,
    wording: str = "",
    at: dt.datetime | None = None,
    emr_reference: str = "",
) -> Patient:
    """Record a patient's marketing consent for one channel (True given, False refused,
    None unknown), with its ledger row and audit entry. The same state again changes
    nothing. ``at`` and ``emr_reference``: the EMR's time and record of the change."""
    if channel not in CHANNELS:
        raise ValidationError({"channel": "Use 'sms' or 'email'."})
    if source not in ConsentSource.values:
        raise ValidationError({"source": f"Use one of: {', '.join(ConsentSource.values)}."})
    patient = Patient.objects.select_for_update().get(pk=patient.pk, practice=practice)
    key = f"{channel}_marketing_consent"
    before = getattr(patient, key)
    if before is granted:
        return patient
    setattr(patient, key, granted)
    patient.save(update_fields=[key, "updated_at"])
    consent_changes_record(
        [
            consent_change(
                practice=practice,
                patient=patient,
                channel=channel,
                scope=ConsentScope.MARKETING,
                granted=granted,
                source=source,
                actor=actor,
                wording=wording,
                at=at,
                emr_reference=emr_reference,
            )
        ]
    )
    audit_record(
        practice=practice,
        actor=actor,
        action=f"patient.{channel}_marketing_consent",
        target=patient,
        before={key: before},
        after={key: granted, "source": source},
    )
    return patient


def patient_consent_history(*, practice: Practice, patient: Patient, limit: int = 50) -> list:
    """The patient's ledger, newest first."""
    return list(
        ConsentChange.objects.filter(practice=practice, patient=patient)
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )


def consent_state(patient: Patient) -> dict:
    """The patient's consent as the patient JSON carries it (DESIGN §5.8)."""
    return {
        "sms_marketing": patient.sms_marketing_consent,
        "email_marketing": patient.email_marketing_consent,
    }
