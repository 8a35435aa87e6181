"""Write a project as JSON Lines, one section after another, never holding it whole."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.utils import timezone

from tracking.models import Project, Team
from tracking.portability import sections
from tracking.portability.format import (
    KIND,
    VERSION,
    Line,
    PortabilityError,
    TextOut,
    dumps,
    records,
)
from tracking.selectors import split_project_name

Progress = Callable[[int], None]


def project_for_export(full_name: str) -> Project:
    """The project named ``team/project``, deleted or not (an export is how data leaves)."""
    team_slug, slug = split_project_name(full_name)
    if not Team.objects.filter(slug=team_slug).exists():
        raise PortabilityError(f"There is no team {team_slug!r}.")
    project = Project.objects.select_related("team").filter(team__slug=team_slug, slug=slug)
    found = project.first()
    if found is None:
        raise PortabilityError(f"Team {team_slug!r} has no project {slug!r}.")
    return found


def export_size(project: Project) -> int:
    """The records (points counted one by one) an export of ``project`` writes."""
    return sum(section.count(project) for section in sections.registered())


def project_export(*, project: Project, stream: TextOut, progress: Progress) -> sections.Summary:
    """Write ``project`` to ``stream``: the header, every section's lines, the end line."""
    counts: Counter[str] = Counter()
    stream.write(dumps(header(project)))
    for section in sections.registered():
        for line in section.export(project):
            stream.write(dumps(line))
            weight = records(line)
            counts[line["type"]] += weight
            progress(weight)
    stream.write(dumps({"type": "end", "counts": dict(counts)}))
    return sections.Summary(project.full_name, counts)


def header(project: Project) -> Line:
    return {
        "kind": KIND,
        "version": VERSION,
        "project": project.full_name,
        "exported_at": timezone.now().isoformat(),
    }
