"""``{% comments_config as config %}``: what comments.js needs on a run or report page."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from reports_app.models import Report
from tracking.models import WRITE_ROLES

register = template.Library()

API_PATH = "/api/v1/comments"  # fixed by the API contract (docs/api.md)


@register.simple_tag(takes_context=True)
def comments_config(context: template.Context) -> dict[str, Any]:
    """The page's target (its ``report``, else its ``run``) and what the reader may do.

    No query: both objects come from the access-checked selectors with ``role`` set
    and their project's team. ``members`` lists the team, for ``@`` autocomplete.
    """
    report = context.get("report")
    subject = report if isinstance(report, Report) else context["run"]
    kind = "report" if subject is report else "run"
    return {
        "target": f"{kind}:{subject.pk}",
        "api": API_PATH,
        "me": context["request"].user.get_username(),
        "canModerate": getattr(subject, "role", None) in WRITE_ROLES,
        "anchors": kind == "report",
        "members": reverse("api-team-members", kwargs={"team": subject.project.team.slug}),
    }
