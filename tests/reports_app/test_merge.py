"""The three-way merge of report text (``reports_app.merge``): a pure function, no database."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports_app.merge import Chunk, merge

BASE = "# Results\nline 2\nline 3\nline 4\nline 5\nline 6\n"


def lines(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n"))


def test_edits_to_different_lines_keep_both():
    mine = BASE.replace("line 5", "line 5, mine")
    theirs = BASE.replace("# Results", "# Results, theirs")
    result = merge(BASE, mine, theirs)
    assert result.clean
    assert result.text == "# Results, theirs\nline 2\nline 3\nline 4\nline 5, mine\nline 6\n"
    assert [chunk.kind for chunk in result.chunks] == [
        "theirs",
        "unchanged",
        "mine",
        "unchanged",
    ]


def test_the_same_change_on_both_sides_is_taken_once():
    both = BASE.replace("line 3", "line three")
    result = merge(BASE, both, both)
    assert result.clean and result.text == both
    assert [chunk.kind for chunk in result.chunks] == ["unchanged", "same", "unchanged"]


def test_the_same_insertion_on_both_sides_is_taken_once():
    both = BASE.replace("line 3\n", "line 3\nadded\n")
    assert merge(BASE, both, both).text == both


def test_different_changes_to_one_line_conflict():
    mine = BASE.replace("line 3", "line 3 by me")
    theirs = BASE.replace("line 3", "line 3 by them")
    result = merge(BASE, mine, theirs)
    assert not result.clean
    assert result.conflicts == [
        Chunk("conflict", ("line 3",), ("line 3 by me",), ("line 3 by them",))
    ]
    with pytest.raises(ValueError, match="choose"):
        _ = result.text


def test_overlapping_changes_of_several_lines_are_one_conflict():
    mine = BASE.replace("line 3\nline 4", "three\nfour")
    theirs = BASE.replace("line 4\nline 5", "4\n5")
    (conflict,) = merge(BASE, mine, theirs).conflicts
    assert conflict.base == ("line 3", "line 4", "line 5")
    assert conflict.mine == ("three", "four", "line 5")
    assert conflict.theirs == ("line 3", "4", "5")


def test_changes_to_adjacent_lines_conflict_as_in_diff3():
    mine = BASE.replace("line 3", "line 3 by me")
    theirs = BASE.replace("line 4", "line 4 by them")
    (conflict,) = merge(BASE, mine, theirs).conflicts
    assert conflict.base == ("line 3", "line 4")


def test_one_unchanged_line_between_two_edits_is_enough():
    mine = BASE.replace("line 3", "line 3 by me")
    theirs = BASE.replace("line 5", "line 5 by them")
    assert merge(BASE, mine, theirs).text == BASE.replace("line 3", "line 3 by me").replace(
        "line 5", "line 5 by them"
    )


def test_different_insertions_at_the_same_place_conflict():
    mine = BASE.replace("line 3\n", "line 3\nmine\n")
    theirs = BASE.replace("line 3\n", "line 3\ntheirs\n")
    result = merge(BASE, mine, theirs)
    assert result.conflicts == [Chunk("conflict", (), ("mine",), ("theirs",))]
    assert result.resolve(["both"]) == BASE.replace("line 3\n", "line 3\nmine\ntheirs\n")
    assert result.resolve(["theirs"]) == theirs
    assert result.resolve(["mine"]) == mine


def test_insertions_at_different_places_are_both_kept():
    mine = BASE.replace("line 2\n", "line 2\nmine\n")
    theirs = BASE.replace("line 5\n", "line 5\ntheirs\n")
    assert merge(BASE, mine, theirs).text == BASE.replace("line 2\n", "line 2\nmine\n").replace(
        "line 5\n", "line 5\ntheirs\n"
    )


def test_a_deletion_and_an_edit_elsewhere_are_both_kept():
    mine = BASE.replace("line 2\n", "")
    theirs = BASE.replace("line 5", "line five")
    assert merge(BASE, mine, theirs).text == "# Results\nline 3\nline 4\nline five\nline 6\n"


def test_deleting_a_line_the_other_side_edited_conflicts():
    mine = BASE.replace("line 4\n", "")
    theirs = BASE.replace("line 4", "line four")
    result = merge(BASE, mine, theirs)
    assert result.conflicts == [Chunk("conflict", ("line 4",), (), ("line four",))]
    assert result.resolve(["mine"]) == mine


def test_both_deleting_the_same_line_deletes_it_once():
    both = BASE.replace("line 4\n", "")
    assert merge(BASE, both, both).text == both


def test_an_unchanged_side_takes_the_other_whole():
    changed = "something else entirely\n"
    assert merge(BASE, BASE, changed).text == changed
    assert merge(BASE, changed, BASE).text == changed


def test_an_empty_base_merges_what_only_one_side_wrote():
    assert merge("", "written\n", "").text == "written\n"
    assert merge("", "", "written").text == "written"
    assert merge("", "", "").text == ""


def test_an_empty_base_with_two_different_texts_conflicts():
    result = merge("", "mine", "theirs")
    assert result.conflicts == [Chunk("conflict", ("",), ("mine",), ("theirs",))]


def test_emptying_the_text_while_the_other_side_edits_conflicts():
    result = merge("a\nb", "", "a\nb2")
    assert not result.clean


def test_a_trailing_newline_added_on_one_side_merges_with_an_edit_on_the_other():
    base = "first\nmiddle\nlast"
    result = merge(base, base + "\n", base.replace("first", "1st"))
    assert result.text == "1st\nmiddle\nlast\n"


def test_a_trailing_newline_removed_on_one_side_stays_removed():
    base = "first\nmiddle\nlast\n"
    result = merge(base, base.rstrip("\n"), base.replace("first", "1st"))
    assert result.text == "1st\nmiddle\nlast"


def test_text_without_a_trailing_newline_merges_its_last_line():
    base = "one\ntwo\nthree\nfour"
    result = merge(base, base.replace("one", "1"), base.replace("four", "4"))
    assert result.text == "1\ntwo\nthree\n4"


def test_appending_different_lines_at_the_end_conflicts():
    result = merge("a\n", "a\nmine\n", "a\ntheirs\n")
    assert result.conflicts == [Chunk("conflict", (), ("mine",), ("theirs",))]
    assert result.resolve(["both"]) == "a\nmine\ntheirs\n"


def test_windows_line_endings_read_as_newlines():
    base = "one\r\ntwo\r\nthree\r\nfour\r\n"
    mine = "one\ntwo\nthree\nfour, mine\n"  # a browser's text box sends \n
    result = merge(base, mine, base.replace("one", "1"))
    assert result.text == "1\ntwo\nthree\nfour, mine\n"


def test_blank_lines_and_repeated_lines_merge_in_place():
    base = "- a\n\n- a\n\n- a\n"
    mine = "- a\n\n- b\n\n- a\n"
    theirs = "- a\n\n- a\n\n- a\n\n- c\n"
    assert merge(base, mine, theirs).text == "- a\n\n- b\n\n- a\n\n- c\n"


def test_each_conflict_is_resolved_by_its_own_choice():
    base = "a\nx\nb\nc\nd\ny\ne"
    mine = "a\nx1\nb\nc\nd\ny1\ne"
    theirs = "a\nx2\nb\nc\nd\ny2\ne"
    result = merge(base, mine, theirs)
    assert len(result.conflicts) == 2
    assert result.resolve(["theirs", "both"]) == "a\nx2\nb\nc\nd\ny1\ny2\ne"


def test_a_resolution_needs_one_valid_choice_per_conflict():
    result = merge("a", "b", "c")
    with pytest.raises(ValueError, match="1 conflicts, 0 choices"):
        result.resolve([])
    with pytest.raises(ValueError, match="not 'neither'"):
        result.resolve(["neither"])  # type: ignore[list-item]


def test_the_chunks_hold_each_side_whole():
    """Joining a side's lines over the chunks gives that side back: nothing is dropped."""
    base = BASE
    mine = BASE.replace("line 2", "two").replace("line 6\n", "")
    theirs = "intro\n" + BASE.replace("line 2", "2").replace("line 4", "four")
    result = merge(base, mine, theirs)
    for side, text in (("base", base), ("mine", mine), ("theirs", theirs)):
        assert "\n".join(line for c in result.chunks for line in getattr(c, side)) == text
    assert result.resolve(["mine"]) == "intro\n# Results\ntwo\nline 3\nfour\nline 5\n"


