"""Patient trust in Chromium (DESIGN §5.8): an Administrator sets the messaging policy, staff
record a patient's marketing consent on the patient page (htmx, in place) and see its
history, and a message the rules were unsure about shows "might be an opt-out" in the
Inbox."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from messaging.models import InboundHandling, InboundMessage
from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_policy_page_consent_on_the_patient_page_and_the_inbox_flag(page, login, shot, practice):
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    ann = PatientFactory(practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101")
    InboundMessage.objects.create(
        practice=practice,
        patient=ann,
        from_number=ann.phone,
        to_number=practice.sms_from,
        body="too many texts from you guys",
        provider_message_id="SMe2e1",
        received_at=timezone.now(),
        handled_as=InboundHandling.INBOX,
        might_be_opt_out=True,
    )
    login(admin.user.email, TEST_PASSWORD)

    page.goto("/settings/policy/")
    page.get_by_label("Marketing messages per patient in 24 hours").fill("1")
    page.get_by_label("Send marketing texts only to patients who said yes to them").check()
    shot("messaging policy")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("Messaging policy saved.")).to_be_visible()
    practice.refresh_from_db()
    assert practice.policy["marketing_per_24h"] == 1
    assert practice.policy["sms_marketing_requires_opt_in"] is True

    page.goto(f"/patients/{ann.pk}/")
    consents = page.locator("#opt-outs")
    consents.locator("#consent-sms").select_option("true")
    consents.locator("form", has=page.locator("#consent-sms")).get_by_role(
        "button", name="Record"
    ).click()
    expect(page.locator("#opt-outs")).to_contain_text("Marketing texts: given")
    expect(page.locator("#consent-history")).to_contain_text("Staff")
    shot("patient consent and history")
    ann.refresh_from_db()
    assert ann.sms_marketing_consent is True

    page.goto(f"/inbox/{ann.pk}/")
    expect(page.get_by_text("might be an opt-out")).to_be_visible()
    shot("inbox might be an opt-out")
