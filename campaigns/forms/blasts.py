"""A blast's form: its name, its one message and when it goes out (its filters are the
wizard's ``FiltersForm``), and the switch that takes a recipient off it or puts them back."""

from __future__ import annotations

import datetime as dt

from django import forms

from messaging.models import Channel, Purpose
from trackstat.fields import BooleanChoiceField
from trackstat.models import Practice
from trackstat.validators import InvalidValue, check_instant


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
    purpose = forms.ChoiceField(
        label="Purpose",
        choices=Purpose.choices,
        initial=Purpose.NOTICE,
        required=False,
        help_text="Marketing follows the practice's caps and consent rules; a notice (closures, "
        "new hours) has caps of its own.",
    )
    priority = forms.IntegerField(
        label="Priority",
        initial=0,
        required=False,
        min_value=-100,
        max_value=100,
        help_text="When a cap allows only one of two messages, the higher priority goes.",
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
            "purpose": campaign_json.get("purpose") or Purpose.NOTICE,
            "priority": campaign_json.get("priority", 0),
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
        cleaned["purpose"] = cleaned.get("purpose") or Purpose.NOTICE
        cleaned["priority"] = cleaned.get("priority") or 0
        if cleaned.get("send_mode") == "at":
            send_at = cleaned.get("send_at")
            if send_at is None and "send_at" not in self.errors:
                self.add_error("send_at", "Choose when to send, or “as soon as it is enabled”.")
            elif send_at is not None and send_at <= self.now:
                self.add_error("send_at", "Choose a time in the future.")
        else:
            cleaned["send_at"] = None
        return cleaned


class IncludedForm(forms.Form):
    """Put a blast recipient back (``true``) or remove them (``false``)."""

    included = BooleanChoiceField()
