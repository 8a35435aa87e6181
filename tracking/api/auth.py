"""`Authorization: Bearer <token>` for the API, and what the token's scope allows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from tracking import scopes
from tracking.models import ApiToken
from tracking.services import TOKEN_NOT_VALID, TokenExpired, token_authenticate

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.views import APIView  # imports this module (through its settings)


class AuthenticatedRequest(Request):
    """The request of an API view: ``IsAuthenticated`` (the default) let only a user in.

    For the type checker only; DRF builds a plain ``Request``.
    """

    user: User


class TokenExpiredFailed(exceptions.AuthenticationFailed):
    default_code = "token_expired"  # the JSON error's code (tracking.api.errors)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        try:
            token = token_authenticate(raw)
        except TokenExpired as expired:
            raise TokenExpiredFailed(expired.message) from None
        if token is None:
            raise exceptions.AuthenticationFailed(TOKEN_NOT_VALID)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="labbook"'


class TokenScopePermission(permissions.BasePermission):
    """A ``read`` or ``ingest`` token reaches only its scope's endpoints (``tracking.scopes``).

    Refusals raise ``ScopeDenied``: 403 with the token's scope and the scopes that
    would do. Session logins carry no token and are not limited by scope.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, ApiToken):
            scopes.require(
                request.auth,
                endpoint=scopes.endpoint_of(request),
                method=request.method,
                path=request.path,
            )
        return True


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}
