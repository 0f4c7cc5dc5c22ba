"""Step 2 of the wizard, the audience: the trigger, the filters (also a blast's) and the
schedule. Each parses its inputs into its part of the campaign JSON and hands it to the
validators of ``campaigns.language`` (the ones the REST API uses); their messages are shown
next to the field they name."""

from __future__ import annotations

import re

from django import forms
from rest_framework import serializers

from campaigns.forms.fields import add_spec_errors, choices_with, number_json, split_list
from campaigns.language.filters import LOOKUP_FILTERS, STATUS_FORM_CHOICES, validate_filters
from campaigns.language.spec import DEFAULT_SCHEDULE, WEEKDAY_LABELS, validate_schedule
from campaigns.language.triggers import MISSED_MINUTES, TRIGGERS, validate_trigger
from messaging.models import Purpose
from patients.models import Lookup, Sex
from trackstat.models import Practice

TIMING_CHOICES = [("on", "On the day"), ("before", "Days before"), ("after", "Days after")]
MATCH_CHOICES = [
    ("at_least", "At least that many days ago"),
    ("exact", "Exactly that many days ago"),
]
YES_NO_CHOICES = [("", "Not filtered"), ("yes", "Yes"), ("no", "No")]


class TriggerForm(forms.Form):
    """A trigger of DESIGN §5.1; only the options of the chosen type (and ``when``) are used.

    The types, their ``when`` choices and their parameters' labels come from the trigger table
    (``campaigns.language.triggers``); the inputs are the parameters', except ``offset_days``
    (on, before or after the day, and how many days) and ``years`` (typed as a list).
    """

    type = forms.ChoiceField(label="Trigger", choices=[(t, r.label) for t, r in TRIGGERS.items()])
    timing = forms.ChoiceField(label="When", required=False, choices=TIMING_CHOICES)
    offset = forms.IntegerField(label="How many days", required=False, min_value=0, max_value=60)
    days_after = forms.IntegerField(required=False, min_value=0)
    years = forms.CharField(required=False)
    when = forms.ChoiceField(label="When", required=False)
    days = forms.IntegerField(label="Days", required=False, min_value=0)
    hours_after = forms.IntegerField(required=False, min_value=0, max_value=23)
    match = forms.ChoiceField(required=False, choices=MATCH_CHOICES)
    minutes_after = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(m, f"{m} minutes") for m in MISSED_MINUTES],
    )

    FIELD_MAP = {"offset_days": "offset"}
    # Parameters asked for with other inputs than one of their own name.
    INPUTS = {"offset_days": ["timing", "offset"]}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        chosen = self._chosen("type")
        self.row = TRIGGERS[chosen] if chosen in TRIGGERS else next(iter(TRIGGERS.values()))
        self.trigger_type = self.row.name
        when_choices = [(mode.name, mode.label) for mode in self.row.modes]
        self.fields["when"].choices = when_choices
        chosen_when = self._chosen("when")
        valid_when = [value for value, _ in when_choices]
        self.chosen_when = chosen_when if chosen_when in valid_when else (valid_when or [None])[0]
        self.params = self.row.params_for(self.chosen_when)
        for param in self.params:
            if param.name in self.fields and param.label:
                self.fields[param.name].label = param.label
                self.fields[param.name].help_text = param.help
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
        names = ["when"] if len(self.row.modes) > 1 else []
        for param in self.params:
            names += self.INPUTS.get(param.name, [param.name])
        return names

    @property
    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.option_names]

    @property
    def continuous(self) -> bool:
        """Whether the chosen trigger is checked at every tick (not on the schedule)."""
        return self.row.continuous_for(self.chosen_when) is not None

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

    @classmethod
    def initial_for_type(cls, kind: str | None) -> dict:
        """The inputs' values the wizard starts from when staff choose the type ``kind``."""
        row = TRIGGERS.get(kind)
        return cls.initial_from(row.starts_with) if row else {}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        trigger: dict = {"type": cleaned["type"]}
        if self.row.modes:
            trigger["when"] = self.chosen_when
        for param in self.params:
            name = param.name
            if name == "offset_days":
                timing = cleaned.get("timing") or "on"
                days = cleaned.get("offset")
                if timing == "on":
                    trigger[name] = 0
                elif days is None:
                    self.add_error("offset", "How many days before or after?")
                    return cleaned
                else:
                    trigger[name] = -days if timing == "before" else days
            elif param.many:
                if cleaned.get(name, "").strip():
                    try:
                        trigger[name] = [int(y) for y in split_list(cleaned[name])]
                    except ValueError:
                        self.add_error(name, "Whole years separated by commas, e.g. 1, 5, 10.")
                        return cleaned
            elif name == "match":
                trigger[name] = cleaned.get(name) or "at_least"
            elif cleaned.get(name) is not None:
                trigger[name] = cleaned[name]
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
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_FORM_CHOICES)
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
            choices = choices_with(sorted(values.get(kind, [])), selected)
            self.fields[name] = forms.MultipleChoiceField(
                label=label,
                required=False,
                choices=choices,
                widget=forms.SelectMultiple(attrs={"size": min(max(len(choices), 2), 6)}),
            )
        tags = list(practice.tags.order_by("name").values_list("name", flat=True))
        for name in ("tags_include", "tags_exclude"):
            self.fields[name].choices = choices_with(tags, self.initial.get(name))
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
        # Set through the campaign JSON only (the wizard has no input for it): kept as it is.
        if self.current.get("appointment_confirmations"):
            filters["appointment_confirmations"] = self.current["appointment_confirmations"]
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

    purpose = forms.ChoiceField(
        label="Purpose",
        required=False,
        choices=[
            ("", "By trigger (reminders and check-ins: care; the rest: marketing)"),
            *Purpose.choices,
        ],
        help_text="Marketing follows the practice's caps, consent and state rules; care "
        "(appointments and treatment) is never held back by marketing.",
    )
    priority = forms.IntegerField(
        label="Priority",
        required=False,
        min_value=-100,
        max_value=100,
        help_text="When a cap allows only one of two messages, the higher priority goes.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule: dict | None = None

    @staticmethod
    def initial_from(
        schedule: dict | None, exclude_recent_days: int, purpose: str | None = None, priority=0
    ) -> dict:
        schedule = schedule or DEFAULT_SCHEDULE
        return {
            **schedule,
            "exclude_recent_days": exclude_recent_days,
            "purpose": purpose or "",
            "priority": priority or 0,
        }

    def clean_priority(self) -> int:
        return self.cleaned_data["priority"] or 0

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
