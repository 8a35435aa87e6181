"""The SDK installed alone, as on a training machine: the ``labbook-sdk`` wheel built from
``tracking/sdk``, installed with no index into a fresh virtual environment that has no
Django, logs a run to a real Labbook server and reads it back.

The wheel is built from a copy of ``tracking/sdk`` (what ``pip wheel ./tracking/sdk``
reads; setuptools leaves ``build/`` and an ``.egg-info`` next to the sources it builds,
which a test must not do in the checkout). The install ignores every pip configuration
and ``find-links`` of this machine, so a dependency the SDK grew would fail it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.sdk.server import ROOT, LabbookServer
from tests.support import services_free
from tracking.sdk import __version__

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(600)]

SDK = ROOT / "tracking" / "sdk"
TIMEOUT = 300


def run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **kwargs,
    )


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel SOURCE -w OUT --no-deps``; without build isolation when no index answers."""
    command = [sys.executable, "-m", "pip", "wheel", source, "-w", out, "--no-deps"]
    isolated = run(command)
    if isolated.returncode != 0:
        local = run([*command, "--no-build-isolation"])
        if local.returncode != 0:
            pytest.fail(
                f"pip wheel failed with build isolation:\n{isolated.stderr[-3000:]}\n"
                f"and without (the venv's setuptools):\n{local.stderr[-3000:]}"
            )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
@services_free
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sdk-build")
    source = work / "sdk"
    shutil.copytree(
        SDK, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    return build_wheel(source, work / "dist")


def clean_env(**extra: str) -> dict[str, str]:
    """No pip configuration (index, find-links), no PYTHONPATH, no Django settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIP_", "PYTHON", "DJANGO_", "VIRTUAL_ENV"))
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Path:
    """A fresh venv (no system site packages) with only the SDK's wheel installed."""
    path = tmp_path_factory.mktemp("training-machine") / "venv"
    created = run([sys.executable, "-m", "venv", path], env=clean_env())
    assert created.returncode == 0, created.stderr
    python = path / "bin" / "python"
    installed = run(
        [python, "-m", "pip", "install", "--no-index", sdk_wheel],
        env=clean_env(),
        cwd=path.parent,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def in_venv(python: Path, code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -I -c code``: isolated, so neither the checkout nor PYTHONPATH is on sys.path."""
    return run([python, "-I", "-c", code], env=clean_env(**env), cwd=cwd)


def test_the_wheel_holds_the_sdk_and_nothing_else(sdk_wheel: Path) -> None:
    assert sdk_wheel.name == f"labbook_sdk-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(sdk_wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"labbook_sdk-{__version__}.dist-info/METADATA").decode()
    dist_info = f"labbook_sdk-{__version__}.dist-info/"
    shipped = sorted(name for name in names if not name.startswith(dist_info))
    assert shipped == sorted(f"tracking/sdk/{path.name}" for path in SDK.glob("*.py"))
    assert "tracking/__init__.py" not in names  # `tracking` is a namespace here
    headers = [line for line in metadata.splitlines() if ": " in line]
    assert "Name: labbook-sdk" in headers and f"Version: {__version__}" in headers
    requires = [line for line in headers if line.startswith("Requires-Dist: ")]
    assert requires == [  # nothing unconditional: the base install is standard library only
        'Requires-Dist: pandas; extra == "pandas"',
        'Requires-Dist: psutil>=5.9; extra == "system"',
        'Requires-Dist: nvidia-ml-py>=12; extra == "system"',
        'Requires-Dist: numpy>=1.26; extra == "media"',
        'Requires-Dist: Pillow>=10; extra == "media"',
    ]


def test_one_version_for_the_server_and_the_sdk() -> None:
    """Both pyproject.toml files read ``tracking.sdk.__version__``; neither writes a number."""
    for path in (ROOT / "pyproject.toml", SDK / "pyproject.toml"):
        config = tomllib.loads(path.read_text())
        assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
        attr = config["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        assert attr == "tracking.sdk.__version__", path
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "tracking*" in server["tool"]["setuptools"]["packages"]["find"]["include"]


def test_the_servers_wheel_still_ships_the_sdk(tmp_path: Path) -> None:
    source = tmp_path / "labbook"
    anywhere = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*_cache")
    top = {".git", ".venv", ".venv-ci", "var", "build", "test-artifacts", ".hypothesis"}

    def skip(folder: str, names: list[str]) -> set[str]:
        return set(anywhere(folder, names)) | (top & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, source, ignore=skip)
    wheel = build_wheel(source, tmp_path / "dist")
    assert wheel.name == f"labbook-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"tracking/sdk/{path.name}" for path in SDK.glob("*.py")} <= names
    assert "tracking/__init__.py" in names and "tracking/sdk/pyproject.toml" not in names


def test_the_sdk_alone_logs_a_run_without_django(
    venv: Path, server: LabbookServer, project: str, tmp_path: Path
) -> None:
    assert in_venv(venv, "import django", tmp_path).returncode != 0
    assert in_venv(venv, "import tracking.api", tmp_path).returncode != 0  # only the SDK
    script = f"""
import json, sys
import tracking
from tracking import sdk

run = sdk.init(project={project!r}, name="standalone", config={{"lr": 0.1}})
for step in range(5):
    run.log({{"loss": 1.0 / (step + 1)}}, step=step)
run.finish()
history = sdk.Api().history(run.id, "loss")
print(json.dumps({{
    "run": run.id,
    "history": history["values"],
    "sdk": sdk.__file__,
    "namespace": list(tracking.__path__),
    "tracking_file": getattr(tracking, "__file__", None),
    "version": sdk.__version__,
    "modules": sorted(name for name in sys.modules if name.split(".")[0] == "django"),
}}))
"""
    done = in_venv(
        venv,
        script,
        tmp_path,
        LABBOOK_URL=server.url,
        LABBOOK_TOKEN=server.token,
        LABBOOK_SPOOL_DIR=str(tmp_path / "spool"),
        LABBOOK_FLUSH_SECONDS="0.2",
        LABBOOK_FINISH_TIMEOUT="20",
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    site_packages = str(venv.parent.parent / "lib")
    assert found["sdk"].startswith(site_packages), found["sdk"]
    assert str(ROOT) not in found["sdk"]
    assert found["tracking_file"] is None  # a namespace package, from the wheel alone
    assert all(path.startswith(site_packages) for path in found["namespace"]), found
    assert found["version"] == __version__
    assert found["modules"] == []
    assert found["history"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]

    run_id = found["run"]
    assert server.run(run_id)["status"] == "finished"
    assert server.run(run_id)["config"] == {"lr": 0.1}
    steps, values = server.history(run_id, "loss")
    assert steps == [0, 1, 2, 3, 4]
    assert values == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2], rel=1e-12)


def test_the_sync_command_runs_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    done = run([venv, "-I", "-m", "tracking.sdk", "--help"], env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sync" in done.stdout
