"""The REST API's error shape (DESIGN §4.1): ``{"errors": {field: [messages]}}`` with 400."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, with validation errors shaped as ``{"errors": {field: [messages]}}``."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        detail = response.data
        if not isinstance(detail, dict):
            detail = {"non_field_errors": detail if isinstance(detail, list) else [detail]}
        response.data = {"errors": detail}
    return response
