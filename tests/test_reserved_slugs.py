"""Every fixed top-level path of the site is a word no team may take as its slug.

A team's pages live at ``/<team>/...``, after the fixed routes: a team called ``runs``
would find its home page answered by the MLflow link redirect instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLResolver, get_resolver

from tracking.services import RESERVED_TEAM_SLUGS

SERVED_OUTSIDE_THE_URLCONF = {"static", "ws"}  # whitenoise; the ASGI router's websockets


def routes(patterns: list, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield route


def test_each_fixed_top_level_path_is_reserved():
    firsts = {route.lstrip("^").split("/")[0] for route in routes(get_resolver().url_patterns)}
    fixed = {first for first in firsts if first and not first.startswith("<")}
    assert "experiments" in fixed  # the walk reaches included patterns
    assert fixed | SERVED_OUTSIDE_THE_URLCONF == RESERVED_TEAM_SLUGS
