"""What staff see is what was sent (issue 16, item 2): texts are shown escaped, never
stripped, on the Sandbox page, the Inbox list and thread and the patient's message history;
an email typed as plain text keeps its lines."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.content.email_html import sanitize_email_html
from messaging.models import SandboxMessage
from tests.factories import PatientFactory
from tests.messaging.test_inbox import inbound, outbound
from trackstat.models import Role

pytestmark = pytest.mark.django_db

PARKING = "Park in <Lot B> please"
HEART = "I <3 you"


@pytest.fixture
def staff(member_client, practice):
    return member_client(Role.USER, practice=practice)


@pytest.fixture
def ann(practice):
    return PatientFactory(
        practice=practice, first_name="Ann", last_name="Lee", phone="+13125550101"
    )


def test_inbox_list_and_thread_show_texts_exactly(practice, staff, ann):
    now = timezone.now()
    outbound(practice, patient=ann, body=PARKING, at=now - timezone.timedelta(minutes=5))
    inbound(practice, patient=ann, body=HEART, at=now)

    listing = staff.get(reverse("messaging:inbox")).text
    assert "I &lt;3 you" in listing

    thread = staff.get(reverse("messaging:thread", args=[ann.pk])).text
    assert "Park in &lt;Lot B&gt; please" in thread
    assert "I &lt;3 you" in thread
    assert "<Lot B>" not in thread  # escaped, never raw HTML


def test_inbox_list_reads_an_email_as_text(practice, staff, ann):
    outbound(practice, patient=ann, channel="email", body="<p>See you <b>soon</b></p>")
    listing = staff.get(reverse("messaging:inbox")).text
    assert "See you soon" in listing
    assert "&lt;p&gt;" not in listing


def test_patient_history_shows_texts_exactly(practice, staff, ann):
    outbound(practice, patient=ann, body=PARKING)
    page = staff.get(reverse("messaging:patient_messages", args=[ann.pk])).text
    assert "Park in &lt;Lot B&gt; please" in page


def test_sandbox_shows_texts_exactly(practice, staff):
    SandboxMessage.objects.create(
        practice=practice, provider_id="SB1", channel="sms", to="+13125550101", body=PARKING
    )
    page = staff.get(reverse("messaging:sandbox")).text
    assert "Park in &lt;Lot B&gt; please" in page


def test_an_email_typed_as_plain_text_keeps_its_lines():
    html = sanitize_email_html("Hi Ann,\n\nWe moved.\nNew address below.\n\nSee you")
    assert html == "<p>Hi Ann,</p>\n\n<p>We moved.<br>New address below.</p>\n\n<p>See you</p>"
    # HTML written as HTML is left to lay out its own lines.
    assert sanitize_email_html("<p>One</p>\n<p>Two</p>") == "<p>One</p>\n<p>Two</p>"
    assert sanitize_email_html("One line") == "One line"


def test_the_wizard_email_preview_keeps_blank_lines(practice, ann):
    from campaigns.selectors import message_preview

    preview = message_preview(
        practice=practice,
        query="",
        message={"channel": "email", "subject": "News", "body": "Hello\n\nSecond paragraph"},
        at=timezone.now(),
    )
    assert preview["html"].count("<p>") == 2
