"""``wants_partial``: the one rule for answering htmx with the swapped part alone."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django_htmx.middleware import HtmxMiddleware

from trackstat.htmx import wants_partial


def _asked(**headers) -> bool:
    seen = {}

    def view(request):
        seen["partial"] = wants_partial(request)
        return HttpResponse()

    HtmxMiddleware(view)(RequestFactory().get("/", headers=headers))
    return seen["partial"]


@pytest.mark.parametrize(
    ("headers", "partial"),
    [
        ({}, False),
        ({"HX-Request": "true"}, True),
        # The back button after htmx's history cache expired: the whole page.
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
        ({"HX-Request": "false"}, False),
    ],
)
def test_only_an_htmx_request_that_is_not_a_history_restore_gets_the_part(headers, partial):
    assert _asked(**headers) is partial


def test_a_request_the_htmx_middleware_never_saw_gets_the_whole_page():
    assert wants_partial(RequestFactory().get("/", headers={"HX-Request": "true"})) is False
