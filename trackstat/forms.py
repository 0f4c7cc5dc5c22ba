"""Forms of the tenancy core: sign-in, invitations, roles, practice settings, API keys."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from trackstat.client_address import client_address
from trackstat.models import CONFIRMATION_WORDING_DEFAULTS, Practice, Role, User
from trackstat.phones import phone_to_e164
from trackstat.services import PRACTICE_SETTINGS_FIELDS
from trackstat.throttle import login_failure_record, login_is_locked, login_success_record


def e164_or_blank(value: str) -> str:
    """A form's phone number as E.164 ("" stays blank), or the field's validation error."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        return phone_to_e164(value)
    except ValueError as error:
        raise forms.ValidationError(str(error)) from None


class PhoneField(forms.CharField):
    """A phone number typed in any common form ("+1 (312) 555-0142", "312.555.0142", E.164),
    cleaned to E.164 ("" stays blank). Room for the punctuation people type: the stored
    number is at most 16 characters, what they type is not."""

    widget = forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"})

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def clean(self, value):
        return e164_or_blank(super().clean(value))


class ThrottledAuthenticationForm(AuthenticationForm):
    """Sign in by email; repeated failures lock the email (and the address) for a while."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": (
            "Too many failed sign-in attempts. Wait %(minutes)d minutes, or reset your password."
        ),
    }

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if login_is_locked(email=email, address=address):
            self.throttled = True
            raise forms.ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"minutes": settings.LOGIN_FAILURE_WINDOW_SECONDS // 60},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_failure_record(email=email, address=address)
            raise
        login_success_record(email=email, address=address)
        return cleaned


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.TypedChoiceField(choices=Role.choices, coerce=int, initial=Role.USER)


class RoleForm(forms.Form):
    role = forms.TypedChoiceField(choices=Role.choices, coerce=int)


class PracticeSettingsForm(forms.ModelForm):
    """Validation of practice settings; saving goes through ``practice_settings_update``."""

    phone = PhoneField(label="Phone", help_text="The practice's phone, e.g. (312) 555-0100.")
    sms_from = PhoneField(
        label="Sender phone number",
        help_text="The number patients receive texts from, e.g. (312) 555-0199.",
    )

    class Meta:
        model = Practice
        fields = PRACTICE_SETTINGS_FIELDS
        widgets = {
            # A searchable list (the page's <datalist>): US zones first, then every zone.
            "time_zone": forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
            "sending_window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "sending_window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        help_texts = {
            "time_zone": "Type to search, e.g. Chicago or America/Chicago. All campaign times "
            "are in this zone.",
            "sending_window_start": "No SMS before this local time (08:00 at the earliest).",
            "sending_window_end": "No SMS after this local time (21:00 at the latest).",
            "confirmation_request_text": "Added to reminder texts that ask the patient to "
            "confirm. Leave empty for the default.",
            "confirmation_ack_confirmed": "Texted back once when a patient confirms; "
            "{{AppointmentDate}} and {{AppointmentTime}} are filled in. Empty: the default.",
            "confirmation_ack_cancel": "Texted back once when a patient asks to cancel.",
            "confirmation_ack_reschedule": "Texted back once when a patient asks to reschedule.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, default in CONFIRMATION_WORDING_DEFAULTS.items():
            self.fields[name].widget.attrs.update(placeholder=default, size=70)


class ProfileForm(forms.ModelForm):
    """What a staff member changes about themselves."""

    class Meta:
        model = User
        fields = ["first_name", "last_name", "phone"]

    phone = PhoneField(
        label="Mobile phone",
        help_text="Test texts from the campaign wizard go here, e.g. (312) 555-0142.",
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which EMR connector uses this key.")


class ProviderCredentialsForm(forms.Form):
    """The practice's own provider credentials. Secrets are write-only: a blank secret keeps
    the stored one, "clear" removes it. The account SID is not secret and is shown; blank
    means the platform's. Validation lives in ``provider_credentials_set``."""

    twilio_account_sid = forms.CharField(
        label="Twilio account SID",
        required=False,
        max_length=34,
        help_text="Starts with AC. Blank: the platform's account.",
    )
    twilio_auth_token = forms.CharField(
        label="Twilio auth token",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored token.",
    )
    clear_twilio_auth_token = forms.BooleanField(
        label="Clear the Twilio auth token", required=False
    )
    sendgrid_api_key = forms.CharField(
        label="SendGrid API key",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Starts with SG. Leave blank to keep the stored key.",
    )
    clear_sendgrid_api_key = forms.BooleanField(label="Clear the SendGrid API key", required=False)

    def changes(self) -> dict[str, str]:
        """What ``provider_credentials_set`` should change ("" removes a value)."""
        data = self.cleaned_data
        changes = {"twilio_account_sid": data["twilio_account_sid"].strip()}
        for field in ("twilio_auth_token", "sendgrid_api_key"):
            if data[f"clear_{field}"]:
                changes[field] = ""
            elif data[field]:
                changes[field] = data[field]
        return changes


class MessagingPolicyForm(forms.Form):
    """The practice's messaging policy (DESIGN §5.8); saving goes through
    ``practice_policy_update``. A blank cap means no cap."""

    marketing_per_24h = forms.IntegerField(
        label="Marketing messages per patient in 24 hours",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Texts and emails of every marketing campaign together. Blank: no limit.",
    )
    marketing_per_7d = forms.IntegerField(
        label="Marketing messages per patient in 7 days",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Blank: no limit.",
    )
    notice_per_24h = forms.IntegerField(
        label="Notices per patient in 24 hours",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Practice news such as closures and new hours. Blank: no limit.",
    )
    care_per_24h = forms.IntegerField(
        label="Care messages per patient in 24 hours",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Reminders and follow-ups about the patient's own visits. Blank: no limit "
        "(usually best).",
    )
    sms_marketing_requires_opt_in = forms.BooleanField(
        label="Send marketing texts only to patients who said yes to them",
        required=False,
        help_text="Patients without recorded marketing consent are skipped. Reminders and "
        "other care texts still go.",
    )
    state_rules = forms.BooleanField(
        label="Follow state rules for marketing texts",
        required=False,
        help_text="Florida, Oklahoma and Maryland: 8 AM to 8 PM and at most 3 marketing texts a "
        "day; Texas: 9 AM to 9 PM, noon to 9 PM on Sundays (by the patient's address).",
    )


US_TIME_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Detroit",
    "America/Indiana/Indianapolis",
    "America/Boise",
    "America/Puerto_Rico",
]


def time_zone_choices() -> list[str]:
    """The time-zone list of the practice settings: US zones first, then all the others."""
    others = sorted(zoneinfo.available_timezones() - set(US_TIME_ZONES))
    return US_TIME_ZONES + [zone for zone in others if "/" in zone]
