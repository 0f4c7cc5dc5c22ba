"""The HTML a campaign email may carry."""

from __future__ import annotations

import nh3


def sanitize_email_html(html: str) -> str:
    """Email bodies are HTML: keep formatting and links, drop scripts, styles and handlers."""
    return nh3.clean(html, link_rel="noopener noreferrer")
