"""Comment endpoints, included under ``/api/v1/`` by ``labbook.urls``."""

from django.urls import path

from reports_app.api import comments

urlpatterns = [
    path("comments", comments.CommentListView.as_view(), name="api-comments"),
    path(
        "comments/<id:comment_id>",
        comments.CommentDetailView.as_view(),
        name="api-comment-detail",
    ),
]
