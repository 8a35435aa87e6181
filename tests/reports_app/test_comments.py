"""Comment services: who may comment, threads, edit/delete/resolve rules, Markdown, mentions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail

from kernel.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from labbook.celery import app as celery_app
from reports_app import comments
from reports_app import services as report_services
from reports_app.models import Comment, Report
from tests.conftest import Persona, World
from tracking import services
from tracking.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="baseline")


@pytest.fixture
def report(world: World) -> Report:
    return report_services.report_create(
        user=world.owner.user, project=world.project, title="Findings", body="# Results\n"
    )


@pytest.fixture
def emails(world: World) -> None:
    for persona in (world.owner, world.editor, world.viewer, world.outsider):
        get_user_model().objects.filter(pk=persona.user.pk).update(
            email=f"{persona.name}@example.com"
        )


@pytest.fixture
def sent(emails: None) -> Iterator[list]:
    """The outbox, with mention tasks run in-process when they are queued."""
    conf = celery_app.conf
    before = conf.task_always_eager, conf.task_eager_propagates
    conf.update(task_always_eager=True, task_eager_propagates=True)
    yield mail.outbox
    conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with committed():`` runs what the block queued for after commit, as a commit would."""
    return partial(django_capture_on_commit_callbacks, execute=True)


def say(persona: Persona, target: str, body: str, **options: Any) -> Comment:
    found = comments.target_get_for_user(persona.user, target)
    return comments.comment_create(user=persona.user, target=found, body=body, **options)


def reread(persona: Persona, comment: Comment) -> Comment:
    return comments.comment_get_for_user(persona.user, comment.pk)


# --- Who may comment ----------------------------------------------------------------------


def test_it_lets_a_viewer_comment_on_a_run(world: World, run: Run) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "Loss plateaus after step 300?")
    data = comments.comment_data(comment)
    assert data["author"] == "carol"
    assert data["target"] == f"run:{run.pk}"
    assert data["body_html"] == "<p>Loss plateaus after step 300?</p>"


def test_it_lets_a_viewer_comment_on_a_team_report(world: World, report: Report) -> None:
    comment = say(world.viewer, f"report:{report.pk}", "Nice.", anchor="r-results")
    assert comment.report_id == report.pk and comment.anchor == "r-results"


@pytest.mark.parametrize("kind", ["run", "report"])
def test_it_hides_a_target_from_an_outsider(
    world: World, run: Run, report: Report, kind: str
) -> None:
    ident = run.pk if kind == "run" else report.pk
    for target in (f"{kind}:{ident}", f"{kind}:{10**9}"):
        with pytest.raises(NotFound) as caught:
            comments.target_get_for_user(world.outsider.user, target)
        assert caught.value.field == "target"
        assert caught.value.message == f"{kind.capitalize()} not found"


def test_it_hides_a_private_report_from_teammates(world: World) -> None:
    private = report_services.report_create(
        user=world.editor.user, project=world.project, title="Draft", visibility="private"
    )
    with pytest.raises(NotFound):
        comments.target_get_for_user(world.owner.user, f"report:{private.pk}")
    assert say(world.editor, f"report:{private.pk}", "note to self").pk


@pytest.mark.parametrize("target", [None, 7, "run", "run:", "run:x", "run:0", "job:1", " run:1"])
def test_it_refuses_a_malformed_target(world: World, target: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        comments.target_get_for_user(world.viewer.user, target)
    assert (caught.value.code, caught.value.field) == ("invalid", "target")


def test_it_hides_a_comment_whose_target_the_caller_cannot_read(world: World, run: Run) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "hello")
    with pytest.raises(NotFound):
        comments.comment_get_for_user(world.outsider.user, comment.pk)
    with pytest.raises(NotFound):
        comments.comment_get_for_user(world.viewer.user, 10**9)


