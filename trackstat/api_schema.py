"""The OpenAPI schema's view of the API: drf-spectacular's, plus the error answers every
operation can give (DESIGN §4.1), so that clients — and the schemathesis run in the tests —
know them from the schema instead of meeting them as surprises."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

# ``{"errors": {field: [messages]}}`` (``trackstat.api_errors``): every error answer, whether
# a field's, a body the parser refuses, a missing key or an unknown id (``non_field_errors``).
ERRORS = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "Messages by field; non_field_errors for the request as a whole.",
        }
    },
    "required": ["errors"],
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
        errors = {"400": _error("Invalid input, per field.", ERRORS)}
        if operation.get("security"):
            errors["401"] = _error("No or an invalid API key.", ERRORS)
            errors["403"] = _error("Not a member of the practice, or a role too low.", ERRORS)
        if any(p["in"] == "path" for p in parameters) or any(
            p["name"] == "page" for p in parameters
        ):
            errors["404"] = _error("Unknown id (another practice's too), or no such page.", ERRORS)
        if operation.get("requestBody"):
            errors["413"] = _error("A body larger than the server accepts.", ERRORS)
            errors["415"] = _error("A body in a media type the operation does not take.", ERRORS)
        for status, response in errors.items():
            operation["responses"].setdefault(status, response)
        return operation
