"""REST API v1: thin views over tracking's services and selectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel.charts import MAX_CHART_RUNS
from kernel.errors import NotFound, invalid
from kernel.http import request_ip
from kernel.ids import by_id, is_id
from tracking import (
    console,
    history,
    ingest,
    invitations,
    media,
    run_filters,
    selectors,
    services,
)
from tracking.api import serializers as s
from tracking.api.auth import AuthenticatedRequest
from tracking.api.body import request_body
from tracking.api.pagination import ForgivingCursorPagination
from tracking.api.schema import error_response
from tracking.mlflow import artifacts
from tracking.models import ApiToken, MetricSeries, Role, Run, Team, TokenScope, with_role
from tracking.validation import clean_moment, float_to_json


def int_param(request: Request, name: str, *, minimum: int, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "Must be an integer.") from None
    if not minimum <= value <= maximum:
        raise invalid(name, f"Must be between {minimum} and {maximum}.")
    return value


def _with_series(run: Run) -> Run:
    """Reload ``run`` with what ``RunSerializer`` reads (tags, metric summaries)."""
    return (
        Run.objects.filter(pk=run.pk)
        .select_related("project__team")
        .prefetch_related("tag_rows", Prefetch("metric_series"))
        .get()
    )


# --- Teams and projects ---------------------------------------------------------------


class TeamListView(APIView):
    @extend_schema(responses=s.TeamSerializer(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        teams = selectors.teams_for_user(request.user)
        return Response(s.TeamSerializer(teams, many=True).data)

    @extend_schema(request=s.TeamCreateSerializer, responses={201: s.TeamSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.TeamCreateSerializer)
        created = services.team_create(
            slug=data.get("slug"), name=str(data.get("name") or ""), owner=request.user
        )
        team = with_role(created, Role.OWNER)
        return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamMemberListView(APIView):
    @extend_schema(
        responses=s.TeamMemberSerializer(many=True),
        description="The team's active members, owners first, then by username; for the"
        " team's members only (anyone else: 404). Comment boxes complete `@` mentions from it.",
    )
    def get(self, request: AuthenticatedRequest, team: str) -> Response:
        members = selectors.team_members_for_user(request.user, team)
        return Response(s.TeamMemberSerializer(members, many=True).data)


class ProjectListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="Only this team's projects.")],
        responses=s.ProjectSerializer(many=True),
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        projects = selectors.projects_for_user(
            request.user, team_slug=request.query_params.get("team")
        )
        return Response(s.ProjectSerializer(projects, many=True).data)

    @extend_schema(request=s.ProjectCreateSerializer, responses={201: s.ProjectSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.ProjectCreateSerializer)
        project = services.project_create(
            user=request.user,
            team_slug=data["team"],
            slug=data.get("name"),
            description=data.get("description") or "",
        )
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses=s.ProjectSerializer)
    def get(self, request: AuthenticatedRequest, team: str, project: str) -> Response:
        found = selectors.project_get_for_user(request.user, f"{team}/{project}")
        return Response(s.ProjectSerializer(found).data)


# --- Invitations -------------------------------------------------------------------------------

OWNERS_ONLY = error_response("You are a member of the team but not one of its owners.")
CLOSED = error_response("The invitation was already accepted, declined, revoked, or expired.")


def _owned_team(request: AuthenticatedRequest, team: str) -> Team:
    found, role = selectors.team_get_for_user(request.user, team)
    services.require_owner(role)
    return found


class TeamInvitationListView(APIView):
    @extend_schema(
        responses={200: s.TeamInvitationSerializer(many=True), 403: OWNERS_ONLY},
        description="The team's pending invitations; owners only (other members get 403).",
    )
    def get(self, request: AuthenticatedRequest, team: str) -> Response:
        pending = invitations.team_invitations(_owned_team(request, team))
        return Response(s.TeamInvitationSerializer(pending, many=True).data)

    @extend_schema(
        request=s.InvitationCreateSerializer,
        responses={201: s.TeamInvitationSerializer, 403: OWNERS_ONLY},
        description="Invite a username or an email address (owners only). The answer is the"
        " same whether or not an account answers to it; the invitee gets an email with a"
        " link, and joins only by accepting. An existing member or a pending invitation"
        " for the same name is a 400 on `member`.",
    )
    def post(self, request: AuthenticatedRequest, team: str) -> Response:
        data = request_body(request, s.InvitationCreateSerializer)
        found = _owned_team(request, team)
        invitation, _ = invitations.invitation_create(
            team=found,
            invitee=data.get("member"),
            role=data.get("role"),
            actor=request.user,
            ip=request_ip(request),
        )
        body = s.TeamInvitationSerializer(invitation).data
        return Response(body, status=status.HTTP_201_CREATED)


class TeamInvitationDetailView(APIView):
    @extend_schema(
        request=None, responses={204: None, 403: OWNERS_ONLY, 409: CLOSED}, description="Revoke."
    )
    def delete(self, request: AuthenticatedRequest, team: str, invitation_id: int) -> Response:
        found = _owned_team(request, team)
        invitation = invitations.invitation_get_for_team(found, invitation_id)
        invitations.invitation_revoke(
            invitation=invitation, actor=request.user, ip=request_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitationListView(APIView):
    @extend_schema(
        responses=s.MyInvitationSerializer(many=True),
        description="Your pending invitations to your username. An invitation to an email"
        " address is not listed: it is answered only through the link emailed to it.",
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        mine = invitations.invitations_for_user(request.user)
        return Response(s.MyInvitationSerializer(mine, many=True).data)


class InvitationAcceptView(APIView):
    @extend_schema(
        request=None,
        responses={200: s.TeamSerializer, 409: CLOSED},
        description="Join the team with the invitation's role. Only an invitation to your"
        " username is found here (404 otherwise): one to an email address is answered"
        " through its emailed link.",
    )
    def post(self, request: AuthenticatedRequest, invitation_id: int) -> Response:
        invitation = invitations.invitation_get_for_user(request.user, invitation_id)
        membership = invitations.invitation_accept(
            invitation=invitation, user=request.user, ip=request_ip(request)
        )
        team = with_role(membership.team, membership.role)
        return Response(s.TeamSerializer(team).data)


class InvitationDeclineView(APIView):
    @extend_schema(
        request=None,
        responses={204: None, 409: CLOSED},
        description="Decline an invitation to your username (one to an email address: 404).",
    )
    def post(self, request: AuthenticatedRequest, invitation_id: int) -> Response:
        invitation = invitations.invitation_get_for_user(request.user, invitation_id)
        invitations.invitation_decline(invitation=invitation, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Runs ----------------------------------------------------------------------------------


class RunCursorPagination(ForgivingCursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(
        self, request: Request, queryset: QuerySet[Run], view: APIView
    ) -> tuple[str, ...]:
        name = request.query_params.get("ordering") or "-created_at"
        if name not in selectors.RUN_ORDERINGS:
            choices = ", ".join(selectors.RUN_ORDERINGS)
            raise invalid("ordering", f"Ordering must be one of {choices}.")
        return selectors.RUN_ORDERINGS[name]


MAX_LISTED_IDS = 500  # one page of runs at the largest page_size


def _ids_param(request: Request, name: str = "ids", most: int = MAX_LISTED_IDS) -> list[int] | None:
    """Comma-separated run ids, de-duplicated in order; None when the parameter is absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if len(parts) > most:
        raise invalid(name, f"At most {most} ids.")
    # 19 digits hold any bigint; a longer string is no id (and int() refuses past 4,300).
    if not all(
        len(part) <= 19 and part.isascii() and part.isdigit() and is_id(int(part)) for part in parts
    ):
        raise invalid(name, "Comma-separated run ids (whole numbers from 1).")
    return list(dict.fromkeys(int(part) for part in parts))


