"""Forms of the campaign pages.

They parse what staff enter into the campaign JSON of DESIGN §5 and hand it to the validators
of ``campaigns.spec`` (the same ones the REST API uses); the validators' messages are shown next
to the field they name. Services do the writing.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from django import forms
from rest_framework import serializers

from campaigns.models import DelayUnit, MessageTemplate, TemplateFolder
from campaigns.spec import (
    DEFAULT_SCHEDULE,
    MERGE_FIELDS,
    MISSED_MINUTES,
    TRIGGER_TYPES,
    MessageStepSerializer,
    validate_filters,
    validate_goal,
    validate_schedule,
    validate_trigger,
)
from messaging.models import Channel
from patients.forms import BooleanChoiceField
from patients.models import Lookup, LookupKind, Sex
from trackstat.models import Practice
from trackstat.validators import InvalidValue, check_instant

MAX_STEPS = 30
LIST_SEPARATORS = re.compile(r"\s*[,;\n]\s*")

TRIGGER_LABELS = {
    "birthday": "Birthday",
    "first_visit": "First visit (new patient)",
    "anniversary": "First-visit anniversary",
    "last_visit_checked_in": "Last visit (checked in)",
    "last_visit_scheduled": "Last scheduled appointment",
    "missed_appointment": "Missed appointment",
    "scheduled_appointment": "Scheduled appointment (booked or coming up)",
}
WHEN_CHOICES = {
    "scheduled_appointment": [
        ("days_before", "Days before the appointment"),
        ("booked", "The day it is booked"),
    ],
    "last_visit_checked_in": [
        ("today", "Today, some hours after check-in"),
        ("yesterday", "Yesterday"),
        ("days_ago", "Some days ago"),
    ],
    "last_visit_scheduled": [("days_ago", "Some days ago")],
}
# Typical values shown when staff switch to a trigger type (DESIGN §5.1's common uses).
TRIGGER_DEFAULTS = {
    "birthday": {"timing": "on"},
    "first_visit": {"days_after": 0},
    "anniversary": {"timing": "on"},
    "scheduled_appointment": {"when": "days_before", "days": 1},
    "last_visit_checked_in": {
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
        "hours_after": 2,
    },
    "last_visit_scheduled": {"days": 30, "match": "at_least"},
    "missed_appointment": {"minutes_after": 30},
}
TIMING_CHOICES = [("on", "On the day"), ("before", "Days before"), ("after", "Days after")]
MATCH_CHOICES = [
    ("at_least", "At least that many days ago"),
    ("exact", "Exactly that many days ago"),
]
WEEKDAY_LABELS = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}

# Filters chosen from the practice's lookup values (DESIGN §4: a value exists once the EMR sent
# it): filter name → (lookup kind, label).
LOOKUP_FILTERS = {
    "appointment_purposes": (LookupKind.PURPOSE, "Appointment purposes"),
    "providers": (LookupKind.PROVIDER, "Providers"),
    "case_types": (LookupKind.CASE_TYPE, "Case types"),
    "diagnoses": (LookupKind.DIAGNOSIS, "Diagnoses (ICD-10)"),
    "attorneys": (LookupKind.ATTORNEY, "Attorneys"),
    "care_packages": (LookupKind.CARE_PACKAGE, "Care packages"),
    "fee_schedules": (LookupKind.FEE_SCHEDULE, "Fee schedules"),
    "insurance_companies": (LookupKind.INSURANCE_COMPANY, "Insurance companies"),
    "referral_sources": (LookupKind.REFERRAL_SOURCE, "Referral sources"),
    "services": (LookupKind.SERVICE, "Services (CPT codes on any appointment)"),
}
STATUS_CHOICES = [
    ("", "Any (not filtered)"),
    ("active", "Active"),
    ("inactive", "Inactive (inactive, deceased, discharged)"),
    ("any", "Any status"),
]
YES_NO_CHOICES = [("", "Not filtered"), ("yes", "Yes"), ("no", "No")]
GOAL_CHOICES = [
    ("", "No goal"),
    ("future_appointment", "The patient books a future appointment"),
    ("clicked_link", "The patient clicks a link in a message"),
]


def error_messages(detail) -> list[str]:
    """The messages of a (possibly nested) DRF error structure, flattened."""
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in error_messages(value)]
    if isinstance(detail, list | tuple):
        return [m for item in detail for m in error_messages(item)]
    return [str(detail)]


def add_spec_errors(form: forms.Form, error: serializers.ValidationError, field_map=None) -> None:
    """Show a spec validator's errors (``{name: [messages]}``) next to the fields they name."""
    detail = error.detail
    if not isinstance(detail, dict):
        detail = {None: detail}
    for name, messages in detail.items():
        target = (field_map or {}).get(name, name)
        if target not in form.fields:
            target = None
        for message in error_messages(messages):
            form.add_error(target, message)


