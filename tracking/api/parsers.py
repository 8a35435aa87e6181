"""JSON in: fast (orjson), and tolerant of the NaN/Infinity literals Python's json emits."""

from __future__ import annotations

import json

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        # Python's `json.dumps` writes NaN and Infinity as bare literals, and
        # `requests.post(json=...)` sends them: accept them rather than lose points.
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"Malformed JSON: {error}") from None