RUN_LIST_PARAMETERS = [
    OpenApiParameter("project", str, description="'team/project'"),
    OpenApiParameter("status", str, description="Comma-separated statuses."),
    OpenApiParameter("tag", str, many=True, description="Repeat for runs carrying every tag."),
    OpenApiParameter("group", str),
    OpenApiParameter("search", str, description="Text in the name or notes."),
    OpenApiParameter(
        "ids",
        str,
        description=f"Comma-separated run ids (at most {MAX_LISTED_IDS}): only these runs."
        " Pages use it to re-read the runs they show when their live socket subscribes.",
    ),
    OpenApiParameter(
        "filter",
        str,
        many=True,
        description="Value conditions joined with `and`, as the runs table takes them:"
        " `summary.val/acc > 0.9 and config.optimizer = adam` (operators = != < <= > >= ~;"
        f" at most {run_filters.MAX_CONDITIONS} conditions). Repeat to add more."
        " See docs/api.md#run-filters.",
    ),
    OpenApiParameter("ordering", str, enum=list(selectors.RUN_ORDERINGS)),
]


class RunListView(APIView):
    pagination_class = RunCursorPagination  # read by the schema: a page, not a bare list

    @extend_schema(parameters=RUN_LIST_PARAMETERS, responses=s.RunSerializer(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        params = request.query_params
        project = None
        if params.get("project"):
            project = selectors.project_get_for_user(request.user, params["project"])
        runs = selectors.runs_for_user(
            request.user,
            project=project,
            status=[x for x in params.get("status", "").split(",") if x] or None,
            tags=params.getlist("tag") or None,
            group=params.get("group") or None,
            search=params.get("search") or None,
            ids=_ids_param(request),
        )
        runs = run_filters.apply(runs, run_filters.parse(params.getlist("filter")))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(s.RunSerializer(page, many=True).data)

    @extend_schema(
        request=s.RunCreateSerializer,
        responses={
            201: s.RunSerializer,
            200: s.RunSerializer,
            409: error_response("This `client_id` already created a run in another project."),
        },
        description="201 with a new run; 200 with the run an earlier request with the same"
        " `client_id` created (a retry).",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.RunCreateSerializer)
        project = services.project_get_or_create_for_write(
            user=request.user, full_name=data["project"]
        )
        fields = {k: v for k, v in data.items() if k != "project"}
        run, created = services.run_create_or_get(user=request.user, project=project, **fields)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.RunSerializer(_with_series(run)).data, status=code)


class RunDetailView(APIView):
    @extend_schema(responses=s.RunSerializer)
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        return Response(s.RunSerializer(_with_series(run)).data)

    @extend_schema(request=s.RunPatchSerializer, responses=s.RunSerializer)
    def patch(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.RunPatchSerializer, partial=True)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        updated = services.run_update(run=run, data=data)
        return Response(s.RunSerializer(_with_series(updated)).data)


class RunHeartbeatView(APIView):
    @extend_schema(request=None, responses=s.HeartbeatSerializer)
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        beat = services.run_heartbeat(run=run)
        return Response({"status": beat.status, "last_seen_at": beat.last_seen_at})


class RunAlertsView(APIView):
    @extend_schema(responses=s.SdkAlertSerializer(many=True))
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        alerts = run.sdk_alerts.all()[:100]
        return Response(s.SdkAlertSerializer(alerts, many=True).data)

    @extend_schema(
        request=s.SdkAlertCreateSerializer,
        responses={201: s.SdkAlertSerializer, 200: s.SdkAlertSerializer},
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.SdkAlertCreateSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        alert, raised = services.sdk_alert_raise(
            run=run,
            title=data.get("title"),
            text=data.get("text") or "",
            level=data.get("level") or "info",
            wait_seconds=data.get("wait_duration", 60),
        )
        alert.refresh_from_db(fields=["repeats"])
        alert.suppressed = not raised
        code = status.HTTP_201_CREATED if raised else status.HTTP_200_OK
        return Response(s.SdkAlertSerializer(alert).data, status=code)


# --- Artifacts -----------------------------------------------------------------------------

ARTIFACT_LIST = inline_serializer(
    "ArtifactList",
    {
        "artifacts": inline_serializer(
            "Artifact",
            {"path": serializers.CharField(), "size": serializers.IntegerField()},
            many=True,
        )
    },
)


class RunArtifactsView(APIView):
    @extend_schema(
        responses=ARTIFACT_LIST,
        operation_id="runs_artifacts_list",
        description="Every file the run has logged (MLflow `log_artifact`), by path.",
    )
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        return Response({"artifacts": artifacts.artifact_walk(run)})


class RunArtifactFileView(APIView):
    @extend_schema(
        responses={(200, "*/*"): OpenApiTypes.BINARY},
        operation_id="runs_artifact_download",
        description="The file as logged, its content type guessed from its name.",
    )
    def get(self, request: AuthenticatedRequest, run_id: int, path: str) -> FileResponse:
        run = selectors.run_get_for_user(request.user, run_id)
        location = artifacts.run_location(run, path)
        return artifacts.file_response(artifacts.artifact_file(location))


# --- Media ---------------------------------------------------------------------------------


def _media_url(request: Request, item: Any) -> str:
    return request.build_absolute_uri(reverse("api-media-file", args=[item.pk]))


class RunMediaView(APIView):
    @extend_schema(
        responses=s.MediaKeysSerializer,
        operation_id="runs_media_keys",
        description="Each key the run logged images, tables or histograms under.",
    )
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        return Response({"media": media.media_keys(run)})

    @extend_schema(
        request=s.MediaBatchSerializer,
        responses={200: s.MediaResultSerializer},
        operation_id="runs_media_log",
        description="Log images, tables and histograms at steps (`tracking/media.py`).",
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.MediaBatchSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)  # before decoding
        items = media.parse_items(data["items"])
        result = media.media_ingest(run=run, items=items)
        shown = [media.item_dict(item, _media_url(request, item)) for item in result.items]
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates, "items": shown}
        )


