"""A blast built in Chromium with one recipient removed on its recipients page goes, at the
next scheduler tick, to every other recipient and not to the removed one."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.engine import tick
from campaigns.models import BlastExclusion, Campaign
from messaging.models import SandboxMessage
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

PHONES = {"Ada": "+13125550101", "Bob": "+13125550102", "Cy": "+13125550103"}


def test_a_blast_with_one_recipient_removed_sends_to_the_rest(
    page, login, shot, open_menu, add_patients, practice
):
    plus = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    add_patients(
        practice,
        *(
            {"external_id": name, "first_name": name, "phone": phone}
            for name, phone in PHONES.items()
        ),
        {"external_id": "Dee", "first_name": "Dee", "phone": "+13125550104", "status": "inactive"},
    )
    bob = practice.patients.get(first_name="Bob")

    login(plus.user.email, TEST_PASSWORD)
    open_menu("Blast Campaigns")
    page.get_by_role("link", name="+ New Blast").click()
    page.get_by_label("Campaign name").fill("Closed Friday")
    page.get_by_label("Status").select_option("active")
    page.get_by_label("Send as").select_option("sms")
    page.locator("textarea[name='body']").fill("Hi {{PatientFirstName}}, we are closed Friday.")
    page.get_by_label("As soon as it is enabled").check()
    shot("new blast")
    page.get_by_role("button", name="Save and preview recipients").click()

    recipients = page.locator("#recipients")
    expect(recipients.get_by_role("heading", name="Recipients (3)")).to_be_visible()
    expect(recipients).not_to_contain_text("Dee")  # inactive: the filter keeps her out
    shot("recipients")
    row = page.locator(f"#recipient-{bob.pk}")
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_class("removed")
    expect(row.get_by_role("button", name="Put back")).to_be_visible()
    # The numbers elsewhere follow at once, without a reload.
    expect(recipients.get_by_role("heading", name="Recipients (2)")).to_be_visible()
    expect(page.get_by_role("heading", name="Removed by staff (1)")).to_be_visible()
    expect(page.locator("#blast-enable")).to_contain_text("to 2 recipients")
    shot("bob removed")
    campaign = Campaign.objects.get(practice=practice, kind="blast")
    assert BlastExclusion.objects.filter(campaign=campaign, patient=bob).exists()

    page.reload()
    expect(recipients.get_by_role("heading", name="Recipients (2)")).to_be_visible()
    expect(page.get_by_role("heading", name="Removed by staff (1)")).to_be_visible()
    # Enabling asks first, with the number; Cancel changes nothing.
    enable = page.get_by_role("button", name="Enable: send as soon as possible")
    enable.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Send “Closed Friday” to 2 patients now?")
    shot("enable asks")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("h1 .badge")).to_have_text("Draft")
    campaign.refresh_from_db()
    assert campaign.enabled is False
    enable.click()
    page.get_by_role("dialog").get_by_role("button", name="Send now").click()
    expect(page.locator("h1 .badge")).to_have_text("Scheduled")
    shot("enabled")
    assert not SandboxMessage.objects.exists()  # nothing leaves before the scheduler runs

    summary = tick(now=timezone.now(), send="inline")

    assert summary["messages_sent"] == 2, summary
    sent = dict(SandboxMessage.objects.values_list("to", "body"))
    assert sent == {
        PHONES["Ada"]: "Hi Ada, we are closed Friday.\nReply STOP to opt out",
        PHONES["Cy"]: "Hi Cy, we are closed Friday.\nReply STOP to opt out",
    }
    page.reload()
    expect(page.locator("h1 .badge")).to_have_text("Sent")
    expect(page.get_by_text("A sent blast is read-only.")).to_be_visible()
    shot("sent")
