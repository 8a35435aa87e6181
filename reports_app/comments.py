"""Comments on runs and reports: threads, Markdown bodies, resolving, @mentions.

A comment's target is named ``run:<id>`` or ``report:<id>``. Whoever may read
the target may comment on it, viewers too; a target the caller may not read
is ``NotFound``, whether or not it exists.

Threads are one level deep: a reply to a reply joins its root's thread
(``parent`` is always a root, as in a code review), so a discussion never
becomes a staircase. Only a root is resolved, by the team's editors and
owners or by whoever started the thread. People edit and delete only their
own comments. Deleting is soft: the body goes, the row stays with
``deleted_at``, so the replies keep their thread under a "deleted" marker.

Bodies are Markdown, rendered through ``markup`` (the nh3 allowlist) each time
a comment is shown, so a tightened allowlist covers old comments too. Shown,
``@name`` of a member of the target's team is a mention badge, and ``run:<id>``
of a run of that team links to the run with its name and status; anything else
stays the text it was. Whoever reads a comment is a member of that team, and
members read all its runs, so every reader gets the same HTML (the live
messages too). The names and ids of a list of comments are looked up together.

``@name`` mentions a teammate by username or email address (``@bob``,
``@bob@example.com``); mentions inside code do not count. Only people who may
read the target get an email (one Celery task each, queued after commit), and
an edit notifies only the people it newly mentions. Unknown names and
outsiders are dropped without a trace: the caller's answer is the same either
way, so mentions cannot probe who has an account.

Every change is published live (``reports_app.live.publish_comment``) after commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from kernel.errors import Conflict, NotFound, PermissionDenied, invalid
from kernel.http import absolute_url
from kernel.ids import by_id
from kernel.limits import max_length
from kernel.tasks import queue_task
from reports_app import live, markup
from reports_app.models import Comment, Report, Visibility
from reports_app.render import run_ref_html
from reports_app.selectors import report_get_for_user
from tracking.models import WRITE_ROLES, Project, Run
from tracking.selectors import run_get_for_user
from tracking.validation import clean_text

MENTION_EMAIL_TASK = "reports.send_mention_email"  # reports_app.tasks

MAX_BODY = 20_000  # characters of Markdown
MAX_MENTIONS = 20  # names looked up per comment: a comment is no mailing list
TARGET_RE = re.compile(r"(run|report):([1-9][0-9]{0,18})")
ANCHOR_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
MAX_RUN_LINKS = 50  # run:<id> references looked up per comment; the rest stay text
# Fenced blocks (to their closing fence, or the end when unclosed) and inline code spans.
CODE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?(?:^[ \t]*\1|\Z)|`[^`\n]+`", re.DOTALL | re.MULTILINE)
EMAIL_TEMPLATES = "reports_app/emails/mention"


# --- Targets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A run or report the caller may read; ``role`` is theirs in its team."""

    kind: str  # "run" or "report"
    obj: Run | Report

    @property
    def role(self) -> str | None:
        return getattr(self.obj, "role", None)

    @property
    def project(self) -> Project:
        return self.obj.project

    @property
    def lookup(self) -> dict[str, Run | Report]:
        return {self.kind: self.obj}


def target_get_for_user(user: User, value: Any, *, field: str = "target") -> Target:
    """The target named ``value`` (``run:7``, ``report:3``), access-checked."""
    match = TARGET_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(field, "Name the target as 'run:<id>' or 'report:<id>'.")
    kind, ident = match[1], int(match[2])
    try:
        obj = run_get_for_user(user, ident) if kind == "run" else report_get_for_user(user, ident)
    except NotFound:
        raise NotFound(kind.capitalize(), field=field) from None
    return Target(kind, obj)


def target_of(comment: Comment) -> Target:
    """``comment.target`` as its reader got it, else its target with no role (fails closed)."""
    target: Target | None = getattr(comment, "target", None)
    if target is None:
        if comment.run is not None:
            target = Target("run", comment.run)
        else:
            assert comment.report is not None  # a comment is on a run or on a report
            target = Target("report", comment.report)
    return target


def target_label(comment: Comment) -> str:
    return f"run:{comment.run_id}" if comment.run_id else f"report:{comment.report_id}"


def team_members(team_id: int) -> QuerySet[User]:
    return get_user_model().objects.filter(is_active=True, memberships__team_id=team_id)


