"""An Inbox reply answered in Chromium, and the Report tab's chart and numbers."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from messaging.models import InboundMessage, MessageStatus, OutboundMessage, SandboxMessage
from messaging.webhook_services import twilio_inbound_receive
from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory
from tests.reports.test_rollup import WHOLE_RANGE_TOTALS, build
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_inbox_reply_is_answered(page, login, shot, open_menu, practice):
    user = MembershipFactory(practice=practice, role=Role.USER)
    ann = PatientFactory(practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101")
    received = twilio_inbound_receive(
        params={
            "MessageSid": "SMe2e0001",
            "From": ann.phone,
            "To": practice.sms_from,
            "Body": "Can I move my visit to 3pm?",
        },
        now=timezone.now(),
    )
    assert received.handled_as == "inbox"

    login(user.user.email, TEST_PASSWORD)
    open_menu("Inbox")
    thread = page.locator("li.thread", has_text="Ann Lee")
    expect(thread).to_contain_text("1 unread")
    expect(thread).to_contain_text("Can I move my visit to 3pm?")
    shot("inbox")
    thread.get_by_role("link", name="Ann Lee").click()

    expect(page.get_by_role("heading", name="Ann Lee")).to_be_visible()
    items = page.locator("#thread .thread-item")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Can I move my visit to 3pm?")
    shot("thread")
    page.get_by_label("Reply", exact=True).fill("Sure, 3pm works. See you then!")
    page.get_by_role("button", name="Send reply").click()

    # The thread is swapped in with the reply, ours, delivered by the (sandbox) provider.
    expect(items).to_have_count(2)
    reply = items.last
    expect(reply).to_have_class("thread-item ours")
    expect(reply).to_contain_text("Sure, 3pm works. See you then!")
    expect(reply.locator(".status")).to_have_text("Delivered")
    expect(page.get_by_label("Reply", exact=True)).to_have_value("")
    shot("reply sent")

    message = OutboundMessage.objects.get(patient=ann)
    assert message.status == MessageStatus.DELIVERED
    assert message.body.startswith("Sure, 3pm works. See you then!")
    assert not message.is_test
    assert SandboxMessage.objects.get(message=message).to == ann.phone
    assert not InboundMessage.objects.filter(patient=ann, read_at=None).exists()
    page.reload()
    expect(items.last).to_contain_text("Sure, 3pm works. See you then!")


def test_the_report_tab_shows_its_chart_and_numbers(page, login, shot, open_menu):
    # The roll-up fixture: campaign "Welcome", messages sent 2-4 Nov 2026 through the real
    # webhook and link services, every number stated in WHOLE_RANGE_TOTALS; build() ends with
    # rollups_refresh().
    fixture = build(refresh_each_step=False)
    manager = MembershipFactory(practice=fixture.practice, role=Role.MANAGER)
    n = WHOLE_RANGE_TOTALS

    login(manager.user.email, TEST_PASSWORD)
    open_menu("Reports")
    expect(page.get_by_role("heading", name="Reports")).to_be_visible()
    page.get_by_label("From").fill("2026-11-02")
    page.get_by_label("To", exact=True).fill("2026-11-04")
    page.get_by_role("button", name="Show").click()
    overview = page.locator(f"#campaign-{fixture.campaign.pk}")
    expect(overview).to_contain_text("Welcome")
    expect(overview.locator("td.num").nth(1)).to_have_text(str(n["sent"]))
    assert _fits_the_window(page)
    shot("reports overview")
    overview.get_by_role("link", name="Welcome").click()

    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    chart = page.locator("svg.report-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("g.day")).to_have_count(3)  # one bar group per day of the range
    # The grey bars are as tall as each day's messages sent: 3, 2 and 1.
    heights = chart.locator("rect.sent").evaluate_all(
        "rects => rects.map(r => Number(r.getAttribute('height')))"
    )
    assert heights[2] > 0
    assert [round(h / heights[2], 2) for h in heights] == [3, 2, 1], heights
    # The y-axis: each label sits at the height of its own value.
    axis = chart.locator("text.axis[text-anchor='end']").evaluate_all(
        "texts => texts.map(t => [Number(t.textContent), Number(t.getAttribute('y'))])"
    )
    (zero_y,) = [y for value, y in axis if value == 0]
    assert len({round((zero_y - y) / value, 2) for value, y in axis if value}) == 1, axis
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 100
    expect(page.locator("#total-recipients")).to_have_text(str(n["recipients"]))
    expect(page.locator("#total-delivered")).to_have_text(f"{n['delivered']} of {n['sent']} sent")
    expect(page.locator("#delivered-percent")).to_have_text(f"{n['delivered_percent']}%")
    expect(page.locator("#total-opened")).to_have_text(str(n["opened"]))
    expect(page.locator("#total-clicked")).to_have_text(str(n["clicked"]))
    expect(page.locator("#total-errors")).to_have_text(str(n["errors"]))
    expect(page.locator("#total-bounced")).to_have_text(str(n["bounced"]))
    expect(page.locator("#total-unsubscribed")).to_have_text(str(n["unsubscribed"]))
    expect(page.locator("#total-conversions")).to_have_text(
        f"{n['conversions']} ({n['conversion_percent']}%)"
    )
    expect(page.locator("#total-skipped")).to_have_text(str(n["skipped"]))
    expect(page.locator("#step-total td").first).to_have_text(str(n["recipients"]))
    assert _fits_the_window(page)  # the wide by-step table scrolls inside its panel
    shot("campaign report")


def _fits_the_window(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
