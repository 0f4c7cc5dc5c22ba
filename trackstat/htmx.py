"""htmx on our pages: when a view answers with the swapped part alone.

Every page works without JavaScript; with htmx, a view renders only the ``{% partialdef %}``
block that the request swaps (``"page.html#part"``). Views ask ``wants_partial`` rather than
reading ``request.htmx`` or the ``HX-Request`` header themselves, so the rule is one rule.
"""

from __future__ import annotations

from django.http import HttpRequest


def wants_partial(request: HttpRequest) -> bool:
    """Whether to answer with the swapped part alone: a request htmx made, except a history
    restore (the back button after htmx's history cache expired), which needs the whole page.

    Needs ``django_htmx.middleware.HtmxMiddleware`` (it sets ``request.htmx``).
    """
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request
