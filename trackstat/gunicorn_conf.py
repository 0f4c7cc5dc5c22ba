"""gunicorn's settings for the web process (``--config python:trackstat.gunicorn_conf`` in the
Dockerfile and docker-compose.yml).

The access log goes to stdout without query strings (``%(U)s``, the path, instead of the
request line) and without the Referer, which repeats the previous page's query: what staff
search for (patients' names, phones, emails) stays out of it. The error log drops query
strings too.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from trackstat.log_filters import StripQueryStringsFilter

accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'


class QuerylessLogger(Logger):
    """gunicorn's logger with query strings removed from its error log ("Error handling
    request /path?…")."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self.error_log.addFilter(StripQueryStringsFilter())


logger_class = QuerylessLogger
