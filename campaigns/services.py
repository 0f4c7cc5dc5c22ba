"""Services that write campaigns, their steps, blast exclusions and the template library.

Every change to a campaign is audited with its JSON before and after (DESIGN §3). The staff
actions are top-level transactions (``durable=True``): they commit on their own, and refuse
to run inside another transaction. ``campaign_create`` is also a building block (demo seeding
creates a practice's campaigns in one transaction), so it may be nested.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.content.render import render_message
from campaigns.experiments.periods import (
    campaign_experiment_config,
    experiment_config,
    experiment_period_follow,
    variants_removal_check,
)
from campaigns.models import (
    BlastExclusion,
    Campaign,
    CampaignKind,
    Enrollment,
    EnrollmentState,
    MessageStep,
    MessageTemplate,
    TemplateFolder,
)
from campaigns.selectors import campaign_has_history
from messaging.models import Channel, MessageStatus, OutboundMessage, Purpose
from messaging.outbox.status import messages_transition
from messaging.services import message_send_now
from patients.models import Patient
from trackstat.audit import audit_record
from trackstat.models import Practice, User

# Why an archived campaign's enrollments ended (and, spaced, its queued messages' reason).
ARCHIVED = "campaign_archived"

CAMPAIGN_FIELDS = [
    "name",
    "kind",
    "enabled",
    "trigger",
    "filters",
    "schedule",
    "exclude_recent_days",
    "holdout_percent",
    "attribution_days",
    "purpose",
    "priority",
    "goal",
    "send_at",
]


def _step_json(step: MessageStep) -> dict:
    text = (
        {"variants": step.variants}
        if step.variants
        else {"subject": step.subject, "body": step.body}
    )
    return {
        "channel": step.channel,
        **text,
        "delay": {"value": step.delay_value, "unit": step.delay_unit},
        # Only on texts that ask, so a campaign's JSON round-trips as written.
        **({"ask_confirmation": True} if step.ask_confirmation else {}),
    }


def campaign_as_json(campaign: Campaign) -> dict:
    """The campaign in the JSON form of DESIGN §5 (also its audit snapshot)."""
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "kind": campaign.kind,
        "enabled": campaign.enabled,
        "trigger": campaign.trigger or None,
        "filters": campaign.filters or {},
        "schedule": campaign.schedule or None,
        "exclude_recent_days": campaign.exclude_recent_days,
        "holdout_percent": campaign.holdout_percent,
        "attribution_days": campaign.attribution_days,
        "purpose": campaign.purpose,
        "priority": campaign.priority,
        "messages": [_step_json(step) for step in campaign.steps.all()],
        "goal": campaign.goal,
        "send_at": campaign.send_at.isoformat() if campaign.send_at else None,
        "sent_at": campaign.sent_at.isoformat() if campaign.sent_at else None,
        "created_at": campaign.created_at.isoformat() if campaign.created_at else None,
        "updated_at": campaign.updated_at.isoformat() if campaign.updated_at else None,
    }


def _audit_snapshot(campaign: Campaign) -> dict:
    data = campaign_as_json(campaign)
    data.pop("updated_at", None)
    data.pop("created_at", None)
    return data


def _steps_replace(campaign: Campaign, messages: list[dict]) -> None:
    campaign.steps.all().delete()
    MessageStep.objects.bulk_create(
        MessageStep(
            practice=campaign.practice,
            campaign=campaign,
            position=position,
            channel=message["channel"],
            subject=message.get("subject", ""),
            body=message["body"],
            delay_value=message["delay"]["value"],
            delay_unit=message["delay"]["unit"],
            variants=message.get("variants") or [],
            ask_confirmation=bool(message.get("ask_confirmation")),
        )
        for position, message in enumerate(messages, start=1)
    )


def _apply(campaign: Campaign, data: dict) -> None:
    for name in CAMPAIGN_FIELDS:
        if name in data:
            value = data[name]
            if name in ("trigger", "schedule", "filters") and value is None:
                value = {}
            setattr(campaign, name, value)


MARKETING_EMAIL_NEEDS_ADDRESS = (
    "Marketing email carries the practice's postal address: enter it under Settings → "
    "Practice settings before turning this campaign on."
)


def _marketing_email_check(campaign: Campaign) -> None:
    """A marketing campaign with an email step is turned on only once the practice has a
    postal address (DESIGN §5.8)."""
    if (
        campaign.enabled
        and campaign.purpose == Purpose.MARKETING
        and not campaign.practice.postal_address
        and campaign.steps.filter(channel=Channel.EMAIL).exists()
    ):
        raise ValidationError({"enabled": MARKETING_EMAIL_NEEDS_ADDRESS})


@transaction.atomic
def campaign_create(*, practice: Practice, data: dict, actor) -> Campaign:
    """Create a campaign from data validated by ``campaigns.language.spec.CampaignSerializer``."""
    campaign = Campaign(practice=practice, created_by=actor if getattr(actor, "pk", None) else None)
    _apply(campaign, data)
    if campaign.enabled:
        campaign.enabled_at = timezone.now()
    campaign.save()
    _steps_replace(campaign, data["messages"])
    experiment_period_follow(campaign, before=None, now=timezone.now())
    _marketing_email_check(campaign)
    audit_record(
        practice=practice,
        actor=actor,
        action="campaign.create",
        target=campaign,
        after=_audit_snapshot(campaign),
    )
    return campaign


@transaction.atomic(durable=True)
def campaign_update(*, campaign: Campaign, data: dict, actor) -> Campaign:
    """Replace the given parts of a campaign (validated data; ``messages`` replaces all steps).

    A blast that has been sent can no longer change (it may still be switched off).
    """
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.archived_at is not None:
        raise ValidationError({"campaign": "This campaign was deleted; it can no longer change."})
    if campaign.sent_at and set(data) - {"enabled"}:
        raise ValidationError({"kind": "This blast has been sent and can no longer change."})
    if "kind" in data and data["kind"] != campaign.kind:
        raise ValidationError({"kind": "A campaign cannot change between drip and blast."})
    before = _audit_snapshot(campaign)
    was_enabled = campaign.enabled
    experiment_before = campaign_experiment_config(campaign)
    variants_removal_check(
        campaign,
        experiment_before,
        experiment_config(
            data.get("holdout_percent", campaign.holdout_percent),
            data["messages"] if "messages" in data else before["messages"],
        ),
    )
    _apply(campaign, data)
    if campaign.enabled and not was_enabled:
        campaign.enabled_at = timezone.now()
    campaign.save()
    if "messages" in data:
        _steps_replace(campaign, data["messages"])
    experiment_period_follow(campaign, before=experiment_before, now=timezone.now())
    if campaign.enabled and (not was_enabled or {"purpose", "messages"} & set(data)):
        _marketing_email_check(campaign)
    after = _audit_snapshot(campaign)
    if after != before:
        audit_record(
            practice=campaign.practice,
            actor=actor,
            action="campaign.update",
            target=campaign,
            before=before,
            after=after,
        )
    return campaign


def campaign_set_enabled(*, campaign: Campaign, enabled: bool, actor) -> Campaign:
    """Turn a campaign on or off (the green/red bell)."""
    if enabled and campaign.kind == CampaignKind.BLAST and campaign.sent_at:
        raise ValidationError({"enabled": "This blast has already been sent."})
    return campaign_update(campaign=campaign, data={"enabled": enabled}, actor=actor)


@transaction.atomic(durable=True)
def campaign_delete(*, campaign: Campaign, actor, now: dt.datetime | None = None) -> str:
    """Take a campaign out of use, never its history; returns ``"deleted"`` or ``"archived"``.

    A campaign that never enrolled anyone is deleted (nothing was sent in its name; the audit
    log keeps its JSON). One that did is archived: switched off for good, its active
    enrollments ended and its queued messages canceled, gone from the lists and the campaign
    API, while its messages, their tracked and unsubscribe links, the patients' history and
    its report stay. A sent blast is the record of what went out and cannot be removed.
    """
    now = now or timezone.now()
    # Locked: a tick claiming a blast (or enrolling into this campaign) waits, then finds it
    # deleted or off; a second delete waits, then finds it archived.
    campaign = Campaign.objects.select_for_update().select_related("practice").get(pk=campaign.pk)
    if campaign.archived_at is not None:
        return "archived"
    if campaign.kind == CampaignKind.BLAST and campaign.sent_at:
        raise ValidationError(
            {"campaign": "This blast has been sent: it is kept as the record of what went out."}
        )
    before = _audit_snapshot(campaign)
    if not campaign_has_history(campaign):
        audit_record(
            practice=campaign.practice,
            actor=actor,
            action="campaign.delete",
            target=campaign,
            before=before,
        )
        campaign.delete()
        return "deleted"
    campaign.enabled = False
    campaign.archived_at = now
    campaign.save(update_fields=["enabled", "archived_at", "updated_at"])
    Enrollment.objects.filter(campaign=campaign, state=EnrollmentState.ACTIVE).update(
        state=EnrollmentState.EXITED, exit_reason=ARCHIVED, exited_at=now, next_step_at=None
    )
    messages_transition(
        messages=OutboundMessage.objects.filter(campaign=campaign, status=MessageStatus.QUEUED),
        status=MessageStatus.CANCELED,
        reason=ARCHIVED.replace("_", " "),
        at=now,
        source="staff",
    )
    audit_record(
        practice=campaign.practice,
        actor=actor,
        action="campaign.archive",
        target=campaign,
        before=before,
        after={"archived_at": now.isoformat()},
    )
    return "archived"


@transaction.atomic(durable=True)
def blast_recipient_set(*, campaign: Campaign, patient: Patient, included: bool, actor) -> None:
    """Remove a patient from a blast's audience before it goes out (or put them back)."""
    if campaign.kind != CampaignKind.BLAST:
        raise ValidationError({"campaign": "Only blast campaigns have a recipient list."})
    if campaign.sent_at:
        raise ValidationError({"campaign": "This blast has been sent."})
    if included:
        deleted, _ = BlastExclusion.objects.filter(campaign=campaign, patient=patient).delete()
        changed = bool(deleted)
    else:
        _, changed = BlastExclusion.objects.get_or_create(
            practice=campaign.practice, campaign=campaign, patient=patient
        )
    if changed:
        audit_record(
            practice=campaign.practice,
            actor=actor,
            action="campaign.blast_recipient_included"
            if included
            else "campaign.blast_recipient_removed",
            target=campaign,
            after={"patient_external_id": patient.external_id},
        )


