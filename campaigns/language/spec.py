"""The JSON form of a campaign (DESIGN §5) and its validation.

The API reads and writes campaigns in exactly this shape, and the wizard builds the same JSON,
so both are validated here (triggers by their table, ``campaigns.language.triggers``; filters
by ``campaigns.language.filters``). Every error names its field: ``{"trigger": {"days": [...]}}``,
``{"messages": [{}, {"body": ["Unknown merge field {{Foo}}."]}]}``.
"""

from __future__ import annotations

import re
from fractions import Fraction

from rest_framework import serializers

from campaigns.content.email_html import sanitize_email_html
from campaigns.content.merge_fields import (
    APPOINTMENT_FIELDS,
    EMAIL_ONLY_FIELDS,
    MERGE_FIELDS,
    merge_fields_in,
)
from campaigns.content.sms import SMS_MAX_LENGTH
from campaigns.experiments.arms import MAX_VARIANTS, RESERVED_ARMS
from campaigns.language.checks import name_list, no_unknown, one_of, required, whole_number
from campaigns.language.filters import GOAL_APPOINTMENT_FILTERS, validate_filters
from campaigns.language.purpose import default_purpose
from campaigns.language.triggers import (
    UNKNOWN_PARAMETER,
    is_continuous,
    trigger_row,
    validate_trigger,
)
from campaigns.models import Campaign, CampaignKind, DelayUnit, MessageStep
from messaging.models import Channel, Purpose
from trackstat.validators import InvalidValue, max_length_of, parse_instant, parse_int

# The schedule of a drip campaign that names none (continuous triggers): it decides the
# local time at which day-and-longer delays fall.
DEFAULT_SCHEDULE = {"frequency": "daily", "time": "10:00"}
WEEKDAY_LABELS = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}
WEEKDAYS = list(WEEKDAY_LABELS)
GOAL_TYPES = {
    "future_appointment": "The patient books a future appointment",
    "clicked_link": "The patient clicks a link in a message",
    "confirmed": "The patient confirms the appointment (by text, or the EMR marks it confirmed)",
}
# The appointment-keyed triggers whose texts may ask the patient to confirm (DESIGN §7).
CONFIRMATION_TRIGGERS = ("scheduled_appointment", "missed_appointment")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def validate_schedule(data) -> dict:
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with frequency and time.")
    required(data, "frequency", "time")
    frequency = one_of(data["frequency"], "frequency", ["daily", "weekly", "monthly"])
    allowed = {"frequency", "time"} | {"weekly": {"weekdays"}, "monthly": {"day"}}.get(
        frequency, set()
    )
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise serializers.ValidationError(
            {n: [f"Not used with frequency: {frequency}."] for n in unknown}
        )
    if not isinstance(data["time"], str) or not TIME_RE.match(data["time"]):
        raise serializers.ValidationError({"time": ["Use local time as HH:MM, e.g. 10:00."]})
    clean = {"frequency": frequency, "time": data["time"]}
    if frequency == "weekly":
        required(data, "weekdays")
        days = data["weekdays"]
        if not isinstance(days, list) or not days or set(days) - set(WEEKDAYS):
            raise serializers.ValidationError(
                {
                    "weekdays": [
                        "Choose at least one day of the week "
                        f"(in the API: a list of {', '.join(WEEKDAYS)})."
                    ]
                }
            )
        clean["weekdays"] = [d for d in WEEKDAYS if d in days]
    if frequency == "monthly":
        required(data, "day")
        clean["day"] = whole_number(data["day"], "day", 1, 31)
    return clean


def validate_goal(data) -> dict | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with a type.")
    required(data, "type")
    kind = one_of(data["type"], "type", list(GOAL_TYPES))
    if kind == "future_appointment":
        no_unknown(data, {"type", "filters"}, UNKNOWN_PARAMETER)
        filters = data.get("filters") or {}
        if not isinstance(filters, dict) or set(filters) - set(GOAL_APPOINTMENT_FILTERS):
            raise serializers.ValidationError(
                {"filters": ["An object with appointment_purposes and/or providers."]}
            )
        return {
            "type": kind,
            "filters": {k: name_list(v, k) for k, v in filters.items() if v},
        }
    if kind == "confirmed":
        no_unknown(data, {"type"}, UNKNOWN_PARAMETER)
        return {"type": kind}
    no_unknown(data, {"type", "url"}, UNKNOWN_PARAMETER)
    url = data.get("url")
    if url is not None:
        url = serializers.URLField().run_validation(url)
    return {"type": kind, **({"url": url} if url else {})}


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: DRF's IntegerField also takes ``15.0`` and ``"15"``."""

    def to_internal_value(self, data):
        try:
            return parse_int(data, minimum=self.min_value, maximum=self.max_value, strings=False)
        except InvalidValue as error:
            raise serializers.ValidationError(str(error)) from None


