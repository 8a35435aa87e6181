"""API shapes. An input serializer declares a request's fields, which ``request_body``
enforces; the services check the values against the same limits (``tests/test_limits.py``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.http import absolute_url
from kernel.limits import max_length
from tracking import console, media
from tracking.ingest import MAX_STEP
from tracking.models import (
    AlertLevel,
    ApiToken,
    Artifact,
    ConsoleLine,
    IngestBatch,
    MediaItem,
    Membership,
    Project,
    Role,
    Run,
    RunStatus,
    SdkAlert,
    Team,
    TeamInvitation,
    TokenScope,
)
from tracking.services import MAX_ALERT_WAIT
from tracking.validation import MAX_KEY_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, float_to_json


def run_url(run: Run) -> str:
    return absolute_url(run.get_absolute_url())


class TeamSerializer(serializers.ModelSerializer[Team]):
    role = serializers.CharField(read_only=True, help_text="Your role in the team.")

    class Meta:
        model = Team
        fields = ["slug", "name", "role", "created_at"]


class TeamMemberSerializer(serializers.ModelSerializer[Membership]):
    """A member as teammates see them (autocomplete of @mentions): no email address."""

    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(
        source="user.get_full_name", read_only=True, help_text="First and last name; may be empty."
    )

    class Meta:
        model = Membership
        fields = ["username", "name", "role"]


class TeamCreateSerializer(serializers.Serializer[Any]):
    slug = serializers.CharField(max_length=max_length(Team, "slug"))
    name = serializers.CharField(
        max_length=max_length(Team, "name"), required=False, allow_blank=True
    )


class ProjectSerializer(serializers.ModelSerializer[Project]):
    team = serializers.CharField(source="team.slug", read_only=True)
    name = serializers.CharField(source="slug", read_only=True)
    full_name = serializers.CharField(read_only=True, help_text="'team/project'")
    role = serializers.CharField(read_only=True, help_text="Your role in the project's team.")

    class Meta:
        model = Project
        fields = ["id", "team", "name", "full_name", "description", "role", "created_at"]


class ProjectCreateSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(max_length=max_length(Team, "slug"))
    name = serializers.CharField(max_length=max_length(Project, "slug"))
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Project, "description")
    )


class RunWriteSerializer(serializers.Serializer[Any]):
    """Fields a client may set; on PATCH, ``config`` and ``summary`` merge (null removes a key)."""

    name = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "name")
    )
    group = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "group")
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH), max_length=MAX_TAGS, required=False
    )
    config = serializers.DictField(required=False)
    summary = serializers.DictField(required=False)
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "notes")
    )
    host = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "host")
    )
    command = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "command")
    )
    git = serializers.DictField(required=False)
    metadata = serializers.DictField(required=False)
    error = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "error")
    )
    traceback = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(Run, "traceback")
    )


class RunCreateSerializer(RunWriteSerializer):
    project = serializers.CharField(help_text="'team/project'; created on first use by editors.")
    client_id = serializers.CharField(
        required=False,
        max_length=max_length(Run, "client_id"),
        help_text="Any id the client picks; resending it returns the same run (safe retries).",
    )


class RunPatchSerializer(RunWriteSerializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    exit_code = serializers.IntegerField(required=False, allow_null=True)


class RunSerializer(serializers.ModelSerializer[Run]):
    project = serializers.CharField(source="project.full_name", read_only=True)
    tags = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "name",
            "group",
            "status",
            "exit_code",
            "error",
            "traceback",
            "tags",
            "config",
            "summary",
            "notes",
            "host",
            "command",
            "git",
            "metadata",
            "created_at",
            "ended_at",
            "last_seen_at",
            "url",
        ]

    def get_tags(self, run: Run) -> list[str]:
        return [tag.name for tag in run.tag_rows.all()]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_summary(self, run: Run) -> dict[str, Any]:
        """Last value of every metric, overridden by keys the client set explicitly."""
        last = {s.key: float_to_json(s.last_value) for s in run.metric_series.all() if s.count}
        return {**last, **run.summary}

    def get_url(self, run: Run) -> str:
        return run_url(run)


class PointSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(max_length=MAX_KEY_LENGTH)
    step = serializers.IntegerField(
        min_value=0,
        max_value=MAX_STEP,
        required=False,
        help_text="Default: one past the key's highest step so far.",
    )
    value = serializers.JSONField(help_text="A number, or 'NaN' / 'Infinity' / '-Infinity'.")
    timestamp = serializers.JSONField(
        required=False, help_text="Unix seconds, or ISO 8601 with timezone; default: now."
    )


class MetricsBatchSerializer(serializers.Serializer[Any]):
    batch_id = serializers.CharField(
        required=False,
        max_length=max_length(IngestBatch, "batch_id"),
        help_text="Client id of the batch; a retry is not re-applied.",
    )
    points = PointSerializer(
        many=True,
        help_text=f"At most {settings.LABBOOK['MAX_POINTS_PER_BATCH']:,} points (the setting"
        " MAX_POINTS_PER_BATCH); more is a 413.",
    )


class IngestResultSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    replayed = serializers.BooleanField()


class MetricKeySerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    count = serializers.IntegerField()
    nonfinite_count = serializers.IntegerField()
    first_step = serializers.IntegerField(allow_null=True)
    last_step = serializers.IntegerField(allow_null=True)
    last = serializers.JSONField(allow_null=True)
    last_timestamp = serializers.FloatField(allow_null=True)
    min = serializers.JSONField(allow_null=True)
    max = serializers.JSONField(allow_null=True)


class MetricKeysSerializer(serializers.Serializer[Any]):
    metrics = MetricKeySerializer(many=True)


class HistorySerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.JSONField())
    timestamps = serializers.ListField(child=serializers.FloatField())
    total = serializers.IntegerField()
    downsampled = serializers.BooleanField()
    next_step = serializers.IntegerField(
        allow_null=True, help_text="The step of the next point when limit cut the page."
    )
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text="Where the next page starts, exactly (a step may hold several points):"
        " pass it as cursor.",
    )


class RunHistorySerializer(HistorySerializer):
    run = serializers.IntegerField()


class HistoriesSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    histories = RunHistorySerializer(many=True, help_text="In the order the runs were named.")
    missing = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Runs named that have no such metric, or that you cannot read: they are not"
        " told apart, so an id says nothing about a run you may not see.",
    )


class HeartbeatSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=RunStatus.choices)
    last_seen_at = serializers.DateTimeField()


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]


class TokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=max_length(ApiToken, "name"))
    scope = serializers.ChoiceField(
        choices=TokenScope.choices,
        required=False,
        help_text="full (default), read (GET only) or ingest (what training jobs send).",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="After this the token answers 401 token_expired."
    )


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class SdkAlertCreateSerializer(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=max_length(SdkAlert, "title"))
    text = serializers.CharField(
        required=False, allow_blank=True, max_length=max_length(SdkAlert, "text")
    )
    level = serializers.ChoiceField(choices=AlertLevel.choices, required=False)
    wait_duration = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_ALERT_WAIT,
        help_text="Seconds in which repeats of the title are muted (default 60).",
    )


class SdkAlertSerializer(serializers.ModelSerializer[SdkAlert]):
    suppressed = serializers.BooleanField(
        read_only=True, default=False, help_text="True when this request was a muted repeat."
    )

    class Meta:
        model = SdkAlert
        fields = ["id", "title", "text", "level", "created_at", "repeats", "suppressed"]


class InvitationCreateSerializer(serializers.Serializer[Any]):
    member = serializers.CharField(
        max_length=max_length(TeamInvitation, "invited_as"),
        help_text="A username, or an email address (anything with an @).",
    )
    role = serializers.ChoiceField(choices=Role.choices)


class TeamInvitationSerializer(serializers.ModelSerializer[TeamInvitation]):
    """What a team's owners see of an invitation: what they typed, never who it reached."""

    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = TeamInvitation
        fields = ["id", "invited_as", "role", "invited_by", "created_at", "expires_at"]

    def get_invited_by(self, invitation: TeamInvitation) -> str | None:
        return invitation.invited_by.get_username() if invitation.invited_by else None


