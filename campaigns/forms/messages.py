"""Step 3 of the wizard, the messages, as rows of inputs (``step-<i>-channel``, …), and one
message checked as ``MessageStepSerializer`` checks it (the template library's too)."""

from __future__ import annotations

from campaigns.content.merge_fields import MERGE_FIELDS
from campaigns.forms.fields import error_messages
from campaigns.language.spec import MessageStepSerializer
from campaigns.models import DelayUnit
from messaging.models import Channel

MAX_STEPS = 30
MERGE_FIELD_CHOICES = [(name, f"{{{{{name}}}}}: {label}") for name, label in MERGE_FIELDS.items()]


def step_row(message: dict) -> dict:
    """A message of the campaign JSON as the raw values of its inputs."""
    delay = message.get("delay") or {}
    return {
        "channel": message.get("channel", Channel.SMS),
        "subject": message.get("subject", ""),
        "body": message.get("body", ""),
        "delay_value": str(delay.get("value", 0)),
        "delay_unit": delay.get("unit", DelayUnit.DAYS),
        "ask_confirmation": bool(message.get("ask_confirmation")),
        "errors": {},
    }


def step_rows_from_post(data) -> list[dict]:
    """The message steps as posted (``step-<i>-channel``, …), in order, unvalidated."""
    rows = []
    for index in range(MAX_STEPS):
        prefix = f"step-{index}-"
        if prefix + "channel" not in data:
            break
        rows.append(
            {
                "channel": data.get(prefix + "channel", ""),
                "subject": data.get(prefix + "subject", ""),
                "body": data.get(prefix + "body", "").replace("\r\n", "\n"),
                "delay_value": data.get(prefix + "delay_value", "0").strip(),
                "delay_unit": data.get(prefix + "delay_unit", DelayUnit.DAYS),
                "ask_confirmation": bool(data.get(prefix + "ask_confirmation")),
                "errors": {},
            }
        )
    return rows


def message_validate(row: dict, *, with_delay: bool = True) -> tuple[dict | None, dict]:
    """One step's values validated by ``MessageStepSerializer``: (message, errors)."""
    data = {"channel": row["channel"], "subject": row["subject"], "body": row["body"]}
    if row.get("ask_confirmation") and row["channel"] == Channel.SMS:
        data["ask_confirmation"] = True
    errors: dict[str, list[str]] = {}
    if with_delay:
        try:
            value = int(row["delay_value"] or 0)
        except ValueError:
            errors["delay"] = ["The delay must be a whole number."]
        else:
            data["delay"] = {"value": value, "unit": row["delay_unit"]}
    serializer = MessageStepSerializer(data=data)
    if not serializer.is_valid():
        for name, messages in serializer.errors.items():
            errors.setdefault(name, []).extend(error_messages(messages))
    if errors:
        return None, errors
    message = dict(serializer.validated_data)
    return {
        "channel": message["channel"],
        "subject": message["subject"],
        "body": message["body"],
        "delay": message["delay"],
        **({"ask_confirmation": True} if message.get("ask_confirmation") else {}),
    }, {}


def steps_validate(rows: list[dict]) -> list[dict] | None:
    """Validate every row (errors are put on the rows); the messages if all are valid."""
    messages, valid = [], True
    for row in rows:
        message, errors = message_validate(row)
        row["errors"] = errors
        valid = valid and message is not None
        messages.append(message)
    return messages if valid else None
