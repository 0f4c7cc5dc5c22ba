"""The Today page (issue 16, item 14): what staff land on after signing in, in the practice's
time zone, with every number linking to the list behind it; and that list (Messages)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import Campaign, CampaignRun, Enrollment
from messaging.models import InboundMessage, MessageStatus, OutboundMessage
from reports.today import today_summary
from tests.campaigns.builders import ny
from tests.factories import PatientFactory, UserFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)
# Tuesday 12 May 2026, 12:00 in New York (the factories' practice time zone).
NOON = ny(2026, 5, 12, 12, 0)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOON, tick=False):
        yield


def campaign(practice, name, *, enabled=True, steps=1, **fields) -> Campaign:
    fields.setdefault("trigger", {"type": "birthday", "offset_days": 0})
    fields.setdefault("schedule", {"frequency": "daily", "time": "10:00"})
    made = Campaign.objects.create(
        practice=practice,
        name=name,
        enabled=enabled,
        enabled_at=ny(2026, 1, 1) if enabled or fields.pop("was_on", False) else None,
        **fields,
    )
    for position in range(1, steps + 1):
        made.steps.create(practice=practice, position=position, channel="sms", body="Hi")
    return made


def message(practice, patient, *, status, due, sent=None, campaign=None, reason="", step=1):
    return OutboundMessage.objects.create(
        practice=practice,
        patient=patient,
        campaign=campaign,
        step_position=step if campaign else None,
        channel="sms",
        to=patient.phone,
        body="Hello",
        status=status,
        status_reason=reason,
        scheduled_for=due,
        sent_at=sent,
    )


def inbound(practice, *, patient=None, number="+13125559999", read=False):
    return InboundMessage.objects.create(
        practice=practice,
        patient=patient,
        from_number=patient.phone if patient else number,
        to_number=practice.sms_from,
        body="Question",
        provider_message_id=f"SM{next(_ids):08d}",
        received_at=NOON - dt.timedelta(hours=1),
        read_at=NOON if read else None,
        handled_as="inbox",
    )


@pytest.fixture
def day(practice):
    """A practice's day: a birthday drip that ran at 10:00, a reminder whose run is at 18:00,
    one that was switched off, one on without messages, Inbox replies, failures."""
    ann = PatientFactory(practice=practice, first_name="Ann", last_name="Lee")
    bob = PatientFactory(practice=practice, first_name="Bob", last_name="Ray")
    birthday = campaign(practice, "Happy birthday", steps=2)
    CampaignRun.objects.create(
        practice=practice, campaign=birthday, local_date=NOON.date(), ran_at=ny(2026, 5, 12, 10)
    )
    reminder = campaign(
        practice,
        "Reminder",
        trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
        schedule={"frequency": "daily", "time": "18:00"},
    )
    campaign(practice, "Reactivation", enabled=False, was_on=True)
    campaign(practice, "Never on", enabled=False)
    campaign(practice, "Empty", steps=0)
    sent = dict(status=MessageStatus.DELIVERED, campaign=birthday)
    message(practice, ann, due=ny(2026, 5, 12, 10), sent=ny(2026, 5, 12, 10, 1), **sent)
    message(practice, bob, due=ny(2026, 5, 12, 10), sent=ny(2026, 5, 12, 10, 2), **sent)
    # Yesterday's send does not count today.
    message(practice, bob, due=ny(2026, 5, 11, 10), sent=ny(2026, 5, 11, 10), **sent, step=2)
    queued = dict(status=MessageStatus.QUEUED, campaign=birthday, step=2)
    message(practice, ann, due=ny(2026, 5, 12, 15), **queued)
    message(practice, bob, due=ny(2026, 5, 12, 22), **queued)  # after hours: tomorrow 08:00
    message(practice, ann, due=ny(2026, 5, 13, 9), campaign=reminder, status="queued")
    message(practice, ann, due=ny(2026, 5, 14, 9), campaign=reminder, status="queued")
    Enrollment.objects.create(
        practice=practice,
        campaign=birthday,
        patient=bob,
        occurrence_key="birthday:2026",
        entered_at=ny(2026, 5, 12, 10),
        state="active",
        steps_done=1,
        next_step_at=ny(2026, 5, 13, 10),
    )
    message(
        practice,
        bob,
        due=ny(2026, 5, 11, 10),
        sent=ny(2026, 5, 11, 10),
        status=MessageStatus.FAILED,
        reason="unreachable number",
        campaign=reminder,
    )
    message(practice, ann, due=ny(2026, 4, 1, 10), status=MessageStatus.FAILED)  # too old
    inbound(practice, patient=ann)
    inbound(practice, patient=ann)
    inbound(practice)  # an unknown number: a thread of its own
    inbound(practice, patient=bob, read=True)
    return {"ann": ann, "bob": bob, "birthday": birthday, "reminder": reminder}


def test_the_numbers_of_the_day(practice, day):
    t = today_summary(practice=practice, now=NOON)
    assert t.today == dt.date(2026, 5, 12)
    assert t.sent_today == 2
    assert t.waiting_today == 1  # the 15:00 text
    # The 22:00 text (after hours) and the reminder at 09:00 wait in the outbox; Bob's next
    # step at 10:00 is not in it yet.
    assert t.waiting_tomorrow == 2
    assert (t.steps_today, t.steps_tomorrow) == (0, 1)
    assert t.problem_count == 1
    assert [(m.patient, m.status_reason) for m in t.problems] == [
        (day["bob"], "unreachable number")
    ]
    assert t.unread_threads == 2
    lines = {c.name: c for c in t.campaigns}
    birthday = lines["Happy birthday"]
    assert (birthday.sent_today, birthday.queued_today, birthday.queued_tomorrow) == (2, 1, 1)
    assert birthday.steps_tomorrow == 1
    assert f"{birthday.next_send:%H:%M}" == "15:00"
    assert birthday.next_run is not None
    assert f"{birthday.next_run:%a %H:%M}" == "Wed 10:00"  # today's run is done
    reminder = lines["Reminder"]
    assert f"{reminder.next_run:%a %H:%M}" == "Tue 18:00"
    assert (reminder.queued_tomorrow, reminder.problems) == (1, 1)
    assert [c.name for c in t.switched_off] == ["Reactivation"]
    assert [c.name for c in t.without_messages] == ["Empty"]
    assert [c.name for c in t.failing] == ["Reminder"]


def test_the_page_links_each_number_to_its_list(member_client, practice, day):
    client = member_client(Role.USER, practice=practice)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.text
    messages = reverse("messaging:message_list")
    assert f'href="{messages}?state=sent&amp;day=today"><strong>2</strong> sent today' in html
    assert f'href="{messages}?state=scheduled&amp;day=today"><strong>1</strong>' in html
    assert f'href="{messages}?state=scheduled&amp;day=tomorrow"><strong>2</strong>' in html
    assert "+ 1 next step of patients in campaigns" in html
    assert f'href="{messages}?state=problems"><strong>1</strong> failed or bounced' in html
    inbox = reverse("messaging:inbox")
    assert f'href="{inbox}?filter=unread"><strong>2</strong> unread Inbox threads' in html
    birthday = day["birthday"].pk
    assert f"{messages}?state=sent&amp;day=today&amp;campaign={birthday}" in html
    assert "unreachable number" in html
    assert "Reactivation is switched off" in html
    assert "Empty is on but has no messages" in html
    # A User sees the numbers, not links into campaign pages (User Plus and up).
    assert reverse("campaigns:drip_detail", args=[birthday]) not in html
    plus = member_client(Role.USER_PLUS, practice=practice)
    assert reverse("campaigns:drip_detail", args=[birthday]) in plus.get("/today/").text


def test_each_list_behind_a_number_holds_what_it_counts(member_client, practice, day):
    client = member_client(Role.USER, practice=practice)
    url = reverse("messaging:message_list")

    def listed(**params):
        response = client.get(url, params)
        assert response.status_code == 200
        return response.context["page"].paginator.count

    assert listed(state="sent", day="today") == 2
    assert listed(state="sent", day="2026-05-11") == 2  # the delivered one and the failed one
    # What goes out today and tomorrow: the 22:00 text waits for tomorrow morning.
    assert listed(state="scheduled", day="today") == 1
    assert listed(state="scheduled", day="tomorrow") == 2
    assert listed(state="scheduled") == 3  # by the end of tomorrow
    assert listed(state="scheduled", day="2026-05-14") == 1
    assert listed(state="problems") == 1
    assert listed(state="problems", campaign=day["reminder"].pk) == 1
    assert listed(state="problems", campaign=day["birthday"].pk) == 0
    # Inbox unread filter (existing): two threads.
    inbox = client.get(reverse("messaging:inbox"), {"filter": "unread"})
    assert inbox.context["page"].total == 2


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"state": "lost"}, "Show: choose one of"),
        ({"day": "12/05/2026"}, "Day: use a date like"),
        ({"campaign": "abc"}, "Campaign: not a campaign"),
    ],
)
def test_the_list_names_the_field_of_bad_input(member_client, practice, params, error):
    client = member_client(Role.USER, practice=practice)
    response = client.get(reverse("messaging:message_list"), params)
    assert response.status_code == 400
    assert error in response.text


def test_another_practices_messages_never_show(member_client, practice, other_practice, day):
    other = PatientFactory(practice=other_practice)
    message(other_practice, other, due=NOON, sent=NOON, status=MessageStatus.DELIVERED)
    message(other_practice, other, due=NOON, status=MessageStatus.FAILED, reason="theirs")
    client = member_client(Role.USER, practice=practice)
    assert today_summary(practice=other_practice, now=NOON).sent_today == 1
    assert today_summary(practice=practice, now=NOON).sent_today == 2
    listed = client.get(reverse("messaging:message_list"), {"state": "problems"})
    assert "theirs" not in listed.text
    theirs = Campaign.objects.create(practice=other_practice, name="Theirs")
    page = client.get(reverse("messaging:message_list"), {"campaign": theirs.pk})
    assert page.context["page"].paginator.count == 0


def test_the_page_is_a_fixed_handful_of_queries(member_client, practice, day):
    client = member_client(Role.USER_PLUS, practice=practice)
    client.get(reverse("home"))

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("home")).status_code == 200
        return len(captured)

    few = count()
    for n in range(15):
        patient = PatientFactory(practice=practice)
        extra = campaign(practice, f"More {n}")
        message(practice, patient, due=NOON, sent=NOON, status="delivered", campaign=extra)
        message(practice, patient, due=NOON + dt.timedelta(hours=3), status="queued")
        message(practice, patient, due=NOON, status="bounced", reason="mailbox full")
        inbound(practice, patient=patient)
    many = count()
    assert many == few
    assert many <= 20


def test_signing_in_lands_on_today_and_every_role_sees_it(member_client, practice):
    for role in Role:
        client = member_client(role, practice=practice)
        response = client.get("/")
        assert response.status_code == 200
        assert "<h1>Today</h1>" in response.text
        labels = [item["label"] for item in response.context["menu_communication"]]
        assert labels[0] == "Today"


def test_logged_out_wrong_method_and_no_practice(practice):
    anonymous = Client()
    for url in ("/", "/today/", reverse("messaging:message_list")):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]
    loner = Client()
    loner.force_login(UserFactory())
    assert "No practice yet" in loner.get("/").text


def test_wrong_method(member_client, practice):
    client = member_client(Role.USER, practice=practice)
    assert client.post("/today/").status_code == 405
    assert client.post(reverse("messaging:message_list")).status_code == 405


def test_todays_and_tomorrows_appointments_by_their_confirmation(member_client, practice):
    """Issue 18, item 6: Today shows today's and tomorrow's appointments by what the patients
    answered, each number linking to the worklist of those appointments on that day; cancelled
    and moved appointments and other days are not counted."""
    from patients.models import Appointment

    patients = [PatientFactory(practice=practice) for _ in range(4)]

    def appointment(patient, start, confirmation="none", status="scheduled"):
        return Appointment.objects.create(
            practice=practice,
            patient=patient,
            external_id=f"A{next(_ids)}",
            start=start,
            local_date=start.astimezone(practice.tz).date(),
            booked_at=ny(2026, 5, 1, 9),
            status=status,
            confirmation=confirmation,
        )

    appointment(patients[0], ny(2026, 5, 12, 15), "confirmed")
    appointment(patients[1], ny(2026, 5, 12, 16), "requested")
    appointment(patients[2], ny(2026, 5, 12, 17), "confirmed", status="cancelled")
    appointment(patients[2], ny(2026, 5, 13, 9), "reschedule_requested")
    appointment(patients[3], ny(2026, 5, 13, 10))
    appointment(patients[3], ny(2026, 5, 14, 10), "confirmed")  # the day after tomorrow
    t = today_summary(practice=practice, now=NOON)
    assert t.appointments == {
        NOON.date(): {"confirmed": 1, "requested": 1},
        NOON.date() + dt.timedelta(days=1): {"reschedule_requested": 1, "none": 1},
    }
    client = member_client(Role.USER, practice=practice)
    page = client.get(reverse("home")).text
    worklist = reverse("patients:appointment_requests")
    assert f'href="{worklist}?confirmation=confirmed&amp;day=today"' in page
    assert f'href="{worklist}?confirmation=reschedule_requested&amp;day=tomorrow"' in page
    listed = client.get(worklist, {"confirmation": "confirmed", "day": "today"})
    assert listed.status_code == 200
    assert [a.patient_id for a in listed.context["page"]] == [patients[0].pk]
    tomorrow = client.get(worklist, {"confirmation": "none", "day": "tomorrow"})
    assert [a.patient_id for a in tomorrow.context["page"]] == [patients[3].pk]
