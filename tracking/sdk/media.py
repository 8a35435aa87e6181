"""Images, tables, histograms and texts for ``run.log()``, and how they travel to the server.

    run.log({"samples": sdk.Image(array, caption="epoch 3"),
             "preds": sdk.Table(columns=["id", "p"], rows=[[1, 0.9]]),
             "grad/w1": sdk.Histogram(weights.grad),
             "generated": sdk.Text(completion)}, step=step)

Building one checks what is cheap to check (type, shape, dtype, size) and
copies what the training code may change later (an array, a PIL image, the
rows); the expensive part, PNG encoding, base64 and binning, happens in the
sender thread (:meth:`Media.item`). numpy and Pillow are optional: they are
imported only when an array or a PIL image is given.

The server (``POST /api/v1/runs/<id>/media``, tracking/media.py) is the judge
of every item; this module restates only the few limits worth failing on in
``log()`` and sends items in requests the server takes (:func:`upload`).
"""

from __future__ import annotations

import base64
import importlib
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tracking.sdk.transport import Transport, TransportError

# Restated from tracking/media.py (the SDK is published without the server): keep in step.
MAX_ITEMS_PER_REQUEST = 100
IMAGE_MAX_BYTES = 8 * 1024 * 1024
IMAGE_MAX_PIXELS = 4096 * 4096
TABLE_MAX_COLUMNS = 200
TABLE_MAX_ROWS = 10_000
TABLE_MAX_CELLS = 200_000
HISTOGRAM_MAX_BINS = 512
TEXT_MAX_CHARS = 1_000_000
TEXT_FORMATS = ("text", "json", "yaml")
# The SDK's own: base64 per request, half the server's 16 MiB body limit (MAX_REQUEST_BYTES).
REQUEST_MAX_CHARS = 8 * 1024 * 1024

_MAGIC = (  # what an encoded image file starts with: PNG, JPEG, GIF, WebP (bytes 8-12)
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"\xff\xd8\xff"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (8, b"WEBP"),
)
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}
_ITEM_INDEX = re.compile(r"\(items\[(\d+)\]")  # the field the server names in a 400

Item = dict[str, Any]  # one item of the API's {"items": [...]}, ready to send


class Media:
    """An image, a table, a histogram or a text; ``run.log()`` takes it (or a list of them)
    as a value."""

    kind = ""

    def __init__(self, caption: str | None) -> None:
        self.caption = "" if caption is None else str(caption)

    @property
    def queued_bytes(self) -> int:
        """Roughly what it holds in memory while queued (bounds the queue)."""
        return 1_000

    def item(self, key: str, step: int, timestamp: float) -> Item:
        """The API item; called in the sender thread (this is where encoding happens)."""
        item: Item = {"key": key, "step": step, "kind": self.kind, "timestamp": timestamp}
        if self.caption:
            item["caption"] = self.caption
        item.update(self._content())
        return item

    def _content(self) -> dict[str, Any]:
        raise NotImplementedError


# --- Images ----------------------------------------------------------------------------------


