"""API shapes of alerting: inputs declare the fields a request takes (``request_body``),
``alerts.services`` checks their values."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.models import (
    Alert,
    AlertRule,
    Destination,
    DestinationKind,
    Notification,
    Silence,
    Trigger,
)
from alerts.personal import HANG_AFTER
from alerts.services import MAX_GROUP_WAIT, MAX_REPEAT, MIN_REPEAT
from alerts.transports import transport_for
from kernel.limits import max_length
from tracking.api.serializers import run_url
from tracking.validation import MAX_TAG_LENGTH, MAX_TAGS


def public_config(destination: Destination) -> dict[str, Any]:
    """The config as the API shows it: secrets (a webhook's, a Slack URL's key) masked."""
    return transport_for(destination.kind).public_config(destination.config)


class DestinationSerializer(serializers.ModelSerializer[Destination]):
    team = serializers.CharField(source="team.slug", read_only=True)
    config = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = [
            "id", "team", "kind", "name", "config", "enabled", "broken", "last_error",
            "last_error_at", "last_success_at", "created_at",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_config(self, destination: Destination) -> dict[str, Any]:
        return public_config(destination)


class DestinationWriteSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(help_text="the team's slug")
    kind = serializers.ChoiceField(choices=DestinationKind.choices)
    name = serializers.CharField(max_length=max_length(Destination, "name"))
    config = serializers.DictField(
        help_text='email: {"addresses": [...]} or {"team_members": true};'
        ' slack, teams, discord: {"url"}; webhook: {"url", "secret"};'
        ' pagerduty: {"routing_key", "url" (optional)}'
    )
    enabled = serializers.BooleanField(required=False)


class DestinationPatchSerializer(DestinationWriteSerializer):
    """What a PATCH may change: the team and the kind stay as created."""

    team = None  # type: ignore[assignment]  # DRF: None removes an inherited field
    kind = None  # type: ignore[assignment]


class RuleSerializer(serializers.ModelSerializer[AlertRule]):
    project = serializers.CharField(source="project.full_name", read_only=True)
    destinations: serializers.PrimaryKeyRelatedField[Destination] = (
        serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    )

    class Meta:
        model = AlertRule
        fields = [
            "id", "project", "name", "trigger", "params", "tags", "group", "destinations",
            "notify_on_resolve", "repeat_interval", "group_wait", "enabled", "created_at",
        ]  # fmt: skip


class RuleWriteSerializer(serializers.Serializer[Any]):
    project = serializers.CharField(help_text="'team/project'")
    name = serializers.CharField(max_length=max_length(AlertRule, "name"))
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    params = serializers.DictField(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH), max_length=MAX_TAGS, required=False
    )
    group = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(AlertRule, "group")
    )
    destinations = serializers.ListField(child=serializers.IntegerField(), required=False)
    notify_on_resolve = serializers.BooleanField(required=False)
    repeat_interval = serializers.IntegerField(
        required=False, allow_null=True, min_value=MIN_REPEAT, max_value=MAX_REPEAT
    )
    group_wait = serializers.IntegerField(required=False, min_value=0, max_value=MAX_GROUP_WAIT)
    enabled = serializers.BooleanField(required=False)


class RulePatchSerializer(RuleWriteSerializer):
    """What a PATCH may change: a rule stays in the project it was made in."""

    project = None  # type: ignore[assignment]  # DRF: None removes an inherited field


class AlertSerializer(serializers.ModelSerializer[Alert]):
    rule = serializers.CharField(source="rule.name", read_only=True)
    rule_id = serializers.IntegerField(read_only=True)
    trigger = serializers.CharField(source="rule.trigger", read_only=True)
    project = serializers.CharField(source="rule.project.full_name", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True)
    run_url = serializers.SerializerMethodField()
    acknowledged_by = serializers.SerializerMethodField(help_text="the username; null: nobody")

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "rule_id", "trigger", "project", "run", "run_url", "state", "summary",
            "values", "fired_at", "resolved_at", "last_notified_at", "acknowledged_at",
            "acknowledged_by",
        ]  # fmt: skip

    def get_run_url(self, alert: Alert) -> str | None:
        return run_url(alert.run) if alert.run is not None else None

    def get_acknowledged_by(self, alert: Alert) -> str | None:
        user = alert.acknowledged_by
        return user.get_username() if user is not None else None


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    destination_name = serializers.CharField(source="destination.name", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "alert", "destination", "destination_name", "event", "status", "attempts",
            "last_error", "response_code", "latency_ms", "created_at", "next_attempt_at",
            "sent_at",
        ]  # fmt: skip


class SilenceSerializer(serializers.ModelSerializer[Silence]):
    project = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = ["id", "project", "rule", "run", "until", "reason", "created_at", "active"]

    def get_project(self, silence: Silence) -> str | None:
        return silence.project.full_name if silence.project is not None else None

    def get_active(self, silence: Silence) -> bool:
        from django.utils import timezone

        return silence.until > timezone.now()


class SilenceWriteSerializer(serializers.Serializer[Any]):
    project = serializers.CharField(required=False, help_text="'team/project'")
    rule = serializers.IntegerField(required=False)
    run = serializers.IntegerField(required=False)
    until = serializers.DateTimeField()
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Silence, "reason")
    )


# --- Personal alerts (alerts.personal) ----------------------------------------------------------


class PersonalAlertsSerializer(serializers.Serializer[Any]):
    """A user's own alerts: ``alerts.personal.public`` (the Slack URL's key masked)."""

    on_failure = serializers.BooleanField()
    hang_after_seconds = serializers.IntegerField(allow_null=True)
    email = serializers.BooleanField()
    slack_url = serializers.CharField(allow_blank=True)


class PersonalAlertsWriteSerializer(serializers.Serializer[Any]):
    on_failure = serializers.BooleanField(
        required=False, help_text="Tell me when a run I created fails, crashes or is killed."
    )
    hang_after_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=HANG_AFTER.low,
        max_value=HANG_AFTER.high,
        help_text="Tell me when a running run of mine logged no metric this long; null: off.",
    )
    email = serializers.BooleanField(required=False, help_text="To my account's address.")
    slack_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="A Slack incoming webhook URL; empty: none. Sent back masked as shown, it"
        " keeps the stored one.",
    )
