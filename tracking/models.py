"""Teams, members, API tokens, projects, runs and their metrics.

Metric storage is split in three tables so that the hot paths never scan a
whole series:

* ``MetricSeries`` — one row per (run, key): the running summary (count,
  first/last step, last value, min, max) updated by every ingest batch.
* ``MetricPoint`` — one row per point. A step may hold several points (MLflow
  logs every point without a step at step 0; a step may be logged again with
  another value): the primary key (series, step, timestamp, seq) orders a
  series by step, then time, then arrival, and is the index that serves
  "history of key k in run r". ``seq`` tells apart points of the same step
  and timestamp with different values (0, 1, ...); an exact repeat of a point
  is never stored (see ``tracking.ingest``). That order is the one order of
  points everywhere: history pages, charts, exports, and which point is a
  series' first and last (the last is MLflow's "latest metric": the highest
  step, then the latest timestamp).
* ``MetricRollup`` — per-bucket min/max of a series at coarser and coarser
  step widths (16, 256, 4096, ...), maintained on ingest, so a downsampled
  read of a million points touches a few thousand rows. A cell names its
  points by primary key and carries their values, so a chart is drawn from
  the cells without reading the points back.

NaN is stored as SQL NULL (SQLite cannot store NaN; PostgreSQL would sort it
above every number and spoil min/max); +/-inf are stored as themselves.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


WRITE_ROLES = frozenset({Role.OWNER, Role.EDITOR})


class Team(models.Model):
    slug = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


# How long an invitation's link stays good: long enough for a holiday, short
# enough that a forgotten one does not let someone in months later.
INVITATION_TTL = timedelta(days=14)


class TeamInvitation(models.Model):
    """An owner's offer of a role in a team, to a username or an email address.

    Until the invitee accepts, the team learns nothing about them: pages, the
    API and the audit log show only ``invited_as`` (what the owner typed).
    ``user`` is set when the typed username names an active account, and is
    never shown. Only the SHA-256 of the emailed link's token is kept. An
    invitation to a username is that account's to answer; one to an email
    address only through its link, by whoever is logged in when it is opened
    (see ``tracking.invitations``).
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    invited_as = models.CharField(
        max_length=254, help_text="What the owner typed; an email address lowercased."
    )
    email = models.CharField(max_length=254, blank=True, help_text="For an email invitation.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="team_invitations",
        help_text="For an invitation by username, when that user exists.",
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "invited_as"],
                condition=models.Q(
                    accepted_at__isnull=True, declined_at__isnull=True, revoked_at__isnull=True
                ),
                name="teaminvitation_one_open",
            )
        ]
        indexes = [models.Index(fields=["email"], name="teaminvitation_email")]

    def __str__(self) -> str:
        return f"{self.invited_as} to {self.team_id} ({self.role})"

    @property
    def state(self) -> str:
        """pending, accepted, declined, revoked or expired."""
        for name in ("accepted", "declined", "revoked"):
            if getattr(self, f"{name}_at") is not None:
                return name
        return "expired" if self.expires_at <= timezone.now() else "pending"


class TokenScope(models.TextChoices):
    """What a token may do; ``tracking.scopes`` holds the endpoints of each."""

    FULL = "full", "Full access"
    READ = "read", "Read only"
    INGEST = "ingest", "Ingest only (training jobs, CI)"


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is kept; the token itself is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.FULL)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Never expires if empty.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    slug = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metadata = models.JSONField(
        default=dict, blank=True, help_text="e.g. the tags of an MLflow experiment."
    )
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Soft-deleted (MLflow's delete); restorable."
    )

    class Meta:
        ordering = ["team__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="project_unique_team_slug")
        ]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        return reverse("project", kwargs={"team": self.team.slug, "project": self.slug})

    @property
    def full_name(self) -> str:
        return f"{self.team.slug}/{self.slug}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CRASHED = "crashed", "Crashed"
    KILLED = "killed", "Killed"


TERMINAL_STATUSES = frozenset(
    {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CRASHED, RunStatus.KILLED}
)
# A run that ended without finishing: what ``run_failed`` alerts fire on by default.
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CRASHED, RunStatus.KILLED})


