"""JSON in: fast (orjson), and tolerant of the NaN/Infinity literals Python's json emits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from kernel.errors import invalid
from tracking.validation import json_loads

# "\ud800": half of a UTF-16 pair. orjson refuses one alone; json (the fallback) decodes it
# into a str that no database stores and no encoder writes, so it fails far away as a 500.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
SURROGATE = re.compile("[\ud800-\udfff]")


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:  # whatever JSON the body holds, not only an object
        body = stream.read() if stream is not None else b""
        try:
            data = json_loads(body)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"Malformed JSON: {error}") from None
        if SURROGATE_ESCAPE.search(body):  # rare: only then walk the data
            refuse_lone_surrogates(data)
        return data


def refuse_lone_surrogates(data: Any) -> None:
    """Raise ``invalid`` naming the first string (or key) holding half a surrogate pair."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:  # iterative: the body may nest as deep as json allows
        value, path = stack.pop()
        if isinstance(value, str) and SURROGATE.search(value):
            raise invalid(path or "body", "Text may not hold half of a UTF-16 surrogate pair.")
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                stack += [(key, where), (item, where)]
        elif isinstance(value, list):
            stack += [(item, f"{path}[{index}]") for index, item in enumerate(value)]
