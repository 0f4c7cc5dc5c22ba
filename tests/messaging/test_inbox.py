"""The Inbox: threads per patient, filters, reading a thread, replies, canned replies."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from messaging.inbox import inbox_reply_send, inbox_threads, unknown_thread_token
from messaging.models import (
    CannedReply,
    InboundMessage,
    MessageStatus,
    OutboundMessage,
    SandboxMessage,
)
from tests.campaigns.builders import ny
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)
NOON = ny(2026, 6, 15, 12, 0)


def inbound(practice, *, patient=None, body="Hi", at=None, read=False, number=None, **kw):
    at = at or NOON - dt.timedelta(hours=1)
    return InboundMessage.objects.create(
        practice=practice,
        patient=patient,
        from_number=number or (patient.phone if patient else "+13125559999"),
        to_number=practice.sms_from,
        body=body,
        provider_message_id=f"SM{next(_ids):08d}",
        received_at=at,
        read_at=at if read else None,
        handled_as=kw.get("handled_as", "inbox"),
    )


def outbound(practice, *, patient, body="Hello", at=None, channel="sms", **kw):
    at = at or NOON - dt.timedelta(hours=2)
    message = OutboundMessage.objects.create(
        practice=practice,
        patient=patient,
        channel=channel,
        to=patient.phone if channel == "sms" else patient.email,
        body=body,
        status=kw.get("status", MessageStatus.DELIVERED),
        scheduled_for=at,
        sent_at=at,
        is_test=kw.get("is_test", False),
    )
    return message


@pytest.fixture
def user_client(member_client, practice):
    return member_client(Role.USER, practice=practice)


@pytest.fixture
def ann(practice):
    return PatientFactory(
        practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101"
    )


@pytest.fixture
def bob(practice):
    return PatientFactory(
        practice=practice, first_name="Bob", last_name="Ray", phone="+13125550102"
    )


def thread_names(client, filter="all"):
    page = client.get(reverse("messaging:inbox"), {"filter": filter})
    assert page.status_code == 200
    return page


def test_threads_list_newest_first_with_unread_counts(practice, user_client, ann, bob):
    outbound(practice, patient=ann, body="Your visit is tomorrow", at=NOON - dt.timedelta(hours=5))
    inbound(practice, patient=ann, body="Can I come at 3?\nThanks", at=NOON - dt.timedelta(hours=4))
    inbound(practice, patient=ann, body="Or 4?", at=NOON - dt.timedelta(hours=3))
    inbound(practice, patient=bob, body="Old", at=NOON - dt.timedelta(hours=9), read=True)
    outbound(practice, patient=bob, body="Latest from us", at=NOON - dt.timedelta(hours=1))
    inbound(practice, patient=bob, body="STOP", handled_as="stop", at=NOON)  # not an Inbox one
    outbound(practice, patient=ann, body="A test", at=NOON, is_test=True)  # tests stay out

    page = inbox_threads(practice=practice)
    assert [(t.patient, t.unread, t.preview) for t in page.threads] == [
        (bob, 0, "Latest from us"),
        (ann, 2, "Or 4?"),
    ]
    text = thread_names(user_client).text
    assert text.index("Bob Ray") < text.index("Ann Lee")
    assert "2 unread" in text
    assert "Latest from us" in text
    assert "STOP" not in text
    assert "A test" not in text


def test_each_filter(practice, user_client, ann, bob):
    carl = PatientFactory(practice=practice, first_name="Carl", last_name="Ito")
    inbound(practice, patient=ann, body="unread question")  # Ann: a response, unread
    outbound(practice, patient=bob, body="campaign text")  # Bob: sent only, sms
    outbound(practice, patient=carl, body="campaign email", channel="email")  # Carl: email
    inbound(practice, patient=carl, body="read answer", read=True)

    def names(filter):
        return {
            t.patient.first_name for t in inbox_threads(practice=practice, filter=filter).threads
        }

    assert names("all") == {"Ann", "Bob", "Carl"}
    assert names("unread") == {"Ann"}
    assert names("responses") == {"Ann", "Carl"}
    assert names("sent") == {"Bob", "Carl"}
    assert names("email") == {"Carl"}
    assert names("sms") == {"Ann", "Bob", "Carl"}  # Carl's answer was a text
    unread = thread_names(user_client, "unread").text
    assert "Ann Lee" in unread
    assert "Bob Ray" not in unread
    emails = thread_names(user_client, "email").text
    assert "Carl Ito" in emails
    assert "Ann Lee" not in emails
    # The filter links are real links.
    assert 'href="?filter=unread"' in unread


def test_unknown_number_is_a_thread_of_its_own(practice, user_client, ann):
    inbound(practice, patient=ann, body="from Ann")
    inbound(practice, number="+13125557777", body="Who is this?", at=NOON)
    inbound(practice, number="+13125557777", body="Hello?", at=NOON + dt.timedelta(minutes=1))
    threads = inbox_threads(practice=practice).threads
    assert [(t.patient, t.number, t.unread) for t in threads] == [
        (None, "+13125557777", 2),
        (ann, "", 1),
    ]
    text = thread_names(user_client).text
    assert "Unknown number +13125557777" in text
    token = unknown_thread_token(practice_id=practice.pk, number="+13125557777")
    page = user_client.get(reverse("messaging:unknown_thread", args=[token]))
    assert page.status_code == 200
    assert "Who is this?" in page.text
    assert "Hello?" in page.text
    assert InboundMessage.objects.filter(patient=None, read_at=None).count() == 0


def test_opening_a_thread_shows_it_oldest_first_and_marks_it_read(
    practice, user_client, ann, django_assert_num_queries
):
    outbound(practice, patient=ann, body="Reminder: tomorrow", at=NOON - dt.timedelta(hours=3))
    inbound(practice, patient=ann, body="Running late", at=NOON - dt.timedelta(hours=2))
    inbound(practice, patient=ann, body="Sorry", at=NOON - dt.timedelta(hours=1))
    page = user_client.get(reverse("messaging:thread", args=[ann.pk]))
    assert page.status_code == 200
    text = page.text
    assert text.index("Reminder: tomorrow") < text.index("Running late") < text.index("Sorry")
    assert "Delivered" in text  # our message shows its status
    assert not InboundMessage.objects.filter(patient=ann, read_at=None).exists()
    assert inbox_threads(practice=practice).threads[0].unread == 0


@time_machine.travel(NOON, tick=False)
def test_a_reply_is_sent_now_and_appears_in_the_thread(practice, user_client, ann):
    outbound(practice, patient=ann, body="Reminder")  # she already got a text: no footer
    inbound(practice, patient=ann, body="Can I move it?")
    url = reverse("messaging:reply", args=[ann.pk])
    response = user_client.post(url, {"body": "Sure, call us."})
    assert response.status_code == 302
    assert response["Location"] == reverse("messaging:thread", args=[ann.pk])
    reply = OutboundMessage.objects.get(body="Sure, call us.")
    assert (reply.patient, reply.channel, reply.status) == (ann, "sms", MessageStatus.DELIVERED)
    assert reply.enrollment is None
    assert not reply.is_test
    assert SandboxMessage.objects.get(message=reply).to == "+13125550101"
    page = user_client.get(reverse("messaging:thread", args=[ann.pk])).text
    assert "Sure, call us." in page
    # With htmx the thread partial comes back with the reply in it.
    partial = user_client.post(url, {"body": "See you then"}, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "See you then" in partial.text
    assert "<html" not in partial.text


@time_machine.travel(NOON, tick=False)
def test_the_first_text_a_patient_gets_carries_the_stop_footer(practice, ann):
    from trackstat.models import User

    reply = inbox_reply_send(
        practice=practice, patient=ann, body="Hello Ann", user=User.objects.create(username="u")
    )
    assert reply.body == "Hello Ann\nReply STOP to opt out"


@time_machine.travel(NOON, tick=False)
def test_a_reply_after_a_text_that_never_reached_the_patient_carries_the_stop_footer(practice, ann):
    from trackstat.models import User

    # One rule for the first text a patient gets (DESIGN §7), the send path's: a text the
    # provider failed, or one still waiting in the queue, was never received.
    outbound(practice, patient=ann, body="Failed", status=MessageStatus.FAILED)
    outbound(practice, patient=ann, body="Waiting", status=MessageStatus.QUEUED)
    user = User.objects.create(username="u")
    reply = inbox_reply_send(practice=practice, patient=ann, body="Hello Ann", user=user)
    assert reply.status == MessageStatus.DELIVERED
    assert reply.body == "Hello Ann\nReply STOP to opt out"
    # Once one went out, the next reply is plain.
    again = inbox_reply_send(practice=practice, patient=ann, body="And again", user=user)
    assert again.body == "And again"


def test_a_reply_that_waits_for_the_window_gets_the_stop_footer_when_it_is_sent(
    practice, user_client, ann
):
    with time_machine.travel(ny(2026, 6, 15, 22, 30), tick=False):
        user_client.post(reverse("messaging:reply", args=[ann.pk]), {"body": "Late one"})
    reply = OutboundMessage.objects.get(patient=ann)
    assert (reply.status, reply.body) == (MessageStatus.QUEUED, "Late one")
    # Meanwhile a text reaches the patient: the reply is no longer their first.
    outbound(practice, patient=ann, body="Hello", at=ny(2026, 6, 16, 7, 0))
    with time_machine.travel(ny(2026, 6, 16, 8, 0), tick=False):
        call_command("tick", stdout=io.StringIO())
    reply.refresh_from_db()
    assert (reply.status, reply.body) == (MessageStatus.DELIVERED, "Late one")


@time_machine.travel(ny(2026, 6, 15, 22, 30), tick=False)
def test_a_reply_in_quiet_hours_waits_for_the_window_and_says_so(practice, user_client, ann):
    response = user_client.post(reverse("messaging:reply", args=[ann.pk]), {"body": "Late one"})
    assert response.status_code == 302
    reply = OutboundMessage.objects.get(patient=ann)
    assert reply.status == MessageStatus.QUEUED
    assert reply.scheduled_for == ny(2026, 6, 16, 8, 0)
    assert not SandboxMessage.objects.exists()
    assert "Queued" in user_client.get(reverse("messaging:thread", args=[ann.pk])).text


@time_machine.travel(NOON, tick=False)
def test_a_reply_to_an_opted_out_patient_is_refused(practice, user_client, ann):
    ann.sms_opt_out = True
    ann.save()
    response = user_client.post(reverse("messaging:reply", args=[ann.pk]), {"body": "Hi"})
    assert response.status_code == 400
    assert "opted out of text messages" in response.text
    assert not OutboundMessage.objects.exists()
    assert not SandboxMessage.objects.exists()


@time_machine.travel(NOON, tick=False)
def test_a_reply_to_a_patient_without_a_phone_is_refused(practice, user_client):
    patient = PatientFactory(practice=practice, phone="")
    response = user_client.post(reverse("messaging:reply", args=[patient.pk]), {"body": "Hi"})
    assert response.status_code == 400
    assert "no mobile phone" in response.text
    assert not OutboundMessage.objects.exists()


@pytest.mark.parametrize("body", ["", "   ", "x" * 1601])
def test_an_empty_or_too_long_reply_is_refused(practice, user_client, ann, body):
    response = user_client.post(reverse("messaging:reply", args=[ann.pk]), {"body": body})
    assert response.status_code == 400
    assert "Reply:" in response.text
    assert not OutboundMessage.objects.exists()


def test_reply_needs_post(user_client, ann):
    assert user_client.get(reverse("messaging:reply", args=[ann.pk])).status_code == 405


def test_a_manager_adds_a_canned_reply_and_a_user_uses_it(
    practice, member_client, user_client, ann
):
    manager = member_client(Role.MANAGER, practice=practice)
    response = manager.post(
        reverse("messaging:canned_add"), {"title": "Hours", "body": "We open at 8am."}
    )
    assert response.status_code == 302
    canned = CannedReply.objects.get(practice=practice)
    assert "Hours" in user_client.get(reverse("messaging:inbox")).text
    page = user_client.get(reverse("messaging:thread", args=[ann.pk]), {"canned": canned.pk})
    assert page.status_code == 200
    assert "We open at 8am.</textarea>" in page.text
    # A manager may delete it again.
    delete_url = reverse("messaging:canned_delete", args=[canned.pk])
    assert "Delete the canned reply “Hours”?" in manager.post(delete_url).text
    assert CannedReply.objects.exists()
    assert manager.post(delete_url, {"confirmed": "yes"}).status_code == 302
    assert not CannedReply.objects.exists()


def test_a_user_cannot_edit_canned_replies(practice, user_client):
    canned = CannedReply.objects.create(practice=practice, title="Hours", body="8am")
    response = user_client.post(reverse("messaging:canned_add"), {"title": "X", "body": "Y"})
    assert response.status_code == 403
    delete = user_client.post(reverse("messaging:canned_delete", args=[canned.pk]))
    assert delete.status_code == 403
    assert list(CannedReply.objects.values_list("title", flat=True)) == ["Hours"]


def test_a_canned_reply_needs_a_title(practice, member_client):
    manager = member_client(Role.MANAGER, practice=practice)
    response = manager.post(reverse("messaging:canned_add"), {"title": "", "body": "Y"})
    assert response.status_code == 400
    assert "Title:" in response.text


def test_another_practices_threads_are_404(practice, other_practice, member_client, ann):
    inbound(practice, patient=ann, body="private")
    inbound(practice, number="+13125557777", body="stranger")
    canned = CannedReply.objects.create(practice=practice, title="Hours", body="8am")
    other = member_client(Role.ADMINISTRATOR, practice=other_practice)
    assert other.get(reverse("messaging:thread", args=[ann.pk])).status_code == 404
    reply = other.post(reverse("messaging:reply", args=[ann.pk]), {"body": "Hi"})
    assert reply.status_code == 404
    token = unknown_thread_token(practice_id=practice.pk, number="+13125557777")
    assert other.get(reverse("messaging:unknown_thread", args=[token])).status_code == 404
    delete = other.post(reverse("messaging:canned_delete", args=[canned.pk]))
    assert delete.status_code == 404
    assert "private" not in other.get(reverse("messaging:inbox")).text
    assert not OutboundMessage.objects.exists()
    assert InboundMessage.objects.filter(read_at=None).count() == 2


def test_inbox_needs_a_login(client, ann):
    for url in [
        reverse("messaging:inbox"),
        reverse("messaging:thread", args=[ann.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert "/login" in response["Location"]


def test_pagination_30_threads_a_page(practice, user_client):
    for n in range(31):
        patient = PatientFactory(practice=practice)
        inbound(practice, patient=patient, at=NOON - dt.timedelta(minutes=n))
    first = inbox_threads(practice=practice)
    assert (len(first.threads), first.total, first.has_next) == (30, 31, True)
    second = user_client.get(reverse("messaging:inbox"), {"page": 2})
    assert "31 threads" in second.text
    assert "← Newer" in second.text


def _threads(practice, count):
    for n in range(count):
        patient = PatientFactory(practice=practice)
        inbound(practice, patient=patient, at=NOON - dt.timedelta(minutes=n))
        outbound(practice, patient=patient, at=NOON - dt.timedelta(minutes=n, seconds=30))
    inbound(practice, number="+13125557777")


def test_the_list_query_count_does_not_grow_with_threads(
    practice, member_client, django_assert_max_num_queries
):
    client = member_client(Role.USER, practice=practice)
    _threads(practice, 3)
    with django_assert_max_num_queries(20) as few:
        assert client.get(reverse("messaging:inbox")).status_code == 200
    _threads(practice, 22)
    assert len(few.captured_queries) <= 10, [q["sql"] for q in few.captured_queries]
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse("messaging:inbox"))
    assert page.text.count('<li class="thread') == 26  # 25 patients and the unknown number
