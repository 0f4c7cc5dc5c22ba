"""Merge-field rendering (campaigns.content.render) and SMS length and segments
(campaigns.content.sms)."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.content.render import UNSUBSCRIBE_PLACEHOLDER_PATH, render_message
from campaigns.content.sms import non_gsm7_characters, sms_segments
from patients.models import Lookup, LookupKind
from tests.factories import AppointmentFactory, PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

EVERY_FIELD = (
    "{{PatientFirstName}}|{{PatientLastName}}|{{PatientFullName}}|{{PracticeName}}|"
    "{{PracticePhone}}|{{ProviderName}}|{{AppointmentDate}}|{{AppointmentTime}}|"
    "{{OnlineSchedulingLink}}"
)


@pytest.fixture
def practice():
    return PracticeFactory(
        name="Spine & Wellness",
        time_zone="America/Chicago",
        phone="+13125550100",
        online_scheduling_url="https://book.example.test/spine?ref=sms&x=1",
    )


def _provider(practice, name):
    return Lookup.objects.create(practice=practice, kind=LookupKind.PROVIDER, name=name)


def test_sms_replaces_every_merge_field_with_local_appointment_time(practice):
    patient = PatientFactory(
        practice=practice,
        first_name="Ada",
        last_name="Lovelace",
        primary_provider=_provider(practice, "Dr. Primary"),
    )
    # 15:30 UTC on 10 March 2026 is 10:30 in Chicago (CDT began on 8 March).
    appointment = AppointmentFactory(
        patient=patient,
        start=dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC),
        provider=_provider(practice, "Dr. Rivera"),
    )

    subject, body = render_message(
        channel="sms",
        subject="ignored",
        body=EVERY_FIELD,
        patient=patient,
        practice=practice,
        appointment=appointment,
    )

    assert subject == ""
    assert body.split("|") == [
        "Ada",
        "Lovelace",
        "Ada Lovelace",
        "Spine & Wellness",
        "(312) 555-0100",
        "Dr. Rivera",
        "Tuesday, March 10",
        "10:30 AM",
        "https://book.example.test/spine?ref=sms&x=1",
    ]


def test_time_formats_without_zero_padding_and_pm_noon_midnight(practice):
    patient = PatientFactory(practice=practice)
    cases = [
        (dt.datetime(2026, 3, 2, 15, 5, tzinfo=dt.UTC), "Monday, March 2", "9:05 AM"),
        (dt.datetime(2026, 7, 4, 17, 0, tzinfo=dt.UTC), "Saturday, July 4", "12:00 PM"),
        (dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC), "Tuesday, December 1", "12:00 AM"),
        (dt.datetime(2026, 1, 9, 1, 45, tzinfo=dt.UTC), "Thursday, January 8", "7:45 PM"),
    ]
    for start, date_text, time_text in cases:
        appointment = AppointmentFactory(patient=patient, start=start)
        _, body = render_message(
            channel="sms",
            subject="",
            body="{{AppointmentDate}} at {{AppointmentTime}}",
            patient=patient,
            practice=practice,
            appointment=appointment,
        )
        assert body == f"{date_text} at {time_text}"


def test_provider_falls_back_to_primary_provider_then_empty(practice):
    with_primary = PatientFactory(
        practice=practice, primary_provider=_provider(practice, "Dr. Chen")
    )
    without = PatientFactory(practice=practice)
    appointment_without_provider = AppointmentFactory(patient=with_primary)

    def provider(patient, appointment=None):
        return render_message(
            channel="sms",
            subject="",
            body="[{{ProviderName}}]",
            patient=patient,
            practice=practice,
            appointment=appointment,
        )[1]

    assert provider(with_primary) == "[Dr. Chen]"
    assert provider(with_primary, appointment_without_provider) == "[Dr. Chen]"
    assert provider(without) == "[]"


def test_appointment_fields_are_empty_without_an_appointment(practice):
    patient = PatientFactory(practice=practice)
    _, body = render_message(
        channel="sms",
        subject="",
        body="on {{AppointmentDate}} at {{AppointmentTime}}.",
        patient=patient,
        practice=practice,
    )
    assert body == "on  at ."


def test_email_html_body_escapes_values_but_subject_and_sms_stay_plain(practice):
    patient = PatientFactory(practice=practice, first_name="<b>Bo</b> & Co", last_name="O'Neil")
    subject, body = render_message(
        channel="email",
        subject="Hi {{PatientFirstName}} from {{PracticeName}}",
        body='<p>Hi {{PatientFullName}}</p><a href="{{OnlineSchedulingLink}}">Book</a>',
        patient=patient,
        practice=practice,
    )
    assert subject == "Hi <b>Bo</b> & Co from Spine & Wellness"
    assert body == (
        "<p>Hi &lt;b&gt;Bo&lt;/b&gt; &amp; Co O&#x27;Neil</p>"
        '<a href="https://book.example.test/spine?ref=sms&amp;x=1">Book</a>'
    )
    _, sms = render_message(
        channel="sms",
        subject="",
        body="Hi {{PatientFirstName}}",
        patient=patient,
        practice=practice,
    )
    assert sms == "Hi <b>Bo</b> & Co"


def test_unsubscribe_link_is_the_given_url_else_a_placeholder(practice, settings):
    settings.PUBLIC_BASE_URL = "https://app.trackstat.test"
    patient = PatientFactory(practice=practice)
    kwargs = {
        "channel": "email",
        "subject": "s",
        "body": "<a href='{{UnsubscribeLink}}'>x</a>",
        "patient": patient,
        "practice": practice,
    }
    _, placeholder = render_message(**kwargs)
    assert (
        placeholder == f"<a href='https://app.trackstat.test{UNSUBSCRIBE_PLACEHOLDER_PATH}'>x</a>"
    )
    _, real = render_message(**kwargs, links={"UnsubscribeLink": "https://t.test/u/abc?a=1&b=2"})
    assert real == "<a href='https://t.test/u/abc?a=1&amp;b=2'>x</a>"


def test_spaces_inside_braces_and_unknown_fields(practice):
    patient = PatientFactory(practice=practice, first_name="Ada")
    _, body = render_message(
        channel="sms",
        subject="",
        body="{{ PatientFirstName }} {{Nope}}",
        patient=patient,
        practice=practice,
    )
    assert body == "Ada {{Nope}}"


def test_practice_phone_empty_when_unset():
    practice = PracticeFactory(phone="")
    patient = PatientFactory(practice=practice)
    _, body = render_message(
        channel="sms", subject="", body="[{{PracticePhone}}]", patient=patient, practice=practice
    )
    assert body == "[]"


# --- SMS segments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"encoding": "GSM-7", "length": 0, "segments": 0}),
        ("Hello", {"encoding": "GSM-7", "length": 5, "segments": 1}),
        ("a" * 160, {"encoding": "GSM-7", "length": 160, "segments": 1}),
        ("a" * 161, {"encoding": "GSM-7", "length": 161, "segments": 2}),
        ("a" * 306, {"encoding": "GSM-7", "length": 306, "segments": 2}),
        ("a" * 307, {"encoding": "GSM-7", "length": 307, "segments": 3}),
        # Extension characters count two.
        ("€", {"encoding": "GSM-7", "length": 2, "segments": 1}),
        ("[{}]^~|\\", {"encoding": "GSM-7", "length": 16, "segments": 1}),
        ("a" * 158 + "€", {"encoding": "GSM-7", "length": 160, "segments": 1}),
        ("a" * 159 + "€", {"encoding": "GSM-7", "length": 161, "segments": 2}),
        # An escape pair is never split: the 153rd septet would be half of one.
        ("a" * 152 + "€" + "a" * 152, {"encoding": "GSM-7", "length": 306, "segments": 3}),
        # The GSM-7 alphabet's own accented letters and symbols stay GSM-7.
        ("Café à Ñoño ¿Qué? £5 ¥ §", {"encoding": "GSM-7", "length": 24, "segments": 1}),
        ("line\nbreak", {"encoding": "GSM-7", "length": 10, "segments": 1}),
        # Anything else makes the whole message UCS-2.
        ("It\u2019s", {"encoding": "UCS-2", "length": 4, "segments": 1}),
        ("ç" * 70, {"encoding": "UCS-2", "length": 70, "segments": 1}),
        ("ç" * 71, {"encoding": "UCS-2", "length": 71, "segments": 2}),
        ("ç" * 134, {"encoding": "UCS-2", "length": 134, "segments": 2}),
        ("ç" * 135, {"encoding": "UCS-2", "length": 135, "segments": 3}),
        # Emoji outside the BMP are two UTF-16 units, and a pair is never split.
        ("🎉", {"encoding": "UCS-2", "length": 2, "segments": 1}),
        ("a" * 66 + "🎉" + "a" * 66, {"encoding": "UCS-2", "length": 134, "segments": 3}),
        ("a" * 65 + "🎉" + "a" * 67, {"encoding": "UCS-2", "length": 134, "segments": 2}),
    ],
)
def test_sms_segments(text, expected):
    assert sms_segments(text) == expected


def test_non_gsm_characters_are_listed_once_in_order():
    assert non_gsm7_characters("It\u2019s \u201cgreat\u201d \u2019") == [
        "\u2019",
        "\u201c",
        "\u201d",
    ]
    assert non_gsm7_characters("Plain text €") == []
