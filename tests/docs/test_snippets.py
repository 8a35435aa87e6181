"""Every code block of README.md and docs/*.md runs against a live Labbook, or says why not.

The blocks are read from the Markdown itself (fenced with backticks or tildes,
nested fences included). Each one is, by its language:

- ``bash``, ``sh``, ``shell``, ``console``: run by ``bash -euo pipefail``;
  ``python``, ``py``, ``python3``: run by this interpreter;
- ``text``, ``json``, ``markdown``, ``yaml``, ...: output samples and data,
  not run (Markdown report examples are rendered through the preview API and
  must draw without an error box);
- anything else, or no language at all: a failure, so that no block escapes.

A runnable block that cannot run as written carries a marker on the line just
before its fence, with a reason::

    <!-- snippet: not run — needs a second machine reachable over ssh -->

and a block that reads its standard input names the lines to feed it::

    <!-- snippet: input ["new-password", "new-password"] -->

The blocks run the way a reader runs them after the README's first command:
against ``manage.py up --demo`` on a fresh LABBOOK_HOME (the embedded
default, whatever the outer run uses), from a copy of the repository as the
working directory (files a block writes land there, never in the checkout),
with the environment a reader would have set: ``LABBOOK_URL`` and
``LABBOOK_TOKEN`` (the admin token `up` printed), ``LABBOOK_HOME`` of that
server for ``manage.py`` commands, ``MLFLOW_TRACKING_URI`` /
``MLFLOW_TRACKING_TOKEN``, and the test's interpreter first on PATH as
``python``. A block fails when it exits non-zero or prints an API error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, services_free, wait_until

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SHELLS = {"bash", "sh", "shell", "console"}
PYTHONS = {"python", "py", "python3"}
RUNNABLE = SHELLS | PYTHONS
NOT_RUNNABLE = {"text", "json", "jsonl", "markdown", "md", "yaml", "toml", "ini", "http", "diff"}

FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<body>.*?)\s*-->\s*$")
NOT_RUN = re.compile(r"^not run\s*[\u2014\u2013:-]+\s*(?P<reason>\S.*)$")  # dash, colon or hyphen
INPUT = re.compile(r"^input\s+(?P<lines>\[.*\])$")
MIN_REASON = 10  # characters: a reason, not a shrug
# Run here, these would change the tests' own environment or never end: such a block needs a
# marker, and an unmarked one fails before it runs.
NEVER_RUN = re.compile(r"\bpip\s+(install|wheel)\b|\bmanage\.py\s+up\b|^\s*pytest\b", re.M)
API_ERROR = re.compile(r'"error"\s*:\s*\{')

START_TIMEOUT = 180.0  # migrations, static files and the demo on a busy 2-core machine
STOP_TIMEOUT = 30.0
BLOCK_TIMEOUT = 300.0
COPY_IGNORED = shutil.ignore_patterns(
    ".git", "var", ".venv*", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache",
    ".hypothesis", "build", "dist", "test-artifacts",
)  # fmt: skip


# --- Reading the blocks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str | None  # the marker's text after "snippet:", if the line before the fence has one

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def reason_not_run(self) -> str | None:
        match = NOT_RUN.match(self.marker or "")
        return match["reason"] if match else None

    @property
    def input_lines(self) -> list[str] | None:
        match = INPUT.match(self.marker or "")
        return json.loads(match["lines"]) if match else None

    @property
    def runs(self) -> bool:
        return self.language in RUNNABLE and self.reason_not_run is None


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order; a block ends at a bare fence at least as
    long as its opening one, made of the same character (CommonMark)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        end = index + 1
        while end < len(lines) and not re.fullmatch(
            rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[end]
        ):
            end += 1
        if end == len(lines):
            pytest.fail(f"{path.relative_to(ROOT)}:{index + 1}: a code block is never closed")
        marker = MARKER.match(lines[index - 1]) if index > 0 else None
        words = opening["info"].split()
        blocks.append(
            Block(
                path=path,
                line=index + 1,
                language=words[0].lower() if words else "",
                code="\n".join(lines[index + 1 : end]) + "\n",
                marker=marker["body"] if marker else None,
            )
        )
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in blocks_of(path)]


def outside_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line that is not inside a code block."""
    inside: set[int] = set()
    for block in blocks_of(path):
        inside.update(range(block.line, block.line + block.code.count("\n") + 2))
    lines = path.read_text().splitlines()
    return [(number, line) for number, line in enumerate(lines, 1) if number not in inside]


