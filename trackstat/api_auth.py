"""REST API authentication (``Authorization: Api-Key <key>``), permissions and error shape."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from trackstat.models import ApiKey, Practice, Role
from trackstat.services import api_key_authenticate

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """The caller of a request signed with an API key: an EMR connector, not a person."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    @property
    def practice(self) -> Practice:
        return self.api_key.practice

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    """A practice's API key; the request then works in that practice only."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Api-Key <key>'.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key = api_key_authenticate(secret)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # The key, not the browser session, decides the practice.
        request._request.practice = api_key.practice
        request._request.membership = None
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return KEYWORD


def actor_of(request):
    """Who a write is audited as: the signed-in user, or the API key (``api-key:<prefix>``)."""
    return request.user if not isinstance(request.auth, ApiKey) else str(request.user)


class IsPracticeMember(permissions.BasePermission):
    """An API key, or a signed-in member whose role is high enough for the method.

    Views set ``required_role`` (reads, default User) and ``write_role`` (unsafe methods,
    default ``required_role``).
    """

    message = "You do not have the role this endpoint needs in the current practice."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            return True
        if not (request.user and request.user.is_authenticated):
            return False
        membership = getattr(request._request, "membership", None)
        required = getattr(view, "required_role", Role.USER)
        if request.method not in permissions.SAFE_METHODS:
            required = getattr(view, "write_role", required)
        return membership is not None and membership.has_role(required)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the API-key scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a practice's key from Settings → API keys.",
        }
