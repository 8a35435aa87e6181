"""Reports (with every revision) and comments in project exports (``tracking.portability``).

Report text names runs by id (``run:12``, ``runs: [12, 15]`` in a block) and
the project by ``team/project``; an imported copy gets new ids and maybe a
new name, so its Markdown is rewritten to point at the imported runs, else
its charts would show nothing, or the wrong runs. Only ids of runs in the
file and the exported project's own name change; a block that is no valid
YAML is left as it is (it was an error box before, and stays one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from django.db.models import Q

from kernel.errors import invalid
from kernel.limits import max_length
from reports_app import comments, markup, services
from reports_app.models import Comment, Report, ReportRevision, Visibility
from tracking.models import Project
from tracking.portability import sections
from tracking.portability.format import Line, iso, ref, text, when, whole
from tracking.portability.runs import username
from tracking.portability.sections import LoadContext

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]{1,200}$")
RUNS_KEY = re.compile(r"^runs[ \t]*:(?=[ \t]|$)")
RUN_KEY = re.compile(r"^(run[ \t]*:[ \t]*)(\d+)(?=[ \t]*(?:#.*)?$)", re.MULTILINE)
CHUNK = 100


class ReportSection:
    order = 20
    types = frozenset({"report", "report_revision", "comment"})

    def count(self, project: Project) -> int:
        reports = Report.objects.filter(project=project)
        revisions = ReportRevision.objects.filter(report__project=project)
        return reports.count() + revisions.count() + project_comments(project).count()

    def export(self, project: Project) -> Iterator[Line]:
        reports = Report.objects.filter(project=project).select_related("author").order_by("id")
        for report in reports.iterator(chunk_size=CHUNK):
            yield report_line(report)
            revisions = report.revisions.select_related("author").order_by("number")
            yield from map(revision_line, revisions.iterator(chunk_size=CHUNK))
        found = project_comments(project).select_related("author", "resolved_by").order_by("id")
        yield from map(comment_line, found.iterator(chunk_size=CHUNK * 10))

    def load(self, line: Line, context: LoadContext) -> None:
        loaders = {
            "report": load_report,
            "report_revision": load_revision,
            "comment": load_comment,
        }
        loaders[line["type"]](line, context)


sections.register(ReportSection())


def project_comments(project: Project) -> Any:
    return Comment.objects.filter(Q(run__project=project) | Q(report__project=project))


# --- Export -----------------------------------------------------------------------------------


def report_line(report: Report) -> Line:
    return {
        "type": "report",
        "id": report.pk,
        "title": report.title,
        "slug": report.slug,
        "body": report.body,
        "revision": report.revision,
        "visibility": report.visibility,
        "author": username(report.author),
        "created_at": iso(report.created_at),
        "updated_at": iso(report.updated_at),
    }


def revision_line(revision: ReportRevision) -> Line:
    return {
        "type": "report_revision",
        "report": revision.report_id,
        "number": revision.number,
        "title": revision.title,
        "body": revision.body,
        "author": username(revision.author),
        "created_at": iso(revision.created_at),
        "restored_from": revision.restored_from,
        "frozen": revision.frozen,
    }


def comment_line(comment: Comment) -> Line:
    return {
        "type": "comment",
        "id": comment.pk,
        "run": comment.run_id,
        "report": comment.report_id,
        "parent": comment.parent_id,
        "anchor": comment.anchor,
        "author": username(comment.author),
        "body": comment.body,
        "created_at": iso(comment.created_at),
        "edited_at": iso(comment.edited_at),
        "deleted_at": iso(comment.deleted_at),
        "resolved_at": iso(comment.resolved_at),
        "resolved_by": username(comment.resolved_by),
    }


# --- Load --------------------------------------------------------------------------------------


def load_report(line: Line, context: LoadContext) -> None:
    slug = line.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise invalid("slug", "1-200 letters, digits, '-' and '_'.")
    if Report.objects.filter(project=context.loaded_project, slug=slug).exists():
        raise invalid("slug", f"Two reports of the file are called {slug!r}.")
    if line.get("visibility") not in Visibility.values:
        raise invalid("visibility", f"Must be one of {', '.join(Visibility.values)}.")
    report = Report.objects.create(
        project=context.loaded_project,
        title=text(line, "title", max_length=max_length(Report, "title"), required=True),
        slug=slug,
        body=retarget(text(line, "body", max_length=services.MAX_BODY), context),
        revision=whole(line, "revision", low=1, high=2**31 - 1),
        visibility=line["visibility"],
        author=context.author(line.get("author")),
        created_at=when(line, "created_at", required=True),
        updated_at=when(line, "updated_at", required=True),
    )
    context.remember("report", line.get("id"), report.pk)


def load_revision(line: Line, context: LoadContext) -> None:
    frozen = line.get("frozen") or {}
    if not isinstance(frozen, dict):
        raise invalid("frozen", "Must be an object (chart data by block index).")
    ReportRevision.objects.create(
        report_id=ref(line, "report", context.ids.get("report", {}), "report"),
        number=whole(line, "number", low=1, high=2**31 - 1),
        title=text(line, "title", max_length=max_length(ReportRevision, "title"), required=True),
        body=retarget(text(line, "body", max_length=services.MAX_BODY), context),
        author=context.author(line.get("author")),
        created_at=when(line, "created_at", required=True),
        restored_from=whole(line, "restored_from", low=1, high=2**31 - 1, nullable=True),
        frozen=retarget_pins(
            retarget_frozen(frozen, context.ids.get("run", {})), line.get("body"), context
        ),
    )


def load_comment(line: Line, context: LoadContext) -> None:
    deleted_at = when(line, "deleted_at")
    body = text(line, "body", max_length=comments.MAX_BODY, required=deleted_at is None)
    comment = Comment.objects.create(
        **comment_target(line, context),
        parent_id=comment_parent(line, context),
        anchor=text(line, "anchor", max_length=max_length(Comment, "anchor")),
        author=context.author(line.get("author")),
        body=retarget_refs(body, context.ids.get("run", {})),
        created_at=when(line, "created_at", required=True),
        edited_at=when(line, "edited_at"),
        deleted_at=deleted_at,
        resolved_at=when(line, "resolved_at"),
        resolved_by=context.author(line.get("resolved_by")),
    )
    context.remember("comment", line.get("id"), comment.pk)


def comment_target(line: Line, context: LoadContext) -> dict[str, int]:
    if (line.get("run") is None) == (line.get("report") is None):
        raise invalid("run", "A comment is on a run or on a report: give exactly one.")
    if line.get("run") is not None:
        return {"run_id": ref(line, "run", context.ids.get("run", {}), "run")}
    return {"report_id": ref(line, "report", context.ids.get("report", {}), "report")}


def comment_parent(line: Line, context: LoadContext) -> int | None:
    if line.get("parent") is None:
        return None
    return ref(line, "parent", context.ids.get("comment", {}), "comment")


# --- Pointing Markdown at the imported runs ----------------------------------------------------


def retarget(body: str, context: LoadContext) -> str:
    """``body`` with the file's run ids and project name replaced by the imported ones'."""
    runs = context.ids.get("run", {})
    projects = {context.source: context.loaded_project.full_name}
    # Fences are found as the renderer finds them, after Markdown's newline normalisation.
    text = body.replace("\r\n", "\n")
    parts, position = [], 0
    for match in markup.FENCE.finditer(text):
        parts.append(retarget_refs(text[position : match.start("body")], runs))
        parts.append(retarget_block(match["body"], runs, projects))
        position = match.end("body")
    parts.append(retarget_refs(text[position:], runs))
    changed = "".join(parts)
    return body if changed == text else changed


def retarget_refs(text: str, runs: dict[int, int]) -> str:
    """Inline ``run:<id>`` references to runs of the file point at their copies."""
    return re.sub(markup.RUN_REF, lambda m: f"run:{runs.get(int(m[1]), m[1])}", text)


def retarget_block(text: str, runs: dict[int, int], projects: dict[str, str]) -> str:
    try:
        options = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(options, dict) and "run" in options:  # table and logs blocks
        return retarget_run(text, options, runs)
    if not isinstance(options, dict) or "runs" not in options:
        return text
    selector = retarget_selector(options["runs"], runs, projects)
    if selector == options["runs"]:
        return text
    return with_runs(text, {**options, "runs": selector})


def retarget_run(text: str, options: dict[str, Any], runs: dict[int, int]) -> str:
    """A ``run: <id>`` (table and logs blocks) pointed at the imported run."""
    value = options["run"]
    if isinstance(value, bool) or not isinstance(value, int) or runs.get(value, value) == value:
        return text
    edited = RUN_KEY.sub(lambda m: f"{m[1]}{runs[value]}", text, count=1)
    if safe_load(edited) == {**options, "run": runs[value]}:
        return edited
    return yaml.safe_dump({**options, "run": runs[value]}, sort_keys=False, allow_unicode=True)


def retarget_selector(value: Any, runs: dict[int, int], projects: dict[str, str]) -> Any:
    """A block's ``runs:`` (ids, one id, or filters with ``ids``/``project``) retargeted."""
    if isinstance(value, dict):
        value = dict(value)
        if "ids" in value:
            value["ids"] = retarget_selector(value["ids"], runs, projects)
        if isinstance(value.get("project"), str):
            value["project"] = projects.get(value["project"], value["project"])
        return value
    if isinstance(value, list):
        return [retarget_selector(item, runs, projects) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return runs.get(value, value)
    return value


def with_runs(text: str, options: dict[str, Any]) -> str:
    """``text`` with its ``runs:`` entry rewritten, the other lines (and their comments) untouched.

    Should the block be laid out in a way this edit does not follow, the whole
    block is written out again from ``options`` (its YAML comments are lost).
    """
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if RUNS_KEY.match(line)), None)
    if start is not None:
        end = start + 1
        while end < len(lines) and lines[end][:1] in ("", " ", "\t", "-"):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # blank lines after the entry stay where they are
        edited = "\n".join([*lines[:start], f"runs: {flow(options['runs'])}", *lines[end:]])
        if safe_load(edited) == options:
            return edited
    return yaml.safe_dump(options, sort_keys=False, allow_unicode=True)


