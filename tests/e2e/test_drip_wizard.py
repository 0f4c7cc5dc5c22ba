"""A User Plus signs in and builds a birthday drip through the five wizard steps in Chromium:
a filter that moves the live count, a message from a template, its preview, a test text to
their own phone, a goal, activation, and the green bell on the list."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.services import campaign_as_json, template_folder_create, template_save
from messaging.models import OutboundMessage, SandboxMessage
from patients.models import Tag
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

MY_PHONE = "+13125550177"
GREEN = "rgb(6, 118, 71)"  # --ok in app.css: the bell of a running campaign


def _born_today(practice) -> dt.date:
    """Today in the practice's time zone, in 1980 (a leap year: 29 February works too)."""
    return timezone.now().astimezone(practice.tz).date().replace(year=1980)


def test_user_plus_builds_and_activates_a_birthday_drip(
    page, login, shot, open_menu, add_patients, practice
):
    plus = MembershipFactory(practice=practice, role=Role.USER_PLUS, user__phone=MY_PHONE)
    Tag.objects.create(practice=practice, name="moved")
    Tag.objects.create(practice=practice, name="vip")
    birthday = _born_today(practice)
    add_patients(
        practice,
        {
            "external_id": "A-1",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "birth_date": birthday,
        },
        {"external_id": "B-2", "first_name": "Bob", "birth_date": birthday, "tags": ["moved"]},
        {"external_id": "C-3", "first_name": "Cy", "birth_date": birthday, "status": "inactive"},
        {"external_id": "D-4", "first_name": "Dan", "birth_date": birthday - dt.timedelta(days=40)},
    )
    folder = template_folder_create(practice=practice, name="Celebrations")
    template = template_save(
        practice=practice,
        folder=folder,
        data={
            "name": "Birthday wishes",
            "channel": "sms",
            "subject": "",
            "body": "Happy birthday {{PatientFirstName}}! From {{PracticeName}}",
        },
    )

    login(plus.user.email, TEST_PASSWORD)
    shot("signed in")
    open_menu("Drip Campaigns")
    expect(page.get_by_role("heading", name="Drip Campaigns")).to_be_visible()
    page.get_by_role("link", name="+ Add Campaign").click()

    # 1 Name
    expect(page.get_by_role("heading", name="1 · Name")).to_be_visible()
    page.get_by_label("Name").fill("Happy birthday")
    shot("1 name")
    page.get_by_role("button", name="Next →").click()

    # 2 Audience: the trigger, then a filter; the live count follows each change.
    expect(page.get_by_role("heading", name="2 · Audience")).to_be_visible()
    page.get_by_label("Trigger", exact=True).select_option("birthday")
    live = page.locator("#audience-live")
    # Ada and Bob are active and born today; Cy is inactive (new campaigns start "Active").
    expect(live.locator(".big-count")).to_have_text("2 patients")
    expect(live).to_contain_text("Status: Active")
    shot("2 audience trigger")
    tags = page.locator("details.filter-group", has_text="Tags")
    if tags.get_attribute("open") is None:
        tags.locator("summary").click()
    page.locator("input[name='filter-tags_exclude'][value='moved']").check()
    expect(live.locator(".big-count")).to_have_text("1 patient")
    expect(live).to_contain_text("Has none of the tags: moved")
    shot("2 audience filter and live count")
    page.get_by_role("button", name="Next →").click()

    # 3 Messages: one from the template, previewed and sent to myself; a second by hand.
    expect(page.get_by_role("heading", name="3 · Messages")).to_be_visible()
    page.locator("#template-choice").select_option(str(template.pk))
    page.get_by_role("button", name="+ Message from template").click()
    body = page.locator("#step-0-body")
    expect(body).to_have_value("Happy birthday {{PatientFirstName}}! From {{PracticeName}}")
    page.get_by_label("Preview as patient").fill("Lovelace")
    page.get_by_role("button", name="Preview message 1").click()
    preview = page.locator("#preview-0")
    expect(preview.locator(".sms-bubble")).to_have_text(f"Happy birthday Ada! From {practice.name}")
    shot("3 messages preview")
    page.get_by_role("button", name="Send test to myself").click()
    expect(page.get_by_text(f"sent to {MY_PHONE}")).to_be_visible()
    shot("3 messages test sent")
    sent = SandboxMessage.objects.get(to=MY_PHONE)
    assert sent.body == f"Happy birthday Ada! From {practice.name}"
    assert sent.message.is_test
    assert sent.message.patient_id is None
    page.get_by_role("button", name="+ SMS message").click()
    page.locator("#step-1-body").fill("See you soon, {{PatientFirstName}}?")
    page.locator("#step-1-delay_value").fill("3")
    page.locator("#step-1-delay_unit").select_option("days")
    expect(page.locator("#step-0-body")).to_have_value(
        "Happy birthday {{PatientFirstName}}! From {{PracticeName}}"
    )
    shot("3 messages two steps")
    page.get_by_role("button", name="Next →").click()

    # 4 Goals
    expect(page.get_by_role("heading", name="4 · Goals")).to_be_visible()
    page.get_by_label("The patient books a future appointment").check()
    shot("4 goal")
    page.get_by_role("button", name="Next →").click()

    # 5 Activate & Review
    expect(page.get_by_role("heading", name="5 · Activate & Review")).to_be_visible()
    review = page.locator(".review")
    expect(review).to_contain_text("Happy birthday")
    expect(review).to_contain_text("Has none of the tags: moved")
    expect(review).to_contain_text("1 patient would enter if it ran now")
    shot("5 review")
    page.get_by_role("button", name="Save and activate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Turn on “Happy birthday” now? 1 patient matches it now")
    dialog.get_by_role("button", name="Save and activate").click()

    # The list: the new campaign with its green bell.
    expect(page.get_by_role("heading", name="Drip Campaigns")).to_be_visible()
    campaign = Campaign.objects.get(practice=practice)
    row = page.locator(f"#campaign-{campaign.pk}")
    expect(row).to_contain_text("Happy birthday")
    bell = row.locator(".bell")
    expect(bell).to_have_class("bell on")
    expect(bell).to_have_attribute("title", "On: running")
    expect(bell).to_have_css("color", GREEN)
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    shot("drip list green bell")

    data = campaign_as_json(campaign)
    assert data["enabled"] is True
    assert data["trigger"] == {"type": "birthday", "offset_days": 0}
    assert data["filters"] == {"tags": {"include": [], "exclude": ["moved"]}, "status": "active"}
    assert [m["body"] for m in data["messages"]] == [
        "Happy birthday {{PatientFirstName}}! From {{PracticeName}}",
        "See you soon, {{PatientFirstName}}?",
    ]
    assert data["messages"][1]["delay"] == {"value": 3, "unit": "days"}
    assert data["goal"]["type"] == "future_appointment"
    # The test went to me only: no patient has a message yet.
    assert not OutboundMessage.objects.filter(patient__isnull=False).exists()
