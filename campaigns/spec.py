"""The JSON form of a campaign (DESIGN §5) and its validation.

The API reads and writes campaigns in exactly this shape, and the wizard builds the same JSON,
so both are validated here. Every error names its field: ``{"trigger": {"days": [...]}}``,
``{"messages": [{}, {"body": ["Unknown merge field {{Foo}}."]}]}``.
"""

from __future__ import annotations

import re

import nh3
from rest_framework import serializers

from campaigns.models import Campaign, CampaignKind, DelayUnit, MessageStep
from messaging.models import Channel
from patients.models import Lookup, Tag
from trackstat.validators import (
    InvalidValue,
    check_text,
    max_length_of,
    parse_instant,
    parse_int,
)

# The schedule of a drip campaign that names none (continuous triggers): it decides the
# local time at which day-and-longer delays fall.
DEFAULT_SCHEDULE = {"frequency": "daily", "time": "10:00"}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MISSED_MINUTES = [15, 20, 25, 30, 60, 120]
SMS_MAX_LENGTH = 1600
LOOKUP_NAME_LENGTH = max_length_of(Lookup, "name")
TAG_NAME_LENGTH = max_length_of(Tag, "name")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MERGE_FIELD_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

MERGE_FIELDS = {
    "PatientFirstName": "The patient's first name",
    "PatientLastName": "The patient's last name",
    "PatientFullName": "The patient's first and last name",
    "PracticeName": "Your practice's name",
    "PracticePhone": "Your practice's phone number",
    "ProviderName": "The appointment's (else the patient's primary) provider",
    "AppointmentDate": "The appointment's date",
    "AppointmentTime": "The appointment's time",
    "OnlineSchedulingLink": "Your online scheduling link",
    "UnsubscribeLink": "An unsubscribe link (email only)",
}
EMAIL_ONLY_FIELDS = {"UnsubscribeLink"}
APPOINTMENT_FIELDS = {"AppointmentDate", "AppointmentTime"}

# Trigger types, their parameters, and which are evaluated at every tick (DESIGN §5.1).
APPOINTMENT_TRIGGERS = {
    "scheduled_appointment",
    "missed_appointment",
    "last_visit_checked_in",
    "last_visit_scheduled",
}
VISIT_TRIGGERS = {"last_visit_checked_in", "last_visit_scheduled"}
TRIGGER_TYPES = ["birthday", "first_visit", "anniversary", *sorted(APPOINTMENT_TRIGGERS)]


def is_continuous(trigger: dict) -> bool:
    """Evaluated at every tick rather than on the campaign's schedule."""
    return trigger.get("type") == "missed_appointment" or (
        trigger.get("type") == "last_visit_checked_in" and trigger.get("when") == "today"
    )


def _int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise serializers.ValidationError({name: ["A whole number is required."]})
    if not low <= value <= high:
        raise serializers.ValidationError({name: [f"Must be between {low} and {high}."]})
    return value


def _choice(value, name: str, choices: list) -> str:
    if value not in choices:
        raise serializers.ValidationError(
            {name: [f"Must be one of: {', '.join(str(c) for c in choices)}."]}
        )
    return value


