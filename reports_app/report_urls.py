"""Routes of the report pages (included by ``labbook.urls``).

``fixed_patterns`` start with ``reports/`` or ``s/`` (both reserved team
slugs); ``project_patterns`` start with a team and project and are included
after every fixed route.
"""

from __future__ import annotations

from django.urls import path

from reports_app import editor_views, report_views

fixed_patterns = [
    path("reports/<id:report_id>/", report_views.report, name="report"),
    path("reports/<id:report_id>/blocks/<int:index>", report_views.block, name="report-block"),
    path(  # a live media, table, histogram or logs block drawn again
        "reports/<id:report_id>/media-blocks/<int:index>",
        report_views.media_block,
        name="report-media-block",
    ),
    path("reports/<id:report_id>/export.html", report_views.export, name="report-export"),
    path("reports/<id:report_id>/edit", editor_views.report_edit, name="report-edit"),
    path("reports/<id:report_id>/revisions/", editor_views.revisions, name="report-revisions"),
    path(
        "reports/<id:report_id>/revisions/<int:number>",
        editor_views.revision,
        name="report-revision",
    ),
    path("reports/<id:report_id>/diff", editor_views.diff, name="report-diff"),
    path("reports/<id:report_id>/share", editor_views.share, name="report-share"),
    path("s/<str:token>", report_views.shared, name="shared"),
    path("s/<str:token>/blocks/<int:index>", report_views.shared_block, name="shared-block"),
    # an image the shared report shows
    path("s/<str:token>/media/<id:media_id>", report_views.shared_media, name="shared-media"),
    path(
        "s/<str:token>/media-blocks/<int:index>",
        report_views.shared_media_block,
        name="shared-media-block",
    ),
]
project_patterns = [
    path("<str:team>/<str:project>/reports/", editor_views.report_list, name="project-reports"),
    path("<str:team>/<str:project>/reports/new", editor_views.report_new, name="report-new"),
]