def _optional(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        package = "Pillow" if module.startswith("PIL") else module
        raise ImportError(
            f"sdk.Image: {what} needs {package}: python -m pip install {package}"
        ) from None


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and callable(getattr(value, "save", None))


def _is_array(value: Any) -> bool:
    return hasattr(value, "__array_interface__") or hasattr(value, "__array__")


class Image(Media):
    """An image: a file path, an encoded file (bytes), a PIL image or a numpy array.

    Arrays are HxW (grey), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA), of uint8 or of
    floats in 0-1; arrays and PIL images are sent as PNG (they need Pillow).
    A path is read here, at once: a script that rewrites ``sample.png`` each
    epoch logs each version. Files are PNG, JPEG, WebP or GIF, at most 8 MiB.
    """

    kind = "image"

    def __init__(self, data: Any, caption: str | None = None) -> None:
        super().__init__(caption)
        self._file: bytes | None = None
        self._pil: Any = None
        self._array: Any = None
        if isinstance(data, str | os.PathLike):
            self._file = _checked_file(_read(Path(data)), f"{os.fspath(data)!r}")
        elif isinstance(data, bytes | bytearray | memoryview):
            self._file = _checked_file(bytes(data), "the bytes given")
        elif _is_pil(data):
            _optional("PIL.Image", "a PIL image")
            _check_pixels(data.width, data.height)
            self._pil = data.copy()  # the caller may draw on it after log()
        elif _is_array(data):
            self._array = _checked_array(data)
        else:
            raise TypeError(
                f"sdk.Image takes a file path, bytes, a PIL image or a numpy array,"
                f" not a {type(data).__name__}"
            )

    @property
    def queued_bytes(self) -> int:
        if self._file is not None:
            return len(self._file)
        if self._array is not None:
            return int(self._array.nbytes)
        return int(self._pil.width * self._pil.height * 4)

    def _content(self) -> dict[str, Any]:
        data = self._file if self._file is not None else _png(self._pil, self._array)
        return {"image": base64.b64encode(data).decode("ascii")}


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > IMAGE_MAX_BYTES:
        raise ValueError(f"sdk.Image: {path} is {size:,} bytes; at most {IMAGE_MAX_BYTES:,}")
    return path.read_bytes()


def _checked_file(data: bytes, what: str) -> bytes:
    if len(data) > IMAGE_MAX_BYTES:
        raise ValueError(f"sdk.Image: {what}: {len(data):,} bytes; at most {IMAGE_MAX_BYTES:,}")
    if not any(data[at : at + len(magic)] == magic for at, magic in _MAGIC):
        raise ValueError(f"sdk.Image: {what}: not a PNG, JPEG, WebP or GIF file")
    return data


def _check_pixels(width: int, height: int) -> None:
    if width * height > IMAGE_MAX_PIXELS:
        raise ValueError(
            f"sdk.Image: {width}x{height} is more than {IMAGE_MAX_PIXELS:,} pixels (4096x4096)"
        )


def _checked_array(data: Any) -> Any:
    """A private copy of an image array, checked; floats stay floats until encoding."""
    np = _optional("numpy", "an array")
    _optional("PIL.Image", "an array")
    array = np.array(data, copy=True)  # the caller's array may change after log()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(
            f"sdk.Image: an array is HxW, HxWx1, HxWx3 or HxWx4, not {tuple(array.shape)}"
            " (channels last; a CHW tensor needs .permute(1, 2, 0))"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"sdk.Image: an empty array {tuple(array.shape)}")
    _check_pixels(int(array.shape[1]), int(array.shape[0]))
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind != "f":
        raise TypeError(
            f"sdk.Image: an array of {array.dtype} (use uint8 0-255 or floats 0-1;"
            " e.g. array.astype('uint8'))"
        )
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    if low < 0 or high > 1:
        raise ValueError(
            f"sdk.Image: float pixels are 0-1, these range from {low:g} to {high:g}"
            " (divide by 255, or clip)"
        )
    return array


