"""``/healthz`` for load balancers and compose health checks.

Answered by the first middleware, before host validation and the HTTPS redirect: the probes
call it by container address over plain HTTP, which ALLOWED_HOSTS would otherwise refuse.

Besides the database it checks what a deployment can miss and only a page view would
otherwise reveal: the cache round-trips (the database cache's table exists; sign-in throttling
needs it) and the static files are findable (with the manifest storage of DEBUG off: the
manifest names a known file and the file is there). Any failure answers 503.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from campaigns.models import SchedulerHeartbeat

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
# A file every page links to (base.html).
KNOWN_STATIC_FILE = "css/app.css"


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


def _cache_ok() -> bool:
    key, value = f"healthz:{uuid.uuid4().hex}", uuid.uuid4().hex
    # Its own transaction (a savepoint inside one): a missing cache table must not break the
    # checks after it.
    with transaction.atomic():
        cache.set(key, value, timeout=30)
        found = cache.get(key)
        cache.delete(key)
    return found == value


def _static_ok() -> bool:
    if isinstance(staticfiles_storage, ManifestFilesMixin):
        try:
            name = staticfiles_storage.stored_name(KNOWN_STATIC_FILE)
        except ValueError:  # no manifest, or it does not name the file
            return False
        return staticfiles_storage.exists(name)
    # Development: runserver (and WhiteNoise with DEBUG) serve from the finders.
    return finders.find(KNOWN_STATIC_FILE) is not None


def _check(name: str, check: Callable[[], bool]) -> str:
    try:
        ok = check()
    except Exception as error:  # a health check reports failures; it must not raise them
        logger.warning("healthz: the %s check failed (%s)", name, type(error).__name__)
        return "fail"
    if not ok:
        logger.warning("healthz: the %s check failed", name)
    return "ok" if ok else "fail"


def health_status() -> dict:
    """Each check's verdict, when the scheduler last ticked (None if never), and ``status``:
    ok only if every check is."""
    checks = {"database": _check("database", _database_ok)}
    last_tick = None
    if checks["database"] == "ok":
        heartbeat = SchedulerHeartbeat.objects.filter(name="tick").first()
        last_tick = heartbeat.ticked_at.isoformat() if heartbeat else None
    checks["cache"] = _check("cache", _cache_ok)
    checks["static"] = _check("static", _static_ok)
    status = "ok" if all(value == "ok" for value in checks.values()) else "fail"
    return {"status": status, "last_tick": last_tick, **checks}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH:
            if request.method not in {"GET", "HEAD"}:
                return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
            status = health_status()
            return JsonResponse(status, status=200 if status["status"] == "ok" else 503)
        return self.get_response(request)
