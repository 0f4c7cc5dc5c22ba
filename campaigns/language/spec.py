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
from campaigns.language.checks import name_list, no_unknown, one_of, required, whole_number
from campaigns.language.filters import APPOINTMENT_FILTERS, validate_filters
from campaigns.language.triggers import (
    UNKNOWN_PARAMETER,
    is_continuous,
    trigger_row,
    validate_trigger,
)
from campaigns.models import Campaign, CampaignKind, DelayUnit, MessageStep
from messaging.models import Channel
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
}
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
        if not isinstance(filters, dict) or set(filters) - set(APPOINTMENT_FILTERS):
            raise serializers.ValidationError(
                {"filters": ["An object with appointment_purposes and/or providers."]}
            )
        return {
            "type": kind,
            "filters": {k: name_list(v, k) for k, v in filters.items() if v},
        }
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
    body = serializers.CharField(max_length=100_000)
    delay = serializers.DictField(required=False, help_text='{"value": 3, "unit": "days"}')

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
        errors: dict = {}
        if data.get("channel") == Channel.EMAIL:
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
                elif name in EMAIL_ONLY_FIELDS and data.get("channel") != Channel.EMAIL:
                    problem = f"{{{{{name}}}}} is only for email."
                if problem:
                    errors.setdefault(part, []).append(problem)
        if errors:
            raise serializers.ValidationError(errors)
        return data


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
        step_errors = _appointment_field_errors(messages, data.get("trigger"))
        if step_errors and "messages" not in errors:
            errors["messages"] = step_errors
        if errors:
            raise serializers.ValidationError(errors)
        data["filters"] = data.get("filters") or {}
        return data


def _appointment_field_errors(messages: list[dict], trigger: dict | None) -> list[dict]:
    """{{AppointmentDate}} and {{AppointmentTime}} need a trigger that has an appointment."""
    row = trigger_row(trigger)
    if row is not None and row.has_appointment:
        return []
    errors, found = [], False
    for message in messages:
        step: dict = {}
        for part in ("subject", "body"):
            for name in merge_fields_in(message.get(part, "")):
                if name in APPOINTMENT_FIELDS:
                    step.setdefault(part, []).append(
                        f"{{{{{name}}}}} needs a trigger with an appointment."
                    )
                    found = True
        errors.append(step)
    return errors if found else []