def readers(target: Target) -> QuerySet[User]:
    """The active users who may read ``target`` (a private report: its author alone)."""
    users = team_members(target.project.team_id)
    if isinstance(target.obj, Report) and target.obj.visibility == Visibility.PRIVATE:
        author_id = target.obj.author_id  # None once the author was removed: nobody
        users = users.filter(pk=author_id) if author_id is not None else users.none()
    return users


# --- Reads -------------------------------------------------------------------------------


def comments_for(target: Target) -> QuerySet[Comment]:
    """Every comment on ``target`` (deleted ones too), oldest first: one query."""
    return (
        Comment.objects.filter(**target.lookup)
        .select_related("author", "resolved_by")
        .order_by("created_at", "id")
    )


def comment_get_for_user(user: User, comment_id: int) -> Comment:
    """The comment with ``comment.target`` set; ``NotFound`` if its target is unreadable."""
    comments = Comment.objects.select_related("author", "resolved_by")
    comment = by_id(comments, comment_id)
    if comment is None:
        raise NotFound("Comment")
    try:
        comment.target = target_get_for_user(user, target_label(comment))
    except NotFound:
        raise NotFound("Comment") from None
    return comment


class CommentData(TypedDict):
    id: int
    target: str
    parent: int | None
    anchor: str
    author: str | None
    body: str
    body_html: str
    deleted: bool
    created_at: str
    edited_at: str | None
    resolved_at: str | None
    resolved_by: str | None


def comment_data(comment: Comment) -> CommentData:
    """The JSON shape of a comment, for the API and live messages alike."""
    return comments_data([comment], target_of(comment))[0]


def comments_data(comments: Iterable[Comment], target: Target) -> list[CommentData]:
    """The JSON shapes of comments on ``target``; two queries at most for all their links."""
    comments = list(comments)
    shown = [comment for comment in comments if comment.deleted_at is None]
    bodies = bodies_html([comment.body for comment in shown], team_id=target.project.team_id)
    html = {comment.pk: body for comment, body in zip(shown, bodies, strict=True)}
    return [_data(comment, html.get(comment.pk, "")) for comment in comments]


def _data(comment: Comment, body_html: str) -> CommentData:
    deleted = comment.deleted_at is not None
    return {
        "id": comment.pk,
        "target": target_label(comment),
        "parent": comment.parent_id,
        "anchor": comment.anchor,
        "author": _username(comment.author),
        "body": comment.body,
        "body_html": body_html,
        "deleted": deleted,
        "created_at": comment.created_at.isoformat(),
        "edited_at": _iso(comment.edited_at),
        "resolved_at": _iso(comment.resolved_at),
        "resolved_by": _username(comment.resolved_by),
    }


def _username(user: User | None) -> str | None:
    return None if user is None else user.get_username()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- Writes ------------------------------------------------------------------------------


@transaction.atomic
def comment_create(
    *, user: User, target: Target, body: Any, parent: Any = None, anchor: Any = ""
) -> Comment:
    """A comment by a reader of ``target``; a reply joins the thread of ``parent``'s root."""
    body = _clean_body(body)
    root = _thread_root(target, parent)
    anchor = _clean_anchor(target, anchor, root)
    comment = Comment.objects.create(
        author=user, body=body, parent=root, anchor=anchor, **target.lookup
    )
    comment.target = target
    _notify(comment, mentioned=mentions(body))
    _publish(comment, "created")
    return comment


@transaction.atomic
def comment_edit(*, user: User, comment: Comment, body: Any) -> Comment:
    """Replace the body of one's own comment; newly mentioned people are notified."""
    _require_author(comment, user)
    if comment.deleted_at is not None:
        raise Conflict("deleted", "This comment was deleted: it can no longer be edited.")
    body = _clean_body(body)
    if body == comment.body:
        return comment
    before = mentions(comment.body)
    comment.body, comment.edited_at = body, timezone.now()
    comment.save(update_fields=["body", "edited_at"])
    _notify(comment, mentioned=mentions(body) - before)
    _publish(comment, "edited")
    return comment


@transaction.atomic
def comment_delete(*, user: User, comment: Comment) -> Comment:
    """Blank one's own comment; the row stays so its replies keep their thread."""
    _require_author(comment, user)
    if comment.deleted_at is None:
        comment.body, comment.deleted_at = "", timezone.now()
        comment.save(update_fields=["body", "deleted_at"])
        _publish(comment, "deleted")
    return comment


