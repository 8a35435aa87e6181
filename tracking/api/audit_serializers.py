"""The API shape of an audit event (every field is a snapshot taken when it happened)."""

from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    team = serializers.CharField(
        source="team_slug", help_text="The team's slug then; empty for a token's event."
    )
    actor = serializers.CharField(
        source="actor_name", help_text='The username then, "system" or "anonymous".'
    )
    # A field named like Serializer.data: DRF's metaclass moves declared fields off the class.
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="Details, e.g. old and new role; never a secret."
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "action",
            "team",
            "actor",
            "target_type",
            "target_id",
            "target_repr",
            "data",
            "ip",
        ]
        read_only_fields = fields
