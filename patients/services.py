"""What staff change by hand on the Patients pages: tags and opt-outs (audited).

Tagging is a page's action, a durable transaction of its own; an opt-out is also a step of
other actions (an inbound STOP, a provider's report), so it joins the caller's transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from patients.consent import SOURCE_OF_OPT_OUT, consent_change, consent_changes_record
from patients.events import confirmation_event_emit, opt_out_event_emit
from patients.models import (
    Appointment,
    Confirmation,
    ConsentScope,
    Patient,
    PatientTag,
    Tag,
)
from patients.selectors import patient_ids_by_external_id
from patients.signals import opt_out_changed
from trackstat.audit import audit_record
from trackstat.models import Practice
from trackstat.validators import max_length_of

TAG_NAME_LENGTH = max_length_of(Tag, "name")


@transaction.atomic(durable=True)
def patient_tag_add(
    *, practice: Practice, patient: Patient, name: str, actor, may_create: bool = True
) -> Tag:
    """Tag one patient (staff, from the patient page); creates the tag on first use when
    ``may_create`` (tags are the practice's campaign filters: Managers and above make new
    ones, DESIGN §3; any member may use an existing one)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a tag name."})
    if len(name) > TAG_NAME_LENGTH:
        raise ValidationError({"name": f"At most {TAG_NAME_LENGTH} characters."})
    if may_create:
        tag, _ = Tag.objects.get_or_create(practice=practice, name=name)
    else:
        tag = Tag.objects.filter(practice=practice, name__iexact=name).first()
        if tag is None:
            raise ValidationError(
                {
                    "name": f"There is no tag “{name}”. Choose one of the practice's tags; "
                    "a Manager or Administrator can create new ones."
                }
            )
    PatientTag.objects.get_or_create(practice=practice, patient=patient, tag=tag)
    return tag


@transaction.atomic(durable=True)
def patient_tag_remove(*, practice: Practice, patient: Patient, tag_id: int, actor) -> None:
    PatientTag.objects.filter(practice=practice, patient=patient, tag_id=tag_id).delete()


@dataclass
class BulkTagResult:
    tag: Tag
    tagged: int
    already: int
    unknown: list[str]


@transaction.atomic(durable=True)
def patients_tag_bulk(
    *, practice: Practice, name: str, external_ids: Iterable[str], actor
) -> BulkTagResult:
    """Tag many patients by external id (how a practice marks its "no marketing" patients)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a tag name."})
    if len(name) > TAG_NAME_LENGTH:
        raise ValidationError({"name": f"At most {TAG_NAME_LENGTH} characters."})
    wanted = list(dict.fromkeys(i.strip() for i in external_ids if i and i.strip()))
    if not wanted:
        raise ValidationError({"external_ids": "List at least one external id."})
    tag, _ = Tag.objects.get_or_create(practice=practice, name=name)
    found = patient_ids_by_external_id(practice, wanted)
    already = set(
        PatientTag.objects.filter(tag=tag, patient_id__in=found.values()).values_list(
            "patient_id", flat=True
        )
    )
    PatientTag.objects.bulk_create(
        [
            PatientTag(practice=practice, patient_id=pk, tag=tag)
            for pk in found.values()
            if pk not in already
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return BulkTagResult(
        tag=tag,
        tagged=len(found) - len(already),
        already=len(already),
        unknown=[external_id for external_id in wanted if external_id not in found],
    )


@transaction.atomic
def patient_opt_out_set(
    *,
    practice: Practice,
    patient: Patient,
    channel: str,
    opted_out: bool,
    source: str,
    actor,
    consent_source: str | None = None,
    wording: str = "",
    at: datetime.datetime | None = None,
    emr_reference: str = "",
) -> Patient:
    """Turn a patient's SMS or email opt-out on or off, recording when, how and by whom
    (``at``: when the EMR says it changed, else now; ``emr_reference``: the EMR's record).

    Called by staff ("Disable Text" / "Disable Email"), inbound STOP/START, unsubscribe links
    and provider reports. Every change is audited and written to the consent ledger (its
    source there: ``consent_source``, else the one of ``source``; a reply's ``wording``).
    """
    if channel not in ("sms", "email"):
        raise ValidationError({"channel": "Use 'sms' or 'email'."})
    patient = Patient.objects.select_for_update().get(pk=patient.pk, practice=practice)
    key = f"{channel}_opt_out"
    if getattr(patient, key) == opted_out:
        return patient
    before = {key: getattr(patient, key)}
    setattr(patient, key, opted_out)
    setattr(patient, f"{key}_at", (at or timezone.now()) if opted_out else None)
    setattr(patient, f"{key}_source", source if opted_out else "")
    patient.save(update_fields=[key, f"{key}_at", f"{key}_source", "updated_at"])
    consent_changes_record(
        [
            consent_change(
                practice=practice,
                patient=patient,
                channel=channel,
                scope=ConsentScope.ALL,
                granted=not opted_out,
                source=consent_source or SOURCE_OF_OPT_OUT.get(source, source),
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
        action=f"patient.{channel}_opt_out" if opted_out else f"patient.{channel}_opt_in",
        target=patient,
        before=before,
        after={key: opted_out, "source": source},
    )
    opt_out_event_emit(
        practice=practice,
        patient_external_id=patient.external_id,
        channel=channel,
        opted_out=opted_out,
        source=source,
    )
    opt_out_changed.send(
        sender=Patient, practice=practice, patient=patient, channel=channel, opted_out=opted_out
    )
    return patient


def appointment_confirmation_set(
    *,
    practice: Practice,
    appointment: Appointment,
    confirmation: str,
    at: datetime.datetime,
) -> bool:
    """Set an appointment's confirmation (DESIGN §7) and tell the EMR
    (``appointment.confirmation_changed``). Joins the caller's transaction. Answers whether it
    changed; the same answer again changes nothing and emits nothing."""
    if confirmation not in Confirmation.values:
        raise ValidationError({"confirmation": "Not a confirmation value."})
    appointment = (
        Appointment.objects.select_for_update()
        .select_related("patient")
        .get(pk=appointment.pk, practice=practice)
    )
    if appointment.confirmation == confirmation:
        return False
    appointment.confirmation = confirmation
    appointment.confirmation_at = at
    appointment.save(update_fields=["confirmation", "confirmation_at", "updated_at"])
    confirmation_event_emit(
        practice=practice,
        appointment=appointment,
        patient_external_id=appointment.patient.external_id,
        emitted_at=at,
    )
    return True
