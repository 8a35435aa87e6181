"""JSON in: fast (orjson), and tolerant of the NaN/Infinity literals Python's json emits."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from tracking.validation import json_loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        try:
            return json_loads(body)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"Malformed JSON: {error}") from None
