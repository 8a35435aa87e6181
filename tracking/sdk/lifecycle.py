"""How a run ends when the script does: normal exit, exception, SIGTERM, fork.

* normal interpreter exit → ``finished``;
* an uncaught exception → ``failed``, with ``error`` ("ValueError: boom") and the
  tail of the traceback; KeyboardInterrupt (Ctrl-C) → ``killed``;
  the run is finished at exit, after the hook printed the traceback through the
  console tee (tracking/sdk/console.py), so it is among the run's last lines;
* SIGTERM (preemption, ``scancel``, ``kill``) → ``killed`` with exit code 143;
  a handler the script installed before is still called afterwards;
* a forked child (DataLoader workers) gets a fresh, empty queue and never ends
  the parent's run.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
import weakref
from typing import TYPE_CHECKING, Any

from tracking.sdk.sender import warn

if TYPE_CHECKING:
    from tracking.sdk.run import Run

TRACEBACK_TAIL = 8_000
_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_installed = False
_exit: tuple[str, str | None, str | None, int | None] | None = None
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = signal.SIG_DFL
_fork_warned = False


def register(run: Run) -> None:
    _install()
    _runs.add(run)


def unregister(run: Run) -> None:
    _runs.discard(run)


# (status, error, traceback tail, exit code): how an exception ends a run.
Ending = tuple[str, str, str | None, int]


def describe_exception(kind: type[BaseException], error: BaseException | None, tb: Any) -> Ending:
    """(status, error, traceback tail, exit code) for an exception that ends a run."""
    if issubclass(kind, KeyboardInterrupt):
        return "killed", "KeyboardInterrupt", None, 130
    text = "".join(traceback.format_exception(kind, error, tb))
    return "failed", f"{kind.__name__}: {error}"[:500], text[-TRACEBACK_TAIL:], 1


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _install_sigterm()


def _install_sigterm() -> None:
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return
    _previous_sigterm = previous
    signal.signal(signal.SIGTERM, _on_sigterm)


def _excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    global _exit
    _exit = describe_exception(kind, error, tb)
    _previous_excepthook(kind, error, tb)


def _finish_all(status: str, error: str | None, tail: str | None, code: int | None) -> None:
    for run in list(_runs):
        try:
            run.finish(status, exit_code=code, error=error, traceback=tail)
        except Exception as problem:
            warn(f"could not finish run {run.name!r}: {problem}")


def _at_exit() -> None:
    status, error, tail, code = _exit or ("finished", None, None, None)
    _finish_all(status, error, tail, code)


def _on_sigterm(signum: int, frame: Any) -> None:
    _finish_all("killed", "SIGTERM", None, 128 + signum)
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    for run in list(_runs):
        run._become_fork_child()


def warn_fork_auto_step() -> None:
    global _fork_warned
    if not _fork_warned:
        _fork_warned = True
        warn(
            "run.log() without step= in a forked process: its steps can collide with the"
            " parent's, and the server keeps the first value for a step"
        )
