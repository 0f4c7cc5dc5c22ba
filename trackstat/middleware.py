"""Request guards that hold for every view."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

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


# Session keys: when the user signed in, and when they were last seen (Unix seconds).
SESSION_STARTED_KEY = "trackstat_started_at"
SESSION_SEEN_KEY = "trackstat_seen_at"
# Last activity is written at most this often (a session write per minute, not per request);
# the idle limit is so judged at most this much early, never late.
ACTIVITY_RESOLUTION_SECONDS = 60


class SessionTimeoutMiddleware:
    """Automatic logoff: a signed-in session ends after ``SESSION_IDLE_TIMEOUT_SECONDS``
    without a request and ``SESSION_MAX_AGE_SECONDS`` after signing in, however active.

    Every request of the user counts as activity: no page polls (a test keeps it so), which
    would keep an unattended screen signed in. An expired session is flushed and the request
    goes on signed out (pages redirect to sign in, the API refuses); an htmx request gets
    ``HX-Redirect`` to the sign-in page instead of a fragment of it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        now = int(time.time())
        if request.user.is_authenticated:
            if self._expired(request.session, now):
                logout(request)
                if request.headers.get("HX-Request") == "true":
                    return HttpResponse(status=200, headers={"HX-Redirect": reverse("login")})
            else:
                self._seen(request.session, now)
        response = self.get_response(request)
        # Signed in by this request (the sign-in form): start the clocks. Only a session that
        # holds a signed-in user: an API key's caller has none and must not get one.
        if AUTH_SESSION_KEY in request.session and SESSION_STARTED_KEY not in request.session:
            self._seen(request.session, now)
        return response

    @staticmethod
    def _expired(session, now: int) -> bool:
        started = session.get(SESSION_STARTED_KEY, now)
        seen = session.get(SESSION_SEEN_KEY, now)
        return (
            now - seen > settings.SESSION_IDLE_TIMEOUT_SECONDS
            or now - started > settings.SESSION_MAX_AGE_SECONDS
        )

    @staticmethod
    def _seen(session, now: int) -> None:
        session.setdefault(SESSION_STARTED_KEY, now)
        if now - session.get(SESSION_SEEN_KEY, 0) >= ACTIVITY_RESOLUTION_SECONDS:
            session[SESSION_SEEN_KEY] = now


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (and its companions) on every response to a signed-in
    request and every API response: pages and JSON with patient data must not be kept by
    browsers or proxies."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") or request.user.is_authenticated:
            add_never_cache_headers(response)
        return response


class FriendlyErrorPagesMiddleware:
    """Pages, not blanks: a GET on a POST-only URL gets a page saying what to do (Django's 405
    has no body, so the browser shows its own blank error page), and with ``DEBUG`` on (what
    ``make run`` sets) a 404 is our "Not found" page rather than Django's debug listing of
    every URL. The API keeps its JSON answers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(("/api/", "/static/", "/webhooks/")):
            return response
        if response.status_code == 405 and not response.content:
            page = render(request, "405.html", status=405)
            page["Allow"] = response.get("Allow", "")
            return page
        if (
            response.status_code == 404
            and settings.DEBUG
            and "text/html" in response.get("Content-Type", "")
            and b"<title>Page not found at " in response.content  # Django's debug page
        ):
            return render(request, "404.html", status=404)
        return response
