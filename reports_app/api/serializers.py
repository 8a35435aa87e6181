"""API shapes of reports, revisions and share links: inputs declare the fields a request takes
(``request_body``), ``reports_app.services`` checks their values."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from kernel.http import absolute_url
from kernel.limits import max_length
from reports_app.models import Report, ReportDraft, ReportRevision, ShareLink, Visibility
from reports_app.services import MAX_BODY, MAX_REVISION


def report_url(report: Report) -> str:
    return absolute_url(report.get_absolute_url())


def share_url(token: str) -> str:
    return absolute_url(reverse("shared", kwargs={"token": token}))


class ReportSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.full_name", read_only=True)
    author = serializers.CharField(source="author.get_username", read_only=True, default=None)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id", "project", "title", "slug", "body", "revision", "visibility", "author",
            "created_at", "updated_at", "url",
        ]  # fmt: skip

    def get_url(self, report: Report) -> str:
        return report_url(report)


class ReportListSerializer(ReportSerializer):
    class Meta(ReportSerializer.Meta):
        fields = [f for f in ReportSerializer.Meta.fields if f != "body"]


class ReportCreateSerializer(serializers.Serializer):
    project = serializers.CharField(help_text="'team/project'")
    title = serializers.CharField(max_length=max_length(Report, "title"))
    body = serializers.CharField(required=False, allow_blank=True, max_length=MAX_BODY)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class ReportPatchSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        min_value=1,
        max_value=MAX_REVISION,
        help_text="The revision you edited; a stale one gets 409.",
    )
    title = serializers.CharField(required=False, max_length=max_length(Report, "title"))
    body = serializers.CharField(required=False, allow_blank=True, max_length=MAX_BODY)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.get_username", read_only=True, default=None)

    class Meta:
        model = ReportRevision
        fields = ["number", "title", "author", "created_at", "restored_from"]


class RevisionDetailSerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = [*RevisionSerializer.Meta.fields, "body"]


class RestoreSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        min_value=1, max_value=MAX_REVISION, help_text="The newest revision, as you last saw it."
    )


class DraftSerializer(serializers.ModelSerializer):
    revision = serializers.IntegerField(source="base_revision", min_value=1, max_value=MAX_REVISION)

    class Meta:
        model = ReportDraft
        fields = ["title", "body", "revision", "updated_at"]


class PreviewSerializer(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, max_length=MAX_BODY)


class PreviewResultSerializer(serializers.Serializer):
    html = serializers.CharField()
    figures = serializers.ListField(child=serializers.DictField())
    # DRF moves declared fields off the class: this "errors" is no Serializer.errors.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]


class ReportMergeSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        min_value=1, max_value=MAX_REVISION, help_text="The revision your text started from."
    )
    title = serializers.CharField(max_length=max_length(Report, "title"))
    body = serializers.CharField(allow_blank=True, max_length=MAX_BODY)


def _lines(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), help_text=help_text
    )


class MergeChunkSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["unchanged", "mine", "theirs", "same", "conflict"],
        help_text="Who changed these lines: nobody, you, them, both alike, or both differently.",
    )
    lines = _lines("The merged lines; none for a conflict, whose lines you choose.")
    base = _lines("These lines in the revision you started from; empty when unchanged.")
    mine = _lines("These lines in your text; empty when unchanged.")
    theirs = _lines("These lines in the newest revision; empty when unchanged.")


class ReportMergeResultSerializer(serializers.Serializer):
    base = serializers.IntegerField(help_text="The revision your text started from.")
    revision = serializers.IntegerField(help_text="The newest revision: save the merge naming it.")
    authors = serializers.ListField(
        child=serializers.CharField(), help_text="Who saved the revisions after `base`."
    )
    clean = serializers.BooleanField(help_text="No conflict: the chunks' lines are the merge.")
    title = MergeChunkSerializer(many=True)
    body = MergeChunkSerializer(many=True)


class ShareLinkSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(
        source="created_by.get_username", read_only=True, default=None
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = ShareLink
        fields = [
            "id", "prefix", "hide_authors", "embeddable", "expires_at", "created_by", "created_at",
            "revoked_at", "last_accessed_at", "access_count", "active",
        ]  # fmt: skip

    def get_active(self, link: ShareLink) -> bool:
        from django.utils import timezone

        return link.revoked_at is None and (
            link.expires_at is None or link.expires_at > timezone.now()
        )


class ShareLinkCreateSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    hide_authors = serializers.BooleanField(required=False)
    embeddable = serializers.BooleanField(
        required=False, help_text="Other sites may show the shared page in a frame."
    )


class ShareLinkCreatedSerializer(ShareLinkSerializer):
    token = serializers.CharField(help_text="Shown once.")
    url = serializers.CharField()

    class Meta(ShareLinkSerializer.Meta):
        fields = [*ShareLinkSerializer.Meta.fields, "token", "url"]
