"""REST API v1 of alerting: thin views over ``alerts.services`` and ``alerts.selectors``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import personal, selectors, services
from alerts import serializers as s
from alerts.models import AlertState, Silence
from kernel.errors import invalid
from kernel.http import request_ip
from tracking import selectors as tracking_selectors
from tracking.api.auth import AuthenticatedRequest
from tracking.api.body import request_body
from tracking.api.views import int_param
from tracking.validation import clean_moment

if TYPE_CHECKING:
    from tracking.models import Project, ProjectWithRole


def _project(request: AuthenticatedRequest, field: str = "project") -> ProjectWithRole | None:
    name = request.query_params.get(field)
    return tracking_selectors.project_get_for_user(request.user, name) if name else None


# --- Destinations --------------------------------------------------------------------------


class DestinationListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("team", str)], responses=s.DestinationSerializer(many=True)
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        team = None
        if request.query_params.get("team"):
            team, _ = tracking_selectors.team_get_for_user(
                request.user, request.query_params["team"]
            )
        found = selectors.destinations_for_user(request.user, team=team)
        return Response(s.DestinationSerializer(found, many=True).data)

    @extend_schema(request=s.DestinationWriteSerializer, responses={201: s.DestinationSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.DestinationWriteSerializer)
        team, role = tracking_selectors.team_get_for_user(request.user, data["team"])
        destination = services.destination_create(
            user=request.user,
            team=team,
            role=role,
            kind=data.get("kind"),
            name=data.get("name"),
            config=data.get("config"),
            ip=request_ip(request),
        )
        return Response(s.DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)


class DestinationDetailView(APIView):
    @extend_schema(responses=s.DestinationSerializer)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        destination = selectors.destination_get_for_user(request.user, pk)
        return Response(s.DestinationSerializer(destination).data)

    @extend_schema(request=s.DestinationPatchSerializer, responses=s.DestinationSerializer)
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        data = request_body(request, s.DestinationPatchSerializer, partial=True)
        destination = selectors.destination_get_for_user(request.user, pk)
        updated = services.destination_update(
            destination=destination,
            role=destination.role,
            data=data,
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(s.DestinationSerializer(updated).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, pk: int) -> Response:
        destination = selectors.destination_get_for_user(request.user, pk)
        services.destination_delete(
            destination=destination,
            role=destination.role,
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class DestinationTestView(APIView):
    @extend_schema(request=None, responses=s.NotificationSerializer)
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        destination = selectors.destination_get_for_user(request.user, pk)
        notification = services.destination_test(destination=destination, role=destination.role)
        return Response(s.NotificationSerializer(notification).data)


# --- Rules ---------------------------------------------------------------------------------------


class RuleListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("project", str)], responses=s.RuleSerializer(many=True)
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        rules = selectors.rules_for_user(request.user, project=_project(request))
        return Response(s.RuleSerializer(rules, many=True).data)

    @extend_schema(request=s.RuleWriteSerializer, responses={201: s.RuleSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.RuleWriteSerializer)
        project = tracking_selectors.project_get_for_user(request.user, data["project"])
        fields = {k: v for k, v in data.items() if k != "project"}
        rule = services.rule_create(
            user=request.user, project=project, data=fields, ip=request_ip(request)
        )
        return Response(s.RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(APIView):
    @extend_schema(responses=s.RuleSerializer)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(s.RuleSerializer(selectors.rule_get_for_user(request.user, pk)).data)

    @extend_schema(request=s.RulePatchSerializer, responses=s.RuleSerializer)
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        data = request_body(request, s.RulePatchSerializer, partial=True)
        rule = services.rule_update(
            rule=selectors.rule_get_for_user(request.user, pk),
            data=data,
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(s.RuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, pk: int) -> Response:
        rule = selectors.rule_get_for_user(request.user, pk)
        services.rule_delete(rule=rule, actor=request.user, ip=request_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Alerts, notifications, silences ------------------------------------------------------------


class AlertListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("project", str),
            OpenApiParameter("state", str, enum=AlertState.values),
        ],
        responses=s.AlertSerializer(many=True),
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        state = request.query_params.get("state") or None
        if state is not None and state not in AlertState.values:
            raise invalid("state", f"One of {', '.join(AlertState.values)}.")
        alerts = selectors.alerts_listed_for_user(
            request.user, project=_project(request), state=state
        )
        return Response(s.AlertSerializer(alerts[:500], many=True).data)


class AlertAcknowledgeView(APIView):
    @extend_schema(
        request=None,
        responses=s.AlertSerializer,
        description="Acknowledge a firing alert: no more reminders; it still resolves."
        " Editors and owners; acknowledging again, or a resolved alert, changes nothing.",
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        alert = selectors.alert_get_with_role(request.user, pk)
        services.alert_acknowledge(alert, actor=request.user, ip=request_ip(request))
        return Response(s.AlertSerializer(alert).data)


class NotificationListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("alert", int)], responses=s.NotificationSerializer(many=True)
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        alert_id = int_param(request, "alert", minimum=1, maximum=2**63 - 1)
        alert = selectors.alert_get_for_user(request.user, alert_id) if alert_id else None
        rows = selectors.notifications_for_user(request.user, alert=alert)
        return Response(s.NotificationSerializer(rows[:500], many=True).data)


def _until(value: Any) -> datetime:
    return clean_moment(value, field="until")


class SilenceListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("project", str)], responses=s.SilenceSerializer(many=True)
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        silences = selectors.silences_for_user(request.user, project=_project(request))
        return Response(s.SilenceSerializer(silences, many=True).data)

    @extend_schema(request=s.SilenceWriteSerializer, responses={201: s.SilenceSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.SilenceWriteSerializer)
        scope, role = self._scope(request, data)
        silence = services.silence_create(
            user=request.user,
            role=role,
            until=_until(data.get("until")),
            reason=data.get("reason", ""),
            **scope,
        )
        return Response(s.SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _scope(request: AuthenticatedRequest, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
        given = [name for name in ("project", "rule", "run") if data.get(name) is not None]
        if len(given) != 1:
            raise invalid("project", "Silence exactly one of: project, rule, run.")
        name, value = given[0], data[given[0]]
        if name == "project":
            project = tracking_selectors.project_get_for_user(request.user, value)
            return {"project": project}, project.role
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "An id.")
        if name == "rule":
            rule = selectors.rule_get_for_user(request.user, value)
            return {"rule": rule}, rule.role
        run = tracking_selectors.run_get_for_user(request.user, value)
        return {"run": run}, run.role


def _silenced(silence: Silence) -> Project:
    """The project whose alerts the silence mutes: its own, its rule's or its run's."""
    if silence.project is not None:
        return silence.project
    if silence.rule is not None:
        return silence.rule.project
    assert silence.run is not None  # the silence_has_scope constraint: one of the three is set
    return silence.run.project


class SilenceDetailView(APIView):
    @extend_schema(responses={204: None}, description="Ends the silence now.")
    def delete(self, request: AuthenticatedRequest, pk: int) -> Response:
        silence = selectors.silence_get_for_user(request.user, pk)
        team = _silenced(silence).team
        _, role = tracking_selectors.team_get_for_user(request.user, team.slug)
        services.silence_end(silence=silence, role=role)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- The caller's own alerts (alerts.personal) ----------------------------------------------------


class MyAlertsView(APIView):
    @extend_schema(
        responses=s.PersonalAlertsSerializer,
        description="Your personal alerts: about the runs you created, without a team rule.",
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(personal.public(personal.settings_of(request.user)))

    @extend_schema(
        request=s.PersonalAlertsWriteSerializer,
        responses=s.PersonalAlertsSerializer,
        description="Change your personal alerts; a field left out keeps its value.",
    )
    def put(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.PersonalAlertsWriteSerializer, partial=True)
        return Response(personal.public(personal.save_settings(request.user, data)))
