"""The wizard never loses typed work, in Chromium (issue 16, item 4): a step's pill saves what
was typed before it moves, messages added on step 3 survive a reload, and leaving with typed,
unsaved text by a link asks first (the browser's "Leave site?" prompt)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_pills_save_reload_keeps_messages_and_leaving_asks(page, login, shot, practice):
    plus = MembershipFactory(practice=practice, role=Role.USER_PLUS)
    login(plus.user.email, TEST_PASSWORD)
    page.goto("/campaigns/drip/new/")
    page.get_by_label("Name").fill("Typed then pill")
    page.get_by_role("button", name="3 Messages").click()
    expect(page.get_by_role("heading", name="3 · Messages")).to_be_visible()
    expect(page.locator(".page-head")).to_contain_text("“Typed then pill”")

    page.get_by_role("button", name="+ SMS message").click()
    body = page.locator("textarea[name='step-0-body']")
    body.fill("Hello, typed before any Next")
    page.get_by_role("button", name="+ Email message").click()  # saves the rows as typed
    expect(page.locator("input[name='step-1-subject']")).to_be_visible()
    page.reload()
    expect(page.locator("textarea[name='step-0-body']")).to_have_value(
        "Hello, typed before any Next"
    )
    expect(page.locator("input[name='step-1-subject']")).to_be_visible()

    # Typed and not saved: a link away asks; dismissing the prompt stays with the text.
    page.locator("input[name='step-1-subject']").fill("Unsaved subject")
    prompts = []

    def dismiss(dialog):
        prompts.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_role("link", name="← Drip Campaigns").click()
    for _ in range(50):  # the prompt comes asynchronously: poll for it, at most 5 s
        if prompts:
            break
        page.wait_for_timeout(100)
    assert prompts == ["beforeunload"]
    expect(page.locator("input[name='step-1-subject']")).to_have_value("Unsaved subject")
    shot("still on the step")
