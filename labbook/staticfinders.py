"""Serve plotly.js from the ``plotly`` package's bundled copy (no CDN, works air-gapped).

Only ``plotly.min.js`` is exposed, as ``plotly/plotly.min.js``: the package's data
folder also holds a widget bundle and datasets that pages never need.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, overload

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "plotly.min.js"
PREFIX = "plotly"


class PlotlyStorage(FileSystemStorage):
    prefix = PREFIX  # the files' folder under STATIC_ROOT, as the finders' own storages say it


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = PlotlyStorage(location=Path(plotly.__file__).parent / "package_data")

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str: ...
    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> list[str]: ...
    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if path != f"{PREFIX}/{PLOTLY_JS}":
            return [] if find_all else ""
        found = self.storage.path(PLOTLY_JS)
        return [found] if find_all else found

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        yield PLOTLY_JS, self.storage
