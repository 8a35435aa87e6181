"""Three-way line merge of report text: the revision an editor started from (``base``), the
editor's text (``mine``) and a teammate's newer revision (``theirs``).

This is diff3 over lines. Both sides are matched against the base
(``difflib.SequenceMatcher``); the base lines that both sides kept, in the same
places, cut the texts into chunks. A chunk that only one side changed takes
that side; a chunk both sides changed alike is taken once; a chunk both sides
changed differently is a conflict, carrying the three versions for a person
to choose. As in diff3 and git, changes to adjacent lines (with no unchanged
line between them) and two insertions at the same place conflict.

Texts are split on ``\\n`` (``\\r\\n`` and ``\\r`` read as ``\\n``, as a browser's
text box sends them), so splitting and joining are exact inverses and a
trailing newline is one more, empty, line: adding or removing it merges like
any other change. Nothing here touches Django: it is a pure function.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["unchanged", "mine", "theirs", "same", "conflict"]
Choice = Literal["mine", "theirs", "both"]
Lines = tuple[str, ...]
CHOICES: tuple[Choice, ...] = ("mine", "theirs", "both")


@dataclass(frozen=True)
class Chunk:
    """A stretch of the merge: ``unchanged``, changed by one side (``mine``, ``theirs``), by
    both alike (``same``), or by both differently (``conflict``)."""

    kind: Kind
    base: Lines
    mine: Lines
    theirs: Lines

    @property
    def lines(self) -> Lines:
        """The merged lines; a conflict has none until someone chooses (``choose``)."""
        if self.kind == "conflict":
            raise ValueError("A conflict has no merged lines: choose mine, theirs or both.")
        return self.theirs if self.kind == "theirs" else self.mine

    def choose(self, choice: Choice) -> Lines:
        """A conflict's lines as chosen; "both" is mine, then theirs."""
        if choice not in CHOICES:
            raise ValueError(f"Choose one of {', '.join(CHOICES)}, not {choice!r}.")
        return {"mine": self.mine, "theirs": self.theirs, "both": self.mine + self.theirs}[choice]


@dataclass(frozen=True)
class Merge:
    chunks: tuple[Chunk, ...]

    @property
    def conflicts(self) -> list[Chunk]:
        return [chunk for chunk in self.chunks if chunk.kind == "conflict"]

    @property
    def clean(self) -> bool:
        return not self.conflicts

    @property
    def text(self) -> str:
        """The merged text; only a clean merge has one."""
        if not self.clean:
            raise ValueError(f"{len(self.conflicts)} conflicts: choose mine, theirs or both.")
        return self.resolve([])

    def resolve(self, choices: Sequence[Choice]) -> str:
        """The text with each conflict, in order, resolved by its choice."""
        if len(choices) != len(self.conflicts):
            raise ValueError(f"{len(self.conflicts)} conflicts, {len(choices)} choices.")
        picks = iter(choices)
        lines = [
            line
            for chunk in self.chunks
            for line in (chunk.choose(next(picks)) if chunk.kind == "conflict" else chunk.lines)
        ]
        return "\n".join(lines)


def split(text: str) -> Lines:
    return tuple(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def merge(base: str, mine: str, theirs: str) -> Merge:
    """Merge ``mine`` and ``theirs``, two edits of ``base``; see the module's docstring."""
    old, a, b = split(base), split(mine), split(theirs)
    return Merge(tuple(_joined(_chunks(old, a, b))))


def _matches(old: Lines, new: Lines) -> list[tuple[int, int, int]]:
    """Where ``new`` keeps lines of ``old``: (start in old, start in new, length), in order.

    The lines both texts start and end with match first (as in git's diff): otherwise
    difflib's longest-match-first could pair a repeated line ("", "- item") with a copy
    farther away and make a conflict out of edits that do not touch. difflib's autojunk
    stays on: in 200 lines or more, a line making up over 1% of them (blank lines) starts
    no match of its own but joins the matches beside it; without it a long report with
    many blank lines takes seconds. Any matching gives a correct merge (each chunk holds
    every side's lines); a poorer one only gives more conflicts.
    """
    head = _common(zip(old, new, strict=False))
    tail = _common(zip(old[head:][::-1], new[head:][::-1], strict=False))
    inner = difflib.SequenceMatcher(None, old[head : len(old) - tail], new[head : len(new) - tail])
    found = [(head + m.a, head + m.b, m.size) for m in inner.get_matching_blocks() if m.size]
    ends = [(len(old) - tail, len(new) - tail, tail), (len(old), len(new), 0)]
    return [block for block in [(0, 0, head), *found, *ends] if block[2]] + [ends[-1]]


def _common(pairs: Iterator[tuple[str, str]]) -> int:
    count = 0
    for a, b in pairs:
        if a != b:
            break
        count += 1
    return count


def _stable(old: Lines, a: Lines, b: Lines) -> Iterator[tuple[int, int, int, int]]:
    """Runs of base lines both sides kept: (start in base, in mine, in theirs, length).

    Ends with an empty run at the end of all three texts, which closes the last chunk.
    """
    mine, theirs = _matches(old, a), _matches(old, b)
    i = j = 0
    while i < len(mine) and j < len(theirs):
        (o1, a1, n1), (o2, b2, n2) = mine[i], theirs[j]
        start, end = max(o1, o2), min(o1 + n1, o2 + n2)
        if start < end:
            yield start, a1 + start - o1, b2 + start - o2, end - start
        # Step past whichever match ends first in the base; the other may overlap the next.
        if o1 + n1 < o2 + n2:
            i += 1
        else:
            j += 1
    yield len(old), len(a), len(b), 0


def _chunks(old: Lines, a: Lines, b: Lines) -> Iterator[Chunk]:
    at_old = at_a = at_b = 0
    for o, i, j, n in _stable(old, a, b):
        yield _changed(old[at_old:o], a[at_a:i], b[at_b:j])
        kept = old[o : o + n]
        yield Chunk("unchanged", kept, kept, kept)
        at_old, at_a, at_b = o + n, i + n, j + n


def _joined(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The chunks without empty ones, neighbouring unchanged ones made one."""
    held: Chunk | None = None
    for chunk in chunks:
        if not (chunk.base or chunk.mine or chunk.theirs):
            continue
        if held is not None and held.kind == chunk.kind == "unchanged":
            lines = held.base + chunk.base
            held = Chunk("unchanged", lines, lines, lines)
            continue
        if held is not None:
            yield held
        held = chunk
    if held is not None:
        yield held


def _changed(base: Lines, mine: Lines, theirs: Lines) -> Chunk:
    """What lies between two stable runs: each side's lines there, and who changed them."""
    if mine == theirs:
        kind: Kind = "unchanged" if mine == base else "same"
    elif mine == base:
        kind = "theirs"
    elif theirs == base:
        kind = "mine"
    else:
        kind = "conflict"
    return Chunk(kind, base, mine, theirs)
