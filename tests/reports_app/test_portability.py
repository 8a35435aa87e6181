"""Imported reports point at the imported runs, whatever way their blocks name them."""

from __future__ import annotations

import pytest

from reports_app.portability import retarget_block, retarget_refs

RUNS = {12: 112, 15: 115}
PROJECTS = {"acme/mnist": "lab/mnist"}


def moved(text: str) -> str:
    return retarget_block(text, RUNS, PROJECTS)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("runs: [12, 15]\nmetrics: [loss]\n", "runs: [112, 115]\nmetrics: [loss]\n"),
        ("runs: 12\n", "runs: 112\n"),
        (
            "runs:\n  - 12\n  - 15\n\nmetrics: [loss]\n",
            "runs: [112, 115]\n\nmetrics: [loss]\n",
        ),
        ("runs:\n- 12\n- 15\nx: time\n", "runs: [112, 115]\nx: time\n"),
        (
            "# best two\nruns: {ids: [12], project: acme/mnist}  # pinned\nlive: false\n",
            "# best two\nruns: {ids: [112], project: lab/mnist}\nlive: false\n",
        ),
        (
            "runs:\n  project: acme/mnist\n  tags: [sweep]\ncolumns: [config.lr]\n",
            "runs: {project: lab/mnist, tags: [sweep]}\ncolumns: [config.lr]\n",
        ),
    ],
)
def test_it_renumbers_the_runs_of_a_block_and_keeps_the_rest(before, after):
    assert moved(before) == after


@pytest.mark.parametrize(
    "text",
    [
        "runs: [7, 8]\nmetrics: [loss]\n",  # runs outside the file
        "runs: {project: acme/other}\n",  # another project of the team
        "runs: [12\nmetrics: [loss\n",  # not YAML: it stays the error it was
        "metrics: [loss]\n",  # no runs at all
    ],
)
def test_it_leaves_blocks_about_other_runs_as_they_are(text):
    assert moved(text) == text


def test_it_rewrites_a_block_it_cannot_edit_in_place_from_its_options():
    text = '"runs": [12]\nmetrics: [loss]\n'
    assert moved(text) == "runs:\n- 112\nmetrics:\n- loss\n"


def test_it_renumbers_inline_references_to_runs_of_the_file():
    text = "See run:12, run:15 and run:99; not myrun:12 or x/run:12."
    assert retarget_refs(text, RUNS) == "See run:112, run:115 and run:99; not myrun:12 or x/run:12."