class InstantField(serializers.DateTimeField):
    """An instant with its UTC offset, in the sane range (``trackstat.validators``): a time
    without an offset is refused, not read as UTC."""

    def to_internal_value(self, value):
        try:
            return parse_instant(value)
        except InvalidValue as error:
            raise serializers.ValidationError(str(error)) from None


VARIANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,19}$")


def _content_errors(channel: str, data: dict) -> dict:
    """Check (and clean) one text of a step, ``data``'s subject and body, for ``channel``:
    an email's subject and sanitized HTML, a text's length, merge fields known and allowed."""
    errors: dict = {}
    if channel == Channel.EMAIL:
        if not data.get("subject", "").strip():
            errors["subject"] = ["An email needs a subject."]
        data["body"] = sanitize_email_html(data["body"])
    else:
        data["subject"] = ""
        if len(data["body"]) > SMS_MAX_LENGTH:
            errors["body"] = [f"A text message can be at most {SMS_MAX_LENGTH} characters."]
    for part in ("subject", "body"):
        for name in merge_fields_in(data.get(part, "")):
            problem = None
            if name not in MERGE_FIELDS:
                problem = f"Unknown merge field {{{{{name}}}}}."
            elif name in EMAIL_ONLY_FIELDS and channel != Channel.EMAIL:
                problem = f"{{{{{name}}}}} is only for email."
            if problem:
                errors.setdefault(part, []).append(problem)
    return errors


