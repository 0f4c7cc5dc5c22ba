"""Reminders patients answer, as staff see them in Chromium: the appointment's confirmation on
the patient page, the reading of a reply in the Inbox thread, the reschedule-requests
worklist, and the Administrators' webhook delivery log with Resend."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from messaging.models import InboundMessage
from tests.factories import TEST_PASSWORD, AppointmentFactory, MembershipFactory, PatientFactory
from trackstat.credentials import secret_encrypt
from trackstat.events import event_emit
from trackstat.models import Role, WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_see_answers_the_worklist_and_the_delivery_log(page, login, shot, practice):
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    now = timezone.now()
    ann = PatientFactory(practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101")
    bob = PatientFactory(practice=practice, first_name="Bob", last_name="Ray", phone="+13125550102")
    ann_visit = AppointmentFactory(
        patient=ann,
        start=now + dt.timedelta(days=2),
        confirmation="reschedule_requested",
        confirmation_at=now,
    )
    bob_visit = AppointmentFactory(
        patient=bob, start=now + dt.timedelta(days=1), confirmation="requested", confirmation_at=now
    )
    InboundMessage.objects.create(
        practice=practice,
        patient=bob,
        from_number=bob.phone,
        to_number=practice.sms_from,
        body="what time was it?",
        provider_message_id="SMe2e1",
        received_at=now,
        handled_as="inbox",
        confirmation_appointment=bob_visit,
        confirmation_answer="unclear",
    )
    endpoint = WebhookEndpoint.objects.create(
        practice=practice,
        url="https://emr.example/hooks/trackstat",
        events=["appointment.confirmation_changed"],
        secret_encrypted=secret_encrypt("whsec_e2e"),
    )
    event_emit(
        practice=practice,
        type="appointment.confirmation_changed",
        data={
            "appointment_external_id": ann_visit.external_id,
            "patient_external_id": ann.external_id,
            "confirmation": "reschedule_requested",
            "confirmation_at": now.isoformat(),
        },
    )
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    for minutes, code in ((0, 500), (1, 500)):
        WebhookAttempt.objects.create(
            practice=practice,
            delivery=delivery,
            at=now + dt.timedelta(minutes=minutes),
            status_code=code,
            error=f"answered {code}",
            duration_ms=42,
        )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=2, next_attempt_at=now + dt.timedelta(minutes=5)
    )

    login(admin.user.email, TEST_PASSWORD)
    page.goto(f"/patients/{ann.pk}/")
    expect(page.locator("table").first).to_be_visible()
    expect(page.get_by_text("Asked to reschedule").first).to_be_visible()
    shot("patient page with the confirmation")

    page.goto("/patients/appointment-requests/")
    expect(page.locator("#appointment-requests")).to_contain_text("Ann Lee")
    expect(page.locator("#appointment-requests")).not_to_contain_text("Bob Ray")
    shot("reschedule requests worklist")

    page.goto(f"/inbox/{bob.pk}/")
    expect(page.locator(".confirmation-answer")).to_contain_text("not understood")
    shot("inbox thread with an unclear reply")

    page.goto("/settings/webhooks/")
    expect(page.locator("#webhook-deliveries")).to_contain_text("HTTP 500")
    shot("webhook delivery log")
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_text("Queued to be sent again")).to_be_visible()
    shot("after resend")
    delivery.refresh_from_db()
    assert delivery.attempts == 0
