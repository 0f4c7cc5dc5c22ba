"""Services for the tenancy core: practices, members and roles, API keys, practice settings.

The actions a person or a command starts are transactions of their own
(``transaction.atomic(durable=True)``: Django refuses to nest them in a caller's transaction);
``api_key_create`` is also a step of ``practice_create``, so it joins the caller's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from trackstat.audit import audit_record, snapshot
from trackstat.models import (
    POLICY_CAPS,
    POLICY_SWITCHES,
    SMS_FROM_TAKEN_MESSAGE,
    ApiKey,
    Membership,
    Practice,
    Role,
    User,
)
from trackstat.signals import practice_timezone_changed

API_KEY_PREFIX = "ts"

PRACTICE_SETTINGS_FIELDS = [
    "name",
    "time_zone",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "sending_window_start",
    "sending_window_end",
    "sms_from",
    "email_from",
    "email_from_name",
    "online_scheduling_url",
    "confirmation_request_text",
    "confirmation_ack_confirmed",
    "confirmation_ack_cancel",
    "confirmation_ack_reschedule",
]
# What the operator edits in the Django admin besides the settings.
PRACTICE_OPERATOR_FIELDS = ["slug"]
LAST_ADMINISTRATOR_MESSAGE = (
    "A practice needs at least one Administrator: appoint another one first."
)


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str  # the full key, shown once and never stored


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "practice"
    slug, n = base, 1
    while Practice.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _practice_save(practice: Practice) -> None:
    """Save a validated practice. Validation cannot see another transaction's uncommitted
    claim on the same sender number; the unique constraint does, and its violation is the
    same field error."""
    try:
        with transaction.atomic():
            practice.save()
    except IntegrityError as error:
        if "sms_from" in str(error):
            raise ValidationError({"sms_from": SMS_FROM_TAKEN_MESSAGE}) from None
        raise


def api_key_digest(secret: str) -> str:
    # Keys carry 256 random bits, so a fast digest is safe here (as for GitHub tokens); a slow
    # password hash would add nothing but latency to every API call.
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic(durable=True)
def practice_create(
    *,
    name: str,
    time_zone: str,
    sms_from: str = "",
    email_from: str = "",
    actor=None,
) -> tuple[Practice, IssuedApiKey]:
    """Create a practice with its sender identity and a first API key."""
    practice = Practice(
        name=name.strip(),
        slug=_unique_slug(name),
        time_zone=time_zone,
        sms_from=sms_from,
        email_from=email_from,
    )
    practice.full_clean()
    _practice_save(practice)
    audit_record(
        practice=practice,
        actor=actor,
        action="practice.create",
        target=practice,
        after=snapshot(practice, PRACTICE_SETTINGS_FIELDS),
    )
    issued = api_key_create(practice=practice, name="Default", actor=actor)
    return practice, issued


@transaction.atomic(durable=True)
def practice_operator_create(*, actor: User, **fields) -> Practice:
    """The operator's new practice (the Django admin): its settings and slug as given, audited
    as ``practice.create``. No API key: its secret must be shown once, which the admin cannot
    do; the practice's Administrators issue keys on the Settings page."""
    unknown = set(fields) - set(PRACTICE_SETTINGS_FIELDS + PRACTICE_OPERATOR_FIELDS)
    if unknown:
        raise ValidationError({name: "Not a practice setting." for name in sorted(unknown)})
    practice = Practice(**fields)
    practice.full_clean()
    _practice_save(practice)
    audit_record(
        practice=practice,
        actor=actor,
        action="practice.create",
        target=practice,
        after=snapshot(practice, PRACTICE_SETTINGS_FIELDS + PRACTICE_OPERATOR_FIELDS),
    )
    return practice


@transaction.atomic(durable=True)
def practice_settings_update(*, practice: Practice, actor: User, **changes) -> Practice:
    """Change practice settings (Administrators); validates the whole row before saving."""
    return _practice_update(
        practice=practice, actor=actor, changes=changes, fields=PRACTICE_SETTINGS_FIELDS
    )