def _no_unknown(data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise serializers.ValidationError(
            {name: ["Unknown parameter for this trigger."] for name in unknown}
        )


def _required(data: dict, *names: str) -> None:
    missing = [name for name in names if name not in data]
    if missing:
        raise serializers.ValidationError({name: ["This field is required."] for name in missing})


def _days_ago(data: dict) -> dict:
    _required(data, "days", "match")
    return {
        "days": _int(data["days"], "days", 1, 3650),
        "match": _choice(data["match"], "match", ["exact", "at_least"]),
    }


def validate_trigger(data) -> dict:
    """One trigger of §5.1 with exactly its parameters; defaults filled in."""
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with a type.")
    _required(data, "type")
    kind = _choice(data["type"], "type", TRIGGER_TYPES)
    clean: dict = {"type": kind}
    if kind == "birthday":
        _no_unknown(data, {"type", "offset_days"})
        clean["offset_days"] = _int(data.get("offset_days", 0), "offset_days", -60, 60)
    elif kind == "first_visit":
        _no_unknown(data, {"type", "days_after"})
        clean["days_after"] = _int(data.get("days_after", 0), "days_after", 0, 3650)
    elif kind == "anniversary":
        _no_unknown(data, {"type", "offset_days", "years"})
        clean["offset_days"] = _int(data.get("offset_days", 0), "offset_days", -60, 60)
        years = data.get("years")
        if years is not None:
            if not isinstance(years, list) or not years:
                raise serializers.ValidationError({"years": ["A non-empty list of whole years."]})
            clean["years"] = sorted({_int(y, "years", 1, 100) for y in years})
    elif kind == "scheduled_appointment":
        _no_unknown(data, {"type", "when", "days"})
        _required(data, "when")
        clean["when"] = _choice(data["when"], "when", ["booked", "days_before"])
        if clean["when"] == "days_before":
            _required(data, "days")
            clean["days"] = _int(data["days"], "days", 0, 365)
        elif "days" in data:
            raise serializers.ValidationError({"days": ["Only with when: days_before."]})
    elif kind == "missed_appointment":
        _no_unknown(data, {"type", "minutes_after"})
        _required(data, "minutes_after")
        minutes = data["minutes_after"]
        if type(minutes) is not int or minutes not in MISSED_MINUTES:  # not 15.0, not True
            raise serializers.ValidationError(
                {"minutes_after": [f"Must be one of: {', '.join(map(str, MISSED_MINUTES))}."]}
            )
        clean["minutes_after"] = data["minutes_after"]
    elif kind == "last_visit_checked_in":
        _no_unknown(data, {"type", "when", "hours_after", "days", "match"})
        _required(data, "when")
        clean["when"] = _choice(data["when"], "when", ["today", "yesterday", "days_ago"])
        extra = set(data) - {"type", "when"}
        if clean["when"] == "today":
            _no_unknown(data, {"type", "when", "hours_after"})
            clean["hours_after"] = _int(data.get("hours_after", 0), "hours_after", 0, 23)
        elif clean["when"] == "yesterday":
            if extra:
                raise serializers.ValidationError(
                    {name: ["Not used with when: yesterday."] for name in sorted(extra)}
                )
        else:
            _no_unknown(data, {"type", "when", "days", "match"})
            clean.update(_days_ago(data))
    elif kind == "last_visit_scheduled":
        _no_unknown(data, {"type", "when", "days", "match"})
        _required(data, "when")
        clean["when"] = _choice(data["when"], "when", ["days_ago"])
        clean.update(_days_ago(data))
    return clean


def _name_list(value, name: str, *, max_length: int = LOOKUP_NAME_LENGTH) -> list[str]:
    """Names as the EMR sent them (providers, tags, cities, …), as long as they can be."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise serializers.ValidationError({name: ["A list of names."]})
    try:
        names = [check_text(v.strip(), max_length=max_length) for v in value]
    except InvalidValue as error:
        raise serializers.ValidationError({name: [str(error)]}) from None
    return list(dict.fromkeys(names))


def _range(value, name: str, low: float, high: float, *, decimals: bool = False) -> dict:
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise serializers.ValidationError({name: ["An object with min and/or max."]})
    clean = {}
    for bound in ("min", "max"):
        if bound in value and value[bound] is not None:
            number = value[bound]
            ok_types = (int, float) if decimals else (int,)
            if isinstance(number, bool) or not isinstance(number, ok_types):
                raise serializers.ValidationError({name: [f"{bound} must be a number."]})
            if not low <= number <= high:
                raise serializers.ValidationError(
                    {name: [f"{bound} must be between {low} and {high}."]}
                )
            clean[bound] = number
    if "min" in clean and "max" in clean and clean["min"] > clean["max"]:
        raise serializers.ValidationError({name: ["min must not be above max."]})
    return clean


LIST_FILTERS = [
    "appointment_purposes",
    "case_types",
    "diagnoses",
    "attorneys",
    "care_packages",
    "fee_schedules",
    "insurance_companies",
    "referral_sources",
    "services",
]
FILTER_NAMES = [
    "tags",
    "status",
    "has_future_appointment",
    "providers",
    *LIST_FILTERS,
    "paid_total",
    "age",
    "sex",
    "address",
    "visit_count",
]


def validate_filters(data) -> dict:
    """The filters of §5.2. Absent filters do not narrow; empty lists are dropped."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object of filters.")
    unknown = sorted(set(data) - set(FILTER_NAMES))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown filter."] for name in unknown})
    clean: dict = {}
    for name, value in data.items():
        if value is None:
            continue
        if name == "tags":
            if not isinstance(value, dict) or set(value) - {"include", "exclude"}:
                raise serializers.ValidationError({"tags": ["An object with include and exclude."]})
            tags = {
                k: _name_list(value.get(k, []), "tags", max_length=TAG_NAME_LENGTH)
                for k in ("include", "exclude")
            }
            if tags["include"] or tags["exclude"]:
                clean["tags"] = tags
        elif name == "status":
            clean["status"] = _choice(value, "status", ["active", "inactive", "any"])
        elif name == "has_future_appointment":
            if not isinstance(value, bool):
                raise serializers.ValidationError({name: ["Must be true or false."]})
            clean[name] = value
        elif name == "providers":
            if isinstance(value, list):
                value = {"names": value, "match": "appointment"}
            if not isinstance(value, dict) or set(value) - {"names", "match"}:
                raise serializers.ValidationError(
                    {"providers": ["An object with names and match (appointment or primary)."]}
                )
            names = _name_list(value.get("names", []), "providers")
            match = _choice(
                value.get("match", "appointment"), "providers", ["appointment", "primary"]
            )
            if names:
                clean["providers"] = {"names": names, "match": match}
        elif name in LIST_FILTERS:
            names = _name_list(value, name)
            if names:
                clean[name] = names
        elif name == "paid_total":
            clean[name] = _range(value, name, 0, 10**9, decimals=True)
        elif name == "age":
            clean[name] = _range(value, name, 0, 130)
        elif name == "visit_count":
            if isinstance(value, dict) and "eq" in value:
                if set(value) != {"eq"}:
                    raise serializers.ValidationError({name: ["Use eq alone, or min and/or max."]})
                clean[name] = {"eq": _int(value["eq"], name, 0, 100000)}
            else:
                clean[name] = _range(value, name, 0, 100000)
        elif name == "sex":
            if not isinstance(value, list) or not value or set(value) - {"M", "F", "X", "U"}:
                raise serializers.ValidationError({"sex": ["A list of M, F, X, U."]})
            clean["sex"] = sorted(set(value))
        elif name == "address":
            if not isinstance(value, dict) or set(value) - {"states", "cities", "postal_codes"}:
                raise serializers.ValidationError(
                    {"address": ["An object with states, cities and/or postal_codes."]}
                )
            address = {k: _name_list(v, "address") for k, v in value.items() if v}
            if address:
                clean["address"] = address
    return clean


