"""Read an export back into a team: all or nothing, and quietly.

The whole file is loaded in one transaction: on any error (a malformed line,
a file cut short, a name already taken) nothing of it stays behind. Nothing
is announced either (``events.quiet``): copying last year's failed run is no
reason to page anyone, and comments are written as rows, so old @mentions
send no email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from kernel.errors import ApplicationError
from tracking import events
from tracking.models import Membership, Role, Team
from tracking.portability import sections
from tracking.portability.format import (
    Input,
    Line,
    PortabilityError,
    check_header,
    read_lines,
    records,
)
from tracking.portability.sections import LoadContext, Section, Summary

Progress = Callable[[int], None]
Lines = Iterator[tuple[int, Line]]


def team_for_import(slug: str) -> Team:
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise PortabilityError(f"--team: there is no team {slug!r}.")
    return team


def importer_for(team: Team, username: str | None) -> User:
    """Who owns what the file's authors cannot: ``username``, else the team's first owner."""
    memberships = Membership.objects.filter(team=team).select_related("user")
    if username:
        membership = memberships.filter(user__username=username).first()
        if membership is None:
            raise PortabilityError(f"--user: {username!r} is not a member of {team.slug}.")
        if membership.role == Role.VIEWER:
            raise PortabilityError(f"--user: {username!r} is only a viewer of {team.slug}.")
        return membership.user
    owner = memberships.filter(role=Role.OWNER).order_by("created_at", "pk").first()
    if owner is None:
        raise PortabilityError(f"--user: {team.slug} has no owner; name a member with --user.")
    return owner.user


def project_import(
    *,
    source: Input,
    team: Team,
    user: User,
    slug: str | None = None,
    progress: Progress,
) -> Summary:
    """Load the export in ``source`` as project ``slug`` (default: the file's) of ``team``."""
    lines = read_lines(source.stream)
    context = LoadContext(team=team, user=user, source=_header(lines), slug=slug)
    handlers = {kind: section for section in sections.registered() for kind in section.types}
    tick = _ticker(source, progress)
    with events.quiet(), transaction.atomic():
        last, end = _load(lines, handlers, context, tick)
        _check_end(last, end, context)
        if next(lines, None) is not None:
            raise PortabilityError(f"line {last + 1}: nothing may follow the end line.")
    tick()
    return Summary(context.loaded_project.full_name, context.counts, context.warnings)


def _header(lines: Lines) -> str:
    first = next(lines, None)
    if first is None:
        raise PortabilityError("line 1: the file is empty.")
    return check_header(first[1])


def _ticker(source: Input, progress: Progress) -> Callable[[], None]:
    """Advance the bar by bytes read when the size is known, else by lines."""
    done = 0

    def tick() -> None:
        nonlocal done
        if source.size is None:
            progress(1)
            return
        position = source.position()
        progress(position - done)
        done = position

    return tick


def _load(
    lines: Lines, handlers: dict[str, Section], context: LoadContext, tick: Callable[[], None]
) -> tuple[int, Line | None]:
    """Hand each line to its section; answers the last line number and the end line."""
    number = 1
    for number, line in lines:
        kind = line.get("type")
        if kind == "end":
            return number, line
        if kind not in handlers:
            raise PortabilityError(f"line {number}: unknown type {kind!r}.")
        _load_line(number, line, handlers[kind], context)
        context.counts[kind] += records(line)
        tick()
    return number, None


def _load_line(number: int, line: Line, section: Section, context: LoadContext) -> None:
    try:
        section.load(line, context)
    except ApplicationError as error:
        where = f"{line['type']}.{error.field}: " if error.field else ""
        raise PortabilityError(f"line {number}: {where}{error.message}") from None
    except IntegrityError as error:
        raise PortabilityError(f"line {number}: clashes with an earlier line ({error}).") from None
    except PortabilityError as error:
        raise PortabilityError(f"line {number}: {error}") from None


def _check_end(last: int, end: Line | None, context: LoadContext) -> None:
    """The end line must come last and agree with what was read: nothing went missing."""
    if end is None:
        raise PortabilityError(
            f"line {last + 1}: the file ends early, without its end line (was it cut short?)."
        )
    if context.project is None:
        raise PortabilityError(f"line {last}: the file holds no project.")
    expected = end.get("counts")
    read = {kind: count for kind, count in context.counts.items() if count}
    if not isinstance(expected, dict) or {k: v for k, v in expected.items() if v} != read:
        raise PortabilityError(
            f"line {last}: the end line counts {expected!r}, but the file holds {read!r}."
        )