class MediaHistoryView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("step", int, description="Only the items at this step."),
            OpenApiParameter("step_min", int),
            OpenApiParameter("step_max", int),
            OpenApiParameter(
                "limit", int, description=f"At most this many items (up to {media.MAX_LIMIT})."
            ),
        ],
        responses=s.MediaItemsSerializer,
        operation_id="runs_media_items",
    )
    def get(self, request: AuthenticatedRequest, run_id: int, key: str) -> Response:
        top = media.MAX_STEP
        step = int_param(request, "step", minimum=0, maximum=top)
        step_min = int_param(request, "step_min", minimum=0, maximum=top)
        step_max = int_param(request, "step_max", minimum=0, maximum=top)
        limit = int_param(request, "limit", minimum=1, maximum=media.MAX_LIMIT)
        run = selectors.run_get_for_user(request.user, run_id)
        steps = media.media_steps(run, key)
        if not steps:
            raise NotFound(f"Media {key!r}", field="key")
        items = media.media_items(
            run,
            key,
            step=step,
            step_min=step_min,
            step_max=step_max,
            limit=limit or media.DEFAULT_LIMIT,
        )
        shown = [media.item_dict(item, _media_url(request, item)) for item in items]
        return Response({"key": key, "steps": steps, "items": shown})


class MediaFileView(APIView):
    @extend_schema(
        responses={(200, "*/*"): OpenApiTypes.BINARY},
        operation_id="media_file",
        description="An image as decoded on arrival, a table as JSON (`columns`, `rows`),"
        " or a text as UTF-8 `text/plain`.",
    )
    def get(self, request: AuthenticatedRequest, media_id: int) -> FileResponse:
        item = selectors.media_item_get_for_user(request.user, media_id)
        if not item.file:
            raise NotFound("File of media item")
        return artifacts.inline_response(media.open_file(item), media.content_type(item))


