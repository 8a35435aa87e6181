"""REST API v1 for reports: thin views over ``reports_app.services`` and ``selectors``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel.errors import NotFound, invalid
from kernel.http import request_ip
from reports_app import merge, render, selectors, services
from reports_app.api import serializers as s
from tracking import selectors as tracking_selectors
from tracking.api.auth import AuthenticatedRequest
from tracking.api.body import request_body
from tracking.api.pagination import ForgivingCursorPagination
from tracking.api.schema import error_response
from tracking.validation import clean_moment

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole

STALE_REVISION = error_response("`revision` is not the newest: see `error.details.current`.")


class ReportCursorPagination(ForgivingCursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-updated_at", "-id")


def _report(request: AuthenticatedRequest, report_id: int) -> ReportWithRole:
    return selectors.report_get_for_user(request.user, report_id)


class ReportListView(APIView):
    pagination_class = ReportCursorPagination  # read by the schema: a page, not a bare list

    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, description="'team/project'"),
            OpenApiParameter("search", str, description="Text in the title or body."),
        ],
        responses=s.ReportListSerializer(many=True),
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        project = None
        if request.query_params.get("project"):
            project = tracking_selectors.project_get_for_user(
                request.user, request.query_params["project"]
            )
        search = request.query_params.get("search", "").strip()[:200] or None
        reports = selectors.reports_for_user(request.user, project=project, search=search)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reports, request, view=self)
        return paginator.get_paginated_response(s.ReportListSerializer(page, many=True).data)

    @extend_schema(request=s.ReportCreateSerializer, responses={201: s.ReportSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.ReportCreateSerializer)
        if not isinstance(data.get("project"), str) or not data["project"]:
            raise invalid("project", "This field is required: 'team/project'.")
        project = tracking_selectors.project_get_for_user(request.user, data["project"])
        report = services.report_create(
            user=request.user,
            project=project,
            title=data.get("title"),
            body=data.get("body", ""),
            visibility=data.get("visibility", "team"),
        )
        return Response(s.ReportSerializer(report).data, status=status.HTTP_201_CREATED)


class ReportDetailView(APIView):
    @extend_schema(responses=s.ReportSerializer)
    def get(self, request: AuthenticatedRequest, report_id: int) -> Response:
        return Response(s.ReportSerializer(_report(request, report_id)).data)

    @extend_schema(
        request=s.ReportPatchSerializer,
        responses={200: s.ReportSerializer, 409: STALE_REVISION},
        description="Saves a new revision. 409 when `revision` is not the newest: the error's"
        " `details.current` holds the newest revision's number, title and body.",
    )
    def patch(self, request: AuthenticatedRequest, report_id: int) -> Response:
        data = request_body(request, s.ReportPatchSerializer, partial=True)
        if "revision" not in data:
            raise invalid("revision", "Send the revision you edited.")
        report = services.report_save(
            report=_report(request, report_id),
            user=request.user,
            revision=data["revision"],
            title=data.get("title"),
            body=data.get("body"),
            visibility=data.get("visibility"),
        )
        return Response(s.ReportSerializer(report).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, report_id: int) -> Response:
        services.report_delete(
            report=_report(request, report_id), user=request.user, ip=request_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevisionListView(APIView):
    @extend_schema(responses=s.RevisionSerializer(many=True))
    def get(self, request: AuthenticatedRequest, report_id: int) -> Response:
        revisions = selectors.revisions(_report(request, report_id))
        return Response(s.RevisionSerializer(revisions, many=True).data)


class RevisionDetailView(APIView):
    @extend_schema(responses=s.RevisionDetailSerializer)
    def get(self, request: AuthenticatedRequest, report_id: int, number: int) -> Response:
        revision = selectors.revision_get(_report(request, report_id), number)
        return Response(s.RevisionDetailSerializer(revision).data)


class RevisionRestoreView(APIView):
    @extend_schema(
        request=s.RestoreSerializer, responses={200: s.ReportSerializer, 409: STALE_REVISION}
    )
    def post(self, request: AuthenticatedRequest, report_id: int, number: int) -> Response:
        data = request_body(request, s.RestoreSerializer)
        report = services.report_restore(
            report=_report(request, report_id),
            user=request.user,
            number=number,
            revision=data.get("revision"),
        )
        return Response(s.ReportSerializer(report).data)


class DraftView(APIView):
    @extend_schema(responses=s.DraftSerializer, description="404 when you have no draft.")
    def get(self, request: AuthenticatedRequest, report_id: int) -> Response:
        draft = selectors.draft_for(_report(request, report_id), request.user)
        if draft is None:
            raise NotFound("Draft")
        return Response(s.DraftSerializer(draft).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, report_id: int) -> Response:
        services.draft_discard(report=_report(request, report_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.DraftSerializer, responses=s.DraftSerializer)
    def put(self, request: AuthenticatedRequest, report_id: int) -> Response:
        data = request_body(request, s.DraftSerializer)
        draft = services.draft_save(
            report=_report(request, report_id),
            user=request.user,
            title=data.get("title"),
            body=data.get("body", ""),
            base_revision=data.get("revision"),
        )
        return Response(s.DraftSerializer(draft).data)


def _chunks(merged: merge.Merge) -> list[dict[str, Any]]:
    return [
        {"kind": "unchanged", "lines": chunk.base, "base": [], "mine": [], "theirs": []}
        if chunk.kind == "unchanged"
        else {
            "kind": chunk.kind,
            "lines": [] if chunk.kind == "conflict" else chunk.lines,
            "base": chunk.base,
            "mine": chunk.mine,
            "theirs": chunk.theirs,
        }
        for chunk in merged.chunks
    ]


class MergeView(APIView):
    @extend_schema(
        request=s.ReportMergeSerializer,
        responses=s.ReportMergeResultSerializer,
        description="Merges your text, started from `revision`, with the newest revision"
        " (three-way, line by line) and saves nothing. Lines only one side changed are"
        " merged; lines both changed differently are `conflict` chunks to choose from. Save"
        " the result with `PATCH` naming the answer's `revision`.",
    )
    def post(self, request: AuthenticatedRequest, report_id: int) -> Response:
        data = request_body(request, s.ReportMergeSerializer)
        merged = services.report_merge(
            report=_report(request, report_id),
            user=request.user,
            revision=data.get("revision"),
            title=data.get("title"),
            body=data.get("body"),
        )
        return Response(
            {
                "base": merged.base,
                "revision": merged.revision,
                "authors": merged.authors,
                "clean": merged.clean,
                "title": _chunks(merged.title),
                "body": _chunks(merged.body),
            }
        )


class PreviewView(APIView):
    @extend_schema(
        request=s.PreviewSerializer,
        responses=s.PreviewResultSerializer,
        description="Renders `body` as the report page would (sanitized HTML and chart figures).",
    )
    def post(self, request: AuthenticatedRequest, report_id: int) -> Response:
        data = request_body(request, s.PreviewSerializer)
        report = _report(request, report_id)
        services.require_edit(report, request.user)
        body = data.get("body")
        if not isinstance(body, str) or len(body) > services.MAX_BODY:
            raise invalid("body", f"Markdown text of at most {services.MAX_BODY} characters.")
        rendered = render.render_report(report, body=body)
        return Response(
            {
                "html": rendered.html,
                "figures": [f.as_dict() for f in rendered.figures],
                "errors": rendered.errors,
            }
        )


# --- Share links ---------------------------------------------------------------------------


def _expiry(value: Any) -> datetime | None:
    return clean_moment(value, field="expires_at", optional=True)


class ShareLinkListView(APIView):
    @extend_schema(responses=s.ShareLinkSerializer(many=True))
    def get(self, request: AuthenticatedRequest, report_id: int) -> Response:
        report = _report(request, report_id)
        if not services.can_manage_links(report, request.user):
            return Response([])
        return Response(s.ShareLinkSerializer(selectors.share_links(report), many=True).data)

    @extend_schema(
        request=s.ShareLinkCreateSerializer, responses={201: s.ShareLinkCreatedSerializer}
    )
    def post(self, request: AuthenticatedRequest, report_id: int) -> Response:
        data = request_body(request, s.ShareLinkCreateSerializer)
        flags = {name: data.get(name, False) for name in ("hide_authors", "embeddable")}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise invalid(name, "Must be true or false.")
        link, token = services.share_link_create(
            report=_report(request, report_id),
            user=request.user,
            expires_at=_expiry(data.get("expires_at")),
            ip=request_ip(request),
            **flags,
        )
        body = s.ShareLinkSerializer(link).data
        body.update(token=token, url=s.share_url(token))
        return Response(body, status=status.HTTP_201_CREATED)


class ShareLinkDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, link_id: int) -> Response:
        link = selectors.share_link_get_for_user(request.user, link_id)
        services.share_link_revoke(link=link, user=request.user, ip=request_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
