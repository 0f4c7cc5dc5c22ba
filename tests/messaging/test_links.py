"""Tracked links (the ``clicked_link`` goal) and email unsubscribe links (DESIGN §5.5, §7),
driven through the engine with explicit instants as in ``tests/campaigns/test_engine.py``."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.test import Client

from campaigns.models import Campaign, Enrollment
from messaging.links import link_click, links_track, tracked_url
from messaging.models import MessageEvent, OutboundMessage, TrackedLink, UnsubscribeToken
from messaging.unsubscribe import unsubscribe_url_for
from patients.models import Patient
from reports.rollup import rollups_refresh
from reports.selectors import campaign_report
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, received, run, sms, statuses
from trackstat.models import AuditEvent

pytestmark = pytest.mark.django_db

BASE = "https://trackstat.test"  # PUBLIC_BASE_URL of the test settings
TRACKED_RE = re.compile(re.escape(BASE) + r"/l/[\w-]+")
UNSUBSCRIBE_RE = re.compile(re.escape(BASE) + r"/unsubscribe/[\w-]+/")
BOOKING = "https://book.example.test/spine?ref=sms&x=1"
BIRTHDAY = dt.date(1990, 6, 15)


@pytest.fixture
def clinic() -> Clinic:
    clinic = Clinic()
    clinic.practice.online_scheduling_url = BOOKING
    clinic.practice.save()
    return clinic


def ann(clinic: Clinic) -> Patient:
    return clinic.patient(
        first_name="Annabel",
        last_name="Zebrowski",
        birth_date=BIRTHDAY,
        phone="3125550101",
        email="annabel.zebrowski@example.test",
    )


def message_of(patient: Patient, step: int = 1) -> OutboundMessage:
    return OutboundMessage.objects.get(patient=patient, step_position=step)


def path_of(url: str) -> str:
    return url.removeprefix(BASE)


def assert_no_patient_data(url: str, patient: Patient) -> None:
    for value in (patient.first_name, patient.last_name, patient.email, patient.phone):
        assert value.lower() not in url.lower()
    assert "@" not in url


# --- tracked links -----------------------------------------------------------------------


def test_sms_links_are_tracked_and_redirect(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[
            sms(
                "Book: {{OnlineSchedulingLink}}. FAQ https://example.test/faq, "
                "or book again: {{OnlineSchedulingLink}}"
            )
        ],
    )
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    message = message_of(patient)
    assert message.status == "delivered"
    links = {link.url: link for link in TrackedLink.objects.filter(message=message)}
    assert set(links) == {BOOKING, "https://example.test/faq"}  # one per distinct URL
    booking, faq = links[BOOKING], links["https://example.test/faq"]
    assert message.body == (
        f"Book: {BASE}/l/{booking.token}. FAQ {BASE}/l/{faq.token}, "
        f"or book again: {BASE}/l/{booking.token}\nReply STOP to opt out"
    )
    assert "book.example.test" not in message.body
    for link in links.values():
        assert link.practice_id == clinic.practice.pk
        assert_no_patient_data(f"{BASE}/l/{link.token}", patient)

    client = Client()
    with time_machine.travel(ny(2026, 6, 15, 10, 30), tick=False):
        first = client.get(f"/l/{booking.token}")
    with time_machine.travel(ny(2026, 6, 16, 9, 0), tick=False):
        second = client.get(f"/l/{booking.token}")
    assert (first.status_code, first["Location"]) == (302, BOOKING)
    assert (second.status_code, second["Location"]) == (302, BOOKING)
    booking.refresh_from_db()
    assert booking.click_count == 2
    assert booking.first_clicked_at == ny(2026, 6, 15, 10, 30)
    faq.refresh_from_db()
    assert (faq.click_count, faq.first_clicked_at) == (0, None)
    message.refresh_from_db()
    assert message.status == "clicked"
    assert (
        MessageEvent.objects.filter(message=message, status="clicked", source="link").count() == 1
    )


def test_a_head_request_redirects_without_counting_a_click(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("See https://example.test/a")],
    )
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    link = TrackedLink.objects.get(message__patient=patient)
    response = Client().head(f"/l/{link.token}")
    assert (response.status_code, response["Location"]) == (302, "https://example.test/a")
    link.refresh_from_db()
    assert link.click_count == 0
    assert message_of(patient).status == "delivered"


def test_sms_bodies_without_links_and_skipped_messages_get_no_tracked_links(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Hi. Book {{OnlineSchedulingLink}}")],
    )
    nophone = clinic.patient(birth_date=BIRTHDAY)
    run(ny(2026, 6, 15, 10, 0))
    assert statuses(nophone) == [(1, "skipped", "no mobile phone")]
    assert not TrackedLink.objects.exists()


def test_email_hrefs_are_tracked_and_the_unsubscribe_footer_is_added(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[
            email(
                "Hello",
                '<p>Hi {{PatientFirstName}}, <a href="https://example.test/a?x=1&amp;y=2">read</a>'
                ' or <a href="{{OnlineSchedulingLink}}">book</a>. See https://example.test/plain</p>',
            )
        ],
    )
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    message = message_of(patient)
    assert message.status == "delivered"
    links = {link.url: link.token for link in TrackedLink.objects.filter(message=message)}
    assert set(links) == {"https://example.test/a?x=1&y=2", BOOKING}
    assert f'href="{BASE}/l/{links["https://example.test/a?x=1&y=2"]}"' in message.body
    assert f'href="{BASE}/l/{links[BOOKING]}"' in message.body
    assert "See https://example.test/plain" in message.body  # visible text is not rewritten
    # The footer carries this message's own unsubscribe link, never tracked.
    token = UnsubscribeToken.objects.get(message=message)
    unsubscribe = f"{BASE}/unsubscribe/{token.token}/"
    assert f'<a href="{unsubscribe}">Unsubscribe</a></p>' in message.body
    # A birthday is marketing: the practice's postal address comes last (DESIGN §5.8).
    assert message.body.endswith(f">{clinic.practice.postal_address}</p>")
    assert unsubscribe_url_for(message) == unsubscribe
    assert UNSUBSCRIBE_RE.findall(message.body) == [unsubscribe]
    for url in [unsubscribe, *TRACKED_RE.findall(message.body)]:
        assert_no_patient_data(url, patient)
    response = Client().get(f"/l/{links[BOOKING]}")
    assert (response.status_code, response["Location"]) == (302, BOOKING)


def test_an_email_showing_its_unsubscribe_link_gets_no_footer(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[email("Hello", '<p>Hi. <a href="{{UnsubscribeLink}}">Stop these</a></p>')],
    )
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    message = message_of(patient)
    unsubscribe = unsubscribe_url_for(message)
    assert message.body == (
        f'<p>Hi. <a href="{unsubscribe}" rel="noopener noreferrer">Stop these</a></p>'
        f'<p style="font-size:12px;color:#666666">{clinic.practice.postal_address}</p>'
    )
    assert not TrackedLink.objects.exists()


def test_links_track_outside_the_engine_reuses_the_messages_links(clinic):
    patient = ann(clinic)
    message = OutboundMessage.objects.create(
        practice=clinic.practice,
        patient=patient,
        channel="sms",
        to=patient.phone,
        scheduled_for=ny(2026, 6, 15),
    )
    body = "Read https://example.test/a (https://example.test/b). Stop: " + BASE + "/unsubscribe/x/"
    first = links_track(message=message, body=body, channel="sms")
    again = links_track(message=message, body=body, channel="sms")
    assert first == again
    a, b = (
        TrackedLink.objects.get(message=message, url=url).token
        for url in ("https://example.test/a", "https://example.test/b")
    )
    assert first == f"Read {BASE}/l/{a} ({BASE}/l/{b}). Stop: {BASE}/unsubscribe/x/"
    assert TrackedLink.objects.filter(message=message).count() == 2
    assert links_track(message=message, body=first, channel="sms") == first  # already tracked


# --- the clicked_link goal -------------------------------------------------------------------


def two_steps(clinic: Clinic, goal: dict, **step2_delay) -> Campaign:
    return drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        name="Clicks",
        messages=[
            sms("Book {{OnlineSchedulingLink}} or read https://example.test/faq"),
            sms("Still there?", **(step2_delay or {"value": 3, "unit": "days"})),
        ],
        goal=goal,
    )


def token_for(patient: Patient, url: str) -> str:
    return TrackedLink.objects.get(
        message__patient=patient, message__step_position=1, url=url
    ).token


def test_a_click_meets_the_goal_and_no_later_step_is_sent(clinic):
    two_steps(clinic, {"type": "clicked_link"})
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    assert link_click(
        token=token_for(patient, "https://example.test/faq"), now=ny(2026, 6, 16, 8, 0)
    ) == ("https://example.test/faq")
    enrollment = Enrollment.objects.get()
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "goal_met")
    assert enrollment.exited_at == ny(2026, 6, 16, 8, 0)
    run(ny(2026, 6, 18, 10, 0))
    run(ny(2026, 6, 25, 10, 0))
    assert [step for _, step, _ in received(patient)] == [1]
    assert statuses(patient) == [(1, "clicked", "")]


def test_a_click_cancels_a_queued_later_step(clinic):
    two_steps(clinic, {"type": "clicked_link"}, value=1, unit="hours")
    clinic.practice.sending_window_start = dt.time(9, 0)
    clinic.practice.sending_window_end = dt.time(10, 30)
    clinic.practice.save()
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 15, 11, 0))  # step 2 waits for tomorrow's window
    assert [status for _, status, _ in statuses(patient)] == ["delivered", "queued"]
    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 15, 11, 30))
    assert statuses(patient) == [(1, "clicked", ""), (2, "canceled", "goal met")]
    run(ny(2026, 6, 16, 9, 0))
    assert [step for _, step, _ in received(patient)] == [1]


def test_a_goal_with_a_url_counts_only_that_url(clinic):
    two_steps(clinic, {"type": "clicked_link", "url": "https://example.test/faq"})
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 16, 8, 0))
    assert Enrollment.objects.get().state == "active"
    assert message_of(patient).status == "clicked"
    link_click(token=token_for(patient, "https://example.test/faq"), now=ny(2026, 6, 16, 8, 5))
    assert Enrollment.objects.get().state == "exited"
    run(ny(2026, 6, 18, 10, 0))
    assert [step for _, step, _ in received(patient)] == [1]


def test_a_click_in_a_campaign_without_that_goal_only_records_it(clinic):
    two_steps(clinic, {"type": "future_appointment"})
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 16, 8, 0))
    assert Enrollment.objects.get().state == "active"
    run(ny(2026, 6, 18, 10, 0))
    assert [step for _, step, _ in received(patient)] == [1, 2]


def report_totals(campaign, day_from: dt.date, day_to: dt.date):
    rollups_refresh()
    return campaign_report(campaign, date_from=day_from, date_to=day_to)


def test_a_click_after_the_last_step_counts_as_the_goal_once(clinic):
    campaign = two_steps(clinic, {"type": "clicked_link"}, value=1, unit="days")
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 16, 10, 0))  # step 2, the last: the enrollment is completed
    assert Enrollment.objects.get().state == "completed"
    assert [step for _, step, _ in received(patient)] == [1, 2]

    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 17, 9, 0))
    link_click(token=token_for(patient, "https://example.test/faq"), now=ny(2026, 6, 17, 9, 5))
    Client().get(path_of(tracked_url(token_for(patient, BOOKING))))  # and again, in a browser

    report = report_totals(campaign, dt.date(2026, 6, 15), dt.date(2026, 6, 17))
    assert (report.totals.recipients, report.totals.conversions) == (1, 1)
    by_day = {row.day: row.numbers.conversions for row in report.days}
    assert by_day == {
        dt.date(2026, 6, 15): 0,
        dt.date(2026, 6, 16): 0,
        dt.date(2026, 6, 17): 1,  # the day of the click
    }
    # Counted for the last step that went out before it.
    assert {s.position: s.numbers.conversions for s in report.steps} == {1: 0, 2: 1}
    enrollment = Enrollment.objects.get()
    assert (enrollment.exit_reason, enrollment.exited_at) == ("goal_met", ny(2026, 6, 17, 9, 0))
    # The sequence is not resurrected: nothing more is sent, and later clicks change nothing.
    run(ny(2026, 6, 18, 10, 0))
    run(ny(2026, 6, 25, 10, 0))
    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 26, 9, 0))
    assert [step for _, step, _ in received(patient)] == [1, 2]
    assert enrollment.next_step_at is None
    report = report_totals(campaign, dt.date(2026, 6, 15), dt.date(2026, 6, 30))
    assert report.totals.conversions == 1


def test_a_click_after_the_last_step_of_another_goal_counts_nothing(clinic):
    campaign = two_steps(clinic, {"type": "future_appointment"}, value=1, unit="days")
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    run(ny(2026, 6, 16, 10, 0))
    link_click(token=token_for(patient, BOOKING), now=ny(2026, 6, 17, 9, 0))
    assert Enrollment.objects.get().state == "completed"
    report = report_totals(campaign, dt.date(2026, 6, 15), dt.date(2026, 6, 17))
    assert (report.totals.clicked, report.totals.conversions) == (1, 0)


# --- unsubscribe ---------------------------------------------------------------------------


def email_series(clinic: Clinic) -> None:
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        messages=[
            email("Happy birthday", "<p>Hi {{PatientFirstName}}</p>"),
            email("A gift", "<p>On us</p>", value=1, unit="days"),
        ],
    )


def unsubscribe_path(patient: Patient) -> str:
    return path_of(unsubscribe_url_for(message_of(patient)))


def test_the_unsubscribe_page_asks_to_confirm(clinic):
    email_series(clinic)
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    response = Client().get(unsubscribe_path(patient))
    assert response.status_code == 200
    assert '<form method="post">' in response.content.decode()
    assert clinic.practice.name in response.content.decode()
    patient.refresh_from_db()
    assert not patient.email_opt_out


def test_confirming_unsubscribes_and_later_emails_are_skipped(clinic):
    email_series(clinic)
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    client = Client(enforce_csrf_checks=True)  # the page's form carries no CSRF token
    response = client.post(unsubscribe_path(patient))
    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    patient.refresh_from_db()
    assert (patient.email_opt_out, patient.email_opt_out_source) == (True, "unsubscribe")
    audit = AuditEvent.objects.get(action="patient.email_opt_out")
    assert (audit.practice_id, audit.target_id, audit.actor_label) == (
        clinic.practice.pk,
        str(patient.pk),
        "unsubscribe link",
    )
    assert audit.after == {"email_opt_out": True, "source": "unsubscribe"}
    assert not patient.sms_opt_out
    run(ny(2026, 6, 16, 10, 0))
    assert statuses(patient) == [(1, "delivered", ""), (2, "skipped", "opted out of email")]
    # Confirming again changes nothing.
    assert client.post(unsubscribe_path(patient)).status_code == 200
    assert AuditEvent.objects.filter(action="patient.email_opt_out").count() == 1


def test_one_click_unsubscribe_without_a_csrf_token(clinic):
    email_series(clinic)
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    response = Client(enforce_csrf_checks=True).post(
        unsubscribe_path(patient), {"List-Unsubscribe": "One-Click"}
    )
    assert (response.status_code, response.content) == (200, b"")
    patient.refresh_from_db()
    assert patient.email_opt_out


def test_bad_tokens_and_wrong_methods(clinic):
    email_series(clinic)
    patient = ann(clinic)
    run(ny(2026, 6, 15, 10, 0))
    client = Client(enforce_csrf_checks=True)
    assert client.get("/l/nope").status_code == 404
    assert client.get("/unsubscribe/nope/").status_code == 404
    assert client.get("/unsubscribe/preview/").status_code == 404  # the previews' placeholder
    assert client.post("/unsubscribe/nope/", {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert Client().post("/l/x").status_code == 405
    assert client.put(unsubscribe_path(patient)).status_code == 405
    patient.refresh_from_db()
    assert not patient.email_opt_out


def test_a_message_without_a_patient_has_no_unsubscribe_link(clinic):
    message = OutboundMessage.objects.create(
        practice=clinic.practice,
        channel="email",
        to="staff@example.test",
        scheduled_for=ny(2026, 6, 15),
    )
    assert unsubscribe_url_for(message) == ""
    assert not UnsubscribeToken.objects.exists()


def test_unsubscribe_url_for_an_email_the_engine_did_not_make(clinic):
    patient = ann(clinic)
    message = OutboundMessage.objects.create(
        practice=clinic.practice,
        patient=patient,
        channel="email",
        to=patient.email,
        scheduled_for=ny(2026, 6, 15),
    )
    url = unsubscribe_url_for(message)
    assert UNSUBSCRIBE_RE.fullmatch(url)
    assert unsubscribe_url_for(message) == url
    assert_no_patient_data(url, patient)
    assert Client().post(path_of(url)).status_code == 200
    patient.refresh_from_db()
    assert patient.email_opt_out