def validate_variants(value, channel: str) -> list[dict]:
    """2 to 4 variants ``{"name", "subject", "body", "weight"}``, names unique (not "holdout" or
    "treatment"), whole weights from 1 summing to 100, each text checked like a step's."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_VARIANTS:
        raise serializers.ValidationError(f"Give 2 to {MAX_VARIANTS} variants.")
    clean, errors, names = [], [], set()
    for variant in value:
        problems: dict = {}
        if not isinstance(variant, dict):
            errors.append({"non_field_errors": ["Expected an object."]})
            clean.append({})
            continue
        unknown = sorted(set(variant) - {"name", "subject", "body", "weight"})
        for name in unknown:
            problems[name] = ["Unknown field."]
        name = variant.get("name")
        if not isinstance(name, str) or not VARIANT_NAME_RE.match(name.strip()):
            problems["name"] = ["1 to 20 letters, digits, spaces, - or _, e.g. A."]
        elif name.strip().lower() in RESERVED_ARMS:
            problems["name"] = [f"{name.strip()} is the name of an arm; choose another."]
        elif name.strip().lower() in names:
            problems["name"] = ["Each variant needs its own name."]
        else:
            names.add(name.strip().lower())
        weight = variant.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            problems["weight"] = ["A whole number from 1 to 100."]
        body = variant.get("body")
        subject = variant.get("subject", "")
        if not isinstance(body, str) or not body.strip():
            problems["body"] = ["This field is required."]
        elif not isinstance(subject, str) or len(subject) > max_length_of(MessageStep, "subject"):
            problems["subject"] = ["At most 200 characters."]
        else:
            text = {"subject": subject, "body": body}
            problems.update(_content_errors(channel, text))
            subject, body = text["subject"], text["body"]
        errors.append(problems)
        clean.append(
            {
                "name": name.strip() if isinstance(name, str) else name,
                "subject": subject,
                "body": body,
                "weight": weight,
            }
        )
    if any(errors):
        raise serializers.ValidationError(errors)
    if sum(v["weight"] for v in clean) != 100:
        raise serializers.ValidationError("The variants' weights must add up to 100.")
    return clean


# The longest delay between two messages: two years, in any unit.
MAX_DELAY_DAYS = 730
DAYS_PER_UNIT = {
    DelayUnit.MINUTES: Fraction(1, 1440),
    DelayUnit.HOURS: Fraction(1, 24),
    DelayUnit.DAYS: Fraction(1),
    DelayUnit.WEEKS: Fraction(7),
    DelayUnit.MONTHS: Fraction(MAX_DELAY_DAYS, 24),
}


class MessageStepSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    subject = serializers.CharField(
        max_length=max_length_of(MessageStep, "subject"),
        required=False,
        allow_blank=True,
        default="",
    )
    body = serializers.CharField(max_length=100_000, required=False)
    variants = serializers.JSONField(
        required=False,
        help_text='A/B test: [{"name": "A", "subject": …, "body": …, "weight": 50}, …] '
        "(2 to 4, weights adding up to 100) instead of subject and body.",
    )
    delay = serializers.DictField(required=False, help_text='{"value": 3, "unit": "days"}')
    ask_confirmation = serializers.BooleanField(
        required=False,
        default=False,
        help_text="A text of a scheduled_appointment or missed_appointment campaign that asks "
        "the patient to reply C to confirm or R to reschedule (the practice's wording).",
    )

    def validate_delay(self, value: dict) -> dict:
        if set(value) - {"value", "unit"}:
            raise serializers.ValidationError("An object with value and unit.")
        amount = value.get("value", 0)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise serializers.ValidationError("The delay must be a whole number, 0 or more.")
        unit = value.get("unit", "days")
        if unit not in DelayUnit.values:
            raise serializers.ValidationError(
                f"The delay's unit must be one of: {', '.join(DelayUnit.values)}."
            )
        # One limit, whatever the unit: "10,000 months" is a mistake, not a plan.
        if amount * DAYS_PER_UNIT[unit] > MAX_DELAY_DAYS:
            raise serializers.ValidationError(
                f"A delay can be at most 2 years ({MAX_DELAY_DAYS} days or 24 months); "
                f"{amount:,} {unit} is longer."
            )
        return {"value": amount, "unit": unit}

    def validate(self, data: dict) -> dict:
        data.setdefault("delay", {"value": 0, "unit": "days"})
        if data.get("variants") is not None:
            if data.get("body") or data.get("subject"):
                raise serializers.ValidationError(
                    {"variants": ["A step has either variants or one subject and body."]}
                )
            try:
                data["variants"] = validate_variants(data["variants"], data["channel"])
            except serializers.ValidationError as error:
                raise serializers.ValidationError({"variants": error.detail}) from None
            # The first variant's text stands for the step where one text is shown.
            data["subject"] = data["variants"][0]["subject"]
            data["body"] = data["variants"][0]["body"]
            return data
        data["variants"] = []
        if not data.get("body"):
            raise serializers.ValidationError({"body": ["This field is required."]})
        errors = _content_errors(data.get("channel"), data)
        if errors:
            raise serializers.ValidationError(errors)
        return data


def _variant_arms_errors(messages: list[dict]) -> list[dict]:
    """A patient's arm serves every variant step: they all carry the same names and weights
    (those of the first variant step)."""
    first = None
    errors, found = [], False
    for message in messages:
        arms = [(v["name"], v["weight"]) for v in message.get("variants") or []]
        step: dict = {}
        if arms and first is None:
            first = arms
        elif arms and arms != first:
            names = ", ".join(f"{n} {w}%" for n, w in first)
            step["variants"] = [
                f"Every variant step needs the same variants and weights as the first ({names})."
            ]
            found = True
        errors.append(step)
    return errors if found else []


class CampaignSerializer(serializers.Serializer):
    """A campaign as in DESIGN §5 (read and write)."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=max_length_of(Campaign, "name"))
    kind = serializers.ChoiceField(choices=CampaignKind.choices, default=CampaignKind.DRIP)
    enabled = serializers.BooleanField(default=False)
    trigger = serializers.JSONField(required=False, allow_null=True)
    filters = serializers.JSONField(required=False, allow_null=True)
    schedule = serializers.JSONField(required=False, allow_null=True)
    exclude_recent_days = StrictIntegerField(min_value=0, max_value=3650, default=0)
    holdout_percent = StrictIntegerField(
        min_value=0,
        max_value=50,
        default=0,
        help_text="Drips: the share of entering patients held out as a control group.",
    )
    attribution_days = StrictIntegerField(
        min_value=1,
        max_value=365,
        default=30,
        help_text="Outcomes (booked, visited, revenue) count this many days after entering.",
    )
    purpose = serializers.ChoiceField(
        choices=Purpose.choices,
        required=False,
        allow_null=True,
        help_text="care, notice or marketing; absent: by trigger (DESIGN §5.8).",
    )
    priority = StrictIntegerField(min_value=-100, max_value=100, default=0)
    messages = MessageStepSerializer(many=True)
    goal = serializers.JSONField(required=False, allow_null=True)
    send_at = InstantField(
        required=False,
        allow_null=True,
        help_text="ISO 8601 with its UTC offset (within ±14:00), years 1900 to 2100.",
    )
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate_trigger(self, value):
        return validate_trigger(value) if value is not None else None

    def validate_filters(self, value):
        return validate_filters(value)

    def validate_schedule(self, value):
        return validate_schedule(value) if value is not None else None

    def validate_goal(self, value):
        return validate_goal(value)

    def validate(self, data: dict) -> dict:
        if self.partial:
            # The cross-field rules need the whole campaign: a PATCH is merged with the stored
            # campaign and validated whole (campaigns.apis).
            return data
        errors: dict = {}
        kind = data.get("kind", CampaignKind.DRIP)
        messages = data.get("messages", [])
        if not messages:
            errors["messages"] = ["Add at least one message."]
        if kind == CampaignKind.DRIP:
            if not data.get("trigger"):
                errors["trigger"] = ["A drip campaign needs a trigger."]
            elif not is_continuous(data["trigger"]) and not data.get("schedule"):
                errors["schedule"] = ["Say when the campaign runs: frequency and time."]
            if data.get("send_at"):
                errors["send_at"] = ["Only blast campaigns have a send time."]
            if data.get("goal") and len(messages) < 2:
                errors["goal"] = ["A goal needs a campaign with more than one message."]
            if data.get("trigger") and not data.get("schedule"):
                data["schedule"] = dict(DEFAULT_SCHEDULE)
        else:
            for name in ("trigger", "goal", "schedule"):
                if data.get(name):
                    errors[name] = ["Blast campaigns do not have one."]
            if len(messages) > 1:
                errors["messages"] = ["A blast sends exactly one message."]
            data["trigger"], data["goal"], data["schedule"] = None, None, None
            if data.get("exclude_recent_days"):
                errors["exclude_recent_days"] = ["Blast campaigns do not use it."]
            if data.get("holdout_percent"):
                errors["holdout_percent"] = ["Blast campaigns do not hold anyone out."]
        has_appointment = (data.get("trigger") or {}).get("type") in CONFIRMATION_TRIGGERS
        if (data.get("goal") or {}).get("type") == "confirmed" and not has_appointment:
            errors.setdefault("goal", ["A confirmed goal needs a trigger with an appointment."])
        ask_errors = [
            {"ask_confirmation": ["Only a text of a campaign about an appointment can ask."]}
            if message.get("ask_confirmation")
            and (message.get("channel") != Channel.SMS or not has_appointment)
            else {}
            for message in messages
        ]
        if any(ask_errors) and "messages" not in errors:
            errors["messages"] = ask_errors
        step_errors = _appointment_field_errors(messages, data.get("trigger"))
        step_errors = step_errors or _variant_arms_errors(messages)
        if step_errors and "messages" not in errors:
            errors["messages"] = step_errors
        if errors:
            raise serializers.ValidationError(errors)
        data["filters"] = data.get("filters") or {}
        if not data.get("purpose"):
            data["purpose"] = default_purpose(kind=kind, trigger=data.get("trigger"))
        return data


def _appointment_field_errors(messages: list[dict], trigger: dict | None) -> list[dict]:
    """{{AppointmentDate}} and {{AppointmentTime}} need a trigger that has an appointment."""
    row = trigger_row(trigger)
    if row is not None and row.has_appointment:
        return []
    errors, found = [], False
    for message in messages:
        step: dict = {}
        where = "variants" if message.get("variants") else None
        for text in [message, *(message.get("variants") or [])]:
            for part in ("subject", "body"):
                for name in merge_fields_in(text.get(part, "")):
                    problem = f"{{{{{name}}}}} needs a trigger with an appointment."
                    if name in APPOINTMENT_FIELDS and problem not in step.get(where or part, []):
                        step.setdefault(where or part, []).append(problem)
                        found = True
        errors.append(step)
    return errors if found else []
