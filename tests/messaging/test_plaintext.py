"""An email's plain-text part reads like its HTML (issue 13, item 24): unescaped text,
paragraphs, lists, each link as its text and URL, and the unsubscribe URL written out, so a
reader on a text-only client can still unsubscribe."""

from __future__ import annotations

import pytest
from django.urls import reverse

from messaging.fake_providers import FakeProviders
from messaging.links import UNSUBSCRIBE_FOOTER
from messaging.models import SandboxMessage
from messaging.plaintext import html_to_text
from messaging.providers.base import Outgoing
from messaging.providers.sendgrid import SendGridProvider
from trackstat.models import Role

UNSUBSCRIBE = "https://trackstat.test/unsubscribe/Zq3tokenZq3token/"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<p>Hi O&#x27;Brien &amp; family, it&#39;s &lt;time&gt;</p>",
            "Hi O'Brien & family, it's <time>",
        ),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<p>Line one<br>Line two<br/>Line three</p>", "Line one\nLine two\nLine three"),
        ("<h1>Welcome</h1><p>Body</p><h2>Next</h2>Tail", "Welcome\n\nBody\n\nNext\n\nTail"),
        ("<p>  lots   of\n   space </p>", "lots of space"),
        ("<p><strong>Bold</strong> and <em>slanted</em>.</p>", "Bold and slanted."),
        ("Before<hr>After", "Before\n\n----\n\nAfter"),
        ("<div>A</div><div>B</div>", "A\n\nB"),
        ("<style>p {color: red}</style><script>x()</script><p>Shown</p>", "Shown"),
        ("<ul><li><p>A</p></li><li><p>B</p><p>more</p></li></ul>", "- A\n- B\n  more"),
        (
            "<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Mon</td><td>8&ndash;5</td></tr></table>",
            "Day | Hours\nMon | 8\u20135",
        ),
        ('<p><img src="https://x.test/logo.png" alt="Spine &amp; Co"> news</p>', "Spine & Co news"),
    ],
)
def test_text_reads_like_the_html(html, text):
    assert html_to_text(html) == text


def test_nested_lists_keep_their_shape():
    html = (
        "<p>Bring:</p>"
        "<ul><li>Your card</li><li>Forms<ul><li>Intake</li><li>Consent</li></ul></li>"
        "<li>A smile</li></ul>"
        "<ol><li>Park</li><li>Check in</li></ol>"
        "<p>Thanks</p>"
    )

    assert html_to_text(html) == (
        "Bring:\n\n"
        "- Your card\n"
        "- Forms\n"
        "  - Intake\n"
        "  - Consent\n"
        "- A smile\n\n"
        "1. Park\n"
        "2. Check in\n\n"
        "Thanks"
    )


def test_each_link_is_its_text_and_its_url():
    html = (
        '<p>Book <a href="https://trackstat.test/l/abc">online</a> or '
        '<a href="https://trackstat.test/l/def">https://trackstat.test/l/def</a>, '
        '<a href="https://x.test/a?b=1&amp;c=2"><strong>here</strong></a> '
        '<a href="https://x.test/bare"></a> '
        '<a href="mailto:front@spine.test">write to us</a>.</p>'
    )

    assert html_to_text(html) == (
        "Book online (https://trackstat.test/l/abc) or https://trackstat.test/l/def, "
        "here (https://x.test/a?b=1&c=2) https://x.test/bare write to us "
        "(front@spine.test)."
    )


def test_the_unsubscribe_footer_writes_its_url_out():
    html = "<p>See you soon.</p>" + UNSUBSCRIBE_FOOTER.format(url=UNSUBSCRIBE)

    assert html_to_text(html) == (
        f"See you soon.\n\nDon't want these emails? Unsubscribe ({UNSUBSCRIBE})"
    )


@pytest.fixture
def fake():
    server = FakeProviders().start()
    yield server
    server.stop()


def test_sendgrid_sends_the_text_part(settings, fake):
    settings.SENDGRID_API_KEY = "SG.key"
    settings.SENDGRID_API_BASE_URL = fake.base_url
    body = (
        "<p>Hi O&#x27;Brien,</p><p>Time for a check-up: "
        '<a href="https://trackstat.test/l/abc">book now</a>.</p>'
        + UNSUBSCRIBE_FOOTER.format(url=UNSUBSCRIBE)
    )
    outgoing = Outgoing(
        outbox_id=43,
        practice_id=7,
        channel="email",
        to="obrien@example.com",
        sender="office@practice.test",
        subject="We miss you",
        body=body,
        unsubscribe_url=UNSUBSCRIBE,
    )

    SendGridProvider(timeout=5).send(outgoing)

    [request] = fake.requests
    assert request.data["content"] == [
        {
            "type": "text/plain",
            "value": "Hi O'Brien,\n\nTime for a check-up: book now "
            "(https://trackstat.test/l/abc).\n\n"
            f"Don't want these emails? Unsubscribe ({UNSUBSCRIBE})",
        },
        {"type": "text/html", "value": body},
    ]


@pytest.mark.django_db
def test_the_sandbox_page_shows_an_email_as_its_text_part(member_client):
    client = member_client(Role.USER)
    practice = client.membership.practice
    body = "<p>Hi O&#x27;Brien,</p>" + UNSUBSCRIBE_FOOTER.format(url=UNSUBSCRIBE)
    SandboxMessage.objects.create(
        practice=practice,
        provider_id="SB1",
        channel="email",
        to="obrien@example.com",
        subject="We miss you",
        body=body,
    )

    page = client.get(reverse("messaging:sandbox")).text

    assert "Hi O&#x27;Brien,<br><br>Don&#x27;t want these emails? Unsubscribe (" in page
    assert f"({UNSUBSCRIBE})" in page
    assert "&amp;#x27;" not in page