@transaction.atomic(durable=True)
def practice_operator_update(*, practice: Practice, actor: User, **changes) -> Practice:
    """The operator's change of a practice (the Django admin): its settings, exactly as
    ``practice_settings_update`` (audited, local dates following a new time zone), and the
    fields only the operator edits (``PRACTICE_OPERATOR_FIELDS``), in the same audit entry."""
    return _practice_update(
        practice=practice,
        actor=actor,
        changes=changes,
        fields=PRACTICE_SETTINGS_FIELDS + PRACTICE_OPERATOR_FIELDS,
    )


def _practice_update(*, practice: Practice, actor, changes: dict, fields: list[str]) -> Practice:
    """Apply ``changes`` (any of ``fields``) in the caller's transaction: validate the row,
    save, tell the apps of a new time zone, audit what changed."""
    unknown = set(changes) - set(fields)
    if unknown:
        raise ValidationError({name: "Not a practice setting." for name in sorted(unknown)})
    practice = Practice.objects.select_for_update().get(pk=practice.pk)
    before = snapshot(practice, fields)
    for name, value in changes.items():
        setattr(practice, name, value)
    practice.full_clean()
    _practice_save(practice)
    after = snapshot(practice, fields)
    changed = [name for name in fields if before[name] != after[name]]
    if "time_zone" in changed:
        # Local dates (and the visit facts built on them) follow the practice's zone: the
        # patients app refreshes them, in this transaction.
        practice_timezone_changed.send(sender=Practice, practice=practice)
    if changed:
        audit_record(
            practice=practice,
            actor=actor,
            action="practice.settings_update",
            target=practice,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return practice


def messaging_policy_validate(changes) -> dict:
    """The keys of a messaging-policy change, checked (DESIGN §5.8): caps are null (no cap)
    or a whole number from 0 to 1000, switches true or false; an unknown key is an error
    naming it."""
    if not isinstance(changes, dict):
        raise ValidationError({"messaging_policy": "Expected an object of policy settings."})
    errors: dict = {}
    clean: dict = {}
    for key, value in changes.items():
        if key in POLICY_CAPS:
            if value is None:
                clean[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                errors[key] = "A whole number from 0 to 1000, or null for no cap."
            else:
                clean[key] = value
        elif key in POLICY_SWITCHES:
            if not isinstance(value, bool):
                errors[key] = "true or false."
            else:
                clean[key] = value
        else:
            errors[key] = "Not a messaging policy setting."
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic(durable=True)
def practice_policy_update(*, practice: Practice, actor, changes: dict) -> Practice:
    """Merge ``changes`` into the practice's messaging policy (the keys it gives; the others
    keep their value), audited with the policy before and after."""
    clean = messaging_policy_validate(changes)
    practice = Practice.objects.select_for_update().get(pk=practice.pk)
    before = practice.policy
    practice.messaging_policy = {**(practice.messaging_policy or {}), **clean}
    after = practice.policy
    if after != before:
        practice.save(update_fields=["messaging_policy"])
        changed = [key for key in after if after[key] != before[key]]
        audit_record(
            practice=practice,
            actor=actor,
            action="practice.messaging_policy_update",
            target=practice,
            before={key: before[key] for key in changed},
            after={key: after[key] for key in changed},
        )
    return practice


@transaction.atomic
def api_key_create(*, practice: Practice, name: str, actor=None) -> IssuedApiKey:
    """Issue a new API key. The secret is returned once; only its digest is kept."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name, such as the EMR it is for."})
    prefix = secrets.token_hex(4)
    secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        practice=practice,
        name=name[:100],
        prefix=prefix,
        digest=api_key_digest(secret),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit_record(
        practice=practice,
        actor=actor,
        action="api_key.create",
        target=api_key,
        after={"name": api_key.name, "prefix": prefix},
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic(durable=True)
def api_key_revoke(*, practice: Practice, api_key_id: int, actor: User) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key_id, practice=practice)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            practice=practice,
            actor=actor,
            action="api_key.revoke",
            target=api_key,
            before={"revoked_at": None},
            after={"revoked_at": api_key.revoked_at.isoformat()},
        )
    return api_key


def api_key_authenticate(secret: str) -> ApiKey | None:
    """The active key matching ``secret``, or None. Compares digests in constant time."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    api_key = (
        ApiKey.objects.filter(prefix=parts[1], revoked_at__isnull=True)
        .select_related("practice")
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.digest, api_key_digest(secret)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def _role_snapshot(membership: Membership) -> dict:
    return {"user": membership.user.email, "role": Role(membership.role).label}


def _ensure_another_administrator(practice: Practice, leaving: Membership) -> None:
    # Lock the practice's administrator rows so two concurrent demotions cannot both pass.
    administrators = list(
        Membership.objects.select_for_update()
        .filter(practice=practice, role=Role.ADMINISTRATOR)
        .values_list("pk", flat=True)
    )
    if leaving.role == Role.ADMINISTRATOR and administrators == [leaving.pk]:
        raise ValidationError({"role": LAST_ADMINISTRATOR_MESSAGE})


@transaction.atomic(durable=True)
def membership_invite(
    *, practice: Practice, email: str, role: Role, actor: User
) -> tuple[Membership, bool]:
    """Add a user (new or existing) to the practice with ``role``.

    Returns the membership and whether the user account is new (and so needs a set-password
    link). Inviting someone who is already a member is an error naming ``email``.
    """
    email = User.objects.normalize_email(email).strip().lower()
    if not email:
        raise ValidationError({"email": "Enter an email address."})
    if role not in Role.values:
        raise ValidationError({"role": "Choose a role."})
    user, created = User.objects.get_or_create(email=email, defaults={"username": email})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    try:
        with transaction.atomic():
            membership = Membership.objects.create(practice=practice, user=user, role=role)
    except IntegrityError:
        raise ValidationError({"email": f"{email} is already a member of this practice."}) from None
    audit_record(
        practice=practice,
        actor=actor,
        action="membership.invite",
        target=membership,
        after=_role_snapshot(membership),
    )
    return membership, created


@transaction.atomic(durable=True)
def membership_change_role(
    *, practice: Practice, membership_id: int, role: Role, actor: User
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": "Choose a role."})
    membership = (
        Membership.objects.select_for_update()
        .select_related("user")
        .get(pk=membership_id, practice=practice)
    )
    if membership.role == role:
        return membership
    if role != Role.ADMINISTRATOR:
        _ensure_another_administrator(practice, membership)
    before = _role_snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        practice=practice,
        actor=actor,
        action="membership.change_role",
        target=membership,
        before=before,
        after=_role_snapshot(membership),
    )
    return membership


@transaction.atomic(durable=True)
def membership_remove(*, practice: Practice, membership_id: int, actor: User) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("user")
        .get(pk=membership_id, practice=practice)
    )
    _ensure_another_administrator(practice, membership)
    audit_record(
        practice=practice,
        actor=actor,
        action="membership.remove",
        target=membership,
        before=_role_snapshot(membership),
    )
    membership.delete()


def invitation_send(*, membership: Membership, new_account: bool) -> None:
    """Email the invited user: a set-password link for a new account, a notice otherwise."""
    user, practice = membership.user, membership.practice
    if new_account:
        path = reverse(
            "password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        action = "Choose your password here (the link works for three days):"
    else:
        path = reverse("login")
        action = f"Sign in as usual and pick {practice.name} in the practice switcher:"
    body = (
        f"You have been added to {practice.name} on TrackStat as "
        f"{Role(membership.role).label}.\n\n{action}\n\n{settings.PUBLIC_BASE_URL}{path}\n"
    )
    subject = f"You're invited to {practice.name} on TrackStat"
    transaction.on_commit(lambda: send_mail(subject, body, None, [user.email]))
