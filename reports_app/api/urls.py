from django.urls import include, path

from reports_app.api import reports

urlpatterns = [
    path("reports", reports.ReportListView.as_view(), name="api-reports"),
    path("reports/<int:report_id>", reports.ReportDetailView.as_view(), name="api-report"),
    path(
        "reports/<int:report_id>/revisions",
        reports.RevisionListView.as_view(),
        name="api-report-revisions",
    ),
    path(
        "reports/<int:report_id>/revisions/<int:number>",
        reports.RevisionDetailView.as_view(),
        name="api-report-revision",
    ),
    path(
        "reports/<int:report_id>/revisions/<int:number>/restore",
        reports.RevisionRestoreView.as_view(),
        name="api-report-restore",
    ),
    path("reports/<int:report_id>/draft", reports.DraftView.as_view(), name="api-report-draft"),
    path(
        "reports/<int:report_id>/preview", reports.PreviewView.as_view(), name="api-report-preview"
    ),
    path(
        "reports/<int:report_id>/share-links",
        reports.ShareLinkListView.as_view(),
        name="api-report-share-links",
    ),
    path("share-links/<int:link_id>", reports.ShareLinkDetailView.as_view(), name="api-share-link"),
    path("", include("reports_app.api.comment_urls")),
]
