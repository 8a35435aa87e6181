"""API shapes of comments. Input serializers declare the fields a request takes
(``request_body``); ``reports_app.comments`` checks their values and builds the answer
(``comment_data``), which ``CommentSerializer`` documents.
"""

from __future__ import annotations

from rest_framework import serializers

from kernel.limits import max_length
from reports_app.comments import MAX_BODY
from reports_app.models import Comment


class CommentCreateSerializer(serializers.Serializer):
    target = serializers.CharField(help_text="'run:<id>' or 'report:<id>'.")
    body = serializers.CharField(
        max_length=MAX_BODY,
        help_text="Markdown (sanitized when shown). `@username` or `@email` notifies a teammate.",
    )
    # DRF moves declared fields off the class: this "parent" is no Field.parent.
    parent = serializers.IntegerField(  # type: ignore[assignment]
        required=False,
        allow_null=True,
        help_text="The comment replied to; a reply to a reply joins the thread of its root.",
    )
    anchor = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=max_length(Comment, "anchor"),
        help_text="Reports only: the id of the heading or block the thread is about.",
    )


class CommentPatchSerializer(serializers.Serializer):
    body = serializers.CharField(
        required=False, max_length=MAX_BODY, help_text="Your own comments only."
    )
    resolved = serializers.BooleanField(
        required=False,
        help_text="Resolve (true) or reopen (false) a thread, at its first comment:"
        " editors, owners and whoever started the thread.",
    )


class CommentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target = serializers.CharField(help_text="'run:<id>' or 'report:<id>'.")
    # DRF moves declared fields off the class: this "parent" is no Field.parent.
    parent = serializers.IntegerField(  # type: ignore[assignment]
        allow_null=True, help_text="The thread's first comment."
    )
    anchor = serializers.CharField(allow_blank=True)
    author = serializers.CharField(allow_null=True, help_text="Username; null for a removed user.")
    body = serializers.CharField(allow_blank=True, help_text="Markdown; empty once deleted.")
    body_html = serializers.CharField(
        allow_blank=True,
        help_text="Sanitized HTML of the body: the team's members @mentioned as badges,"
        " its runs named run:<id> as links.",
    )
    deleted = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True, help_text="Thread roots only.")
    resolved_by = serializers.CharField(allow_null=True)