# --- Console output --------------------------------------------------------------------------


class RunConsoleView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("start", int, description="From this line number on."),
            OpenApiParameter("tail", int, description="The last this many lines instead."),
            OpenApiParameter("search", str, description="Only lines holding this text, any case."),
            OpenApiParameter("limit", int, description=f"At most {console.MAX_READ:,} lines."),
        ],
        responses=s.ConsoleReadSerializer,
        operation_id="runs_console_read",
        description="The run's console output as it was written (ANSI colour codes kept).",
    )
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        top = console.MAX_NUMBER
        start = int_param(request, "start", minimum=0, maximum=top)
        tail = int_param(request, "tail", minimum=1, maximum=console.MAX_READ)
        limit = int_param(request, "limit", minimum=1, maximum=console.MAX_READ)
        search = request.query_params.get("search", "")
        if len(search) > console.MAX_SEARCH:
            raise invalid("search", f"At most {console.MAX_SEARCH} characters.")
        run = selectors.run_get_for_user(request.user, run_id)
        lines = console.read(
            run, start=start, tail=tail, search=search, limit=limit or console.DEFAULT_READ
        )
        return Response(
            {**console.totals(run), "lines": [console.line_dict(line) for line in lines]}
        )

    @extend_schema(
        request=s.ConsoleBatchSerializer,
        responses={200: s.ConsoleResultSerializer},
        operation_id="runs_console_append",
        description="Append numbered lines; a line number stored before is a duplicate.",
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.ConsoleBatchSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        lines = console.parse_lines(data["lines"])
        result = console.console_append(run=run, lines=lines)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "dropped": result.dropped,
            }
        )


