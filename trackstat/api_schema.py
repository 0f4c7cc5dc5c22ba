"""The OpenAPI schema's view of the API: drf-spectacular's, plus the error answers every
operation can give (DESIGN §4.1), so that clients — and the schemathesis run in the tests —
know them from the schema instead of meeting them as surprises."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# ``{"errors": {field: [messages]}}`` (``trackstat.api_errors``); a body that is not valid
# JSON, CSV or form data is refused by the parser before validation, with a ``detail``.
BAD_REQUEST = {
    "anyOf": [
        {
            "type": "object",
            "properties": {"errors": {"type": "object"}},
            "required": ["errors"],
        },
        DETAIL,
    ]
}


def _error(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        # Any request can be refused as malformed (a NUL in its query string, say).
        errors = {"400": _error("Invalid input, per field.", BAD_REQUEST)}
        if operation.get("security"):
            errors["401"] = _error("No or an invalid API key.", DETAIL)
            errors["403"] = _error("Not a member of the practice, or a role too low.", DETAIL)
        if any(p["in"] == "path" for p in parameters) or any(
            p["name"] == "page" for p in parameters
        ):
            errors["404"] = _error("Unknown id (another practice's too), or no such page.", DETAIL)
        if operation.get("requestBody"):
            errors["415"] = _error("A body in a media type the operation does not take.", DETAIL)
        for status, response in errors.items():
            operation["responses"].setdefault(status, response)
        return operation
