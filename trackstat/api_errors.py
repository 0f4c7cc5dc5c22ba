"""The REST API's error shape (DESIGN §4.1): ``{"errors": {field: [messages]}}``.

Every error answered under ``/api/`` has that shape, whatever raised it: a field's validation
(400), a body that is not JSON (400) or too large (413), a missing key (401), a role too low
(403), an unknown id or route (404), a wrong method (405), and an unexpected failure (500).
Errors about no field in particular sit under ``non_field_errors``.

An unexpected failure answers a generic 500 (no traceback, nothing from the request) and is
logged for operators with where it happened — the exception's type and its stack — but not
its message, which may quote patient data (a database error repeats the values it refused).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from trackstat.validators import InvalidValue, storable_json

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"
SERVER_ERROR_MESSAGE = "Internal server error. It has been logged; try again later."
BAD_REQUEST_MESSAGE = "Bad request."


def too_large_message() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return (
        f"The request body is larger than {limit // (1024 * 1024)} MB; "
        "send fewer records per request."
    )


def error_body(detail: Any) -> dict:
    """``{"errors": {...}}`` from a field dict, a list of messages or one message."""
    if isinstance(detail, dict):
        errors = detail
    elif isinstance(detail, list):
        errors = {NON_FIELD: detail}
    else:
        errors = {NON_FIELD: [detail]}
    # Messages may repeat what the client sent (a choice's value, an unknown key): a lone
    # surrogate there could not be written out as UTF-8.
    return {"errors": storable_json(errors)}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def log_unexpected(exc: BaseException, request: HttpRequest | None) -> None:
    """Log an unexpected failure for operators: the route and the stack, never the message
    (nor the path's values: a route pattern, not the URL)."""
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None else "?"
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "Unhandled %s in %s %s\n%s",
        type(exc).__name__,
        getattr(request, "method", "?"),
        route,
        stack,
    )


def exception_handler(exc, context):
    """DRF's handler, with every error in the API's shape (see the module docstring)."""
    if isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(
            error_body(too_large_message()), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        log_unexpected(exc, getattr(request, "_request", request))
        set_rollback()
        return Response(error_body(SERVER_ERROR_MESSAGE), status=500)
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(response.data)
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = error_body(response.data["detail"])
    else:
        response.data = error_body(response.data)
    return response


def query_param(request, name: str, parse: Callable[[str], Any], default: Any = None) -> Any:
    """A query-string parameter read by one of ``trackstat.validators``' rules; absent or
    blank gives ``default``, a bad value a 400 naming the parameter."""
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return parse(raw)
    except InvalidValue as error:
        raise exceptions.ValidationError({name: [str(error)]}) from None


# --- Django's own error views, for what happens outside DRF's views -------------------------


def _json_error(message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(message), status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: under ``/api/``, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a JSON
    413, any other refused request a JSON 400."""
    if is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return _json_error(too_large_message(), 413)
        return _json_error(BAD_REQUEST_MESSAGE, 400)
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: a URL under ``/api/`` that matches no route (``/api/v1/campaigns/abc``)
    answers the API's JSON 404, not the HTML page a browser gets."""
    if is_api(request):
        return _json_error("Not found.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: under ``/api/``, JSON without a traceback (Django has logged it)."""
    if is_api(request):
        return _json_error(SERVER_ERROR_MESSAGE, 500)
    return defaults.server_error(request)
