"""Logging filters that keep patient data out of request logs.

Query strings carry what staff typed into GET forms (a patient search by name, phone or
email), so request lines are logged by path only: runserver's ``django.server`` logger
(``LOGGING``) and gunicorn's error log (``trackstat.gunicorn_conf``; its access log has a
format without the query string and the Referer).
"""

from __future__ import annotations

import logging
import re

QUERY_STRING = re.compile(r"\?[^\s'\"]*")


def without_query_strings(text: str) -> str:
    """``text`` with every ``?query`` after a URL or path removed."""
    return QUERY_STRING.sub("", text)


class StripQueryStringsFilter(logging.Filter):
    """Removes query strings from a record's message and its string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = without_query_strings(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                without_query_strings(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


class NoTracebackForClientErrorsFilter(logging.Filter):
    """A refused request (403, 404, 405: the client's mistake, not ours) is logged as one line
    with its status and path, without the traceback of the exception Django raised for it;
    server errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True