# --- What the blocks must say about themselves --------------------------------------------------


def test_the_documents_are_there():
    names = {path.name for path in DOCUMENTS}
    assert {"README.md", "configuration.md", "api.md", "design.md"} <= names, names
    assert sum(block.runs for block in all_blocks()) >= 20


def test_every_runnable_block_is_run_or_says_why_not():
    problems = []
    for block in all_blocks():
        where = block.name
        if not block.language:
            problems.append(f"{where}: a code block without a language (say `text` for output)")
        elif block.language not in RUNNABLE | NOT_RUNNABLE:
            problems.append(f"{where}: unknown language {block.language!r}")
        if block.marker is None:
            continue
        reason, lines = block.reason_not_run, None
        with contextlib.suppress(ValueError):
            lines = block.input_lines
        if reason is None and lines is None:
            problems.append(
                f"{where}: unreadable marker {block.marker!r}; use"
                " `<!-- snippet: not run — <reason> -->` or `<!-- snippet: input [...] -->`"
            )
        elif reason is not None and len(reason) < MIN_REASON:
            problems.append(f"{where}: say why the block is not run, not just {reason!r}")
        elif block.language not in RUNNABLE:
            problems.append(f"{where}: a marker on a {block.language} block, which never runs")
        elif lines is not None and not all(isinstance(line, str) for line in lines):
            problems.append(f"{where}: input lines must be strings")
    assert not problems, "\n".join(problems)


def test_no_block_that_installs_or_serves_forever_is_run():
    """pip installs, `manage.py up` and pytest itself are shown to readers, never run here."""
    unmarked = [
        f"{block.name}: mark it `<!-- snippet: not run — <reason> -->`"
        for block in all_blocks()
        if block.runs and NEVER_RUN.search(block.code)
    ]
    assert not unmarked, "\n".join(unmarked)


def test_no_marker_is_left_away_from_its_block():
    """A marker must sit on the line just before a fence: anywhere else it would mark nothing."""
    stray = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in DOCUMENTS
        for number, line in outside_blocks(path)
        if MARKER.match(line) and not FENCE.match(path.read_text().splitlines()[number])
    ]
    assert not stray, "\n".join(stray)


def test_the_readme_starts_with_the_two_setup_commands():
    """The first block installs and starts Labbook, then runs the tests with CI's exact command."""
    ci_command = re.search(r'^TEST_COMMAND="(.+)"$', (ROOT / ".ci/run").read_text(), re.M)
    assert ci_command is not None, ".ci/run no longer sets TEST_COMMAND"
    first = blocks_of(ROOT / "README.md")[0]
    assert first.code.splitlines() == [
        "python -m pip install -e . && python manage.py up --demo",
        ci_command[1],
    ]


def test_links_between_the_documents_resolve():
    """Every relative link names a file that exists, and a heading of it when it has #anchor."""
    broken = []
    for path in DOCUMENTS:
        for number, line in outside_blocks(path):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):
                    continue  # http:, https:, mailto:
                file, _, anchor = target.partition("#")
                linked = (path.parent / file).resolve() if file else path
                if not linked.exists():
                    broken.append(f"{path.relative_to(ROOT)}:{number}: no file {target}")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{path.relative_to(ROOT)}:{number}: no heading #{anchor}")
    assert not broken, "\n".join(broken)


def anchors(path: Path) -> set[str]:
    """GitHub's ids for the headings of ``path``: lower case, punctuation dropped, spaces to -."""
    found = set()
    for _, line in outside_blocks(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading[1].lower())
            found.add(text.replace(" ", "-"))
    return found