def validate_schedule(data) -> dict:
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with frequency and time.")
    _required(data, "frequency", "time")
    frequency = _choice(data["frequency"], "frequency", ["daily", "weekly", "monthly"])
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
        _required(data, "weekdays")
        days = data["weekdays"]
        if not isinstance(days, list) or not days or set(days) - set(WEEKDAYS):
            raise serializers.ValidationError(
                {"weekdays": [f"A non-empty list of: {', '.join(WEEKDAYS)}."]}
            )
        clean["weekdays"] = [d for d in WEEKDAYS if d in days]
    if frequency == "monthly":
        _required(data, "day")
        clean["day"] = _int(data["day"], "day", 1, 31)
    return clean


def validate_goal(data) -> dict | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with a type.")
    _required(data, "type")
    kind = _choice(data["type"], "type", ["future_appointment", "clicked_link"])
    if kind == "future_appointment":
        _no_unknown(data, {"type", "filters"})
        filters = data.get("filters") or {}
        if not isinstance(filters, dict) or set(filters) - {"appointment_purposes", "providers"}:
            raise serializers.ValidationError(
                {"filters": ["An object with appointment_purposes and/or providers."]}
            )
        return {
            "type": kind,
            "filters": {k: _name_list(v, k) for k, v in filters.items() if v},
        }
    _no_unknown(data, {"type", "url"})
    url = data.get("url")
    if url is not None:
        url = serializers.URLField().run_validation(url)
    return {"type": kind, **({"url": url} if url else {})}


def merge_fields_in(text: str) -> list[str]:
    return MERGE_FIELD_RE.findall(text or "")


def sanitize_email_html(html: str) -> str:
    """Email bodies are HTML: keep formatting and links, drop scripts, styles and handlers."""
    return nh3.clean(html, link_rel="noopener noreferrer")


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
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 10000:
            raise serializers.ValidationError("value must be a whole number from 0 to 10000.")
        unit = value.get("unit", "days")
        if unit not in DelayUnit.values:
            raise serializers.ValidationError(
                f"unit must be one of: {', '.join(DelayUnit.values)}."
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
    if trigger and trigger.get("type") in APPOINTMENT_TRIGGERS:
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
