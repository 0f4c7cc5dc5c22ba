"""Steps 1 and 4 of the wizard: the campaign's name and its goal."""

from __future__ import annotations

from django import forms
from rest_framework import serializers

from campaigns.forms.fields import add_spec_errors, choices_with
from campaigns.language.filters import LOOKUP_FILTERS
from campaigns.language.spec import GOAL_TYPES, validate_goal
from patients.models import Lookup
from trackstat.models import Practice

GOAL_CHOICES = [("", "No goal"), *GOAL_TYPES.items()]


class NameForm(forms.Form):
    name = forms.CharField(
        label="Campaign name",
        max_length=200,
        error_messages={"required": "Give the campaign a name."},
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "e.g. Happy birthday"}),
    )


class ExperimentForm(forms.Form):
    """Step 4's experiment settings (DESIGN §5.9): the control group and the outcome window."""

    holdout_percent = forms.IntegerField(
        label="Hold out (control group), % of entering patients",
        min_value=0,
        max_value=50,
        initial=0,
        required=False,
        help_text="They enter and are tracked like everyone else but are sent nothing, so the "
        "report can show what the messages changed. 0: no control group.",
    )
    attribution_days = forms.IntegerField(
        label="Count bookings, visits and revenue for (days after entering)",
        min_value=1,
        max_value=365,
        initial=30,
        required=False,
    )

    def settings(self, current: dict) -> dict:
        """The cleaned settings; a field left empty keeps its ``current`` value."""
        return {
            name: current[name] if self.cleaned_data.get(name) is None else self.cleaned_data[name]
            for name in ("holdout_percent", "attribution_days")
        }


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
            choices = choices_with(list(names), self.initial.get(name))
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
        elif kind == "confirmed":
            goal = {"type": kind}
        try:
            self.goal = validate_goal(goal)
        except serializers.ValidationError as error:
            add_spec_errors(self, error, self.FIELD_MAP)
        return cleaned


class SkipRecentForm(forms.Form):
    """The overlap warning's one-click fix: skip patients another drip messaged lately."""

    days = forms.IntegerField(
        label="Skip patients messaged by another drip in the last (days)",
        min_value=1,
        max_value=3650,
        error_messages={"required": "Enter a number of days from 1 to 3650."},
    )
