"""Collecting static files as `up` does: hashed names, Brotli and gzip copies, nothing twice.

Each test collects a folder of two small files of its own (not the apps' 12 MB,
whose Brotli takes seconds), through the settings `up` uses otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.templatetags.static import static
from django.test import RequestFactory

from labbook.middleware import StaticFilesMiddleware
from labbook.staticfiles import SOURCES_FILE, collect_static

APP_JS = "console.log('labbook');\n" * 200  # long enough to be worth compressing
APP_CSS = "body { color: black; }\n" * 200


@pytest.fixture
def sources(tmp_path: Path, settings) -> Path:
    source = tmp_path / "sources"
    (source / "app").mkdir(parents=True)
    (source / "app" / "app.js").write_text(APP_JS)
    (source / "app" / "app.css").write_text(APP_CSS)
    settings.STATICFILES_DIRS = [source]
    settings.STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]
    settings.STATIC_ROOT = tmp_path / "collected"
    settings.STATIC_ROOT.mkdir()
    return source


def manifest(root: Path) -> dict[str, str]:
    return json.loads((root / "staticfiles.json").read_text())["paths"]


def test_a_collect_keeps_hashed_files_with_brotli_and_gzip_copies(sources, settings):
    assert collect_static() == "done"

    root = Path(settings.STATIC_ROOT)
    hashed = manifest(root)["app/app.js"]
    assert hashed != "app/app.js" and (root / hashed).read_text() == APP_JS
    assert (root / f"{hashed}.br").is_file() and (root / f"{hashed}.gz").is_file()
    assert not (root / "app" / "app.js").exists()  # the plain name is the app folder's
    assert static("app/app.js") == f"/static/{hashed}"


def test_a_collect_of_unchanged_sources_is_skipped(sources, settings):
    collect_static()
    root = Path(settings.STATIC_ROOT)
    before = sorted(root.rglob("*"))

    assert collect_static() == "up to date"
    assert sorted(root.rglob("*")) == before


def test_a_changed_file_alone_is_compressed_again_and_its_old_version_removed(sources, settings):
    collect_static()
    root = Path(settings.STATIC_ROOT)
    old = manifest(root)
    kept = os.stat(root / f"{old['app/app.css']}.br")
    (sources / "app" / "app.js").write_text(APP_JS + "console.log('changed');\n")

    assert collect_static() == "done"
    new = manifest(root)
    assert new["app/app.js"] != old["app/app.js"]
    assert (root / f"{new['app/app.js']}.br").is_file()
    assert not any(root.glob(f"{old['app/app.js']}*"))
    unchanged = os.stat(root / f"{new['app/app.css']}.br")
    assert (unchanged.st_ino, unchanged.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)


def test_a_collect_cut_short_is_done_again(sources, settings):
    collect_static()
    (Path(settings.STATIC_ROOT) / SOURCES_FILE).unlink()

    assert collect_static() == "done"


def test_a_file_missing_from_the_manifest_is_named_plainly(sources):
    # Nothing collected, as under runserver and the in-process tests: no ValueError.
    assert staticfiles_storage.url("app/app.js") == "/static/app/app.js"
    assert static("app/never-collected.js") == "/static/app/never-collected.js"


def test_hashed_names_are_cached_a_year_and_plain_ones_a_minute(sources, settings):
    settings.DEBUG = False
    collect_static()
    hashed = manifest(Path(settings.STATIC_ROOT))["app/app.js"]
    middleware = StaticFilesMiddleware(lambda request: None)
    answers = {
        path: middleware(RequestFactory().get(path, HTTP_ACCEPT_ENCODING="br, gzip"))
        for path in (f"/static/{hashed}", "/static/app/app.js")
    }
    forever, plain = answers.values()
    assert forever["Cache-Control"] == "public, max-age=31536000, immutable"
    assert forever["Content-Encoding"] == "br"
    assert plain["Cache-Control"] == "public, max-age=60"
