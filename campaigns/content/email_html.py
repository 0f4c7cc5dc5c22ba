"""The HTML a campaign email may carry."""

from __future__ import annotations

import re

import nh3
from django.utils.html import linebreaks

# Tags that lay out lines themselves: a body with any of them is HTML written as HTML.
_LAYOUT_TAG = re.compile(r"<\s*(p|div|br|ul|ol|li|table|h[1-6]|blockquote|pre|hr)\b", re.I)


def sanitize_email_html(html: str) -> str:
    """Email bodies are HTML: keep formatting and links, drop scripts, styles and handlers.

    A body typed as plain text (line breaks but no tag that lays out lines) keeps the lines
    staff typed: a blank line starts a paragraph, a single line break is a ``<br>``. Without
    this, HTML would run every line into one paragraph, in the preview and in the inbox.
    """
    text = html or ""
    if "\n" in text.strip() and not _LAYOUT_TAG.search(text):
        text = linebreaks(text.strip().replace("\r\n", "\n"), autoescape=False)
    return nh3.clean(text, link_rel="noopener noreferrer")