TEXTS = st.lists(st.sampled_from(["a", "b", "", "- item", "c"]), max_size=8).map("\n".join)


@settings(max_examples=300, derandomize=True, database=None)
@given(base=TEXTS, mine=TEXTS, theirs=TEXTS)
def test_any_merge_keeps_every_side_and_takes_an_unchanged_side_whole(base, mine, theirs):
    result = merge(base, mine, theirs)
    for side, text in (("base", base), ("mine", mine), ("theirs", theirs)):
        assert "\n".join(line for c in result.chunks for line in getattr(c, side)) == text
    assert merge(base, base, theirs).text == theirs
    assert merge(base, mine, base).text == mine
    assert merge(base, mine, mine).text == mine


def test_a_long_report_with_many_blank_lines_merges_quickly():
    lines = ["" if n % 3 == 0 else f"paragraph {n} of the report" for n in range(6000)]
    mine, theirs, both = list(lines), list(lines), list(lines)
    for n in range(1, 6000, 500):
        mine[n] = both[n] = f"mine {n}"
        theirs[n + 250] = both[n + 250] = f"theirs {n}"
    started = time.monotonic()
    result = merge("\n".join(lines), "\n".join(mine), "\n".join(theirs))
    assert time.monotonic() - started < 3  # ~0.1 s; seconds when blank lines anchor matches
    assert result.text == "\n".join(both)