class Run(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    group = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, max_length=100_000)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="e.g. 'ValueError: boom'")
    traceback = models.TextField(
        blank=True, max_length=50_000, help_text="The tail of the traceback of a failure."
    )
    host = models.CharField(max_length=255, blank=True)
    command = models.TextField(blank=True, max_length=10_000)
    git = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Python, platform, SDK.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    client_id = models.CharField(
        max_length=64, blank=True, help_text="The client's id for the create request (retries)."
    )
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Soft-deleted (MLflow's delete); restorable."
    )
    project_index = models.PositiveIntegerField(
        default=0,
        help_text="How many runs its project had before it: its colour on every chart"
        " and table (kernel.charts.run_color), the same on every page and for ever.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "client_id"],
                condition=~models.Q(client_id=""),
                name="run_unique_client_id",
            )
        ]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="run_project_created"),
            models.Index(fields=["project", "status"], name="run_project_status"),
            models.Index(fields=["status", "last_seen_at"], name="run_status_last_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"

    def get_absolute_url(self) -> str:
        """The run page (``kernel.http.absolute_url`` makes it a link for emails and the API)."""
        project = self.project
        kwargs = {"team": project.team.slug, "project": project.slug, "run_id": self.pk}
        return reverse("run", kwargs=kwargs)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.status in FAILED_STATUSES


class SavedView(models.Model):
    """A named view of a project's runs table: its filters, columns, sort and grouping.

    ``query`` is the table's query string (``workspace.pages.view_query`` makes it), so
    a view opens as the URL it was saved from would; a teammate opens it by its id.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=100)
    query = models.CharField(max_length=4000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="savedview_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_rows")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="runtag_unique")]
        indexes = [models.Index(fields=["name"], name="runtag_name")]

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    """A dataset MLflow's ``log_input`` named, one per (project, name, digest).

    As in MLflow, the first logging of a (name, digest) in an experiment fixes its
    source, schema and profile; later runs logging the same pair point at this row.
    The limits are MLflow's (``mlflow/utils/validation.py``), checked before writing.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=500, blank=True)
    digest = models.CharField(max_length=36, blank=True)
    source_type = models.TextField(blank=True)
    source = models.TextField(blank=True, max_length=65_535)
    schema = models.TextField(blank=True, max_length=1_048_575)
    profile = models.TextField(blank=True, max_length=16_777_215)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "digest"], name="dataset_unique_name_digest"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.digest})"


class RunInput(models.Model):
    """A dataset a run used, with its input tags (``mlflow.data.context``: train, eval...).

    ``tags`` is a list of ``{"key", "value"}`` in the order sent (a JSON object
    would lose it on PostgreSQL). One row per (run, dataset): logging the pair
    again changes nothing, as in MLflow.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="inputs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="inputs")
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset"], name="runinput_unique_dataset")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} ← {self.dataset_id}"


class AlertLevel(models.TextChoices):
    INFO = "info", "Info"
    WARN = "warn", "Warning"
    ERROR = "error", "Error"


class SdkAlert(models.Model):
    """An alert raised by training code (``run.alert()``); alerting turns it into notifications."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="sdk_alerts")
    title = models.CharField(max_length=200)
    text = models.TextField(blank=True, max_length=10_000)
    level = models.CharField(max_length=8, choices=AlertLevel.choices, default=AlertLevel.INFO)
    created_at = models.DateTimeField(default=timezone.now)
    repeats = models.PositiveIntegerField(
        default=0, help_text="Repeats inside the wait window, muted rather than raised again."
    )
    # Not a column: set by the API view that answers a raise (the serializer's field).
    suppressed: bool

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["run", "title", "-created_at"], name="sdkalert_recent")]

    def __str__(self) -> str:
        return f"{self.level}: {self.title}"


# The keys of machine readings (the SDK's ``system/*``, sampled by a thread of its
# own): shown apart from training metrics, and never a sign the training loop moves.
SYSTEM_KEY_PREFIX = "system/"