def test_the_tests_the_docs_cite_exist():
    """A promise is only as good as the test named beside it: every ``tests/...py`` the docs
    cite, and every test file in docs/guarantees.md (named under tests/), is there."""
    cited = set()
    for path in DOCUMENTS:
        for _, line in outside_blocks(path):
            if not MARKER.match(line):  # a marker may name a test another change adds
                cited.update(re.findall(r"`(tests/[\w/]+\.py)`", line))
    for _, line in outside_blocks(ROOT / "docs" / "guarantees.md"):
        if line.startswith("| **"):
            shown_by = line.rstrip(" |").rsplit("|", 1)[1]
            cited.update(f"tests/{name}" for name in re.findall(r"`([\w/*]+\.py)`", shown_by))
    assert len(cited) > 20
    missing = sorted(name for name in cited if not list(ROOT.glob(name)))
    assert not missing, missing


def test_commands_in_the_docs_name_modules_that_exist():
    """uvicorn and celery command lines (shown, not run: they serve until stopped) name the
    ASGI application and the Celery app where they are."""
    text = "\n".join(block.code for block in all_blocks())
    apps = re.findall(r"\buvicorn\s+([\w.]+):(\w+)", text)
    celery = re.findall(r"\bcelery\s+-A\s+([\w.]+)", text)
    assert apps and celery
    for module, _ in apps:
        assert importlib.util.find_spec(module) is not None, f"uvicorn {module}: no such module"
    for package in celery:
        assert importlib.util.find_spec(f"{package}.celery") is not None, f"celery -A {package}"


# --- The live server the blocks run against -----------------------------------------------------


@dataclass
class Labbook:
    home: Path
    url: str
    password: str  # the admin's, as `up` printed it
    token: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def configuration_variables() -> set[str]:
    """The server's variables: the first column of docs/configuration.md's table."""
    rows = [
        line
        for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    return {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])}


def clean_environ() -> dict[str, str]:
    """This process's environment without Labbook's, Django's, mlflow's or pytest's settings."""
    drop = configuration_variables() | {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}
    prefixes = ("LABBOOK_", "MLFLOW_", "PYTEST_")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(prefixes)}