def split_list(text: str) -> list[str]:
    return [item for item in LIST_SEPARATORS.split(text.strip()) if item]


def number_json(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _choices_with(names, selected) -> list[tuple[str, str]]:
    """The practice's values plus any already-selected value it no longer has, so that editing
    a campaign never drops a selection silently."""
    everything = list(dict.fromkeys([*names, *(selected or [])]))
    return [(name, name) for name in everything]


# --- Step 1: name ------------------------------------------------------------------------------


class NameForm(forms.Form):
    name = forms.CharField(
        label="Campaign name",
        max_length=200,
        error_messages={"required": "Give the campaign a name."},
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "e.g. Happy birthday"}),
    )


# --- Step 2: trigger ---------------------------------------------------------------------------


class TriggerForm(forms.Form):
    """A trigger of DESIGN §5.1; only the options of the chosen type (and ``when``) are used."""

    type = forms.ChoiceField(
        label="Trigger", choices=[(t, TRIGGER_LABELS[t]) for t in TRIGGER_TYPES]
    )
    timing = forms.ChoiceField(label="When", required=False, choices=TIMING_CHOICES)
    offset = forms.IntegerField(label="How many days", required=False, min_value=0, max_value=60)
    days_after = forms.IntegerField(
        label="Days after the first visit",
        required=False,
        min_value=0,
        help_text="0 = the day of the first visit.",
    )
    years = forms.CharField(
        label="Only these anniversaries (years)",
        required=False,
        help_text="For example 1, 5, 10. Empty: every year.",
    )
    when = forms.ChoiceField(label="When", required=False)
    days = forms.IntegerField(label="Days", required=False, min_value=0)
    hours_after = forms.IntegerField(
        label="Hours after check-in", required=False, min_value=0, max_value=23
    )
    match = forms.ChoiceField(label="Match", required=False, choices=MATCH_CHOICES)
    minutes_after = forms.TypedChoiceField(
        label="Minutes after the appointment's start",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(m, f"{m} minutes") for m in MISSED_MINUTES],
    )

    FIELD_MAP = {"offset_days": "offset"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        chosen = self._chosen("type")
        self.trigger_type = chosen if chosen in TRIGGER_LABELS else TRIGGER_TYPES[0]
        when_choices = WHEN_CHOICES.get(self.trigger_type, [])
        self.fields["when"].choices = when_choices
        chosen_when = self._chosen("when")
        valid_when = [value for value, _ in when_choices]
        self.chosen_when = chosen_when if chosen_when in valid_when else (valid_when or [None])[0]
        if self.trigger_type == "scheduled_appointment":
            self.fields["days"].label = "Days before the appointment"
            self.fields["days"].help_text = "0 = the day of the appointment."
        else:
            self.fields["days"].label = "Days since"
        # Only the chosen type's options take part: values left over from another type (a
        # form posted without JavaScript after changing the type) are ignored, not errors.
        for name in list(self.fields):
            if name != "type" and name not in self.option_names:
                del self.fields[name]
        self.trigger: dict | None = None

    def _chosen(self, name: str):
        if self.is_bound:
            return self.data.get(self.add_prefix(name))
        return self.initial.get(name)

    @property
    def option_names(self) -> list[str]:
        """The option fields shown for the chosen type (and ``when``)."""
        kind, when = self.trigger_type, self.chosen_when
        if kind == "birthday":
            return ["timing", "offset"]
        if kind == "first_visit":
            return ["days_after"]
        if kind == "anniversary":
            return ["timing", "offset", "years"]
        if kind == "scheduled_appointment":
            return ["when", "days"] if when == "days_before" else ["when"]
        if kind == "missed_appointment":
            return ["minutes_after"]
        if kind == "last_visit_checked_in":
            return {"today": ["when", "hours_after"], "yesterday": ["when"]}.get(
                when, ["when", "days", "match"]
            )
        return ["days", "match"]  # last_visit_scheduled: days ago only

    @property
    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.option_names]

    @staticmethod
    def initial_from(trigger: dict | None) -> dict:
        trigger = trigger or {}
        initial = {key: value for key, value in trigger.items() if key != "offset_days"}
        if "offset_days" in trigger:
            offset = trigger["offset_days"]
            # DESIGN §5.1: a negative offset runs that many days before the date.
            initial["timing"] = "on" if offset == 0 else ("before" if offset < 0 else "after")
            initial["offset"] = abs(offset) if offset else None
        if "years" in trigger:
            initial["years"] = ", ".join(str(y) for y in trigger["years"])
        return initial

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        kind = cleaned["type"]
        trigger: dict = {"type": kind}
        names = set(self.option_names)
        if "timing" in names:
            timing = cleaned.get("timing") or "on"
            days = cleaned.get("offset")
            if timing == "on":
                trigger["offset_days"] = 0
            elif days is None:
                self.add_error("offset", "How many days before or after?")
                return cleaned
            else:
                trigger["offset_days"] = -days if timing == "before" else days
        if "years" in names and cleaned.get("years", "").strip():
            try:
                trigger["years"] = [int(y) for y in split_list(cleaned["years"])]
            except ValueError:
                self.add_error("years", "Whole years separated by commas, e.g. 1, 5, 10.")
                return cleaned
        if kind in WHEN_CHOICES:
            trigger["when"] = self.chosen_when
        for name in ("days_after", "days", "hours_after", "minutes_after"):
            if name in names and cleaned.get(name) is not None:
                trigger[name] = cleaned[name]
        if "match" in names:
            trigger["match"] = cleaned.get("match") or "at_least"
        try:
            self.trigger = validate_trigger(trigger)
        except serializers.ValidationError as error:
            add_spec_errors(self, error, self.FIELD_MAP)
        return cleaned


