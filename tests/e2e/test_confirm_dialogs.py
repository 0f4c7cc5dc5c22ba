"""Harm asks first (issue 16, item 1): revoking an API key, removing a member and turning a
drip on each show what will happen, with the name or the number, and Cancel changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignKind
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import ApiKey, Membership, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path("/work/wt/shots/h16a")


def keep(path: Path, name: str) -> None:
    """Copy a step's screenshot for the closing note, when that folder exists."""
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / name)


def test_revoking_a_key_and_removing_a_member_ask_first(page, login, shot, practice):
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    other = MembershipFactory(practice=practice, role=Role.USER)
    key = api_key_create(practice=practice, name="ChiroTouch sync", actor=None).api_key

    login(admin.user.email, TEST_PASSWORD)
    page.goto("/settings/api-keys/")
    page.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke the API key “ChiroTouch sync”?")
    keep(shot("revoke asks"), "confirm-dialog-revoke.png")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    key.refresh_from_db()
    assert key.revoked_at is None  # cancelled: nothing was sent

    page.get_by_role("button", name="Revoke").click()
    page.keyboard.press("Escape")  # Escape is Cancel too
    expect(page.get_by_role("dialog")).to_have_count(0)
    key.refresh_from_db()
    assert key.revoked_at is None

    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked", exact=False).first).to_be_visible()
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None

    page.goto("/settings/users/")
    row = page.locator(f"#member-{other.pk}")
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("dialog")).to_contain_text(f"Remove {other.user.email} from")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert Membership.objects.filter(pk=other.pk).exists()
    row.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.locator(f"#member-{other.pk}")).to_have_count(0)
    assert not Membership.objects.filter(pk=other.pk).exists()


def test_turning_a_drip_on_says_how_many_it_reaches(page, login, shot, practice, add_patients):
    plus = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    add_patients(practice, {"external_id": "1", "first_name": "Ann", "phone": "+13125550101"})
    campaign = Campaign.objects.create(
        practice=practice,
        name="Everyone active",
        kind=CampaignKind.DRIP,
        trigger={"type": "first_visit", "days_after": 0},
        filters={},
    )
    login(plus.user.email, TEST_PASSWORD)
    page.goto("/campaigns/drip/")
    row = page.locator(f"#campaign-{campaign.pk}")
    row.get_by_role("switch").click()
    question = row.get_by_role("alertdialog")
    expect(question).to_contain_text("Turn on “Everyone active”? 0 patients match it now")
    shot("switch asks")
    campaign.refresh_from_db()
    assert campaign.enabled is False
    question.get_by_role("link", name="Cancel").click()
    expect(page.locator(f"#campaign-{campaign.pk}").get_by_role("alertdialog")).to_have_count(0)
    campaign.refresh_from_db()
    assert campaign.enabled is False

    row = page.locator(f"#campaign-{campaign.pk}")
    row.get_by_role("switch").click()
    row.get_by_role("alertdialog").get_by_role("button", name="Turn on").click()
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    campaign.refresh_from_db()
    assert campaign.enabled is True