class RunConsoleTextView(APIView):
    @extend_schema(
        responses={(200, "text/plain"): OpenApiTypes.STR},
        operation_id="runs_console_download",
        description="The whole console as a text file, colour codes removed.",
    )
    def get(self, request: AuthenticatedRequest, run_id: int) -> StreamingHttpResponse:
        run = selectors.run_get_for_user(request.user, run_id)
        response = StreamingHttpResponse(
            console.plain_text(run), content_type="text/plain; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-console.txt"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


# --- Metrics -------------------------------------------------------------------------------


def _finite_or_none(value: float | None) -> float | str | None:
    """min/max skip NaN, so None means "no number yet"; infinities become strings."""
    return None if value is None else float_to_json(value)


def _series_dict(series: MetricSeries) -> dict[str, Any]:
    has = series.count > 0
    return {
        "key": series.key,
        "count": series.count,
        "nonfinite_count": series.nonfinite_count,
        "first_step": series.first_step,
        "last_step": series.last_step,
        "last": float_to_json(series.last_value) if has else None,
        "last_timestamp": series.last_timestamp,
        "min": _finite_or_none(series.min_value),
        "max": _finite_or_none(series.max_value),
    }


class RunMetricsView(APIView):
    @extend_schema(responses=s.MetricKeysSerializer)
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        metrics = [_series_dict(series) for series in selectors.run_series(run)]
        return Response({"metrics": metrics})

    @extend_schema(
        request=s.MetricsBatchSerializer,
        responses={
            200: s.IngestResultSerializer,
            413: error_response("More points than a batch may hold."),
        },
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.MetricsBatchSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        points = ingest.parse_points(data["points"])
        batch_id = ingest.clean_batch_id(data.get("batch_id"))
        result = ingest.metrics_ingest(run=run, points=points, batch_id=batch_id)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "replayed": result.replayed,
            }
        )


class MetricHistoryView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("max_points", int, description="Downsample to about this many."),
            OpenApiParameter("step_min", int),
            OpenApiParameter("step_max", int),
            OpenApiParameter("limit", int, description="Page size without max_points."),
            OpenApiParameter(
                "cursor", str, description="A page's next_cursor: the next page starts there."
            ),
        ],
        responses=s.HistorySerializer,
        operation_id="runs_metric_history",
    )
    def get(self, request: AuthenticatedRequest, run_id: int, key: str) -> Response:
        top = ingest.MAX_STEP
        max_points = int_param(request, "max_points", minimum=2, maximum=history.MAX_MAX_POINTS)
        step_min = int_param(request, "step_min", minimum=0, maximum=top)
        step_max = int_param(request, "step_max", minimum=0, maximum=top)
        limit = int_param(request, "limit", minimum=1, maximum=history.MAX_LIMIT)
        cursor = _cursor_param(request)
        run = selectors.run_get_for_user(request.user, run_id)
        series = selectors.series_get(run, key)
        result = history.metric_history(
            series,
            max_points=max_points,
            step_min=step_min,
            step_max=step_max,
            limit=limit or history.DEFAULT_LIMIT,
            cursor=cursor,
        )
        return Response(result.as_dict())


