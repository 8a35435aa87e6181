"""Process trees: their members, their memory, and stopping them."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.benchmarks.mlflow_bench.common import INTERVAL, STOP_TIMEOUT


def tree_pids(root: int) -> list[int]:
    """``root`` and every process below it, from /proc (children may lead their own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_rss(root: int) -> int:
    """The summed RSS of a process tree: psutil's view when installed, else /proc's."""
    try:
        import psutil
    except ImportError:
        return sum(rss_bytes(pid) for pid in tree_pids(root))
    with contextlib.suppress(psutil.NoSuchProcess):
        top = psutil.Process(root)
        total = 0
        for process in [top, *top.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total
    return 0


class RssSampler(threading.Thread):
    """Every INTERVAL seconds, the RSS of each server's whole process tree."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.roots = roots
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopping = threading.Event()

    def sample(self) -> None:
        now = time.perf_counter()
        self.samples.append((now, {name: tree_rss(pid) for name, pid in self.roots.items()}))

    def run(self) -> None:
        while not self.stopping.wait(INTERVAL):
            self.sample()

    def peak(self, name: str, start: float, end: float = math.inf) -> int:
        return max((s[name] for t, s in self.samples if start <= t <= end), default=0)

    def before(self, name: str, moment: float) -> int:
        return next((s[name] for t, s in reversed(self.samples) if t < moment), 0)


def stop_tree(process: subprocess.Popen, *, whole_group: bool) -> None:
    """SIGTERM the server (its process group for ``whole_group``); SIGKILL what outlives it."""
    pids = tree_pids(process.pid)
    groups = {pgid for pid in pids if (pgid := _pgid(pid)) and pgid != os.getpgrp()}
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:  # ``up`` stops its children itself, in order
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        process.poll()  # reaps our own child
        time.sleep(0.2)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    process.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
