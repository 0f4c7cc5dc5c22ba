"""The Today page: where staff land after signing in (every role), at ``/`` and ``/today/``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from reports.today import today_summary
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, has_role


@require_safe
@login_required
def today(request: PracticeRequest) -> HttpResponse:
    """Every member's landing page; an account in no practice is told so."""
    if getattr(request, "membership", None) is None:
        return render(request, "trackstat/home.html")
    summary = today_summary(practice=request.practice, now=timezone.now())
    context = {"t": summary, "sees_campaigns": has_role(request, Role.USER_PLUS)}
    return render(request, "reports/today.html", context)