# --- Step 2: filters ---------------------------------------------------------------------------


class FiltersForm(forms.Form):
    """Every filter of DESIGN §5.2; the choices are the practice's tags and lookup values.

    Paid totals are financial fields (Managers and above, DESIGN §3): for other roles the
    inputs are left out and a paid-total filter already on the campaign is kept as it is.
    """

    tags_include = forms.MultipleChoiceField(
        label="Has any of these tags", required=False, widget=forms.CheckboxSelectMultiple
    )
    tags_exclude = forms.MultipleChoiceField(
        label="Has none of these tags", required=False, widget=forms.CheckboxSelectMultiple
    )
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_CHOICES)
    has_future_appointment = forms.ChoiceField(
        label="Has a future appointment", required=False, choices=YES_NO_CHOICES
    )
    providers_match = forms.ChoiceField(
        label="Provider of",
        required=False,
        choices=[("appointment", "an appointment"), ("primary", "the patient (primary)")],
    )
    paid_total_min = forms.DecimalField(
        label="Paid total at least ($)", required=False, min_value=0, decimal_places=2
    )
    paid_total_max = forms.DecimalField(
        label="Paid total at most ($)", required=False, min_value=0, decimal_places=2
    )
    age_min = forms.IntegerField(label="Age at least", required=False, min_value=0)
    age_max = forms.IntegerField(label="Age at most", required=False, min_value=0)
    sex = forms.MultipleChoiceField(
        label="Sex", required=False, choices=Sex.choices, widget=forms.CheckboxSelectMultiple
    )
    states = forms.CharField(label="States", required=False, help_text="Comma-separated, e.g. IL")
    cities = forms.CharField(label="Cities", required=False, help_text="Comma-separated")
    postal_codes = forms.CharField(label="ZIP codes", required=False, help_text="Comma-separated")
    visit_count_eq = forms.IntegerField(label="Visit count exactly", required=False, min_value=0)
    visit_count_min = forms.IntegerField(label="Visit count at least", required=False, min_value=0)
    visit_count_max = forms.IntegerField(label="Visit count at most", required=False, min_value=0)

    FIELD_MAP = {
        "tags": "tags_include",
        "paid_total": "paid_total_min",
        "age": "age_min",
        "address": "states",
        "visit_count": "visit_count_eq",
        "sex": "sex",
    }

    def __init__(
        self,
        data=None,
        *,
        practice: Practice,
        current: dict | None = None,
        can_see_financials: bool,
        **kwargs,
    ):
        current = current or {}
        self.current = current
        self.can_see_financials = can_see_financials
        super().__init__(data, initial=self.initial_from(current), **kwargs)
        values: dict[str, list[str]] = {}
        for kind, name in Lookup.objects.filter(
            practice=practice, kind__in=[kind for kind, _ in LOOKUP_FILTERS.values()]
        ).values_list("kind", "name"):
            values.setdefault(kind, []).append(name)
        for name, (kind, label) in LOOKUP_FILTERS.items():
            selected = self.initial.get(name) or []
            choices = _choices_with(sorted(values.get(kind, [])), selected)
            self.fields[name] = forms.MultipleChoiceField(
                label=label,
                required=False,
                choices=choices,
                widget=forms.SelectMultiple(attrs={"size": min(max(len(choices), 2), 6)}),
            )
        tags = list(practice.tags.order_by("name").values_list("name", flat=True))
        for name in ("tags_include", "tags_exclude"):
            self.fields[name].choices = _choices_with(tags, self.initial.get(name))
        if not can_see_financials:
            del self.fields["paid_total_min"], self.fields["paid_total_max"]
        self.filters: dict | None = None

    @staticmethod
    def initial_from(filters: dict) -> dict:
        initial: dict = {}
        tags = filters.get("tags") or {}
        initial["tags_include"] = tags.get("include", [])
        initial["tags_exclude"] = tags.get("exclude", [])
        initial["status"] = filters.get("status", "")
        if "has_future_appointment" in filters:
            initial["has_future_appointment"] = "yes" if filters["has_future_appointment"] else "no"
        for name in LOOKUP_FILTERS:
            if name != "providers":
                initial[name] = filters.get(name, [])
        providers = filters.get("providers")
        if isinstance(providers, dict):
            initial["providers"] = providers.get("names", [])
            initial["providers_match"] = providers.get("match", "appointment")
        for name in ("paid_total", "age", "visit_count"):
            for bound, value in (filters.get(name) or {}).items():
                initial[f"{name}_{bound}"] = value
        initial["sex"] = filters.get("sex", [])
        address = filters.get("address") or {}
        for name in ("states", "cities", "postal_codes"):
            initial[name] = ", ".join(address.get(name, []))
        return initial

    GROUPS = [
        ("Tags", ["tags_include", "tags_exclude"]),
        (
            "Patient",
            [
                "status",
                "has_future_appointment",
                "age_min",
                "age_max",
                "sex",
                "visit_count_eq",
                "visit_count_min",
                "visit_count_max",
                "paid_total_min",
                "paid_total_max",
            ],
        ),
        ("Appointments", ["appointment_purposes", "providers", "providers_match", "services"]),
        ("Cases", ["case_types", "diagnoses", "attorneys", "insurance_companies"]),
        ("Referral and billing", ["referral_sources", "care_packages", "fee_schedules"]),
        ("Address", ["states", "cities", "postal_codes"]),
    ]
    # Inputs whose value alone does not select anything.
    NOT_A_SELECTION = {"providers_match"}

    def groups(self) -> list[dict]:
        """The filters in groups; a group is open when one of its filters is set or wrong."""
        groups = []
        for title, names in self.GROUPS:
            fields = [self[name] for name in names if name in self.fields]
            used = any(
                field.errors or (field.name not in self.NOT_A_SELECTION and field.value())
                for field in fields
            )
            items = [
                {
                    "field": field,
                    # A list of the practice's values that has none yet.
                    "no_values": isinstance(field.field, forms.MultipleChoiceField)
                    and field.name != "sex"
                    and not field.field.choices
                    and not field.errors,
                }
                for field in fields
            ]
            groups.append({"title": title, "items": items, "open": used})
        return groups

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        filters: dict = {}
        include, exclude = cleaned.get("tags_include") or [], cleaned.get("tags_exclude") or []
        if include or exclude:
            filters["tags"] = {"include": include, "exclude": exclude}
        if cleaned.get("status"):
            filters["status"] = cleaned["status"]
        if cleaned.get("has_future_appointment"):
            filters["has_future_appointment"] = cleaned["has_future_appointment"] == "yes"
        for name in LOOKUP_FILTERS:
            if cleaned.get(name):
                filters[name] = cleaned[name]
        if "providers" in filters:
            filters["providers"] = {
                "names": filters["providers"],
                "match": cleaned.get("providers_match") or "appointment",
            }
        if self.can_see_financials:
            paid = {
                bound: number_json(cleaned[f"paid_total_{bound}"])
                for bound in ("min", "max")
                if cleaned.get(f"paid_total_{bound}") is not None
            }
            if paid:
                filters["paid_total"] = paid
        elif self.current.get("paid_total"):
            filters["paid_total"] = self.current["paid_total"]
        for name in ("age", "visit_count"):
            bounds = {
                bound: cleaned[f"{name}_{bound}"]
                for bound in ("eq", "min", "max")
                if f"{name}_{bound}" in self.fields and cleaned.get(f"{name}_{bound}") is not None
            }
            if bounds:
                filters[name] = bounds
        if cleaned.get("sex"):
            filters["sex"] = cleaned["sex"]
        address = {
            name: split_list(cleaned.get(name) or "")
            for name in ("states", "cities", "postal_codes")
            if split_list(cleaned.get(name) or "")
        }
        if address:
            filters["address"] = address
        try:
            self.filters = validate_filters(filters)
        except serializers.ValidationError as error:
            add_spec_errors(self, error, self.FIELD_MAP)
        return cleaned


