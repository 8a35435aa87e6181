from django.urls import include, path

from reports_app.api import reports

urlpatterns = [
    path("reports", reports.ReportListView.as_view(), name="api-reports"),
    path("reports/<id:report_id>", reports.ReportDetailView.as_view(), name="api-report"),
    path(
        "reports/<id:report_id>/revisions",
        reports.RevisionListView.as_view(),
        name="api-report-revisions",
    ),
    path(
        "reports/<id:report_id>/revisions/<int:number>",
        reports.RevisionDetailView.as_view(),
        name="api-report-revision",
    ),
    path(
        "reports/<id:report_id>/revisions/<int:number>/restore",
        reports.RevisionRestoreView.as_view(),
        name="api-report-restore",
    ),
    path("reports/<id:report_id>/draft", reports.DraftView.as_view(), name="api-report-draft"),
    path("reports/<id:report_id>/merge", reports.MergeView.as_view(), name="api-report-merge"),
    path(
        "reports/<id:report_id>/preview", reports.PreviewView.as_view(), name="api-report-preview"
    ),
    path(
        "reports/<id:report_id>/share-links",
        reports.ShareLinkListView.as_view(),
        name="api-report-share-links",
    ),
    path("share-links/<id:link_id>", reports.ShareLinkDetailView.as_view(), name="api-share-link"),
    path("", include("reports_app.api.comment_urls")),
]
