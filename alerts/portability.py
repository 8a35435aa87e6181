"""A project's alert rules in project exports (``tracking.portability``).

Destinations belong to the team and hold secrets (webhook keys, Slack URLs),
so they stay behind: a rule names its destinations by kind and name, and an
import attaches the importing team's destinations of the same kind and name.
Alerts, notifications and silences are the history of one installation's
deliveries and are not exported either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from alerts import services
from alerts.models import AlertRule, Destination
from kernel.errors import invalid
from tracking.models import Project
from tracking.portability import sections
from tracking.portability.format import Line, iso, when
from tracking.portability.runs import username
from tracking.portability.sections import LoadContext

RULE_FIELDS = tuple(services.RULE_DEFAULTS)


class AlertRuleSection:
    order = 30
    types = frozenset({"alert_rule"})

    def count(self, project: Project) -> int:
        return AlertRule.objects.filter(project=project, owner__isnull=True).count()

    def export(self, project: Project) -> Iterator[Line]:
        rules = (
            AlertRule.objects.filter(project=project, owner__isnull=True)  # not personal ones
            .select_related("created_by")
            .prefetch_related("destinations")
            .order_by("id")
        )
        yield from map(rule_line, rules)

    def load(self, line: Line, context: LoadContext) -> None:
        data = {name: line.get(name, services.RULE_DEFAULTS[name]) for name in RULE_FIELDS}
        data["destinations"] = destination_ids(line, context)
        data["params"] = imported_params(data["params"], context)
        rule = services.rule_create(
            user=context.author(line.get("created_by")), project=context.loaded_project, data=data
        )
        created_at = when(line, "created_at", required=True)
        AlertRule.objects.filter(pk=rule.pk).update(created_at=created_at)


sections.register(AlertRuleSection())


def rule_line(rule: AlertRule) -> Line:
    return {
        "type": "alert_rule",
        **{name: getattr(rule, name) for name in RULE_FIELDS},
        "destinations": sorted(
            ({"kind": d.kind, "name": d.name} for d in rule.destinations.all()),
            key=lambda d: (d["kind"], d["name"]),
        ),
        "created_by": username(rule.created_by),
        "created_at": iso(rule.created_at),
    }


def imported_params(params: Any, context: LoadContext) -> Any:
    """A metric_change rule's baseline run is the imported copy of the file's run."""
    if not isinstance(params, dict) or not isinstance(params.get("baseline_run"), int):
        return params
    copied = context.ids.get("run", {}).get(params["baseline_run"])
    return {**params, "baseline_run": copied} if copied is not None else params


def destination_ids(line: Line, context: LoadContext) -> list[int]:
    """The importing team's destinations named like the rule's; the others are reported."""
    wanted = line.get("destinations") or []
    if not isinstance(wanted, list) or not all(_named(item) for item in wanted):
        raise invalid("destinations", 'A list of {"kind": ..., "name": ...} objects.')
    team = Destination.objects.filter(team=context.team)
    found = {(d.kind, d.name): d.pk for d in team}
    for item in wanted:
        if (item["kind"], item["name"]) not in found:
            context.warnings.append(
                f"Alert rule {line.get('name')!r}: {context.team.slug} has no {item['kind']}"
                f" destination {item['name']!r}; the rule was imported without it."
            )
    return [found[key] for item in wanted if (key := (item["kind"], item["name"])) in found]


def _named(item: Any) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("kind", "name"))
