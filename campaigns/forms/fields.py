"""What the campaign forms share: showing the validators' errors next to their fields, reading
lists typed as text, choices that keep a stored selection, and the on/off switch."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from rest_framework import serializers

from trackstat.fields import BooleanChoiceField

LIST_SEPARATORS = re.compile(r"\s*[,;\n]\s*")

# The parts of the campaign JSON as the pages name them, for errors shown away from their input
# (the review step's list, a variant's line): never a field code with underscores.
PART_LABELS = {
    "name": "name",
    "kind": "kind",
    "channel": "channel",
    "subject": "subject",
    "body": "message",
    "delay": "delay",
    "ask_confirmation": "ask the patient to confirm",
    "variants": "variants",
    "weight": "share of patients (%)",
    "trigger": "trigger",
    "filters": "filters",
    "schedule": "schedule",
    "exclude_recent_days": "skip patients messaged recently",
    "purpose": "purpose",
    "priority": "priority",
    "messages": "messages",
    "goal": "goal",
    "holdout_percent": "hold out (%)",
    "attribution_days": "days counted after entering",
    "send_at": "send time",
    "enabled": "on/off",
    "campaign": "campaign",
}


def part_label(name: str) -> str:
    """``name`` as staff read it (``exclude_recent_days`` → "skip patients messaged
    recently"); an unknown name loses its underscores."""
    return PART_LABELS.get(name, name.replace("_", " "))


def error_messages(detail) -> list[str]:
    """The messages of a (possibly nested) DRF error structure, flattened."""
    return [str(item) for item in _error_details(detail)]


def _error_details(detail) -> list:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _error_details(value)]
    if isinstance(detail, list | tuple):
        return [m for item in detail for m in _error_details(item)]
    return [detail]


def add_spec_errors(form: forms.Form, error: serializers.ValidationError, field_map=None) -> None:
    """Show a spec validator's errors (``{name: [messages]}``) next to the fields they name. A
    range's message about one bound (its code ``min``, ``max`` or ``eq``) goes under that
    bound's input, ``<name>_<bound>``, when the form has one."""
    detail = error.detail
    if not isinstance(detail, dict):
        detail = {None: detail}
    for name, messages in detail.items():
        default = (field_map or {}).get(name, name)
        for message in _error_details(messages):
            target = f"{name}_{getattr(message, 'code', '')}"
            if target not in form.fields:
                target = default if default in form.fields else None
            form.add_error(target, str(message))


def split_list(text: str) -> list[str]:
    return [item for item in LIST_SEPARATORS.split(text.strip()) if item]


def number_json(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def choices_with(names, selected) -> list[tuple[str, str]]:
    """The practice's values plus any already-selected value it no longer has, so that editing
    a campaign never drops a selection silently."""
    everything = list(dict.fromkeys([*names, *(selected or [])]))
    return [(name, name) for name in everything]


class EnabledForm(forms.Form):
    """The on/off switch: the state the campaign should have (idempotent on a double submit)."""

    enabled = BooleanChoiceField()