class MetricSeries(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_series")
    key = models.CharField(max_length=250)
    count = models.BigIntegerField(default=0)
    nonfinite_count = models.BigIntegerField(default=0)
    # The first and last point in primary-key order (see MetricPoint); the first
    # point's seq is always 0.
    first_step = models.BigIntegerField(null=True)
    first_timestamp = models.FloatField(null=True)
    first_value = models.FloatField(null=True)
    last_step = models.BigIntegerField(null=True)
    last_timestamp = models.FloatField(null=True)
    last_seq = models.IntegerField(default=0)
    last_value = models.FloatField(null=True)
    min_value = models.FloatField(null=True)
    max_value = models.FloatField(null=True)
    # When the server last stored a point of it (the run's progress; the points'
    # own timestamps are the client's clock). Null: no point stored yet.
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="metricseries_unique_run_key")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.key}"


class MetricPoint(models.Model):
    pk = models.CompositePrimaryKey("series", "step", "timestamp", "seq")
    # The primary key already serves lookups by series: no second index. It
    # holds the timestamp so that finding an exact repeat of a point is one
    # index lookup, however many points share its step.
    # No database-level constraint either: PostgreSQL would check it row by
    # row at commit, doubling the cost of a batch; only ingest writes this table,
    # always after creating the series, and Django's CASCADE removes the points.
    series = models.ForeignKey(
        MetricSeries,
        on_delete=models.CASCADE,
        related_name="points",
        db_index=False,
        db_constraint=False,
    )
    step = models.BigIntegerField()
    value = models.FloatField(null=True)  # NULL is NaN
    timestamp = models.FloatField()  # Unix seconds
    seq = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series_id}@{self.step}={self.value}"


class MetricRollup(models.Model):
    pk = models.CompositePrimaryKey("series", "level", "bucket")
    series = models.ForeignKey(  # unconstrained, indexed by the primary key: see MetricPoint
        MetricSeries,
        on_delete=models.CASCADE,
        related_name="rollups",
        db_index=False,
        db_constraint=False,
    )
    level = models.SmallIntegerField()
    bucket = models.BigIntegerField()
    # The bucket's lowest, highest and first NaN point, each by its primary key
    # (step, timestamp, seq); see ``tracking.rollups``.
    min_step = models.BigIntegerField(null=True)
    min_timestamp = models.FloatField(null=True)
    min_seq = models.IntegerField(null=True)
    min_value = models.FloatField(null=True)
    max_step = models.BigIntegerField(null=True)
    max_timestamp = models.FloatField(null=True)
    max_seq = models.IntegerField(null=True)
    max_value = models.FloatField(null=True)
    nan_step = models.BigIntegerField(null=True)
    nan_timestamp = models.FloatField(null=True)
    nan_seq = models.IntegerField(null=True)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series_id} L{self.level} #{self.bucket}"


class MediaKind(models.TextChoices):
    IMAGE = "image"
    TABLE = "table"
    HISTOGRAM = "histogram"
    TEXT = "text"


class MediaItem(models.Model):
    """An image, table, histogram or text a run logged under a key at a step (``tracking.media``).

    A step may hold several items of a key (a list of sample images); the same
    content logged again at the same key and step is the same item, so a
    retried upload stores nothing twice. Images, tables and texts live in the
    ``artifacts`` storage (``file``, a storage key); a histogram's bins are
    small enough to live in ``meta``.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="media")
    key = models.CharField(max_length=250)
    step = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=MediaKind.choices)
    caption = models.CharField(max_length=1000, blank=True)
    timestamp = models.FloatField(help_text="Unix seconds, as the client logged it.")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the content.")
    file = models.CharField(max_length=500, blank=True, help_text="Storage key of the content.")
    size = models.BigIntegerField(default=0, help_text="Bytes of the stored file.")
    # image: width, height, format; table: columns, rows; histogram: counts, edges;
    # text: chars, lines, format.
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "key", "step", "digest"], name="mediaitem_unique_content"
            )
        ]
        indexes = [models.Index(fields=["run", "key", "step"], name="mediaitem_run_key_step")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.key}@{self.step} ({self.kind})"


class ConsoleStream(models.TextChoices):
    STDOUT = "stdout"
    STDERR = "stderr"


class ConsoleLine(models.Model):
    """One line of a run's console output, numbered by the client (``tracking.console``)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="console_lines")
    number = models.IntegerField(help_text="0, 1, 2, ... in the order the process wrote them.")
    stream = models.CharField(max_length=6, choices=ConsoleStream.choices)
    text = models.TextField(max_length=10_000, blank=True)
    timestamp = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="consoleline_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.number}"


