"""Roles in Chromium: a User sees no campaign menu and is refused a campaign URL; an
Administrator invites a user and makes them a Manager on the settings page."""

from __future__ import annotations

import pytest
from django.core import mail
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignKind
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import AuditEvent, Membership, Role

pytestmark = pytest.mark.django_db(transaction=True)

CAMPAIGN_MENU = ["Drip Campaigns", "Blast Campaigns", "Templates"]


def test_a_user_sees_no_campaign_menu_and_gets_403_on_campaign_urls(page, login, shot, practice):
    user = MembershipFactory(practice=practice, role=Role.USER)
    campaign = Campaign.objects.create(practice=practice, name="Birthday", kind=CampaignKind.DRIP)

    login(user.user.email, TEST_PASSWORD)
    menu = page.get_by_role("navigation", name="Main menu")
    # What a User may open is there; the campaign items are not.
    expect(menu.get_by_role("link", name="Inbox")).to_be_visible()
    expect(menu.get_by_role("link", name="Reports")).to_be_visible()
    expect(menu.get_by_role("link", name="Patients")).to_be_visible()
    for label in CAMPAIGN_MENU:
        expect(menu.get_by_role("link", name=label)).to_have_count(0)
    shot("menu without campaigns")

    for url in (
        "/campaigns/drip/",
        f"/campaigns/drip/{campaign.pk}/edit/",
        "/campaigns/drip/new/name/",
        "/campaigns/blast/",
        "/campaigns/templates/",
    ):
        response = page.goto(url)
        assert response is not None
        assert response.status == 403, url
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    shot("403 on a campaign url")


def test_an_administrator_invites_a_user_and_makes_them_manager(
    page, login, shot, open_menu, practice
):
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    email = "new.person@example.test"

    login(admin.user.email, TEST_PASSWORD)
    open_menu("Settings")
    expect(page.get_by_role("heading", name=f"Members of {practice.name}")).to_be_visible()
    shot("settings users")

    invite = page.locator("section", has=page.get_by_role("heading", name="Invite a user"))
    invite.get_by_label("Email").fill(email)
    invite.get_by_label("Role").select_option(label="User")
    shot("invite filled")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text(f"Invited {email}.")).to_be_visible()
    role = page.get_by_label(f"Role of {email}")
    expect(role).to_have_value(str(Role.USER.value))
    shot("invited")
    membership = Membership.objects.get(practice=practice, user__email=email)
    assert membership.role == Role.USER
    assert [m.to for m in mail.outbox] == [[email]]

    # Change the role: the row is swapped in place by htmx, then a reload shows it saved.
    role.select_option(label="Manager")
    row = page.locator(f"#member-{membership.pk}")
    with page.expect_response(lambda r: r.url.endswith(f"/users/{membership.pk}/role/")) as sent:
        row.get_by_role("button", name="Save").click()
    assert sent.value.status == 200
    expect(page.get_by_label(f"Role of {email}")).to_have_value(str(Role.MANAGER.value))
    shot("role changed")
    page.reload()
    expect(page.get_by_label(f"Role of {email}")).to_have_value(str(Role.MANAGER.value))

    membership.refresh_from_db()
    assert membership.role == Role.MANAGER
    invited = AuditEvent.objects.get(practice=practice, action="membership.invite")
    assert invited.actor == admin.user
    changed = AuditEvent.objects.get(practice=practice, action="membership.change_role")
    assert changed.actor == admin.user
    assert changed.before == {"user": email, "role": "User"}
    assert changed.after == {"user": email, "role": "Manager"}
