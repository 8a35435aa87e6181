r"""User-supplied name patterns, matched in time proportional to text times pattern, never worse.

Two spellings reach Labbook: SQL ``LIKE`` (MLflow's filters: ``%`` any run
of characters, ``_`` any one, ``\`` makes the next one literal) and globs
(report blocks' ``name: 'resnet-*'``: ``*`` and ``?``). A glob is turned into
the LIKE pattern it means, and every LIKE pattern into one regular
expression, matched by Python (in this process, or as SQLite's REGEXP) or by
PostgreSQL.

A naive translation (``%`` → ``.*``) backtracks: ``name LIKE '%%%%%%%%#'``
against a 60-character name held a server for over two minutes. Here runs of
``%`` collapse into one, and each middle segment commits to its first match
(an atomic group, which Python has had since 3.11): exact for LIKE, since a
middle segment only has to come somewhere after the one before it, and the
match never goes back. PostgreSQL's regular expressions are automata, not
backtracking; they get the same expression without the atomic groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.db.models import Expression, F, Q
from django.db.models.lookups import Regex

# The longest pattern taken: names are at most 250 characters, so this lets any
# name be spelled with escapes, and keeps PostgreSQL's regex compiler small.
MAX_PATTERN_LENGTH = 1000

Segment = list[str | None]  # literal characters, and None for "any one character"


def like_segments(pattern: str) -> list[Segment]:
    """The pattern split at each unescaped ``%``, runs of ``%`` collapsed."""
    segments: list[Segment] = [[]]
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            segments[-1].append(next(chars, "\\"))  # a trailing backslash stands for itself
        elif char == "%":
            if segments[-1] or len(segments) == 1:  # '%%' is '%': no empty middle segment
                segments.append([])
        else:
            segments[-1].append(None if char == "_" else char)
    return segments


def like_regex(pattern: str, *, ignore_case: bool, python: bool) -> str:
    """SQL LIKE as a regular expression that matches in polynomial time (see the module)."""
    segments = [_segment_regex(segment) for segment in like_segments(pattern)]
    flags = "(?is)" if ignore_case else "(?s)"
    if len(segments) == 1:
        return rf"{flags}\A{segments[0]}\Z"
    first, *middle, last = segments
    between = "".join(f"(?>.*?{m})" if python else f".*?{m}" for m in middle if m)
    return rf"{flags}\A{first}{between}.*{last}\Z"


def _segment_regex(segment: Segment) -> str:
    return "".join("." if char is None else re.escape(char) for char in segment)


def glob_to_like(glob: str) -> str:
    """A glob (``*``, ``?``) as the LIKE pattern that means the same."""
    out = []
    for char in glob:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def like_matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], bool]:
    """A Python predicate: does a text match the LIKE ``pattern``?"""
    compiled = re.compile(like_regex(pattern, ignore_case=ignore_case, python=True))
    return lambda text: compiled.match(text) is not None


def like_condition(
    expression: Expression | F | str, pattern: str, *, ignore_case: bool, vendor: str
) -> Q:
    """A filter: ``expression`` matches the LIKE ``pattern``, case-sensitive on SQLite too."""
    if isinstance(expression, str):
        expression = F(expression)
    regex = like_regex(pattern, ignore_case=ignore_case, python=vendor != "postgresql")
    return Q(Regex(expression, regex))