@pytest.fixture(scope="module")
@services_free
def labbook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labbook]:
    """`python manage.py up --demo`, as the README's first command starts it."""
    folder = tmp_path_factory.mktemp("docs-labbook")
    home, log = folder / "home", folder / "up.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--demo", "--port", str(port)],
            cwd=ROOT,
            env={**clean_environ(), "LABBOOK_HOME": str(home), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        running = f"Labbook is running at http://127.0.0.1:{port}/"
        if not wait_until(lambda: running in log.read_text(), timeout=START_TIMEOUT, interval=0.5):
            pytest.fail(f"`up` did not start within {START_TIMEOUT:.0f} s:\n{log.read_text()}")
        text = log.read_text()
        password = re.search(r"[|│]\s+password\s+(\S+)\s+[|│]", text)
        token = re.search(r"[|│]\s+API token\s+(lb_\S+)\s+[|│]", text)
        assert password and token, f"`up` printed no credentials:\n{text}"
        yield Labbook(home, f"http://127.0.0.1:{port}", password[1], token[1], process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository to run the blocks in, as a reader runs them in their clone."""
    target = tmp_path_factory.mktemp("docs-clone") / "labbook"
    shutil.copytree(ROOT, target, ignore=COPY_IGNORED, symlinks=True)
    return target


@pytest.fixture(scope="module")
def reader_env(labbook: Labbook, clone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The environment of a reader who followed the README: server, token, a venv on PATH."""
    spool = tmp_path_factory.mktemp("docs-spool")
    return {
        **clean_environ(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(clone),  # `from tracking import sdk`, as an installed Labbook gives it
        "PYTHONUNBUFFERED": "1",
        "LABBOOK_HOME": str(labbook.home),
        "LABBOOK_URL": labbook.url,
        "LABBOOK_TOKEN": labbook.token,
        "LABBOOK_SPOOL_DIR": str(spool),
        "MLFLOW_TRACKING_URI": labbook.url,
        "MLFLOW_TRACKING_TOKEN": labbook.token,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def shell_script(block: Block) -> str:
    """A console block's commands (``$ `` lines and their continuations); others as written."""
    if block.language != "console":
        return block.code
    commands, continued = [], False
    for line in block.code.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line[2:] if line.startswith("$ ") and not continued else line)
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


def run_block(block: Block, env: dict[str, str], cwd: Path, scripts: Path) -> str:
    """Run ``block``; its output. Fails the test on a non-zero exit or an API error."""
    if block.language in PYTHONS:
        script = scripts / f"{block.path.stem}_{block.line}.py"
        script.write_text(block.code)
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", shell_script(block)]
    lines = block.input_lines
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input="".join(f"{line}\n" for line in lines) if lines is not None else "",
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
        start_new_session=True,  # no terminal: getpass reads the input lines
    )
    output = done.stdout + done.stderr
    shown = f"{block.name} ({block.language}):\n{block.code}\n--- output ---\n{output[-6000:]}"
    assert done.returncode == 0, f"exit code {done.returncode}: {shown}"
    assert not API_ERROR.search(done.stdout), f"the API answered an error: {shown}"
    return output


RUN = [
    pytest.param(block, id=block.name)
    for block in all_blocks()
    if block.runs and not NEVER_RUN.search(block.code)
]


@pytest.mark.parametrize("block", RUN)
def test_the_block_runs(block: Block, reader_env: dict, clone: Path, tmp_path: Path):
    run_block(block, reader_env, clone, tmp_path)


def test_the_admin_password_can_be_reset(
    labbook: Labbook, reader_env: dict, clone: Path, tmp_path: Path
):
    """The README's `changepassword` block sets the password the admin then logs in with."""
    readme = blocks_of(ROOT / "README.md")
    [block] = [b for b in readme if b.language == "bash" and "changepassword admin" in b.code]
    assert block.input_lines and len(set(block.input_lines)) == 1
    new_password = block.input_lines[0]
    run_block(block, reader_env, clone, tmp_path)

    assert log_in(labbook.url, "admin", labbook.password) is False
    assert log_in(labbook.url, "admin", new_password) is True


def log_in(url: str, username: str, password: str) -> bool:
    """Through the login form, as a browser does: True when it lets the user in."""
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as browser:
        form = browser.get("/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert csrf, form.text
        answer = browser.post(
            "/login/",
            data={"csrfmiddlewaretoken": csrf[1], "username": username, "password": password},
        )
        assert answer.status_code in (200, 302), answer.text[:2000]
        return answer.status_code == 302 and browser.get("/").status_code == 200


def test_the_readme_shows_what_up_prints(labbook: Labbook):
    """The README's sample of `up`'s first start matches it, but for paths, secrets and port."""
    [sample] = [b for b in blocks_of(ROOT / "README.md") if "First start:" in b.code]
    printed = {line.rstrip() for line in labbook.output().splitlines()}
    varying = ("/home/you", "password", "API token", "127.0.0.1:8000", "Labbook 0.", "─")
    for line in sample.code.splitlines():
        if line.strip() and not any(part in line for part in varying):
            assert line.rstrip() in printed, f"`up` no longer prints {line!r}"


def report_examples() -> list[Block]:
    return [
        block
        for block in all_blocks()
        if block.language in ("markdown", "md")
        and re.search(r"^```(chart|runs|compare)\s*$", block.code, re.M)
    ]


def test_report_examples_draw_without_an_error_box(labbook: Labbook):
    """A report example in the docs, rendered against the demo project, draws every block."""
    examples = report_examples()
    assert examples
    headers = {"Authorization": f"Bearer {labbook.token}"}
    with httpx.Client(base_url=labbook.url, headers=headers, timeout=60, trust_env=False) as api:
        created = api.post(
            "/api/v1/reports", json={"project": "demo/mnist", "title": "Docs examples"}
        )
        report = created.raise_for_status().json()["id"]
        for block in examples:
            preview = api.post(f"/api/v1/reports/{report}/preview", json={"body": block.code})
            answer = preview.raise_for_status().json()
            assert answer["errors"] == [], f"{block.name}: {answer['errors']}"
            assert answer["figures"], f"{block.name}: no chart drawn"


def test_the_server_logged_no_error(labbook: Labbook):
    """Nothing the blocks did made the server, the worker or beat log an error (run last)."""
    errors = [line for line in labbook.output().splitlines() if re.search(r"Traceback|ERROR", line)]
    assert not errors, "\n".join(errors[:20])
