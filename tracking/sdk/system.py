"""What a run records about where it ran: host, Python, command line, git state."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def without_credentials(url: str) -> str:
    """A remote URL without user:password@ (tokens in remotes are common)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def git_info() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD") or "",
        "remote": without_credentials(_git("config", "--get", "remote.origin.url") or ""),
        "dirty": bool(status),
    }


def command_line() -> str:
    return shlex.join([os.path.basename(sys.executable), *sys.argv])


def metadata() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "sdk": "labbook-sdk/1",
    }


def run_context() -> dict[str, Any]:
    """The fields ``POST /api/v1/runs`` takes about the environment."""
    return {
        "host": socket.gethostname(),
        "command": command_line(),
        "git": git_info(),
        "metadata": metadata(),
    }
