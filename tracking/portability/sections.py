"""What each app puts into an export and takes back out: one ``Section`` per kind of data.

``tracking`` knows nothing of reports or alerts; their apps register sections
from a ``portability`` module (found by ``autodiscover_modules``, as Django's
admin finds ``admin`` modules). Sections run in ``order``, and a line may only
refer to lines written before it, so the order is the dependency order:
project and runs first, then what points at runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from django.contrib.auth.models import User
from django.utils.module_loading import autodiscover_modules

from kernel.errors import invalid
from tracking.models import Membership, Project, Team
from tracking.portability.format import Line

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole


@dataclass
class LoadContext:
    """What the lines read so far left behind for the lines still to come."""

    team: Team
    user: User  # authors missing from the team become this user
    source: str  # the exported project's "team/slug"
    slug: str | None  # the slug to import under; None: the file's
    project: ProjectWithRole | None = None  # load_project's, which carries its importer's role
    ids: dict[str, dict[int, int]] = field(default_factory=dict)  # "run" -> {file id: new id}
    counts: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    _members: dict[str, User] | None = None

    def author(self, username: Any) -> User | None:
        """The team member with this username, else the importing user; no name: nobody."""
        if username is None:
            return None
        if self._members is None:
            memberships = Membership.objects.filter(team=self.team).select_related("user")
            self._members = {m.user.get_username(): m.user for m in memberships}
        return self._members.get(username, self.user)

    @property
    def loaded_project(self) -> ProjectWithRole:
        """The file's project: each line after its own needs it (load checks the order)."""
        assert self.project is not None
        return self.project

    def remember(self, kind: str, old: Any, new: int) -> None:
        known = self.ids.setdefault(kind, {})
        if isinstance(old, bool) or not isinstance(old, int) or old in known:
            raise invalid("id", f"Each {kind} needs a whole-number id of its own.")
        known[old] = new


@dataclass
class Summary:
    """What moved: records per line type (``points`` counts points, not lines)."""

    project: str
    counts: Counter[str]
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        c = self.counts
        return (
            f"{_n(c['run'], 'run')}, {_n(c['points'], 'metric point')},"
            f" {_n(c['report'], 'report')} ({_n(c['report_revision'], 'revision')}),"
            f" {_n(c['comment'], 'comment')}, {_n(c['alert_rule'], 'alert rule')}"
        )


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class Section(Protocol):
    order: int
    types: frozenset[str]  # the line types ``load`` reads

    def count(self, project: Project) -> int:
        """How many records ``export`` will write (for the progress bar)."""

    def export(self, project: Project) -> Iterator[Line]: ...

    def load(self, line: Line, context: LoadContext) -> None: ...


_sections: list[Section] = []


def register(section: Section) -> None:
    if all(type(known) is not type(section) for known in _sections):
        _sections.append(section)


def registered() -> list[Section]:
    """Every app's sections, in export order."""
    autodiscover_modules("portability")
    return sorted(_sections, key=lambda section: section.order)