# --- Step 2: schedule --------------------------------------------------------------------------


class ScheduleForm(forms.Form):
    frequency = forms.ChoiceField(
        label="Runs",
        choices=[("daily", "Every day"), ("weekly", "Weekly"), ("monthly", "Monthly")],
    )
    time = forms.CharField(
        label="At (local time)", widget=forms.TimeInput(attrs={"type": "time"}), max_length=8
    )
    weekdays = forms.MultipleChoiceField(
        label="On",
        required=False,
        choices=list(WEEKDAY_LABELS.items()),
        widget=forms.CheckboxSelectMultiple,
    )
    day = forms.IntegerField(
        label="Day of the month",
        required=False,
        help_text="1 to 31; in a shorter month, its last day.",
    )
    exclude_recent_days = forms.IntegerField(
        label="Skip patients sent a message of another drip campaign in the last (days)",
        required=False,
        min_value=0,
        max_value=3650,
        help_text="0 = do not skip anyone. Messages still queued count; blasts, test sends "
        "and Inbox replies do not.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule: dict | None = None

    @staticmethod
    def initial_from(schedule: dict | None, exclude_recent_days: int) -> dict:
        schedule = schedule or DEFAULT_SCHEDULE
        return {**schedule, "exclude_recent_days": exclude_recent_days}

    def clean_time(self) -> str:
        value = self.cleaned_data["time"].strip()
        # Browsers send HH:MM, or HH:MM:SS when a step in seconds is set.
        return value[:5] if re.fullmatch(r"\d\d:\d\d:\d\d", value) else value

    def clean_exclude_recent_days(self) -> int:
        return self.cleaned_data["exclude_recent_days"] or 0

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        schedule = {"frequency": cleaned["frequency"], "time": cleaned["time"]}
        if cleaned["frequency"] == "weekly":
            schedule["weekdays"] = cleaned.get("weekdays") or []
        if cleaned["frequency"] == "monthly" and cleaned.get("day") is not None:
            schedule["day"] = cleaned["day"]
        try:
            self.schedule = validate_schedule(schedule)
        except serializers.ValidationError as error:
            add_spec_errors(self, error)
        return cleaned


# --- Step 3: messages --------------------------------------------------------------------------


def step_row(message: dict) -> dict:
    """A message of the campaign JSON as the raw values of its inputs."""
    delay = message.get("delay") or {}
    return {
        "channel": message.get("channel", Channel.SMS),
        "subject": message.get("subject", ""),
        "body": message.get("body", ""),
        "delay_value": str(delay.get("value", 0)),
        "delay_unit": delay.get("unit", DelayUnit.DAYS),
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
                "errors": {},
            }
        )
    return rows