@pytest.mark.parametrize("body", [None, "", "   ", 42, "x" * (comments.MAX_BODY + 1), "a\x00b"])
def test_it_refuses_a_bad_body_and_writes_nothing(world: World, run: Run, body: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        say(world.viewer, f"run:{run.pk}", body)
    assert caught.value.field == "body"
    assert not Comment.objects.exists()


# --- Threads and anchors -----------------------------------------------------------------------


def test_it_attaches_a_reply_to_a_reply_to_the_thread_root(world: World, run: Run) -> None:
    target = f"run:{run.pk}"
    root = say(world.viewer, target, "Why did this diverge?")
    reply = say(world.editor, target, "lr too high", parent=root.pk)
    answer = say(world.viewer, target, "thanks", parent=reply.pk)
    assert (reply.parent_id, answer.parent_id) == (root.pk, root.pk)
    listed = comments.comments_for(comments.target_get_for_user(world.viewer.user, target))
    assert [c.pk for c in listed] == [root.pk, reply.pk, answer.pk]


@pytest.mark.parametrize("parent", ["1", 1.5, True, 0, 10**20])
def test_it_refuses_a_bad_parent(world: World, run: Run, parent: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        say(world.viewer, f"run:{run.pk}", "hi", parent=parent)
    assert caught.value.field == "parent"


def test_it_refuses_a_parent_on_another_target(world: World, run: Run) -> None:
    other = services.run_create(user=world.editor.user, project=world.project)
    elsewhere = say(world.viewer, f"run:{other.pk}", "over there")
    with pytest.raises(NotFound) as caught:
        say(world.viewer, f"run:{run.pk}", "here", parent=elsewhere.pk)
    assert caught.value.field == "parent"


def test_it_gives_replies_their_threads_anchor(world: World, report: Report) -> None:
    target = f"report:{report.pk}"
    root = say(world.viewer, target, "About this table", anchor="r-results")
    assert say(world.editor, target, "agreed", parent=root.pk).anchor == "r-results"
    with pytest.raises(ApplicationError) as caught:
        say(world.editor, target, "agreed", parent=root.pk, anchor="r-other")
    assert caught.value.field == "anchor"


@pytest.mark.parametrize("anchor", ["has space", "<b>", "-x", "x" * 201])
def test_it_refuses_a_bad_anchor(world: World, report: Report, anchor: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        say(world.viewer, f"report:{report.pk}", "hi", anchor=anchor)
    assert caught.value.field == "anchor"


def test_it_refuses_an_anchor_on_a_run(world: World, run: Run) -> None:
    with pytest.raises(ApplicationError) as caught:
        say(world.viewer, f"run:{run.pk}", "hi", anchor="r-results")
    assert caught.value.field == "anchor"


# --- Edit, delete, resolve ---------------------------------------------------------------------


def test_it_lets_the_author_edit_and_marks_the_edit(world: World, run: Run) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "typo")
    edited = comments.comment_edit(user=world.viewer.user, comment=comment, body="fixed")
    data = comments.comment_data(reread(world.viewer, edited))
    assert data["body"] == "fixed" and data["edited_at"] is not None


@pytest.mark.parametrize("persona", ["owner", "editor"])
def test_it_refuses_to_let_anyone_else_edit_or_delete(world: World, run: Run, persona: str) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "mine")
    other = world.persona(persona).user
    with pytest.raises(PermissionDenied):
        comments.comment_edit(user=other, comment=comment, body="theirs")
    with pytest.raises(PermissionDenied):
        comments.comment_delete(user=other, comment=comment)
    assert Comment.objects.get(pk=comment.pk).body == "mine"


def test_it_deletes_softly_and_keeps_the_replies(world: World, run: Run) -> None:
    target = f"run:{run.pk}"
    root = say(world.viewer, target, "secret detail")
    reply = say(world.editor, target, "answer", parent=root.pk)
    comments.comment_delete(user=world.viewer.user, comment=root)
    data = comments.comment_data(reread(world.editor, root))
    assert (data["deleted"], data["body"], data["body_html"]) == (True, "", "")
    assert reread(world.editor, reply).parent_id == root.pk
    with pytest.raises(Conflict):
        comments.comment_edit(user=world.viewer.user, comment=root, body="back")


def test_it_lets_editors_and_the_thread_author_resolve(world: World, run: Run) -> None:
    target = f"run:{run.pk}"
    thread = say(world.viewer, target, "Is this a bug?")
    resolved = comments.comment_resolve(
        user=world.editor.user, comment=reread(world.editor, thread)
    )
    assert comments.comment_data(resolved)["resolved_by"] == "bob"
    reopened = comments.comment_unresolve(
        user=world.viewer.user, comment=reread(world.viewer, thread)
    )
    assert reopened.resolved_at is None and reopened.resolved_by is None


def test_it_refuses_a_viewer_resolving_someone_elses_thread(world: World, run: Run) -> None:
    thread = say(world.editor, f"run:{run.pk}", "Is this a bug?")
    with pytest.raises(PermissionDenied):
        comments.comment_resolve(user=world.viewer.user, comment=reread(world.viewer, thread))


def test_it_resolves_only_a_threads_root(world: World, run: Run) -> None:
    root = say(world.viewer, f"run:{run.pk}", "question")
    reply = say(world.viewer, f"run:{run.pk}", "more", parent=root.pk)
    with pytest.raises(ApplicationError) as caught:
        comments.comment_resolve(user=world.owner.user, comment=reread(world.owner, reply))
    assert caught.value.field == "resolved"


def test_it_applies_a_patch_all_or_nothing(world: World, run: Run) -> None:
    root = say(world.viewer, f"run:{run.pk}", "question")
    reply = say(world.viewer, f"run:{run.pk}", "first", parent=root.pk)
    with pytest.raises(ApplicationError):
        comments.comment_update(
            user=world.viewer.user,
            comment=reread(world.viewer, reply),
            data={"body": "second", "resolved": True},
        )
    assert Comment.objects.get(pk=reply.pk).body == "first"


# --- Markdown ------------------------------------------------------------------------------


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="&#106;avascript:alert(1)">x</a>',
    "![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<details open ontoggle=alert(1)>",
]