class MyInvitationSerializer(serializers.ModelSerializer[TeamInvitation]):
    """What the invitee sees: the team, the role and who asked."""

    team = serializers.CharField(source="team.slug", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = TeamInvitation
        fields = ["id", "team", "team_name", "role", "invited_by", "created_at", "expires_at"]

    def get_invited_by(self, invitation: TeamInvitation) -> str | None:
        return invitation.invited_by.get_username() if invitation.invited_by else None


# --- Media ---------------------------------------------------------------------------------


class MediaItemInSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(help_text="As a metric key: printable, at most 250 characters.")
    step = serializers.IntegerField(min_value=0)
    kind = serializers.ChoiceField(choices=["image", "table", "histogram", "text"])
    caption = serializers.CharField(
        required=False, max_length=max_length(MediaItem, "caption"), allow_blank=True
    )
    timestamp = serializers.FloatField(required=False, help_text="Unix seconds; default: now.")
    image = serializers.CharField(
        required=False,
        help_text=f"image: the file, base64. PNG, JPEG, WebP or GIF, decoded on arrival;"
        f" at most {media.IMAGE_MAX_BYTES:,} bytes and {media.IMAGE_MAX_PIXELS:,} pixels.",
    )
    columns = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=f"table: distinct column names, at most {media.TABLE_MAX_COLUMNS}.",
    )
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField()),
        required=False,
        help_text=f"table: rows of cells (string, number, boolean, null); at most"
        f" {media.TABLE_MAX_ROWS:,} rows and {media.TABLE_MAX_CELLS:,} cells.",
    )
    counts = serializers.ListField(
        child=serializers.FloatField(min_value=0),
        required=False,
        help_text=f"histogram: the count of each bin, at most {media.HISTOGRAM_MAX_BINS} bins.",
    )
    edges = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="histogram: the bins' edges, increasing, one more than counts.",
    )
    # Text. No max_length here: the limit is media.TEXT_MAX_CHARS, checked by
    # tracking.media (a stated maxLength would be probed on a histogram by tests/test_limits).
    text = serializers.CharField(
        required=False,
        help_text=f"text: the text, kept exactly as sent; 1 to {media.TEXT_MAX_CHARS:,}"
        " characters, no NUL.",
    )
    format = serializers.ChoiceField(
        choices=list(media.TEXT_FORMATS),
        required=False,
        help_text="text: how a page shows it (json pretty-printed); text by default.",
    )
    # --- end Text