def message_validate(row: dict, *, with_delay: bool = True) -> tuple[dict | None, dict]:
    """One step's values validated by ``spec.MessageStepSerializer``: (message, errors)."""
    data = {"channel": row["channel"], "subject": row["subject"], "body": row["body"]}
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


MERGE_FIELD_CHOICES = [(name, f"{{{{{name}}}}}: {label}") for name, label in MERGE_FIELDS.items()]


# --- Step 4: goal ------------------------------------------------------------------------------


class GoalForm(forms.Form):
    type = forms.ChoiceField(
        label="Goal", required=False, choices=GOAL_CHOICES, widget=forms.RadioSelect
    )
    url = forms.CharField(
        label="Only this link (optional)",
        required=False,
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://…"}),
        help_text="Empty: any tracked link in this campaign's messages.",
    )

    FIELD_MAP = {"filters": "appointment_purposes"}

    def __init__(self, data=None, *, practice: Practice, current: dict | None, **kwargs):
        current = current or {}
        super().__init__(data, initial=self.initial_from(current), **kwargs)
        for name in ("appointment_purposes", "providers"):
            kind, label = LOOKUP_FILTERS[name]
            names = Lookup.objects.filter(practice=practice, kind=kind).values_list(
                "name", flat=True
            )
            choices = _choices_with(list(names), self.initial.get(name))
            self.fields[name] = forms.MultipleChoiceField(
                label=f"Only these {label.lower()} (optional)",
                required=False,
                choices=choices,
                widget=forms.SelectMultiple(attrs={"size": min(max(len(choices), 2), 6)}),
            )
        self.goal: dict | None = None

    @staticmethod
    def initial_from(goal: dict) -> dict:
        filters = goal.get("filters") or {}
        return {
            "type": goal.get("type", ""),
            "url": goal.get("url", ""),
            "appointment_purposes": filters.get("appointment_purposes", []),
            "providers": filters.get("providers", []),
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        kind = cleaned.get("type")
        goal = None
        if kind == "future_appointment":
            goal = {
                "type": kind,
                "filters": {
                    name: cleaned[name]
                    for name in ("appointment_purposes", "providers")
                    if cleaned.get(name)
                },
            }
        elif kind == "clicked_link":
            goal = {"type": kind, **({"url": cleaned["url"]} if cleaned.get("url") else {})}
        try:
            self.goal = validate_goal(goal)
        except serializers.ValidationError as error:
            add_spec_errors(self, error, self.FIELD_MAP)
        return cleaned


# --- Blast campaigns ---------------------------------------------------------------------------


class BlastForm(forms.Form):
    """A blast's name, its one message and when it goes out (its filters: ``FiltersForm``)."""

    name = forms.CharField(
        label="Campaign name", max_length=200, error_messages={"required": "Give it a name."}
    )
    channel = forms.ChoiceField(label="Send as", choices=Channel.choices)
    subject = forms.CharField(label="Subject (email)", required=False, max_length=200)
    body = forms.CharField(
        label="Message", widget=forms.Textarea(attrs={"rows": 6}), required=False
    )
    send_mode = forms.ChoiceField(
        label="Send",
        choices=[("asap", "As soon as it is enabled"), ("at", "At a date and time")],
        widget=forms.RadioSelect,
    )
    send_at = forms.CharField(
        label="Date and time (practice time zone)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, practice: Practice, now: dt.datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self.practice = practice
        self.now = now

    @staticmethod
    def initial_from(campaign_json: dict, practice: Practice) -> dict:
        message = (campaign_json.get("messages") or [{}])[0]
        send_at = campaign_json.get("send_at")
        local = (
            dt.datetime.fromisoformat(send_at).astimezone(practice.tz).strftime("%Y-%m-%dT%H:%M")
            if send_at
            else ""
        )
        return {
            "name": campaign_json.get("name", ""),
            "channel": message.get("channel", Channel.SMS),
            "subject": message.get("subject", ""),
            "body": message.get("body", ""),
            "send_mode": "at" if send_at else "asap",
            "send_at": local,
        }

    def clean_send_at(self) -> dt.datetime | None:
        value = self.cleaned_data["send_at"].strip()
        if not value:
            return None
        try:
            # The browser's local date and time, read in the practice's time zone.
            naive = dt.datetime.fromisoformat(value[:16])
        except ValueError:
            raise forms.ValidationError("Enter a date and time, e.g. 2026-03-10 09:30.") from None
        try:
            return check_instant(naive.replace(tzinfo=self.practice.tz))
        except InvalidValue as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("send_mode") == "at":
            send_at = cleaned.get("send_at")
            if send_at is None and "send_at" not in self.errors:
                self.add_error("send_at", "Choose when to send, or “as soon as it is enabled”.")
            elif send_at is not None and send_at <= self.now:
                self.add_error("send_at", "Choose a time in the future.")
        else:
            cleaned["send_at"] = None
        return cleaned


# --- Templates ---------------------------------------------------------------------------------


class TemplateForm(forms.Form):
    folder = forms.ModelChoiceField(label="Folder", queryset=TemplateFolder.objects.none())
    name = forms.CharField(label="Template name", max_length=200)
    channel = forms.ChoiceField(label="Channel", choices=Channel.choices)
    subject = forms.CharField(label="Subject (email)", required=False, max_length=200)
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 8}))

    def __init__(self, *args, practice: Practice, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["folder"].queryset = TemplateFolder.objects.filter(practice=practice)

    @staticmethod
    def initial_from(template: MessageTemplate) -> dict:
        return {
            "folder": template.folder_id,
            "name": template.name,
            "channel": template.channel,
            "subject": template.subject,
            "body": template.body,
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        message, errors = message_validate(
            {"channel": cleaned["channel"], "subject": cleaned["subject"], "body": cleaned["body"]},
            with_delay=False,
        )
        for name, messages in errors.items():
            for text in messages:
                self.add_error(name if name in self.fields else None, text)
        if message:
            cleaned["subject"], cleaned["body"] = message["subject"], message["body"]
        return cleaned


class FolderForm(forms.Form):
    name = forms.CharField(label="Folder name", max_length=200)


# --- Small switches ----------------------------------------------------------------------------


class EnabledForm(forms.Form):
    """The on/off switch: the state the campaign should have (idempotent on a double submit)."""

    enabled = BooleanChoiceField()


class IncludedForm(forms.Form):
    """Put a blast recipient back (``true``) or remove them (``false``)."""

    included = BooleanChoiceField()
