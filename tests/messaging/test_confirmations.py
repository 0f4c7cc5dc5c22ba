"""Reminders patients answer (DESIGN §7, issue 18): asking, reading the answer, the record,
the acknowledgement and the stop of later reminders; driven by explicit instants."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from twilio.request_validator import RequestValidator

from campaigns.models import Enrollment
from messaging.models import InboundMessage, OutboundMessage
from patients.models import Appointment
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, run, sms
from tests.clients import CommitClient
from trackstat.models import Event, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

TOKEN = "test-twilio-auth-token"
INBOUND_URL = "https://trackstat.test/webhooks/twilio/inbound"
REMINDER = {"type": "scheduled_appointment", "when": "days_before", "days": 2}
VISIT = ny(2026, 12, 8, 14, 0)  # Tue Dec 8, 2:00 PM
ASKED_AT = ny(2026, 12, 6, 10, 0)


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


def reminder(clinic, *, goal=True, second_delay_hours=24):
    return drip(
        clinic,
        REMINDER,
        enabled_at=ny(2026, 11, 1),
        name="Reminder",
        messages=[
            {
                **sms("See you {{AppointmentDate}} at {{AppointmentTime}}."),
                "ask_confirmation": True,
            },
            sms("Tomorrow: {{AppointmentTime}}", value=second_delay_hours, unit="hours"),
        ],
        **({"goal": {"type": "confirmed"}} if goal else {}),
    )


_sids = iter(range(1, 10_000))


def reply(clinic, body: str, *, at: dt.datetime, from_number: str = "+13125550101"):
    params = {
        "MessageSid": f"SMreply{next(_sids)}",
        "AccountSid": "AC123",
        "From": from_number,
        "To": clinic.practice.sms_from,
        "Body": body,
    }
    signature = RequestValidator(TOKEN).compute_signature(INBOUND_URL, params)
    with time_machine.travel(at, tick=False):
        response = CommitClient().post(
            "/webhooks/twilio/inbound", params, headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == 200
    return InboundMessage.objects.get(provider_message_id=params["MessageSid"])


def texts(patient) -> list[str]:
    return list(
        OutboundMessage.objects.filter(patient=patient, sent_at__isnull=False)
        .order_by("sent_at", "id")
        .values_list("body", flat=True)
    )


def events(clinic, type: str) -> list[dict]:
    return [
        e.data for e in Event.objects.filter(practice=clinic.practice, type=type).order_by("pk")
    ]


def test_a_reminder_that_asks_then_yes_confirms_acknowledges_and_meets_the_goal(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    assert texts(ann) == [
        "See you Tuesday, December 8 at 2:00 PM.\nReply C to confirm, R to reschedule"
        "\nReply STOP to opt out"
    ]
    visit.refresh_from_db()
    assert (visit.confirmation, visit.confirmation_at) == ("requested", ASKED_AT)

    inbound = reply(clinic, "yes 👍", at=ASKED_AT + dt.timedelta(hours=1))

    visit.refresh_from_db()
    assert visit.confirmation == "confirmed"
    assert visit.confirmation_at == ASKED_AT + dt.timedelta(hours=1)
    assert (inbound.confirmation_appointment, inbound.confirmation_answer) == (visit, "confirm")
    assert inbound.handled_as == "inbox"
    assert inbound.read_at is not None
    assert texts(ann)[-1] == "Thanks, you're confirmed for Tue Dec 8 at 2:00 PM."
    assert [e["confirmation"] for e in events(clinic, "appointment.confirmation_changed")] == [
        "requested",
        "confirmed",
    ]
    assert events(clinic, "appointment.confirmation_changed")[-1] == {
        "appointment_external_id": visit.external_id,
        "patient_external_id": ann.external_id,
        "confirmation": "confirmed",
        "confirmation_at": "2026-12-06T16:00:00Z",
    }
    run(ASKED_AT + dt.timedelta(days=1))
    assert len(texts(ann)) == 2  # the second reminder was not sent
    assert Enrollment.objects.get(patient=ann).exit_reason == "goal_met"


@pytest.mark.parametrize(
    ("body", "confirmation", "ack"),
    [
        ("cant make it", "cancel_requested", "We got your request to cancel your Tue Dec 8 visit"),
        ("need to move it", "reschedule_requested", "We got your request to reschedule"),
    ],
)
def test_cancel_and_reschedule_requests_stop_later_reminders(clinic, body, confirmation, ack):
    reminder(clinic, goal=False)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    reply(clinic, body, at=ASKED_AT + dt.timedelta(hours=2))
    visit.refresh_from_db()
    assert visit.confirmation == confirmation
    assert texts(ann)[-1].startswith(ack)
    run(ASKED_AT + dt.timedelta(days=1))
    assert len(texts(ann)) == 2
    enrollment = Enrollment.objects.get(patient=ann)
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "patient_replied")


def test_an_unclear_reply_goes_to_the_inbox_about_that_appointment(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    inbound = reply(clinic, "what time was it?", at=ASKED_AT + dt.timedelta(hours=1))
    assert (inbound.confirmation_appointment, inbound.confirmation_answer) == (visit, "unclear")
    assert inbound.read_at is None
    visit.refresh_from_db()
    assert visit.confirmation == "requested"
    assert len(texts(ann)) == 1  # no acknowledgement
    assert events(clinic, "inbox.message_received") == [
        {"message_id": inbound.pk, "patient_external_id": ann.external_id}
    ]


def test_a_reply_after_72_hours_is_just_an_inbox_message(clinic):
    reminder(clinic, goal=False, second_delay_hours=24 * 5)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, ny(2026, 12, 20, 14, 0))
    run(ny(2026, 12, 18, 10, 0))
    inbound = reply(clinic, "yes", at=ny(2026, 12, 21, 10, 1))
    assert inbound.confirmation_appointment is None
    assert inbound.confirmation_answer == ""
    visit.refresh_from_db()
    assert visit.confirmation == "requested"


def test_a_reply_is_not_read_as_an_answer_to_another_patients_question(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    clinic.patient(phone="+13125550102")
    clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    inbound = reply(clinic, "C", at=ASKED_AT + dt.timedelta(hours=1), from_number="+13125550102")
    assert inbound.confirmation_answer == ""


def test_two_upcoming_appointments_asked_the_answer_is_for_the_latest_request(clinic):
    reminder(clinic, goal=False)
    ann = clinic.patient(phone="+13125550101")
    first = clinic.appointment(ann, VISIT)
    second = clinic.appointment(ann, ny(2026, 12, 10, 9, 30))
    run(ASKED_AT)
    run(ny(2026, 12, 7, 10, 0))
    run(ny(2026, 12, 8, 10, 0))
    reply(clinic, "C", at=ny(2026, 12, 8, 11, 0))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.confirmation, second.confirmation) == ("requested", "confirmed")
    assert texts(ann)[-1] == (
        "Thanks, you're confirmed for Thu Dec 10 at 9:30 AM."
        " (This answer is for your Thu Dec 10 9:30 AM visit only.)"
    )


def test_opt_out_wording_always_wins(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    inbound = reply(clinic, "CANCEL", at=ASKED_AT + dt.timedelta(hours=1))
    assert inbound.handled_as == "stop"
    ann.refresh_from_db()
    visit.refresh_from_db()
    assert ann.sms_opt_out
    assert visit.confirmation == "requested"
    stop_dot = reply(clinic, "Stop.", at=ASKED_AT + dt.timedelta(hours=2))
    assert stop_dot.confirmation_answer == ""


def test_the_practice_edits_the_wording(clinic):
    clinic.practice.confirmation_request_text = "Text C to confirm."
    clinic.practice.confirmation_ack_confirmed = "Great, {{AppointmentDate}} it is!"
    clinic.practice.save()
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    assert texts(ann)[0].splitlines()[1] == "Text C to confirm."
    reply(clinic, "c.", at=ASKED_AT + dt.timedelta(hours=1))
    assert texts(ann)[-1] == "Great, Tue Dec 8 it is!"


def test_a_repeated_reply_is_applied_once(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    reply(clinic, "yes", at=ASKED_AT + dt.timedelta(hours=1))
    reply(clinic, "Yes!!", at=ASKED_AT + dt.timedelta(hours=2))
    assert len(events(clinic, "appointment.confirmation_changed")) == 2
    # The same answer again changes nothing and is not acknowledged twice.
    assert len(texts(ann)) == 2


# --- the record: the EMR's changes, the goal by EMR status, the API ---------------------------


def test_an_emr_move_resets_the_confirmation_and_tells_the_emr(clinic):
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    Appointment.objects.filter(pk=visit.pk).update(
        confirmation="confirmed", confirmation_at=ASKED_AT
    )
    clinic.change(visit, duration_minutes=45)
    assert visit.confirmation == "confirmed"
    clinic.change(visit, start=VISIT + dt.timedelta(hours=1))
    assert visit.confirmation == "none"
    assert events(clinic, "appointment.confirmation_changed")[-1]["confirmation"] == "none"


def test_the_emr_status_confirmed_meets_the_goal(clinic):
    reminder(clinic)
    ann = clinic.patient(phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    run(ASKED_AT)
    clinic.change(visit, status="confirmed")
    run(ASKED_AT + dt.timedelta(days=1))
    assert len(texts(ann)) == 1
    assert Enrollment.objects.get(patient=ann).exit_reason == "goal_met"


def test_the_appointments_api_filters_by_confirmation_and_changed_since(clinic):
    ann = clinic.patient(phone="+13125550101")
    early = clinic.appointment(ann, VISIT)
    late = clinic.appointment(ann, VISIT + dt.timedelta(days=1))
    clinic.appointment(ann, VISIT + dt.timedelta(days=2))
    Appointment.objects.filter(pk=early.pk).update(
        confirmation="confirmed", confirmation_at=ny(2026, 12, 1)
    )
    Appointment.objects.filter(pk=late.pk).update(
        confirmation="confirmed", confirmation_at=ny(2026, 12, 3)
    )
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    found = api.get(
        "/api/v1/appointments",
        {"confirmation": "confirmed", "changed_since": "2026-12-02T00:00:00-05:00"},
    ).json()["results"]
    assert [a["external_id"] for a in found] == [late.external_id]
    assert found[0]["confirmation"] == "confirmed"
    assert found[0]["confirmation_at"].startswith("2026-12-03T17:00:00")
    every = api.get("/api/v1/appointments", {"confirmation": "none"}).json()["results"]
    assert len(every) == 1
    bad = api.get("/api/v1/appointments", {"confirmation": "maybe"})
    assert bad.status_code == 400
    assert "confirmation" in bad.json()["errors"]
    bad = api.get("/api/v1/appointments", {"changed_since": "yesterday"})
    assert bad.status_code == 400
    assert "changed_since" in bad.json()["errors"]


# --- asking: the campaign language and the wizard -----------------------------------------


def _campaign(api, trigger, messages, goal=None):
    data = {"name": "R", "trigger": trigger, "messages": messages}
    if goal:
        data["goal"] = goal
    if trigger.get("type") != "missed_appointment":
        data["schedule"] = {"frequency": "daily", "time": "10:00"}
    return api.post("/api/v1/campaigns", data, content_type="application/json")


def test_ask_confirmation_only_on_texts_of_appointment_campaigns(clinic):
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    asking = {"channel": "sms", "body": "See you", "ask_confirmation": True}
    created = _campaign(
        api, REMINDER, [asking, {"channel": "sms", "body": "2"}], {"type": "confirmed"}
    )
    assert created.status_code == 201, created.content
    stored = api.get(f"/api/v1/campaigns/{created.json()['id']}").json()
    assert stored["messages"][0]["ask_confirmation"] is True
    assert "ask_confirmation" not in stored["messages"][1]
    assert stored["goal"] == {"type": "confirmed"}
    birthday = _campaign(api, {"type": "birthday"}, [asking])
    assert birthday.status_code == 400
    assert "ask_confirmation" in birthday.json()["errors"]["messages"][0]
    mail = {"channel": "email", "subject": "Hi", "body": "See you", "ask_confirmation": True}
    email = _campaign(api, REMINDER, [mail])
    assert email.status_code == 400
    assert "ask_confirmation" in email.json()["errors"]["messages"][0]
    goal = _campaign(api, {"type": "birthday"}, [sms("a"), sms("b")], {"type": "confirmed"})
    assert goal.status_code == 400
    assert "goal" in goal.json()["errors"]


def test_the_sms_counter_counts_the_question(clinic, member_client):
    client = member_client(Role.USER_PLUS, clinic.practice)
    body = "x" * 140
    plain = client.post("/campaigns/sms-count/?field=step-0-body", {"step-0-body": body})
    asking = client.post(
        "/campaigns/sms-count/?field=step-0-body",
        {"step-0-body": body, "step-0-ask_confirmation": "on"},
    )
    assert "1 segment" in plain.content.decode() or "1 message" in plain.content.decode()
    assert plain.content != asking.content
    assert str(140 + 1 + len("Reply C to confirm, R to reschedule")) in asking.content.decode()


# --- what staff see ------------------------------------------------------------------------


def test_staff_see_the_answer_on_the_patient_page_the_thread_and_the_worklist(
    clinic, member_client
):
    reminder(clinic, goal=False)
    ann = clinic.patient(phone="+13125550101", first_name="Ann")
    bob = clinic.patient(phone="+13125550102", first_name="Bob")
    clinic.appointment(ann, VISIT)
    clinic.appointment(bob, VISIT + dt.timedelta(hours=1))
    run(ASKED_AT)
    reply(clinic, "need to move it", at=ASKED_AT + dt.timedelta(hours=1))
    reply(clinic, "what time was it?", at=ASKED_AT + dt.timedelta(hours=1), from_number=bob.phone)
    staff = member_client(Role.USER, clinic.practice)
    with time_machine.travel(ASKED_AT + dt.timedelta(hours=2), tick=False):
        page = staff.get(f"/patients/{ann.pk}/").content.decode()
        assert "Asked to reschedule" in page
        thread = staff.get(f"/inbox/{bob.pk}/").content.decode()
        assert "not understood" in thread
        worklist = staff.get("/patients/appointment-requests/")
        assert worklist.status_code == 200
        html = worklist.content.decode()
        assert f"/patients/{ann.pk}/" in html
        assert f"/patients/{bob.pk}/" not in html
        asked = staff.get("/patients/appointment-requests/", {"confirmation": "requested"})
        assert f"/patients/{bob.pk}/" in asked.content.decode()
    other = member_client(Role.USER)
    with time_machine.travel(ASKED_AT + dt.timedelta(hours=2), tick=False):
        assert (
            f"/patients/{ann.pk}/"
            not in other.get("/patients/appointment-requests/").content.decode()
        )


def test_an_appointment_filter_reminds_again_only_who_has_not_confirmed(clinic):
    reminder(clinic, goal=False)
    drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        enabled_at=ny(2026, 11, 1),
        name="Not confirmed yet",
        filters={"appointment_confirmations": ["none", "requested"]},
        messages=[sms("Please confirm your visit {{AppointmentDate}}.")],
    )
    ann = clinic.patient(phone="+13125550101")
    bob = clinic.patient(phone="+13125550102")
    clinic.appointment(ann, VISIT)
    clinic.appointment(bob, VISIT)
    run(ASKED_AT)
    reply(clinic, "C", at=ASKED_AT + dt.timedelta(hours=1))
    run(ASKED_AT + dt.timedelta(days=1))
    names = {
        p.external_id: list(
            OutboundMessage.objects.filter(patient=p, sent_at__isnull=False)
            .exclude(campaign=None)
            .values_list("campaign__name", flat=True)
        )
        for p in (ann, bob)
    }
    assert "Not confirmed yet" not in names[ann.external_id]
    assert "Not confirmed yet" in names[bob.external_id]


def test_the_confirmation_filter_refuses_unknown_values(clinic):
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    response = api.post(
        "/api/v1/campaigns",
        {
            "name": "x",
            "trigger": REMINDER,
            "schedule": {"frequency": "daily", "time": "10:00"},
            "filters": {"appointment_confirmations": ["maybe"]},
            "messages": [sms("hi")],
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "appointment_confirmations" in response.json()["errors"]["filters"]


def test_the_wizard_toggle_round_trips_through_the_step_rows():
    from django.http import QueryDict

    from campaigns.forms.messages import message_validate, step_row, step_rows_from_post

    posted = QueryDict(mutable=True)
    posted.update(
        {
            "step-0-channel": "sms",
            "step-0-body": "See you {{AppointmentDate}}",
            "step-0-delay_value": "0",
            "step-0-delay_unit": "days",
            "step-0-ask_confirmation": "on",
            "step-1-channel": "sms",
            "step-1-body": "Tomorrow!",
            "step-1-delay_value": "1",
            "step-1-delay_unit": "days",
        }
    )
    first, second = step_rows_from_post(posted)
    assert (first["ask_confirmation"], second["ask_confirmation"]) == (True, False)
    message, errors = message_validate(first)
    assert errors == {}
    assert message["ask_confirmation"] is True
    assert "ask_confirmation" not in message_validate(second)[0]
    assert step_row(message)["ask_confirmation"] is True


def test_the_wizard_offers_the_toggle_only_for_appointment_reminders(clinic):
    from campaigns.views.wizard_messages import _messages_context

    class Draft:
        practice = clinic.practice
        draft = {"trigger": REMINDER, "schedule": {"frequency": "daily", "time": "10:00"}}

    class Request:
        POST = {}

    rows = [{"body": "x" * 10, "ask_confirmation": True}]
    context = _messages_context(Request(), Draft(), rows)
    assert context["can_ask_confirmation"] is True
    assert rows[0]["sms"]["length"] == 10 + 1 + len("Reply C to confirm, R to reschedule")
    Draft.draft = {"trigger": {"type": "birthday"}, "schedule": None}
    assert _messages_context(Request(), Draft(), [])["can_ask_confirmation"] is False