def comment_resolve(*, user: User, comment: Comment) -> Comment:
    return _resolved_set(user, comment, resolved=True)


def comment_unresolve(*, user: User, comment: Comment) -> Comment:
    return _resolved_set(user, comment, resolved=False)


@transaction.atomic
def comment_update(*, user: User, comment: Comment, data: dict[str, Any]) -> Comment:
    """Apply a PATCH: a new ``body`` and/or ``resolved`` (true/false), all or nothing."""
    if "resolved" in data and not isinstance(data["resolved"], bool):
        raise invalid("resolved", "Must be true or false.")
    if "body" in data:
        comment = comment_edit(user=user, comment=comment, body=data["body"])
    if "resolved" in data:
        change = comment_resolve if data["resolved"] else comment_unresolve
        comment = change(user=user, comment=comment)
    return comment


@transaction.atomic
def _resolved_set(user: User, comment: Comment, *, resolved: bool) -> Comment:
    """Resolve or reopen a thread; the role comes from ``comment_get_for_user``."""
    if comment.parent_id is not None:
        raise invalid("resolved", "A thread is resolved at its first comment.")
    if target_of(comment).role not in WRITE_ROLES and comment.author_id != user.pk:
        raise PermissionDenied("Only editors, owners and whoever started the thread resolve it.")
    if (comment.resolved_at is not None) == resolved:
        return comment
    comment.resolved_at = timezone.now() if resolved else None
    comment.resolved_by = user if resolved else None
    comment.save(update_fields=["resolved_at", "resolved_by"])
    _publish(comment, "resolved" if resolved else "reopened")
    return comment


def _require_author(comment: Comment, user: User) -> None:
    if comment.author_id != user.pk:
        raise PermissionDenied("You can only change your own comments.")


def _clean_body(body: Any) -> str:
    return clean_text(body, field="body", max_length=MAX_BODY, required=True)


def _thread_root(target: Target, parent: Any) -> Comment | None:
    """The root of the thread a reply to ``parent`` (an id) joins; None for a new thread."""
    if parent is None:
        return None
    if isinstance(parent, bool) or not isinstance(parent, int):
        raise invalid("parent", "Send the id of the comment you reply to (a whole number).")
    replied = Comment.objects.filter(**target.lookup).select_related("parent")
    found = by_id(replied, parent)
    if found is None:
        raise NotFound("Comment", field="parent")
    return found.parent or found


def _clean_anchor(target: Target, anchor: Any, root: Comment | None) -> str:
    """The heading or block id a thread is about; replies share their root's."""
    anchor = clean_text(anchor, field="anchor", max_length=max_length(Comment, "anchor"))
    if root is not None:
        if anchor and anchor != root.anchor:
            raise invalid("anchor", "A reply belongs to its thread's anchor: leave it out.")
        return root.anchor
    if anchor and target.kind != "report":
        raise invalid("anchor", "Only comments on a report have an anchor.")
    if anchor and not ANCHOR_RE.fullmatch(anchor):
        raise invalid("anchor", "An anchor is the id of a heading or block: letters, digits, _-.:")
    return anchor


def _publish(comment: Comment, action: str) -> None:
    def send() -> None:
        live.publish_comment(
            target=target_label(comment), action=action, comment=comment_data(comment)
        )

    transaction.on_commit(send)


# --- Mentions ----------------------------------------------------------------------------


def mentions(body: str) -> set[str]:
    """The names ``@``-mentioned in ``body`` outside code: usernames or email addresses."""
    text = CODE_RE.sub(" ", body)
    return {markup.mention_name(match) for match in markup.MENTION_RE.finditer(text)} - {""}


def _named(users: QuerySet[User], names: set[str]) -> QuerySet[User]:
    """The ``users`` a mention names: by username, or by email address in any case."""
    emails = {name.lower() for name in names if "@" in name}
    return users.annotate(email_lower=Lower("email")).filter(
        Q(username__in=names) | Q(email_lower__in=emails)
    )


def mentioned_readers(target: Target, names: set[str]) -> QuerySet[User]:
    """The readers of ``target`` named by username or (any case) email, with an address."""
    return _named(readers(target), set(sorted(names)[:MAX_MENTIONS])).exclude(email="")


