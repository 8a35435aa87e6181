"""Every page of the web UI, with the data that makes each show all of its forms.

Shared by the header tests (CSP, no inline script) and the session tests
(CSRF on every form). Data is made through the services, as a team would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

from django.utils import timezone

from alerts import actions
from alerts import services as alert_services
from alerts.models import Alert
from reports_app import services as report_services
from tests.conftest import World
from tracking import invitations, selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest


@dataclass
class Site:
    """URLs of every page an owner sees, and of the pages anyone sees (no login)."""

    member_pages: list[str]
    public_pages: list[str]
    share_token: str
    report_id: int
    run_id: int


def build(world: World, capture_on_commit) -> Site:
    """Runs with points, a two-revision report shared by link, alerts, rules, a silence."""
    owner = world.owner.user
    project = selectors.project_get_for_user(owner, "acme/mnist")
    runs = [_run_with_points(world, name) for name in ("alpha", "beta")]
    report = _report(world, project, runs[0].pk)
    _, token = report_services.share_link_create(report=report, user=owner)
    alert = _fired_alert(world, capture_on_commit)
    _, role = selectors.team_get_for_user(owner, "acme")
    alert_services.silence_create(
        user=owner, role=role, project=project, until=timezone.now() + timedelta(hours=1)
    )
    codes = _invitations(world)
    return Site(
        member_pages=[
            *_member_pages(runs, report.pk, alert),
            *(f"/settings/invitations/link/{code}/" for code in codes),
            "/settings/profile/",
            "/settings/alerts/",
            f"/settings/teams/acme/members/{world.editor.user.pk}/remove",  # the confirmation
        ],
        public_pages=["/login/", f"/s/{token}", "/api/docs/"],
        share_token=token,
        report_id=report.pk,
        run_id=runs[0].pk,
    )


def _invitations(world: World) -> tuple[str, str]:
    """A pending invitation on acme's members page; links to alice's and to an address."""
    invitations.invitation_create(
        team=world.team, invitee="newcomer@example.com", role="viewer", actor=world.owner.user
    )
    rival, mallory = world.rival, world.outsider.user
    _, to_alice = invitations.invitation_create(
        team=rival, invitee="alice", role="editor", actor=mallory
    )
    # Anyone logged in answers this one through its link: its page has a Log out form too.
    _, to_an_address = invitations.invitation_create(
        team=rival, invitee="lab@example.com", role="editor", actor=mallory
    )
    return to_alice, to_an_address


def _run_with_points(world: World, name: str):
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name=name)
    metrics_ingest(run=run, points=[Point("loss", s, 1.0 / (s + 1), 10.0 + s) for s in range(5)])
    return run


def _report(world: World, project, run_id: int):
    body = f"# Loss\n\n```chart\nruns: [{run_id}]\nmetrics: [loss]\n```"
    report = report_services.report_create(
        user=world.owner.user, project=project, title="Findings", body=body
    )
    return report_services.report_save(
        report=report, user=world.owner.user, revision=1, body=body + "\n\nMore."
    )


def _fired_alert(world: World, capture_on_commit) -> Alert:
    owner = world.owner.user
    team, role = selectors.team_get_for_user(owner, "acme")
    destination = alert_services.destination_create(
        user=owner,
        team=team,
        role=role,
        kind="email",
        name="oncall",
        config={"addresses": ["oncall@example.com"]},
    )
    project = selectors.project_get_for_user(owner, "acme/mnist")
    data = {"name": "failures", "trigger": "run_failed", "destinations": [destination.pk]}
    rule = alert_services.rule_create(user=owner, project=project, data=data)
    with capture_on_commit(execute=True):
        run = tracking_services.run_create(user=owner, project=world.project, name="crashy")
        tracking_services.run_update(run=run, data={"status": "failed", "error": "OOM"})
    return Alert.objects.get(rule=rule)


def _member_pages(runs, report_id: int, alert: Alert) -> list[str]:
    rules = "/acme/mnist/alerts/rules/"
    destinations = "/settings/teams/acme/destinations/"
    return [
        "/",
        "/password/",
        "/acme/",
        "/acme/mnist/",
        f"/acme/mnist/runs/{runs[0].pk}",
        f"/acme/mnist/compare?runs={runs[0].pk},{runs[1].pk}",
        "/acme/mnist/settings/",
        "/acme/mnist/reports/",
        "/acme/mnist/reports/new",
        f"/reports/{report_id}/",
        f"/reports/{report_id}/edit",
        f"/reports/{report_id}/revisions/",
        f"/reports/{report_id}/revisions/1",
        f"/reports/{report_id}/diff?from=1&to=2",
        f"/reports/{report_id}/share",
        "/settings/tokens/",
        "/settings/new-team/",
        "/settings/invitations/",
        "/settings/teams/acme/",
        destinations,
        f"{destinations}{alert.notifications.first().destination_id}/",
        "/alerts/",
        f"/alerts/{alert.pk}/",
        actions.action_path(alert.pk, "acknowledge"),  # a notification link's confirmation
        "/acme/mnist/alerts/",
        rules,
        f"{rules}new",
        f"{rules}{alert.rule_id}/",
        f"{rules}{alert.rule_id}/delete",
        "/acme/mnist/alerts/silences/",
    ]


@dataclass
class Form:
    method: str
    action: str | None
    fields: dict[str, str] = field(default_factory=dict)


class PageParser(HTMLParser):
    """What a page's HTML holds that the security tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []  # on*= attributes, as "tag onclick"
        self.script_urls: list[str] = []  # href/src/action starting with javascript:
        self.forms: list[Form] = []
        self._form: Form | None = None  # the form being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        self.script_urls += [
            value
            for name, value in attrs
            if name in ("href", "src", "action", "formaction")
            and (value or "").strip().lower().startswith("javascript:")
        ]
        if tag == "script":
            self.scripts.append(found)
        elif tag == "form":
            method = (found.get("method") or "get").lower()
            self._form = Form(method=method, action=found.get("action"))
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and found.get("name"):
            self._form.fields[found["name"]] = found.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser
