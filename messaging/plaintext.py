"""The plain-text part of an email, read off its HTML (DESIGN §7).

Campaign emails are sanitized HTML (``campaigns.content.email_html.sanitize_email_html``)
plus our own unsubscribe footer, so a small converter over the standard library's ``HTMLParser`` is
enough: text unescaped and its whitespace collapsed as a browser would, paragraphs and
headings as blocks separated by a blank line, ``<br>`` as a line break, lists as ``-`` or
``1.`` items indented by nesting, and each link as its text followed by its URL (once, when
the text is the URL), so a reader on a text-only client can follow every link, unsubscribe
included. Scripts and styles are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "nav",
        "p",
        "pre",
        "section",
        "summary",
        "table",
    }
)
LISTS = frozenset({"ul", "ol"})
ROWS = frozenset({"tr", "caption"})
CELLS = frozenset({"td", "th"})
HIDDEN = frozenset({"head", "script", "style", "template", "title"})
INDENT = "  "
WHITESPACE = re.compile(r"[ \t\n\r\f]+")


def html_to_text(html: str) -> str:
    """The plain-text reading of ``html``."""
    parser = _TextParser()
    parser.feed(html or "")
    parser.close()
    return parser.text()


def _same_url(text: str, url: str) -> bool:
    return text.strip().rstrip("/").lower() == url.strip().rstrip("/").lower()


class _TextParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.breaks = 0  # line breaks owed before the next text (2: a blank line)
        self.line_start = True
        self.hidden = 0
        self.pre = 0
        self.lists: list[list] = []  # [tag, next number] per open list
        self.item_prefix = ""  # the bullet of a list item not yet written
        self.links: list[tuple[str, int]] = []  # (href, index in parts where its text starts)
        self.cells = 0  # cells written in the current table row

    # --- writing ---------------------------------------------------------------------------

    def _break(self, count: int) -> None:
        if self.parts:  # never before the first text
            self.breaks = max(self.breaks, count)

    def _write(self, text: str) -> None:
        if self.breaks:
            self.parts.append("\n" * self.breaks)
            self.breaks = 0
            self.line_start = True
        if self.line_start:
            indent = INDENT * max(len(self.lists) - 1, 0) if self.lists else ""
            if self.item_prefix:
                self.parts.append(indent + self.item_prefix)
                self.item_prefix = ""
            elif self.lists:
                self.parts.append(indent + INDENT)  # a list item's continuation line
        self.parts.append(text)
        self.line_start = False

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            lines = data.split("\n")
            for index, line in enumerate(lines):
                if index:
                    self.breaks = max(self.breaks, 1)
                if line:
                    self._write(line)
            return
        text = WHITESPACE.sub(" ", data)
        if self.line_start or self.breaks or (self.parts and self.parts[-1].endswith(" ")):
            text = text.lstrip(" ")
        if text:
            self._write(text)

    # --- tags ------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "br":
            self._trim()
            self.breaks = max(self.breaks, 1) if self.parts else self.breaks
            if not self.parts:
                return
        elif tag == "hr":
            self._break(2)
            self._write("----")
            self._break(2)
        elif tag in LISTS:
            self._break(1 if self.lists else 2)
            self.lists.append([tag, 1])
        elif tag == "li":
            self._break(1)
            if self.lists and self.lists[-1][0] == "ol":
                self.item_prefix = f"{self.lists[-1][1]}. "
                self.lists[-1][1] += 1
            else:
                self.item_prefix = "- "
        elif tag in ROWS:
            self._break(1)
            self.cells = 0
        elif tag in CELLS:
            if self.cells:
                self._trim()
                self._write(" | ")
            self.cells += 1
        elif tag in BLOCKS:
            self._break(1 if self.lists else 2)  # a paragraph in a list item: its own line
            if tag == "pre":
                self.pre += 1
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.parts)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.handle_data(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif self.hidden:
            return
        elif tag in LISTS:
            if self.lists:
                self.lists.pop()
            self._break(1 if self.lists else 2)
        elif tag == "li":
            self.item_prefix = ""
            self._break(1)
        elif tag in ROWS:
            self._break(1)
        elif tag in BLOCKS:
            if tag == "pre":
                self.pre = max(self.pre - 1, 0)
            self._break(1 if self.lists else 2)
        elif tag == "a" and self.links:
            self._link_end(*self.links.pop())

    def _link_end(self, href: str, start: int) -> None:
        href = href.strip()
        if not href or href.startswith("#") or href.lower().startswith("javascript:"):
            return
        shown = href
        for scheme in ("mailto:", "tel:", "sms:"):
            if href.lower().startswith(scheme):
                shown = href[len(scheme) :].split("?", 1)[0]
        text = "".join(self.parts[start:]).strip()
        if not text:
            self._write(shown)
        elif not _same_url(text, href) and not _same_url(text, shown):
            self._trim()
            self._write(f" ({shown})")

    def _trim(self) -> None:
        """Drop the spaces at the end of what is written (before a break or a suffix)."""
        while self.parts and self.parts[-1].endswith(" ") and not self.line_start:
            self.parts[-1] = self.parts[-1].rstrip(" ")
            if self.parts[-1]:
                break
            self.parts.pop()

    # --- result ----------------------------------------------------------------------------

    def text(self) -> str:
        lines = "".join(self.parts).split("\n")
        text = "\n".join(line.rstrip() for line in lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
