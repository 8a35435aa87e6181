"""Line diffs of two report revisions, for the side-by-side and inline views.

The diff is line based (``difflib.SequenceMatcher``); lines that changed in
place are paired and their changed words marked with ``<del>``/``<ins>``.
Long runs of unchanged lines fold into one "N unchanged lines" row, keeping
``CONTEXT`` lines around every change. Every piece of text is escaped here:
the rows' HTML is safe to put in a template as is.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from itertools import zip_longest

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

CONTEXT = 3
MIN_FOLD = 3  # fewer unchanged lines than this stay visible
SIMILAR = 0.4  # paired lines less alike than this are not marked word by word
TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
EMPTY = SafeString()


@dataclass
class Row:
    """One row of the side-by-side view; ``kind`` is equal, change, delete, insert or skip."""

    kind: str
    old_no: int | None = None
    new_no: int | None = None
    old: SafeString = EMPTY
    new: SafeString = EMPTY
    skipped: int = 0


@dataclass
class Line:
    """One row of the inline view: ``sign`` is " ", "-" or "+" (or "…" for folded lines)."""

    sign: str
    old_no: int | None
    new_no: int | None
    html: SafeString
    skipped: int = 0


@dataclass
class Diff:
    rows: list[Row]
    added: int
    removed: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def inline(self) -> list[Line]:
        """The same changes as one column: removed lines, then the lines that replace them."""
        lines: list[Line] = []
        for row in self.rows:
            if row.kind in ("equal", "skip"):
                sign = " " if row.kind == "equal" else "…"
                lines.append(Line(sign, row.old_no, row.new_no, row.old, row.skipped))
                continue
            if row.old_no is not None:
                lines.append(Line("-", row.old_no, None, row.old))
            if row.new_no is not None:
                lines.append(Line("+", None, row.new_no, row.new))
        # A replaced block reads better as all its old lines, then all its new ones.
        return _group_changes(lines)


def _group_changes(lines: list[Line]) -> list[Line]:
    grouped: list[Line] = []
    removed: list[Line] = []
    added: list[Line] = []
    for line in [*lines, Line(" ", None, None, EMPTY)]:  # the last one flushes
        if line.sign == "-":
            removed.append(line)
        elif line.sign == "+":
            added.append(line)
        else:
            grouped += removed + added
            removed, added = [], []
            grouped.append(line)
    return grouped[:-1]


def words(old: str, new: str) -> tuple[SafeString, SafeString]:
    """Both lines escaped, with the words that differ wrapped in ``<del>`` and ``<ins>``.

    Lines with too little in common are marked whole: word marks would only be noise.
    """
    a, b = TOKENS.findall(old), TOKENS.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < SIMILAR:
        return _whole("del", old), _whole("ins", new)
    left: list[str] = []
    right: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old_part, new_part = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            left.append(escape(old_part))
            right.append(escape(new_part))
            continue
        left.append(_whole("del", old_part))
        right.append(_whole("ins", new_part))
    return mark_safe("".join(left)), mark_safe("".join(right))  # noqa: S308 - escaped parts


def _whole(tag: str, text: str) -> SafeString:
    return format_html("<{}>{}</{}>", tag, text, tag) if text else EMPTY


def _changed(old: list[str], new: list[str], i1: int, j1: int) -> list[Row]:
    """A replaced block: lines paired in order, words marked; the rest removed or added."""
    rows = []
    for k, (a, b) in enumerate(zip_longest(old, new)):
        old_no = i1 + k + 1 if a is not None else None
        new_no = j1 + k + 1 if b is not None else None
        if a is not None and b is not None:
            left, right = words(a, b)
            rows.append(Row("change", old_no, new_no, left, right))
        elif a is not None:
            rows.append(Row("delete", old_no, None, old=escape(a)))
        else:
            rows.append(Row("insert", None, new_no, new=escape(b)))
    return rows


def _equal(lines: list[str], i1: int, j1: int, *, first: bool, last: bool) -> list[Row]:
    """Unchanged lines, folded to ``CONTEXT`` lines next to the changes around them."""
    rows = [Row("equal", i1 + k + 1, j1 + k + 1, escape(t), escape(t)) for k, t in enumerate(lines)]
    keep_head = 0 if first else CONTEXT
    keep_tail = 0 if last else CONTEXT
    folded = len(rows) - keep_head - keep_tail
    if folded < MIN_FOLD:
        return rows
    skip = Row("skip", rows[keep_head].old_no, rows[keep_head].new_no, skipped=folded)
    return [*rows[:keep_head], skip, *rows[len(rows) - keep_tail :]]


def diff(old_text: str, new_text: str) -> Diff:
    old, new = old_text.splitlines(), new_text.splitlines()
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    rows: list[Row] = []
    added = removed = 0
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            first, last = n == 0, n == len(opcodes) - 1
            rows += _equal(old[i1:i2], i1, j1, first=first, last=last)
            continue
        removed += i2 - i1
        added += j2 - j1
        rows += _changed(old[i1:i2], new[j1:j2], i1, j1)
    return Diff(rows, added=added, removed=removed)