def _notify(comment: Comment, *, mentioned: set[str]) -> None:
    """Queue one email per mentioned reader (not the author), once the comment is committed."""
    if not mentioned:
        return
    found = mentioned_readers(target_of(comment), mentioned)
    if comment.author_id is not None:
        found = found.exclude(pk=comment.author_id)
    for user_id in found.values_list("pk", flat=True):
        transaction.on_commit(partial(queue_task, MENTION_EMAIL_TASK, comment.pk, user_id))


# --- Rendering ---------------------------------------------------------------------------


def bodies_html(bodies: list[str], *, team_id: int) -> list[str]:
    """Sanitized HTML of comment bodies whose mentions and run references name team ``team_id``.

    One query for the members all the bodies mention and one for their runs,
    however many bodies; none when nothing is mentioned or referenced.
    """
    converted = [markup.convert(body) for body in bodies]
    names: set[str] = set()
    run_ids: set[int] = set()
    for _html, source in converted:
        names.update(sorted(set(source.mentions))[:MAX_MENTIONS])
        run_ids.update(sorted(set(source.run_refs))[:MAX_RUN_LINKS])
    members = _members_by_name(team_id, names)
    runs = _runs_by_id(team_id, run_ids)
    return [_filled(html, source, members, runs) for html, source in converted]


def _members_by_name(team_id: int, names: set[str]) -> dict[str, User]:
    """The team's members the mentioned ``names`` name, by name."""
    if not names:
        return {}
    fields = ("username", "email", "first_name", "last_name")
    users = list(_named(team_members(team_id), names).only(*fields))
    by_username = {user.get_username(): user for user in users}
    by_email = {user.email.lower(): user for user in users if user.email}
    found = {name: by_username.get(name) or by_email.get(name.lower()) for name in names}
    return {name: user for name, user in found.items() if user is not None}


def _runs_by_id(team_id: int, run_ids: set[int]) -> dict[int, Run]:
    if not run_ids:
        return {}
    runs = Run.objects.filter(pk__in=run_ids, project__team_id=team_id)
    return {run.pk: run for run in runs.select_related("project__team")}


def _filled(
    html: str, source: markup.Source, members: dict[str, User], runs: dict[int, Run]
) -> str:
    def run_link(run_id: int) -> str:
        run = runs.get(run_id)
        return f"run:{run_id}" if run is None else run_ref_html(run)

    def mention(name: str) -> str:
        user = members.get(name)
        if user is None:
            return format_html("@{}", name)
        return format_html(
            '<span class="mention" title="{}">@{}</span>',
            user.get_full_name() or user.get_username(),
            name,
        )

    return markup.fill(
        html, source, block=markup.code_blocks(source), run_link=run_link, mention=mention
    )


def comment_url(comment: Comment) -> str:
    """Where the comment is shown: its run's page, or its report's."""
    target: Run | Report | None = comment.run if comment.run_id else comment.report
    assert target is not None  # a comment is on a run or on a report
    return absolute_url(f"{target.get_absolute_url()}#comment-{comment.pk}")


def mention_email_send(*, comment: Comment, user: User) -> bool:
    """Email ``user`` that ``comment`` mentions them; False when that no longer applies.

    Checked again at send time: since the task was queued the comment may have
    been deleted, or the user may have left the team.
    """
    target = target_of(comment)
    if comment.deleted_at is not None or not user.email:
        return False
    if not readers(target).filter(pk=user.pk).exists():
        return False
    context = _email_context(comment, target, user)
    subject = render_to_string(f"{EMAIL_TEMPLATES}_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # titles are user input: no line breaks in a header
        body=render_to_string(f"{EMAIL_TEMPLATES}.txt", context),
        to=[user.email],
    )
    message.attach_alternative(render_to_string(f"{EMAIL_TEMPLATES}.html", context), "text/html")
    message.send()
    return True


def _email_context(comment: Comment, target: Target, user: User) -> dict[str, Any]:
    if isinstance(target.obj, Run):
        where = f"run {target.obj.name} in {target.project.full_name}"
    else:
        where = f"report “{target.obj.title}” in {target.project.full_name}"
    return {
        "author": _username(comment.author) or "Someone",
        "recipient": user.get_username(),
        "where": where,
        "url": comment_url(comment),
        "body": comment.body,
        "body_html": markup.to_html(comment.body),
    }
