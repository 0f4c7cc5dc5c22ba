"""The patient page in Chromium: the panels that campaigns and messaging add to it
(``patients.panels``) load into it with htmx, and a campaign's explanation opens in place."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging.models import MessageStatus, OutboundMessage
from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_patient_page_loads_why_and_the_message_history(page, login, shot, practice):
    member = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    ann = PatientFactory(practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101")
    serializer = CampaignSerializer(
        data={
            "name": "Happy birthday",
            "trigger": {"type": "birthday", "offset_days": 0},
            "schedule": {"frequency": "daily", "time": "10:00"},
            "messages": [{"channel": "sms", "body": "Happy birthday!"}],
        }
    )
    assert serializer.is_valid(), serializer.errors
    campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    OutboundMessage.objects.create(
        practice=practice,
        patient=ann,
        channel="sms",
        to=ann.phone,
        body="See you Tuesday at 3pm.",
        status=MessageStatus.DELIVERED,
        scheduled_for=timezone.now(),
        sent_at=timezone.now(),
    )

    login(member.user.email, TEST_PASSWORD)
    page.goto(f"/patients/{ann.pk}/")
    expect(page.get_by_role("heading", name="Ann Lee")).to_be_visible()

    # Both panels replace their placeholders (and their plain links) when scrolled to. The
    # scroll is the page's own: htmx swaps a panel out while it is revealed, and an element
    # handle held across that swap would be detached (the locators below re-resolve).
    why = page.locator("#why")
    page.evaluate("document.getElementById('why').scrollIntoView()")
    expect(why.locator("summary", has_text="Happy birthday")).to_be_visible()
    history = page.locator("#messages")
    page.evaluate("document.getElementById('messages').scrollIntoView()")
    expect(history.locator("table")).to_contain_text("See you Tuesday at 3pm.")
    expect(history).to_contain_text("Delivered")
    shot("panels loaded")

    # Opening a campaign loads its explanation in place.
    why.locator("summary", has_text="Happy birthday").click()
    expect(why.locator(".why-checks")).to_be_visible()
    expect(why).to_contain_text("the campaign is off")
    shot("why opened")
