"""Comment endpoints: thin views over ``reports_app.comments``.

Errors use the API's one JSON shape (``tracking.api.errors``): unknown fields
are refused, bad input names its field, and a target or comment the caller
may not read is a 404 whether or not it exists.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from reports_app import comments
from reports_app.api import serializers_comments as s
from tracking.api.auth import AuthenticatedRequest
from tracking.api.body import request_body
from tracking.api.schema import error_response


class CommentListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "target", str, required=True, description="'run:<id>' or 'report:<id>'"
            )
        ],
        responses=s.CommentSerializer(many=True),
        description="Every comment on the target, oldest first; `parent` groups the threads.",
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        target = comments.target_get_for_user(request.user, request.query_params.get("target"))
        return Response(comments.comments_data(comments.comments_for(target), target))

    @extend_schema(request=s.CommentCreateSerializer, responses={201: s.CommentSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = request_body(request, s.CommentCreateSerializer)
        target = comments.target_get_for_user(request.user, data.get("target"))
        comment = comments.comment_create(
            user=request.user,
            target=target,
            body=data.get("body"),
            parent=data.get("parent"),
            anchor=data.get("anchor"),
        )
        return Response(comments.comment_data(comment), status=status.HTTP_201_CREATED)


class CommentDetailView(APIView):
    @extend_schema(responses=s.CommentSerializer)
    def get(self, request: AuthenticatedRequest, comment_id: int) -> Response:
        comment = comments.comment_get_for_user(request.user, comment_id)
        return Response(comments.comment_data(comment))

    @extend_schema(
        request=s.CommentPatchSerializer,
        responses={
            200: s.CommentSerializer,
            409: error_response("The comment was deleted: it can no longer be edited."),
        },
    )
    def patch(self, request: AuthenticatedRequest, comment_id: int) -> Response:
        data = request_body(request, s.CommentPatchSerializer, partial=True)
        comment = comments.comment_get_for_user(request.user, comment_id)
        comment = comments.comment_update(user=request.user, comment=comment, data=data)
        return Response(comments.comment_data(comment))

    @extend_schema(
        request=None,
        responses={200: s.CommentSerializer},  # the blanked comment, not an empty 204
        description="Deletes your own comment: its body goes, its replies stay.",
    )
    def delete(self, request: AuthenticatedRequest, comment_id: int) -> Response:
        comment = comments.comment_get_for_user(request.user, comment_id)
        comment = comments.comment_delete(user=request.user, comment=comment)
        return Response(comments.comment_data(comment))
