"""Static files under hashed names with Brotli and gzip copies, collected by `up` when stale.

`manage.py up` collects them into ``STATIC_ROOT`` (``LABBOOK_HOME/static``) before
the web server starts: each file under a name carrying a hash of its content
(``plotly-strict.min.<hash>.js``), which WhiteNoise serves cached for a year
(``labbook.middleware.StaticFilesMiddleware``), next to a ``.br`` and a ``.gz``
copy it picks by the browser's ``Accept-Encoding``.

Brotli runs at quality 9, not its best (11): plotly.js takes 0.4 s of CPU
instead of 9 s and comes out at 1.30 MB instead of 1.16 MB, so a first `up`
on a small machine starts in seconds, for 12% more bytes once per browser and
release. Nothing is done twice either: a collect whose sources have not
changed is skipped (:func:`collect_static`), and one that runs compresses only
the files whose content changed (:class:`KeepingCompressor`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]  # no stubs
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from whitenoise.compress import Compressor, brotli_installed
from whitenoise.storage import CompressedManifestStaticFilesStorage

# Next to the manifest (staticfiles.json): the digest of the sources it was collected from.
SOURCES_FILE = "staticfiles.sources"
IGNORE_PATTERNS = ["CVS", ".*", "*~"]  # collectstatic's defaults
COPIES = (".br", ".gz")
BROTLI_QUALITY = 9  # see the module docstring: 20x faster than 11, 12% larger


class KeepingCompressor(Compressor):
    """WhiteNoise's compressor, keeping the copies a hashed file has from an earlier collect.

    Only hashed names are compressed (``WHITENOISE_KEEP_ONLY_HASHED_FILES``), and a
    hashed name stands for one content: copies made for it before are the ones
    this collect would make.
    """

    def compress(self, path: str) -> list[str]:
        wanted = [path + ".br"] if self.use_brotli else []
        wanted += [path + ".gz"] if self.use_gzip else []
        if wanted and all(os.path.exists(copy) for copy in wanted):
            return wanted
        return list(super().compress(path))

    @staticmethod
    def compress_brotli(data: bytes) -> bytes:
        return bytes(brotli.compress(data, quality=BROTLI_QUALITY))

    def write_data(self, path: str, data: bytes, suffix: str, stat_result: os.stat_result) -> str:
        """Written under a temporary name, then renamed: a collect cut short leaves no half copy."""
        folder, name = os.path.split(path + suffix)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as file:
            file.write(data)
        os.chmod(file.name, stat_result.st_mode & 0o777)  # a temporary file is 0600
        os.utime(file.name, (stat_result.st_atime, stat_result.st_mtime))
        os.replace(file.name, path + suffix)
        return path + suffix


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's hashed, compressed storage; names the plain file when nothing was collected.

    After a collect, every file has its manifest entry and pages name it by its
    hashed name. Where nothing was collected (``runserver``, the in-process
    tests, the test suite's uvicorn servers), or a file is newer than the
    collect, Django's storage would fail the page with a ``ValueError``; this
    one names the plain file, which WhiteNoise serves from the apps' folders
    (``WHITENOISE_USE_FINDERS``) under the short cache.
    """

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            return name

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return KeepingCompressor(**kwargs)

    def post_process(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from super().post_process(*args, **kwargs)
        if not kwargs.get("dry_run"):
            self.prune()

    def prune(self) -> None:
        """Delete what the new manifest does not name: earlier versions and their copies."""
        keep = {*self.hashed_files.values(), self.manifest_name, SOURCES_FILE}
        root = Path(self.location)
        for path in [path for path in root.rglob("*") if path.is_file()]:
            name = path.relative_to(root).as_posix()
            copy_of = name.removesuffix(path.suffix) if path.suffix in COPIES else None
            if name not in keep and copy_of not in keep:
                path.unlink()


def sources_digest() -> str:
    """A digest of every file collectstatic would take (name, size, time) and of how it would."""
    lines = [
        f"{settings.STORAGES['staticfiles']['BACKEND']} whitenoise {version('whitenoise')}",
        f"brotli {brotli_installed} skip {settings.WHITENOISE_SKIP_COMPRESS_EXTENSIONS}",
    ]
    for finder in finders.get_finders():
        for path, storage in finder.list(IGNORE_PATTERNS):
            found = os.stat(storage.path(path))
            prefix = getattr(storage, "prefix", None) or ""
            lines.append(f"{prefix}/{path} {found.st_size} {found.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def collected_digest(root: Path) -> str | None:
    """The sources digest of the collect in ``root``; None without one (or without a manifest)."""
    if not (root / "staticfiles.json").is_file():
        return None
    try:
        return (root / SOURCES_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def collect_static() -> str:
    """Collect, hash and compress the static files unless ``STATIC_ROOT`` holds them already.

    Answers ``"done"`` or ``"up to date"``, for `up`'s start-up line.
    """
    root = Path(settings.STATIC_ROOT)
    digest = sources_digest()
    if collected_digest(root) == digest:
        return "up to date"
    (root / SOURCES_FILE).unlink(missing_ok=True)  # a collect cut short is not current
    call_command("collectstatic", interactive=False, verbosity=0)
    (root / SOURCES_FILE).write_text(digest + "\n")
    return "done"
