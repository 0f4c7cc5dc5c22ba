"""The audit log: every change to a campaign, a role, an opt-out or a practice setting."""

from __future__ import annotations

from typing import Any

from django.db import models

from trackstat.models import AuditEvent, Practice


def audit_record(
    *,
    practice: Practice | None,
    actor: Any,
    action: str,
    target: models.Model,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Write one audit entry. ``actor`` is a user, or a label such as ``"api-key:ab12cd34"``."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    label = user.email if user is not None else str(actor or "system")
    return AuditEvent.objects.create(
        practice=practice,
        actor=user,
        actor_label=label[:200],
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        before=before,
        after=after,
    )


def snapshot(instance: models.Model, fields: list[str]) -> dict:
    """The JSON-safe values of ``fields``, for an audit entry's before/after."""
    values = {}
    for name in fields:
        value = getattr(instance, name)
        values[name] = value if isinstance(value, str | int | float | bool | None) else str(value)
    return values