# One read of the histories API returns at most this many points in all (runs x max_points):
# 200 runs at 5,000 points, a few tens of MB of JSON at most.
MAX_HISTORIES_POINTS = 1_000_000


class MetricHistoriesView(APIView):
    """One metric of many runs in one read: a chart of a sweep is one request, not 200."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "runs",
                str,
                required=True,
                description=f"Comma-separated run ids (at most {MAX_CHART_RUNS}).",
            ),
            OpenApiParameter(
                "max_points",
                int,
                required=True,
                description="Downsample each run's line to about this many points (spikes"
                f" kept); runs x max_points at most {MAX_HISTORIES_POINTS:,}.",
            ),
            OpenApiParameter("step_min", int),
            OpenApiParameter("step_max", int),
            OpenApiParameter(
                "timestamps",
                bool,
                description="false: `timestamps` empty (a chart by step needs none), about"
                " half the bytes. Default true.",
            ),
        ],
        responses=s.HistoriesSerializer,
        operation_id="metric_histories",
    )
    def get(self, request: AuthenticatedRequest, key: str) -> Response:
        top = ingest.MAX_STEP
        ids = _ids_param(request, "runs", most=MAX_CHART_RUNS)
        if not ids:
            raise invalid("runs", "Name at least one run id.")
        max_points = int_param(request, "max_points", minimum=2, maximum=history.MAX_MAX_POINTS)
        if max_points is None:
            raise invalid("max_points", "Required: the points per line to downsample to.")
        if max_points * len(ids) > MAX_HISTORIES_POINTS:
            most = MAX_HISTORIES_POINTS // len(ids)
            raise invalid("max_points", f"At most {most} for {len(ids)} runs.")
        step_min = int_param(request, "step_min", minimum=0, maximum=top)
        step_max = int_param(request, "step_max", minimum=0, maximum=top)
        series_list = selectors.series_of_runs(request.user, ids, key)
        found = history.range_histories(
            series_list,
            max_points=max_points,
            step_min=step_min,
            step_max=step_max,
            timestamps=_bool_param(request, "timestamps", default=True),
        )
        drawn = {series.run_id for series in series_list}
        return Response(
            {
                "key": key,
                "histories": [
                    {"run": series.run_id, **found[series.pk].as_dict()} for series in series_list
                ],
                "missing": [run_id for run_id in ids if run_id not in drawn],
            }
        )


def _bool_param(request: Request, name: str, *, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true"):
        return True
    if raw.lower() in ("0", "false"):
        return False
    raise invalid(name, "Must be true or false.")


def _cursor_param(request: Request) -> history.PointKey | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        return history.parse_cursor(raw)
    except ValueError:
        raise invalid("cursor", "Must be the next_cursor of a history page.") from None


# --- Tokens ------------------------------------------------------------------------------------


def _expiry(value: Any) -> datetime | None:
    return clean_moment(value, field="expires_at", optional=True)


class TokenListView(APIView):
    @extend_schema(responses=s.TokenSerializer(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        tokens = ApiToken.objects.filter(user=request.user)
        return Response(s.TokenSerializer(tokens, many=True).data)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.TokenCreatedSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.TokenCreateSerializer)
        token, raw = services.token_create(
            user=request.user,
            name=data.get("name"),
            scope=data.get("scope") or TokenScope.FULL,
            expires_at=_expiry(data.get("expires_at")),
            ip=request_ip(request),
        )
        body = s.TokenSerializer(token).data
        body["token"] = raw
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, token_id: int) -> Response:
        token = by_id(ApiToken.objects.filter(user=request.user), token_id)
        if token is None:
            raise NotFound("Token")
        services.token_revoke(token=token, ip=request_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
