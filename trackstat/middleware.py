"""Request guards that hold for every view."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

NUL_MESSAGE = "Null characters are not allowed."


class RejectNulCharactersMiddleware:
    """A NUL character in the path or the query string answers 400. PostgreSQL text can
    neither hold nor be compared with one, so a lookup by such a value (``?patient=%00``)
    would fail as a server error; no real client sends it (found by the API fuzzer)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            if request.path.startswith("/api/"):
                return JsonResponse({"errors": {"non_field_errors": [NUL_MESSAGE]}}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE)
        return self.get_response(request)
