"""``{{ body|email_text }}``: an email's plain-text reading (``messaging.plaintext``), as a
text-only mail client shows it."""

from __future__ import annotations

from django import template

from messaging.plaintext import html_to_text

register = template.Library()


@register.filter
def email_text(html: str) -> str:
    return html_to_text(html)
