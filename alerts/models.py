"""Alerting: where to send (destinations), when (rules), what fired (alerts), the delivery log.

An ``Alert`` is one incident: a (rule, run, condition) fingerprint that is
``firing`` until it resolves; a unique constraint on the open fingerprint
makes "the same condition never opens two alerts at once" hold under races.
Each alert event (fired, resolved, repeat) writes one ``Notification`` per
destination in the same transaction (the outbox); Celery delivers them and
records every attempt on the row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tracking.models import Project, Run, Team


class DestinationKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"
    WEBHOOK = "webhook", "Webhook"
    PAGERDUTY = "pagerduty", "PagerDuty"
    TEAMS = "teams", "Microsoft Teams"
    DISCORD = "discord", "Discord"


class Destination(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=16, choices=DestinationKind.choices)
    name = models.CharField(max_length=100)
    config = models.JSONField(default=dict, help_text="Per kind; a webhook's secret is write-only.")
    enabled = models.BooleanField(default=True)
    broken = models.BooleanField(default=False, help_text="The service said the URL is gone.")
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Personal alerts (alerts.personal): set, the destination is this user's own, made for
    # them in the team of their run; the team's pages and API never list it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_destinations",
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=Q(owner__isnull=True),
                name="destination_unique_name",
            ),
            models.UniqueConstraint(
                fields=["team", "owner", "kind"],
                condition=Q(owner__isnull=False),
                name="destination_one_personal_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Trigger(models.TextChoices):
    RUN_FAILED = "run_failed", "Run failed or crashed"
    RUN_STALLED = "run_stalled", "Run stalled"
    RUN_NO_PROGRESS = "run_no_progress", "Run stopped logging metrics"
    METRIC_THRESHOLD = "metric_threshold", "Metric crosses a threshold"
    METRIC_WINDOW = "metric_window", "Metric's mean, min or max over a window crosses a threshold"
    METRIC_CHANGE = "metric_change", "Metric is worse than its best or a baseline run"
    METRIC_ZSCORE = "metric_zscore", "Metric is an outlier against its recent values"
    METRIC_NAN = "metric_nan", "Metric is NaN or infinite"
    METRIC_STAGNANT = "metric_stagnant", "Metric stopped improving"
    RUN_FINISHED = "run_finished", "Run finished"
    SDK_ALERT = "sdk_alert", "Training code raised an alert"
    RUN_EXPECTED = "run_expected", "An expected run did not start"


class AlertRule(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    trigger = models.CharField(max_length=24, choices=Trigger.choices)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Runs must carry every tag.")
    group = models.CharField(max_length=200, blank=True, help_text="Only runs of this group.")
    destinations = models.ManyToManyField(Destination, related_name="rules", blank=True)
    notify_on_resolve = models.BooleanField(default=True)
    repeat_interval = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds between reminders while firing; empty: never."
    )
    group_wait = models.PositiveIntegerField(
        default=30, help_text="Seconds alerts following a first one wait, to go out together."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Personal alerts (alerts.personal): set, the rule is this user's own and takes only the
    # runs they created; the team's pages and API never list it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_rules",
    )
    # Not a column: its parameters in words, set by alerts.pages for the rules page.
    summary: str
    # Not a column: why its alerts would reach nobody (alerts.reach), set by alerts.pages.
    reaches_nobody: str

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["project", "trigger"], name="rule_project_trigger")]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "owner", "trigger"],
                condition=Q(owner__isnull=False),
                name="rule_one_personal_per_trigger",
            )
        ]

    def __str__(self) -> str:
        return self.name


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    # None: an alert about a run that did not come (``run_expected``).
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    fingerprint = models.CharField(max_length=200, help_text="rule:run:condition")
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.FIRING)
    summary = models.CharField(max_length=300)
    values = models.JSONField(default=dict, blank=True, help_text="What made it fire.")
    fired_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    repeats = models.PositiveIntegerField(default=0)
    acknowledged_at = models.DateTimeField(
        null=True, blank=True, help_text="Someone is on it: no more reminders while it fires."
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Not a column: the link to its run, set by alerts.pages for the alerts pages.
    run_href: str

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(state="firing"),
                name="alert_one_firing_per_fingerprint",
            )
        ]
        indexes = [
            models.Index(fields=["state", "fired_at"], name="alert_state_fired"),
            # "did this rule fire in the last group_wait seconds?" (firing.group_delay)
            models.Index(fields=["rule", "fired_at"], name="alert_rule_fired"),
        ]

    def __str__(self) -> str:
        return self.summary


class NotificationEvent(models.TextChoices):
    FIRED = "fired", "Fired"
    RESOLVED = "resolved", "Resolved"
    REPEAT = "repeat", "Repeat"
    TEST = "test", "Test"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SILENCED = "silenced", "Silenced"


class Notification(models.Model):
    """One message to one destination about one alert event: the delivery log's row."""

    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=10, choices=NotificationEvent.choices)
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.destination_id}: {self.status}"


class Silence(models.Model):
    """Mutes a project, a rule or a run until a time; muted notifications are still logged."""

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    until = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(project__isnull=False) | Q(rule__isnull=False) | Q(run__isnull=False),
                name="silence_has_scope",
            )
        ]

    def __str__(self) -> str:
        return f"silence until {self.until:%Y-%m-%d %H:%M}"


class PersonalAlerts(models.Model):
    """What one user asked to be told about their own runs, without a team rule.

    The settings only: ``alerts.personal`` turns them into hidden rules and
    destinations (``owner`` set) in the projects the user's runs are in, so
    delivery, retries, grouping, silences and the delivery log are the team's.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_alerts"
    )
    on_failure = models.BooleanField(default=False, help_text="When a run of theirs fails.")
    hang_after_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="A run of theirs logged no metric this long; null: off."
    )
    email = models.BooleanField(default=False, help_text="To the user's address at send time.")
    slack_url = models.CharField(
        max_length=2048, blank=True, help_text="A Slack incoming webhook; write-only."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"personal alerts of user {self.user_id}"

    @property
    def wanted(self) -> bool:
        """Whether anything is turned on."""
        return self.on_failure or self.hang_after_seconds is not None


# --- The caller's role ---------------------------------------------------------------
# alerts.selectors annotate a destination or a rule with the caller's role in its team.

if TYPE_CHECKING:
    from typing import TypeAlias

    from django_stubs_ext import WithAnnotations

    from tracking.models import RoleAnnotation

    DestinationWithRole: TypeAlias = WithAnnotations[Destination, RoleAnnotation]
    RuleWithRole: TypeAlias = WithAnnotations[AlertRule, RoleAnnotation]
    AlertWithRole: TypeAlias = WithAnnotations[Alert, RoleAnnotation]