def _png(pil: Any, array: Any) -> bytes:
    """PNG bytes of a PIL image or of a checked array (in the sender thread)."""
    import io

    from PIL import Image as PILImage

    if array is not None:
        if array.dtype.kind == "f":
            import numpy as np

            array = (np.nan_to_num(array, nan=0.0) * 255 + 0.5).astype(np.uint8)
        pil = PILImage.fromarray(array)
    elif pil.mode not in _PNG_MODES:
        pil = pil.convert("RGBA" if "A" in pil.getbands() else "RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


# --- Tables ----------------------------------------------------------------------------------


class Table(Media):
    """A table: ``Table(columns=[...], rows=[[...], ...])`` or ``Table(dataframe=df)``.

    Cells are strings, numbers, booleans or None (numpy scalars become numbers;
    NaN and infinities the strings "NaN", "Infinity", "-Infinity"). At most 200
    columns, 10,000 rows and 200,000 cells. In a DataFrame, NaN, None, NA and
    NaT are missing (None) and other cells (timestamps, objects) their ``str()``.
    """

    kind = "table"

    def __init__(
        self,
        columns: Sequence[Any] | None = None,
        rows: Iterable[Sequence[Any]] | None = None,
        *,
        dataframe: Any = None,
        caption: str | None = None,
    ) -> None:
        super().__init__(caption)
        loose = dataframe is not None
        if loose:
            if columns is not None or rows is not None:
                raise TypeError("sdk.Table: give columns and rows, or a dataframe, not both")
            columns = list(dataframe.columns)
            rows = dataframe.itertuples(index=False, name=None)
        if columns is None:
            raise TypeError("sdk.Table needs columns=[...] (and rows=[[...], ...])")
        self.columns = [str(name) for name in columns]
        if not self.columns or len(self.columns) > TABLE_MAX_COLUMNS:
            raise ValueError(f"sdk.Table: from 1 to {TABLE_MAX_COLUMNS} columns")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("sdk.Table: column names must differ")
        self.rows = [self._row(index, row, loose) for index, row in enumerate(rows or [])]
        if len(self.rows) > TABLE_MAX_ROWS or len(self.rows) * len(self.columns) > TABLE_MAX_CELLS:
            raise ValueError(
                f"sdk.Table: at most {TABLE_MAX_ROWS:,} rows and {TABLE_MAX_CELLS:,} cells"
            )

    def _row(self, index: int, row: Sequence[Any], loose: bool) -> list[Any]:
        if isinstance(row, str | bytes) or len(row) != len(self.columns):
            raise ValueError(f"sdk.Table: row {index} is not a list of {len(self.columns)} cells")
        return [_cell(value, index, loose) for value in row]

    @property
    def queued_bytes(self) -> int:
        return 50 * len(self.rows) * len(self.columns)

    def _content(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}


def _cell(value: Any, row: int, loose: bool) -> Any:
    """A JSON cell as the server takes it; numpy scalars become Python's."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value) and loose:
            return None  # a DataFrame's missing value
        return value if math.isfinite(value) else _nonfinite(value)
    convert = getattr(value, "item", None)
    if callable(convert) and getattr(value, "ndim", 0) == 0:
        return _cell(convert(), row, loose)
    if loose:
        return None if _missing(value) else str(value)
    raise TypeError(
        f"sdk.Table: row {row} holds a {type(value).__name__}; cells are strings,"
        " numbers, booleans or None"
    )


def _missing(value: Any) -> bool:
    """pandas' NA and NaT (a DataFrame's missing cells)."""
    pandas = sys.modules.get("pandas")
    try:
        return pandas is not None and bool(pandas.isna(value))
    except (TypeError, ValueError):
        return False


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


# --- Histograms ------------------------------------------------------------------------------


class Histogram(Media):
    """Counts of values in equal bins: ``Histogram(values, bins=64)``.

    Or bins computed elsewhere: ``Histogram(np_histogram=np.histogram(values))``.
    At most 512 bins. NaN and infinite values are left out (not counted in
    any bin). Binning happens in the sender thread, with numpy when the values
    are an array, in pure Python otherwise; a list or an array is copied here.
    """

    kind = "histogram"

    def __init__(
        self,
        values: Any = None,
        bins: int = 64,
        *,
        np_histogram: tuple[Any, Any] | None = None,
        caption: str | None = None,
    ) -> None:
        super().__init__(caption)
        self._values: Any = None
        self._bins = 0
        self._done: tuple[list[float], list[float]] | None = None
        if np_histogram is not None:
            if values is not None:
                raise TypeError("sdk.Histogram: give values or np_histogram, not both")
            self._done = _given_bins(np_histogram)
            return
        if isinstance(bins, bool) or not isinstance(bins, int):
            raise TypeError(f"sdk.Histogram: bins is an integer, not {bins!r}")
        if not 1 <= bins <= HISTOGRAM_MAX_BINS:
            raise ValueError(f"sdk.Histogram: from 1 to {HISTOGRAM_MAX_BINS} bins, not {bins}")
        if values is None:
            raise TypeError("sdk.Histogram needs values (or np_histogram=(counts, edges))")
        self._bins = bins
        self._values = _copied_values(values)

    @property
    def queued_bytes(self) -> int:
        values = self._values
        if values is None:
            return 1_000
        return int(getattr(values, "nbytes", 0)) or 32 * len(values)

    def _content(self) -> dict[str, Any]:
        if self._done is None:
            self._done = _binned(self._values, self._bins)
            self._values = None
        counts, edges = self._done
        return {"counts": counts, "edges": edges}


def _copied_values(values: Any) -> Any:
    if _is_array(values) and not isinstance(values, list | tuple) and _has("numpy"):
        import numpy as np

        return np.array(values, dtype=np.float64, copy=True).ravel()
    if isinstance(values, str | bytes):
        raise TypeError("sdk.Histogram: values are numbers, not a string")
    copied = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            convert = getattr(value, "item", None)
            if not callable(convert):
                raise TypeError(f"sdk.Histogram: values are numbers, not {type(value).__name__}")
            value = convert()
        copied.append(float(value))
    return copied


def _has(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _given_bins(given: tuple[Any, Any]) -> tuple[list[float], list[float]]:
    try:
        counts, edges = ([float(v) for v in part] for part in given)
    except (TypeError, ValueError):
        raise TypeError(
            "sdk.Histogram: np_histogram is (counts, edges), two lists of numbers"
        ) from None
    if not 1 <= len(counts) <= HISTOGRAM_MAX_BINS or len(edges) != len(counts) + 1:
        raise ValueError(
            f"sdk.Histogram: from 1 to {HISTOGRAM_MAX_BINS} counts and one more edge than counts"
        )
    if not all(math.isfinite(v) for v in counts + edges) or any(c < 0 for c in counts):
        raise ValueError("sdk.Histogram: counts and edges are finite, counts not negative")
    if any(low >= high for low, high in itertools.pairwise(edges)):
        raise ValueError("sdk.Histogram: edges must increase")
    return [_whole(c) for c in counts], edges


def _whole(count: float) -> float:
    return int(count) if count.is_integer() else count


def _binned(values: Any, bins: int) -> tuple[list[float], list[float]]:
    """(counts, edges) of the finite values in ``bins`` equal bins (numpy's rules)."""
    if not isinstance(values, list):
        return _binned_numpy(values, bins)
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    counts = [0] * bins
    for value in finite:
        counts[min(int((value - low) / width), bins - 1)] += 1
    edges = [low + width * index for index in range(bins)] + [high]
    return list(counts), edges


def _binned_numpy(values: Any, bins: int) -> tuple[list[float], list[float]]:
    import numpy as np

    counts, edges = np.histogram(values[np.isfinite(values)], bins=bins)
    return [int(c) for c in counts], [float(e) for e in edges]


# --- Texts -----------------------------------------------------------------------------------


class Text(Media):
    """A text, kept exactly as given: ``Text(completion)``, ``Text(log, caption="epoch 3")``.

    At most 1,000,000 characters, no NUL. ``format="json"`` or ``"yaml"`` only
    changes how the run page shows it (JSON pretty-printed); nothing is parsed.
    """

    kind = "text"

    def __init__(self, text: str, caption: str | None = None, *, format: str = "text") -> None:
        super().__init__(caption)
        if not isinstance(text, str):
            raise TypeError(f"sdk.Text takes a str, not a {type(text).__name__}")
        if not text:
            raise ValueError("sdk.Text: an empty text")
        if len(text) > TEXT_MAX_CHARS:
            raise ValueError(f"sdk.Text: {len(text):,} characters; at most {TEXT_MAX_CHARS:,}")
        if "\x00" in text:
            raise ValueError("sdk.Text: a text may not hold NUL characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("sdk.Text: not valid Unicode (a lone surrogate)") from None
        if format not in TEXT_FORMATS:
            raise ValueError(
                f"sdk.Text: format is one of {', '.join(TEXT_FORMATS)}, not {format!r}"
            )
        self.text = text  # a str cannot change after log()
        self.format = format

    @property
    def queued_bytes(self) -> int:
        return len(self.text)

    def _content(self) -> dict[str, Any]:
        if self.format == "text":
            return {"text": self.text}
        return {"text": self.text, "format": self.format}


# --- Sending ---------------------------------------------------------------------------------


def media_values(key: str, value: Any) -> list[Media] | None:
    """``value`` as a list of media when it is one (or a list of them), else None."""
    if isinstance(value, Media):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(v, Media) for v in value):
        return list(value)
    if isinstance(value, list | tuple) and any(isinstance(v, Media) for v in value):
        raise TypeError(f"run.log(): {key!r} mixes media with other values")
    return None


def _size(item: Item) -> int:
    if "image" in item:
        return len(item["image"])
    if "rows" in item:
        return len(json.dumps(item["rows"], allow_nan=False))
    if "text" in item:
        return len(json.dumps(item["text"]))  # as sent: non-ASCII is escaped
    return 24 * len(item["counts"]) + 100


def requests_of(items: list[Item]) -> list[list[Item]]:
    """``items`` in groups of at most MAX_ITEMS_PER_REQUEST and about REQUEST_MAX_CHARS."""
    groups: list[list[Item]] = []
    size = 0
    for item in items:
        grow = _size(item)
        if (
            not groups
            or len(groups[-1]) >= MAX_ITEMS_PER_REQUEST
            or size + grow > REQUEST_MAX_CHARS
        ):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += grow
    return groups


class NotSent(Exception):
    """The server could not be reached (or refused the whole run): ``items`` were not sent."""

    def __init__(self, error: TransportError, items: list[Item]) -> None:
        super().__init__(str(error))
        self.error = error
        self.items = items


Refused = tuple[Item, str]  # an item the server will never take, and why


def upload(
    transport: Transport,
    run_id: int,
    items: list[Item],
    *,
    budget: float,
    interrupt: Any = None,
    on_sent: Callable[[int], None] | None = None,
) -> list[Refused]:
    """Send ``items``; the ones the server refuses (a 400 naming them) come back, the rest stored.

    A 400 that names ``items[i]`` drops that item and sends the rest again; a
    400 about the whole request (too many pixels) or a 413 halves it. Sending
    again is safe: the server counts the same content at the same key and step
    as a duplicate. ``NotSent`` carries what is left when the server is away.
    """
    path = f"/api/v1/runs/{run_id}/media"
    pending = requests_of(items)
    refused: list[Refused] = []
    while pending:
        group = pending.pop(0)
        try:
            transport.request_retrying(
                "POST", path, {"items": group}, budget=budget, interrupt=interrupt
            )
        except TransportError as error:
            if error.retryable or error.status not in (400, 413):
                raise NotSent(
                    error, [item for rest in (group, *pending) for item in rest]
                ) from None
            bad = _ITEM_INDEX.search(str(error))
            if error.status == 400 and bad and int(bad.group(1)) < len(group):
                refused.append((group.pop(int(bad.group(1))), str(error)))
                if group:
                    pending.insert(0, group)
            elif len(group) > 1:
                half = len(group) // 2
                pending[:0] = [group[:half], group[half:]]
            else:
                refused.append((group[0], str(error)))
            continue
        if on_sent is not None:
            on_sent(len(group))
    return refused
