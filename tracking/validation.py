"""Input rules shared by the API, the services and the MLflow layer.

Limits (documented in docs/api.md):

* team and project names: 1-64 / 1-100 characters of ``A-Z a-z 0-9 . _ -``,
  starting with a letter or digit;
* run names and groups: at most 200 characters; tags: at most 100 characters,
  at most 100 tags per run;
* metric keys: 1-250 printable characters without leading/trailing spaces;
* config / summary JSON: nested at most 20 levels, at most 1 MB encoded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, overload

import orjson
from django.utils.dateparse import parse_datetime

from kernel.errors import invalid
from kernel.limits import max_length
from tracking.models import MetricSeries, RunTag

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_TAGS = 100
MAX_TAG_LENGTH = max_length(RunTag, "name")
MAX_JSON_DEPTH = 20  # config, summary, metadata
# Any JSON body: deeper is refused before any code walks it (walkers may recurse).
MAX_REQUEST_DEPTH = 64
MAX_JSON_BYTES = 1024 * 1024
MAX_KEY_LENGTH = max_length(MetricSeries, "key")  # MLflow's limit for every key too


@overload
def clean_moment(value: Any, *, field: str, optional: Literal[False] = False) -> datetime: ...
@overload
def clean_moment(value: Any, *, field: str, optional: bool) -> datetime | None: ...
def clean_moment(value: Any, *, field: str, optional: bool = False) -> datetime | None:
    """An ISO 8601 date and time as an aware datetime (UTC when no offset is given).

    ``None``/"" is ``None`` when ``optional``. A well-formed but impossible
    moment (February 30) is a 400 naming ``field``, like any other bad value.
    """
    if optional and value in (None, ""):
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise invalid(field, "An ISO 8601 date and time, e.g. 2027-01-31T12:00:00Z.")
    return in_utc(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC), field=field)


def in_utc(moment: datetime, *, field: str) -> datetime:
    """An aware moment in UTC, as it is stored; a 400 naming ``field`` when UTC has no such
    year (9999-12-31T23:00-05:00 is in the year 10000)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid(field, "Must fall between the years 1 and 9999 in UTC.") from None


def clean_slug(value: Any, *, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(field, "This field is required and must be a non-empty string.")
    if len(value) > max_length:
        raise invalid(field, f"At most {max_length} characters.")
    if not SLUG_RE.match(value):
        raise invalid(
            field, "Use letters, digits, '.', '_' and '-', starting with a letter or digit."
        )
    return value


def clean_text(
    value: Any, *, field: str, max_length: int, required: bool = False, strip: bool = True
) -> str:
    """``value`` as text within ``max_length``, surrounding spaces trimmed unless ``strip`` is
    False (text kept exactly as logged: a dataset's name, a console line)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid(field, "Must be a string.")
    text = value.strip() if strip else value
    if required and not text:
        raise invalid(field, "This field may not be blank.")
    if len(text) > max_length:
        raise invalid(field, f"At most {max_length} characters.")
    if "\x00" in text:
        raise invalid(field, "May not contain NUL characters.")
    return text


def clean_metric_key(value: Any, *, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(field, "A metric key must be a non-empty string.")
    if len(value) > MAX_KEY_LENGTH:
        raise invalid(field, f"A metric key has at most {MAX_KEY_LENGTH} characters.")
    if value != value.strip() or not value.isprintable():
        raise invalid(field, "A metric key must be printable, without surrounding spaces.")
    return value


def clean_tags(value: Any, *, field: str = "tags") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, "Must be a list of strings.")
    if len(value) > MAX_TAGS:
        raise invalid(field, f"At most {MAX_TAGS} tags.")
    tags: list[str] = []
    for index, tag in enumerate(value):
        tag = clean_text(tag, field=f"{field}[{index}]", max_length=MAX_TAG_LENGTH, required=True)
        if tag not in tags:
            tags.append(tag)
    return tags


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.

    Strict JSON has no spelling for them; storing the strings keeps the
    information and keeps every response valid JSON.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return float_to_json(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def float_to_json(value: float | None) -> float | str:
    """A stored metric value as JSON: NULL (NaN) and infinities become strings."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def nested_deeper_than(value: Any, levels: int) -> bool:
    """Do objects and lists in ``value`` nest more than ``levels`` deep?

    Level by level, without recursion, so any depth is answered; only
    containers are carried to the next level (a 10,000-point batch costs
    about a millisecond).
    """
    level = [value] if type(value) in _CONTAINERS else []
    for _depth in range(levels):
        inner = []
        for item in level:
            children = item.values() if type(item) is dict else item
            inner += [child for child in children if type(child) in _CONTAINERS]
        if not inner:
            return False
        level = inner
    return bool(level)


_CONTAINERS = frozenset({dict, list})


def clean_json_object(value: Any, *, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "Must be a JSON object.")
    if nested_deeper_than(value, MAX_JSON_DEPTH):
        raise invalid(field, f"Nested deeper than {MAX_JSON_DEPTH} levels.")
    if _has_nul(value):
        raise invalid(field, "May not contain NUL characters.")
    safe: dict[str, Any] = json_safe(value)
    if len(json.dumps(safe)) > MAX_JSON_BYTES:
        raise invalid(field, f"Larger than {MAX_JSON_BYTES} bytes.")
    return safe


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"opt": {"lr": 1}}`` → ``{"opt.lr": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def json_loads(body: bytes | str) -> Any:
    """Parse JSON fast (orjson), accepting the NaN/Infinity literals Python's json writes.

    ``requests.post(json=...)`` sends them bare: accept them rather than lose
    points. Raises ``ValueError`` (or ``RecursionError``) on malformed input.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = json.loads(body)
    if nested_deeper_than(data, MAX_REQUEST_DEPTH):
        raise ValueError(f"objects and lists nest deeper than {MAX_REQUEST_DEPTH} levels")
    return data