class MediaBatchSerializer(serializers.Serializer[Any]):
    items = MediaItemInSerializer(
        many=True,
        help_text=f"At most {media.MAX_ITEMS_PER_REQUEST} items; checked as a whole before any"
        " is stored. The same content again at the same key and step is a duplicate.",
    )


class MediaItemSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    key = serializers.CharField()
    step = serializers.IntegerField()
    kind = serializers.CharField()
    caption = serializers.CharField()
    timestamp = serializers.FloatField()
    digest = serializers.CharField(help_text="SHA-256 of the content.")
    url = serializers.CharField(required=False, help_text="images, tables, texts: the content.")
    size = serializers.IntegerField(required=False, help_text="Bytes of the file.")
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    format = serializers.CharField(
        required=False, help_text="image: png, jpeg, webp or gif; text: text, json or yaml."
    )
    chars = serializers.IntegerField(required=False, help_text="text: how many characters.")
    lines = serializers.IntegerField(required=False, help_text="text: how many lines.")
    columns = serializers.ListField(child=serializers.CharField(), required=False)
    rows = serializers.IntegerField(required=False, help_text="table: how many rows.")
    counts = serializers.ListField(child=serializers.FloatField(), required=False)
    edges = serializers.ListField(child=serializers.FloatField(), required=False)


class MediaResultSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    items = MediaItemSerializer(many=True, help_text="The items stored by this request.")


class MediaKeySerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    kind = serializers.CharField()
    count = serializers.IntegerField()
    first_step = serializers.IntegerField()
    last_step = serializers.IntegerField()


class MediaKeysSerializer(serializers.Serializer[Any]):
    media = MediaKeySerializer(many=True)


class MediaItemsSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    steps = serializers.ListField(
        child=serializers.IntegerField(), help_text="Every step the key has items at."
    )
    items = MediaItemSerializer(many=True)


# --- Console output ----------------------------------------------------------------------


class ConsoleLineSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField(
        min_value=0, max_value=console.MAX_NUMBER, help_text="0, 1, 2, ... over the run's life."
    )
    stream = serializers.ChoiceField(choices=["stdout", "stderr"], required=False)
    text = serializers.CharField(
        max_length=max_length(ConsoleLine, "text"),
        allow_blank=True,
        trim_whitespace=False,
        help_text="One line without its newline, as written (ANSI codes kept).",
    )
    timestamp = serializers.FloatField(required=False, help_text="Unix seconds; default: now.")


class ConsoleBatchSerializer(serializers.Serializer[Any]):
    lines = ConsoleLineSerializer(
        many=True, help_text=f"At most {console.MAX_LINES_PER_REQUEST:,} lines."
    )


class ConsoleResultSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    dropped = serializers.IntegerField(help_text="Lines past the run's cap, not kept.")


class ConsoleReadSerializer(serializers.Serializer[Any]):
    lines = ConsoleLineSerializer(many=True)
    total = serializers.IntegerField(help_text="Lines the run has stored.")
    bytes = serializers.IntegerField(help_text="UTF-8 bytes the run has stored.")
    dropped = serializers.IntegerField(help_text="Lines refused past the cap.")


# --- Versioned artifacts (tracking/artifact_versions.py) ----------------------------------


class ArtifactFileInSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(
        help_text="Relative path inside the version, '/'-separated (no '..');"
        " at most 1000 characters."
    )
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="The file's SHA-256, hex.")
    size = serializers.IntegerField(help_text="Bytes; at most ARTIFACTS_MAX_BYTES.")


class ArtifactVersionCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(
        max_length=max_length(Artifact, "name"),
        help_text="Letters, digits, '.', '_', '-'; starts with a letter or a digit.",
    )
    type = serializers.CharField(
        max_length=max_length(Artifact, "type"),
        required=False,
        help_text="e.g. model, dataset; default 'artifact'. Fixed by the first version.",
    )
    description = serializers.CharField(
        max_length=max_length(Artifact, "description"), required=False, allow_blank=True
    )
    files = ArtifactFileInSerializer(
        many=True, help_text="Every file of the version (at most 10,000), each path once."
    )


class ArtifactUseCreateSerializer(serializers.Serializer[Any]):
    artifact = serializers.CharField(
        help_text="'team/project/name:v3', ':latest' (the default) or ':3'."
    )


class ArtifactRunSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField(help_text="The run's page.")


class ArtifactConsumerSerializer(ArtifactRunSerializer):
    used_at = serializers.DateTimeField()


class ArtifactFileSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class ArtifactVersionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    artifact = serializers.CharField(help_text="The artifact's name.")
    type = serializers.CharField()
    version = serializers.CharField(allow_null=True, help_text="'v0', 'v1'...; null if pending.")
    state = serializers.ChoiceField(choices=["pending", "committed"])
    digest = serializers.CharField(help_text="SHA-256 of the sorted manifest.")
    size = serializers.IntegerField()
    file_count = serializers.IntegerField()
    producer = ArtifactRunSerializer(allow_null=True, help_text="The run that logged it.")
    created_at = serializers.DateTimeField()
    committed_at = serializers.DateTimeField(allow_null=True)
    reference = serializers.CharField(
        required=False, help_text="'team/project/name:v3', once committed."
    )
    files = ArtifactFileSerializer(many=True, required=False)
    consumers = ArtifactConsumerSerializer(
        many=True, required=False, help_text="The runs that used it (those you may read)."
    )


class ArtifactUploadSerializer(serializers.Serializer[Any]):
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField(help_text="PUT the file's bytes here.")


class ArtifactVersionCreatedSerializer(serializers.Serializer[Any]):
    created = serializers.BooleanField(
        help_text="false: a committed version holds exactly these files; nothing to upload."
    )
    version = ArtifactVersionSerializer()
    uploads = ArtifactUploadSerializer(many=True, help_text="Files the server does not have yet.")
    commit_url = serializers.CharField(required=False, help_text="POST here once uploaded.")


class ArtifactUploadedSerializer(serializers.Serializer[Any]):
    stored = serializers.BooleanField(help_text="false: the server had the file already.")


class ArtifactSummarySerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()
    versions = serializers.IntegerField()
    latest = serializers.CharField()
    created_at = serializers.DateTimeField()


class ArtifactIndexSerializer(serializers.Serializer[Any]):
    artifacts = ArtifactSummarySerializer(many=True)


class ArtifactDetailSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()
    versions = ArtifactVersionSerializer(many=True, help_text="The newest first.")


class RunArtifactVersionsSerializer(serializers.Serializer[Any]):
    logged = ArtifactVersionSerializer(many=True, help_text="Versions the run produced.")
    used = ArtifactVersionSerializer(many=True, help_text="Versions the run used.")


class ArtifactUsedSerializer(serializers.Serializer[Any]):
    recorded = serializers.BooleanField(help_text="false: the run's use was recorded before.")
    version = ArtifactVersionSerializer()


# --- End of versioned artifacts -----------------------------------------------------------
