"""Step 3 of the wizard, the messages, as rows of inputs (``step-<i>-channel``, …), and one
message checked as ``MessageStepSerializer`` checks it (the template library's too)."""

from __future__ import annotations

from campaigns.content.merge_fields import MERGE_FIELDS
from campaigns.forms.fields import error_messages, part_label
from campaigns.language.spec import MessageStepSerializer
from campaigns.models import DelayUnit
from messaging.models import Channel

MAX_STEPS = 30
MERGE_FIELD_CHOICES = [(name, f"{{{{{name}}}}}: {label}") for name, label in MERGE_FIELDS.items()]


VARIANT_NAMES = "ABCD"


def step_row(message: dict) -> dict:
    """A message of the campaign JSON as the raw values of its inputs."""
    delay = message.get("delay") or {}
    variants = [
        {
            "name": v.get("name", ""),
            "subject": v.get("subject", ""),
            "body": v.get("body", ""),
            "weight": str(v.get("weight", "")),
        }
        for v in message.get("variants") or []
    ]
    first = variants[0] if variants else message
    return {
        "channel": message.get("channel", Channel.SMS),
        "subject": first.get("subject", ""),
        "body": first.get("body", ""),
        "delay_value": str(delay.get("value", 0)),
        "delay_unit": delay.get("unit", DelayUnit.DAYS),
        "variants": variants,
        "ask_confirmation": bool(message.get("ask_confirmation")),
        "errors": {},
    }


def _even_weights(variants: list[dict]) -> None:
    share = 100 // len(variants)
    for i, variant in enumerate(variants):
        variant["weight"] = str(share + (100 - share * len(variants) if i == 0 else 0))


def variant_add(row: dict) -> str:
    """Split the step into variants A and B (both starting from its text), or add the next
    one (a copy of the last), weights evened out; a note when it cannot."""
    variants = row["variants"]
    if not variants:
        base = {"subject": row["subject"], "body": row["body"]}
        variants += [{"name": "A", **base}, {"name": "B", **base}]
    elif len(variants) >= len(VARIANT_NAMES):
        return f"A message has at most {len(VARIANT_NAMES)} variants."
    else:
        taken = {v["name"] for v in variants}
        name = next(n for n in VARIANT_NAMES if n not in taken)
        variants.append({**variants[-1], "name": name})
    _even_weights(variants)
    return ""


def variant_remove(row: dict) -> None:
    """Drop the last variant; with one left the step is a plain message again (its text)."""
    variants = row["variants"]
    if variants:
        variants.pop()
    if len(variants) == 1:
        row["subject"], row["body"] = variants[0]["subject"], variants[0]["body"]
        variants.clear()
    elif variants:
        _even_weights(variants)


def step_rows_from_post(data) -> list[dict]:
    """The message steps as posted (``step-<i>-channel``, …), in order, unvalidated."""
    rows = []
    for index in range(MAX_STEPS):
        prefix = f"step-{index}-"
        if prefix + "channel" not in data:
            break
        variants = []
        for number in range(len(VARIANT_NAMES)):
            part = f"{prefix}variant-{number}-"
            if part + "name" not in data:
                break
            variants.append(
                {
                    "name": data.get(part + "name", "").strip(),
                    "subject": data.get(part + "subject", ""),
                    "body": data.get(part + "body", "").replace("\r\n", "\n"),
                    "weight": data.get(part + "weight", "").strip(),
                }
            )
        first = variants[0] if variants else None
        rows.append(
            {
                "channel": data.get(prefix + "channel", ""),
                "subject": first["subject"] if first else data.get(prefix + "subject", ""),
                "body": first["body"]
                if first
                else data.get(prefix + "body", "").replace("\r\n", "\n"),
                "delay_value": data.get(prefix + "delay_value", "0").strip(),
                "delay_unit": data.get(prefix + "delay_unit", DelayUnit.DAYS),
                "variants": variants,
                "ask_confirmation": bool(data.get(prefix + "ask_confirmation")),
                "errors": {},
            }
        )
    return rows


def _weight(text: str):
    try:
        return int(text)
    except (TypeError, ValueError):
        return text  # refused by the validation, naming the field


def message_validate(row: dict, *, with_delay: bool = True) -> tuple[dict | None, dict]:
    """One step's values validated by ``MessageStepSerializer``: (message, errors)."""
    if row.get("variants"):
        data = {
            "channel": row["channel"],
            "variants": [
                {
                    "name": v["name"],
                    "subject": v["subject"],
                    "body": v["body"],
                    "weight": _weight(v["weight"]),
                }
                for v in row["variants"]
            ],
        }
    else:
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
            if name == "variants" and isinstance(messages, list):
                messages = _variant_error_lines(messages, row["variants"])
            errors.setdefault(name, []).extend(error_messages(messages))
    if errors:
        return None, errors
    message = dict(serializer.validated_data)
    result = {
        "channel": message["channel"],
        "subject": message["subject"],
        "body": message["body"],
        "delay": message["delay"],
    }
    if message.get("variants"):
        result = {
            "channel": message["channel"],
            "variants": message["variants"],
            "delay": message["delay"],
        }
    if message.get("ask_confirmation"):
        result["ask_confirmation"] = True
    return result, {}


def _variant_error_lines(errors: list, variants: list[dict]) -> list[str]:
    """Per-variant errors as lines naming the variant ("Variant B, share of patients: …")."""
    lines = []
    for variant, problems in zip(variants, errors, strict=False):
        if isinstance(problems, dict):
            for part, texts in problems.items():
                for text in error_messages(texts):
                    lines.append(f"Variant {variant['name'] or '?'}, {part_label(part)}: {text}")
        else:
            lines.extend(error_messages(problems))
    return lines


def steps_validate(rows: list[dict]) -> list[dict] | None:
    """Validate every row (errors are put on the rows); the messages if all are valid."""
    messages, valid = [], True
    for row in rows:
        message, errors = message_validate(row)
        row["errors"] = errors
        valid = valid and message is not None
        messages.append(message)
    return messages if valid else None