@transaction.atomic(durable=True)
def template_folder_create(*, practice: Practice, name: str) -> TemplateFolder:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the folder a name."})
    if TemplateFolder.objects.filter(practice=practice, name=name).exists():
        raise ValidationError({"name": "A folder of that name exists."})
    return TemplateFolder.objects.create(practice=practice, name=name)


@transaction.atomic(durable=True)
def template_save(
    *,
    practice: Practice,
    folder: TemplateFolder,
    data: dict,
    template: MessageTemplate | None = None,
) -> MessageTemplate:
    """Create or change a template of the practice's own library (never the master's).

    ``data`` holds name, channel, subject and body, the body validated like a campaign step.
    """
    if folder.practice_id != practice.pk or (template and template.practice_id != practice.pk):
        raise ValidationError({"folder": "The master library is read-only."})
    template = template or MessageTemplate(practice=practice)
    template.folder = folder
    for name in ("name", "channel", "subject", "body"):
        setattr(template, name, data.get(name, getattr(template, name)))
    template.full_clean()
    template.save()
    return template


def step_test_send(
    *,
    practice: Practice,
    user: User,
    channel: str,
    subject: str,
    body: str,
    patient: Patient | None = None,
) -> OutboundMessage:
    """Send a campaign step to the staff member's own phone or email, now, marked as a test.

    Rendered for ``patient`` (the preview patient) or, without one, for the staff member's
    own name, then handed to the outbox ready to go. Test messages stay out of reports and
    never count as a patient's messages.
    """
    to = user.phone if channel == "sms" else user.email
    if not to:
        raise ValidationError(
            {
                "channel": ValidationError(
                    "Add your mobile phone on your profile page to get test texts.",
                    code="no_phone",
                )
            }
        )
    sample = patient or Patient(
        practice=practice,
        first_name=user.first_name or "Test",
        last_name=user.last_name or "Patient",
    )
    subject, body = render_message(
        channel=channel, subject=subject, body=body, patient=sample, practice=practice
    )
    return message_send_now(
        practice=practice,
        reason=f"test by {user.email}",
        channel=channel,
        to=to,
        subject=f"[Test] {subject}" if subject else "",
        body=body,
        is_test=True,
    )
