"""Request-level tenancy: the current practice, the practice switcher and role checks.

Every view reads ``request.practice`` (the practice the signed-in user is working in) and
``request.membership`` (their role there). Objects are always fetched scoped to that practice,
so another practice's id is a 404, never a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from trackstat.models import Membership, Practice, Role

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from trackstat.models import User

SESSION_PRACTICE_KEY = "practice_id"


class PracticeRequest(HttpRequest):
    """What our middleware adds to a request (for type checkers and readers)."""

    user: User
    practice: Practice | None
    membership: Membership | None
    memberships: list[Membership]
    htmx: HtmxDetails


def memberships_for(user) -> list[Membership]:
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user=user).select_related("practice").order_by("practice__name")
    )


class CurrentPracticeMiddleware:
    """Sets ``request.practice`` and ``request.membership`` from the session.

    The practice chosen with the switcher is kept in the session; if the user no longer belongs
    to it (or never chose), their first practice is used.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.practice = None
        request.membership = None
        request.memberships = memberships_for(request.user)
        if request.memberships:
            wanted = request.session.get(SESSION_PRACTICE_KEY)
            membership = next(
                (m for m in request.memberships if m.practice_id == wanted), request.memberships[0]
            )
            request.membership = membership
            request.practice = membership.practice
            if wanted != membership.practice_id:
                request.session[SESSION_PRACTICE_KEY] = membership.practice_id
        return self.get_response(request)


class PracticeTimeZoneMiddleware:
    """Runs a page request in its practice's time zone (after ``CurrentPracticeMiddleware``).

    Django's own machinery then shows practice-local times: templates (``{{ at }}``,
    ``|date``), ``timezone.localtime`` and form fields all convert to the active zone, so pages
    convert nothing themselves. API requests keep UTC: DRF renders instants in the active
    zone, and the API's answers do not depend on who asks. Code that runs outside requests
    (the engine, tasks) passes its zones explicitly.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        practice = getattr(request, "practice", None)
        if practice is None or request.path.startswith("/api/"):
            return self.get_response(request)
        timezone.activate(practice.tz)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def practice_switch(request: HttpRequest, practice_id: int) -> bool:
    """Make ``practice_id`` the current practice, if the user belongs to it."""
    if any(m.practice_id == practice_id for m in request.memberships):
        request.session[SESSION_PRACTICE_KEY] = practice_id
        return True
    return False


def has_role(request: HttpRequest, role: Role) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has_role(role)


def role_required(role: Role):
    """The view needs a signed-in member of the current practice with at least ``role``.

    Anonymous users are sent to the login page; members with a weaker role, and users who
    belong to no practice, get 403.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request, role):
                raise PermissionDenied(f"This page needs the {role.label} role or higher.")
            return view(request, *args, **kwargs)

        wrapper.required_role = role
        return wrapper

    return decorator
