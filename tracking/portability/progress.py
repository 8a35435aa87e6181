"""Progress for the export and import commands: a tqdm bar, or a plain count line without tqdm."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tracking.portability.format import TextOut

COUNT_LINE_SECONDS = 10.0


class Bar(Protocol):
    def update(self, n: int) -> Any: ...

    def close(self) -> None: ...


class CountLine:
    """What shows progress when tqdm is not installed: a count line now and then, and at the end."""

    def __init__(self, *, desc: str, unit: str, total: int | None, stream: TextOut) -> None:
        self.desc, self.total, self.stream = desc, total, stream
        self.unit = "bytes" if unit == "B" else unit
        self.n = 0
        self.shown_at = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        if time.monotonic() - self.shown_at >= COUNT_LINE_SECONDS:
            self.show()

    def close(self) -> None:
        self.show()

    def show(self) -> None:
        of = "" if self.total is None else f" of {self.total:,}"
        self.stream.write(f"{self.desc}: {self.n:,}{of} {self.unit}\n")
        self.shown_at = time.monotonic()


def progress_bar(*, desc: str, unit: str, total: int | None, stream: TextOut) -> Bar:
    """A tqdm bar on the terminal's stderr (silent when that is no terminal), else a CountLine.

    tqdm redraws its line with carriage returns, so it writes to ``sys.stderr``
    itself; the count line goes to ``stream`` (the command's stderr).
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return CountLine(desc=desc, unit=unit, total=total, stream=stream)
    return tqdm(
        desc=desc,
        unit=unit,
        total=total,
        unit_scale=unit == "B",
        file=sys.stderr,
        disable=None,
        mininterval=0.5,
    )
