"""REST API v1 of the audit log: a team's events, for its owners."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditAction
from audit.selectors import audit_events, clean_before
from kernel.errors import ApplicationError
from tracking import selectors
from tracking.api.audit_serializers import AuditEventSerializer
from tracking.api.auth import AuthenticatedRequest
from tracking.api.pagination import ForgivingCursorPagination
from tracking.api.schema import error_response
from tracking.validation import clean_moment


class AuditCursorPagination(ForgivingCursorPagination):
    """Keyset pages, newest first: new events never shift the pages a reader is walking."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request: Request) -> Cursor | None:
        # The cursor is the client's to forge: a position that is no moment would reach
        # the database as one (and fail there), so it is a bad cursor like any other.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not _moment(str(cursor.position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor


def _moment(value: str) -> bool:
    try:
        parsed = parse_datetime(value)
        return parsed is not None and clean_before(parsed) is not None
    except (ValueError, ApplicationError):
        return False


AUDIT_PARAMETERS = [
    OpenApiParameter("action", str, enum=AuditAction.values, description="Only this action."),
    OpenApiParameter(
        "before", OpenApiTypes.DATETIME, description="Only events before this moment (ISO 8601)."
    ),
]


class TeamAuditEventListView(APIView):
    pagination_class = AuditCursorPagination  # read by the schema: a page, not a bare list

    @extend_schema(
        parameters=AUDIT_PARAMETERS,
        responses={
            200: AuditEventSerializer(many=True),
            403: error_response("You are a member of the team but not one of its owners."),
        },
        description="The team's audit log, newest first; owners only (other members get 403)."
        " Only the team's own events: API token events belong to their user, not to a team.",
    )
    def get(self, request: AuthenticatedRequest, team: str) -> Response:
        params = request.query_params
        events = audit_events(
            selectors.audit_log_team(request.user, team),
            action=params.get("action") or None,
            before=clean_moment(params.get("before"), field="before", optional=True),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)