@pytest.mark.parametrize("payload", XSS)
def test_it_sanitizes_the_markdown_it_shows(world: World, run: Run, payload: str) -> None:
    comment = say(world.viewer, f"run:{run.pk}", f"look: {payload}")
    html = comments.comment_data(reread(world.viewer, comment))["body_html"].lower()
    for bad in ("<script", "onerror", "onload", "ontoggle", "javascript:", "data:", "<iframe"):
        assert bad not in html
    assert "style=" not in html and "<svg" not in html


# --- Mentions ------------------------------------------------------------------------------


def test_it_finds_mentions_outside_code() -> None:
    body = (
        "@bob, see this. cc @Carol@Example.com and @dave.\n"
        "not a@mention.com nor `@eve`\n```\n@frank\n```\n"
    )
    assert comments.mentions(body) == {"bob", "Carol@Example.com", "dave"}


def test_it_emails_a_mentioned_teammate_once(
    world: World, run: Run, sent: list, committed: Callable
) -> None:
    with committed():
        comment = say(world.viewer, f"run:{run.pk}", "@bob look, @bob! Also @bob@example.com")
    assert [m.to for m in sent] == [["bob@example.com"]]
    message = sent[0]
    assert f"{settings.BASE_URL}/acme/mnist/runs/{run.pk}#comment-{comment.pk}" in message.body
    assert message.subject == "carol mentioned you on run baseline in acme/mnist"
    html, kind = message.alternatives[0]
    assert kind == "text/html" and "<p>@bob look" in html


def test_it_finds_a_teammate_by_email_in_any_case(
    world: World, run: Run, sent: list, committed: Callable
) -> None:
    with committed():
        say(world.viewer, f"run:{run.pk}", "@Alice@Example.COM please check")
    assert [m.to for m in sent] == [["alice@example.com"]]


def test_it_ignores_outsiders_unknown_names_and_the_author(
    world: World, run: Run, sent: list, committed: Callable
) -> None:
    with committed():
        say(world.viewer, f"run:{run.pk}", "@mallory @ghost @carol @mallory@example.com")
    assert sent == []


def test_it_emails_only_the_newly_mentioned_after_an_edit(
    world: World, run: Run, sent: list, committed: Callable
) -> None:
    with committed():
        comment = say(world.viewer, f"run:{run.pk}", "@bob")
    with committed():
        comments.comment_edit(user=world.viewer.user, comment=comment, body="@bob and @alice")
    assert [m.to for m in sent] == [["bob@example.com"], ["alice@example.com"]]


def test_it_links_a_report_mention_to_the_report(
    world: World, report: Report, sent: list, committed: Callable
) -> None:
    with committed():
        comment = say(world.viewer, f"report:{report.pk}", "@alice", anchor="r-results")
    assert f"/reports/{report.pk}/#comment-{comment.pk}" in sent[0].body
    assert "report “Findings” in acme/mnist" in sent[0].subject


def test_it_does_not_tell_teammates_about_a_private_report(
    world: World, sent: list, committed: Callable
) -> None:
    private = report_services.report_create(
        user=world.editor.user, project=world.project, title="Draft", visibility="private"
    )
    with committed():
        say(world.editor, f"report:{private.pk}", "@alice @carol")
    assert sent == []


def test_it_skips_a_teammate_without_an_address(
    world: World, run: Run, sent: list, committed: Callable
) -> None:
    get_user_model().objects.filter(pk=world.editor.user.pk).update(email="")
    with committed():
        say(world.viewer, f"run:{run.pk}", "@bob")
    assert sent == []


def test_it_queues_nothing_before_the_comment_commits(
    world: World, run: Run, sent: list, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        say(world.viewer, f"run:{run.pk}", "@bob")
    assert sent == [] and len(queued) == 2  # the live update and bob's email


def test_it_checks_again_when_the_email_is_due(world: World, run: Run, emails: None) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "@bob")
    bob = get_user_model().objects.get(pk=world.editor.user.pk)
    services.membership_remove(team=world.team, user=bob)
    assert comments.mention_email_send(comment=comment, user=bob) is False
    carol = get_user_model().objects.get(pk=world.viewer.user.pk)
    comments.comment_delete(user=carol, comment=comment)
    alice = get_user_model().objects.get(pk=world.owner.user.pk)
    assert comments.mention_email_send(comment=comment, user=alice) is False
    assert mail.outbox == []
