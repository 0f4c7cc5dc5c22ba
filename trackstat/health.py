"""``/healthz`` for load balancers and compose health checks.

Answered by the first middleware, before host validation and the HTTPS redirect: the probes
call it by container address over plain HTTP, which ALLOWED_HOSTS would otherwise refuse.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from campaigns.models import SchedulerHeartbeat

HEALTH_PATH = "/healthz"


def health_status() -> dict:
    """The database answers; when the scheduler last ticked (None if never)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    heartbeat = SchedulerHeartbeat.objects.filter(name="tick").first()
    return {"status": "ok", "last_tick": heartbeat.ticked_at.isoformat() if heartbeat else None}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH:
            if request.method not in {"GET", "HEAD"}:
                return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
            return JsonResponse(health_status())
        return self.get_response(request)