class RunConsole(models.Model):
    """How much console output a run has stored, against its cap."""

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="console"
    )
    lines = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0, help_text="UTF-8 bytes of the stored lines.")
    dropped = models.BigIntegerField(default=0, help_text="Lines refused past the cap.")

    def __str__(self) -> str:
        return f"{self.run_id}: {self.lines} lines"


class IngestBatch(models.Model):
    """Remembers client batch ids so a retried request is answered, not re-applied."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="ingest_batches")
    batch_id = models.CharField(max_length=64)
    accepted = models.IntegerField()
    duplicates = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "batch_id"], name="ingestbatch_unique")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.batch_id}"


# --- The caller's role ---------------------------------------------------------------
# The access-checked reads of tracking.selectors annotate a team, project or run with the
# caller's role in its team (``.annotate(role=...)``); these are their types.

if TYPE_CHECKING:
    from typing import TypeAlias, TypedDict

    from django.contrib.auth.models import User
    from django_stubs_ext import WithAnnotations

    class RoleAnnotation(TypedDict):
        role: str  # a Role

    TeamWithRole: TypeAlias = WithAnnotations[Team, RoleAnnotation]
    ProjectWithRole: TypeAlias = WithAnnotations[Project, RoleAnnotation]
    RunWithRole: TypeAlias = WithAnnotations[Run, RoleAnnotation]


@overload
def with_role(row: Team, role: str) -> TeamWithRole: ...
@overload
def with_role(row: Project, role: str) -> ProjectWithRole: ...
def with_role(row: Any, role: str) -> Any:
    """``row`` with ``role`` set as the selectors annotate it: a row the caller just created."""
    row.role = role
    return row


# --- Versioned artifacts (logic in tracking.artifact_versions) -----------------------------


class Artifact(models.Model):
    """A named, versioned set of files of a project: a model, a data set..."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=128)
    type = models.CharField(max_length=64, default="artifact")
    description = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="artifact_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"

    def get_absolute_url(self) -> str:
        project = self.project
        kwargs = {"team": project.team.slug, "project": project.slug, "name": self.name}
        return reverse("project-artifact", kwargs=kwargs)


class ArtifactState(models.TextChoices):
    PENDING = "pending"  # announced; its files are being uploaded
    COMMITTED = "committed"  # every file stored and verified: visible, numbered


class ArtifactVersion(models.Model):
    """One content of an artifact: ``v<version>``, numbered when committed.

    ``digest`` is the SHA-256 of the sorted manifest, so the same files again
    are the same version. ``manifest`` lists ``[path, sha256, size]`` by path;
    the files are stored once per project, by content (``tracking.artifact_versions``).
    """

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="versions")
    version = models.IntegerField(null=True, blank=True, help_text="Set at commit: v0, v1, ...")
    digest = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=ArtifactState.choices, default=ArtifactState.PENDING
    )
    producer = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts_logged"
    )
    manifest = models.JSONField(default=list, blank=True)
    size = models.BigIntegerField(default=0, help_text="Bytes of all its files.")
    file_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    committed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["artifact", "version"], name="artifactversion_unique_number"
            ),
            models.UniqueConstraint(
                fields=["artifact", "digest"], name="artifactversion_unique_digest"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.artifact_id}:v{self.version}" if self.version is not None else self.digest


class ArtifactUse(models.Model):
    """Run ``run`` used version ``version`` (lineage: the version's consumers)."""

    version = models.ForeignKey(ArtifactVersion, on_delete=models.CASCADE, related_name="uses")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifact_uses")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "run"], name="artifactuse_unique")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} used {self.version_id}"


# --- End of versioned artifacts ------------------------------------------------------------