def flow(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    dumped = yaml.safe_dump(value, default_flow_style=True, width=2**16, allow_unicode=True)
    return dumped.strip().removesuffix("...").strip()


def safe_load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def retarget_frozen(frozen: dict[str, Any], runs: dict[int, int]) -> dict[str, Any]:
    """Frozen charts keep their data; the run each trace came from is the imported copy."""
    for figure in frozen.values():
        traces = figure.get("data") if isinstance(figure, dict) else None
        for trace in traces if isinstance(traces, list) else []:
            meta = trace.get("meta") if isinstance(trace, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("run"), int):
                meta["run"] = runs.get(meta["run"], meta["run"])
    return frozen


# --- pins of frozen media, table, histogram and logs blocks -----------------------------------


def retarget_pins(frozen: dict[str, Any], body: Any, context: LoadContext) -> dict[str, Any]:
    """A frozen media-kind block's pins name the imported runs, and a media or table block's
    the imported items (``media`` ids the run media section remembered); a histogram's steps
    and a logs block's line numbers stay. An item the file did not carry is dropped."""
    runs, items = context.ids.get("run", {}), context.ids.get("media", {})
    kinds = _block_kinds(body) if isinstance(body, str) else {}
    for index, saved in frozen.items():
        pins = saved.get("pins") if isinstance(saved, dict) else None
        if not isinstance(pins, dict):
            continue
        by_item = kinds.get(index) in ("media", "table")
        moved: dict[str, Any] = {}
        for run, values in pins.items():
            new_run = runs.get(int(run), int(run)) if str(run).isdigit() else run
            if by_item and isinstance(values, list):
                values = [items[v] for v in values if isinstance(v, int) and v in items]
            moved[str(new_run)] = values
        saved["pins"] = moved
    return frozen


def _block_kinds(body: str) -> dict[str, str]:
    """Each fenced block's kind by its index, as ``frozen`` keys them."""
    _html, source = markup.convert(body)
    return {str(index): kind for index, (kind, _text, _line) in enumerate(source.blocks)}
