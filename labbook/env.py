"""Typed readers for settings that come from the environment.

Each helper fails loudly (``ImproperlyConfigured`` naming the variable, the
value and what is allowed, on one line) on a value it cannot use, so a typo in
a deployment never turns into a silent default, and never into a traceback:
``manage.py`` prints the message as ``labbook: <message>`` and exits with 2.
Values that may hold a password (URLs) are shown with the password hidden.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def port_number(name: str, raw: str) -> int:
    """A TCP port, 1-65535: a larger number would be silently wrapped by the OS."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise ImproperlyConfigured(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return value


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return port_number(name, raw) if raw else default


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name: str, default: str) -> str:
    """A logging level name; ``logging`` would only refuse it later, as a traceback."""
    raw = os.environ.get(name, default)
    value = raw.strip().upper()
    if value not in logging.getLevelNamesMapping() or value == "NOTSET":
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return value


_RATE_RE = re.compile(r"^(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str | None:
    """A rate such as ``600/min`` (units s, min, hour, day); ``0`` or empty means no limit."""
    raw = os.environ.get(name, default).strip().replace(" ", "")
    if raw in ("", "0"):
        return None
    match = _RATE_RE.match(raw)
    if match is None:
        raise ImproperlyConfigured(
            f"{name} must be requests/period such as 600/min (s, min, hour, day) or 0, got {raw!r}"
        )
    return None if int(match[1]) == 0 else raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(
    name: str, default: str, *, schemes: tuple[str, ...], require_host: bool = False
) -> str:
    raw = os.environ.get(name, default)
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(
            f"{name} must start with one of {allowed}, got {redacted(raw)!r}"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} has a bad port (1-65535), got {redacted(raw)!r}"
        ) from None
    if require_host and not parts.hostname:
        raise ImproperlyConfigured(f"{name} must name a host, got {redacted(raw)!r}")
    return raw


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# A host Django compares against the Host header: a name, ".name" for it and its
# subdomains, "*", or a bracketed IPv6 address; never a scheme, port or path.
_HOST_RE = re.compile(r"^(\*|\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])$")


def env_hosts(name: str, default: list[str]) -> list[str]:
    hosts = env_list(name, default)
    if name in os.environ:
        if not hosts:
            raise ImproperlyConfigured(f"{name} must name at least one host, got ''")
        for host in hosts:
            if not _HOST_RE.match(host):
                raise ImproperlyConfigured(
                    f"{name} must be host names such as labbook.example.org or .example.org"
                    f" (no scheme, port or path), got {host!r}"
                )
    return hosts


def env_networks(name: str) -> list[str]:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``), each checked; none by
    default."""
    networks = env_list(name, [])
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be IP addresses or networks such as 10.0.0.5 or 10.0.0.0/8,"
                f" got {network!r}"
            ) from None
    return networks


def env_origins(name: str, default: list[str]) -> list[str]:
    """Origins such as ``https://labbook.example.org`` (Django's CSRF_TRUSTED_ORIGINS)."""
    origins = env_list(name, default)
    for origin in origins:
        parts = urlsplit(origin)
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ImproperlyConfigured(
                f"{name} must be origins such as https://labbook.example.org"
                f" (scheme and host, no path), got {origin!r}"
            )
    return origins


# A CSP source expression allowed in frame-ancestors: *, 'self', 'none', a scheme
# ("https:") or a host source ("https://*.example.org:443/path"). Nothing with a
# space, ";" or a quote, which would let a value rewrite the policy.
_CSP_SOURCE_RE = re.compile(
    r"^(\*|'self'|'none'|[a-z][a-z0-9+.-]*:"
    r"|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:(\d{1,5}|\*))?(/[^\s;,'\"]*)?)$",
    re.IGNORECASE,
)


def env_csp_sources(name: str, default: list[str]) -> list[str]:
    sources = env_list(name, default)
    for source in sources:
        if not _CSP_SOURCE_RE.match(source):
            raise ImproperlyConfigured(
                f"{name} must be sites such as https://blog.example.org, *.example.org,"
                f" https:, 'self', 'none' or *, got {source!r}"
            )
    return sources


def env_secret_key(name: str, *, minimum: int = 32) -> str:
    """The secret key from the environment, or "" (then one is generated into the home)."""
    raw = os.environ.get(name, "")
    if raw and (len(raw.strip()) < minimum or raw != raw.strip()):
        raise ImproperlyConfigured(
            f"{name} must be at least {minimum} characters without surrounding spaces"
            f" (or unset, to generate one), got {len(raw)} characters"
        )
    return raw


def home_directory(name: str, default: str, *, subdirectories: tuple[str, ...] = ()) -> Path:
    """The directory ``name`` points to, created with its subdirectories and proven writable.

    Everything Labbook keeps lives there, so it is checked once, up front, by
    writing a file: the OS reason ("Permission denied", "Read-only file
    system") is more use than a traceback from whichever part touched it first.
    """
    raw = os.environ.get(name, default)
    path = Path(raw).expanduser().resolve()
    try:
        # A new home is its user's alone: it holds the database, the key, the artifacts.
        for directory in (path, *(path / sub for sub in subdirectories)):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename and str(error.filename) != raw else ""
        raise ImproperlyConfigured(
            f"{name} must be a directory Labbook can create and write, got {raw!r}: {reason}{where}"
        ) from None
    return path


def secret_key_from_file(path: Path) -> str:
    """Read the secret key kept in ``path``, creating it once if missing.

    ``O_EXCL`` makes the creation race-free when several processes start at
    once: exactly one writes, the others read what it wrote.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _secret_key_from_file(path)
    except OSError as error:
        raise ImproperlyConfigured(
            f"SECRET_KEY is unset and its file {path} cannot be used: {error.strerror or error}"
        ) from None


def _secret_key_from_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:  # an older Labbook, or a copy, left it readable
            path.chmod(0o600)
        key = path.read_text().strip()
        if not key:
            raise ImproperlyConfigured(
                f"SECRET_KEY is unset and its file {path} is empty: delete it to generate a new key"
            ) from None
        return key
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def email_settings(name: str, default: str) -> dict[str, object]:
    """Django email settings from a URL such as ``smtp+tls://user:pass@host:587``.

    Schemes: ``smtp``, ``smtp+tls`` (STARTTLS), ``smtp+ssl`` (implicit TLS),
    ``console``, ``file:///path`` and ``memory``. ``?from=`` sets the sender.
    """
    raw = os.environ.get(name, default)
    parts = urlsplit(raw)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    backends = {
        "console": "django.core.mail.backends.console.EmailBackend",
        "memory": "django.core.mail.backends.locmem.EmailBackend",
        "file": "django.core.mail.backends.filebased.EmailBackend",
    }
    result: dict[str, object] = {}
    if "from" in query:
        result["DEFAULT_FROM_EMAIL"] = query["from"]
    if parts.scheme in backends:
        result["EMAIL_BACKEND"] = backends[parts.scheme]
        if parts.scheme == "file":
            if not parts.path.strip("/"):
                raise ImproperlyConfigured(f"{name} file:// needs a folder, got {raw!r}")
            result["EMAIL_FILE_PATH"] = unquote(parts.path)
        return result
    if parts.scheme not in {"smtp", "smtp+tls", "smtp+ssl"}:
        raise ImproperlyConfigured(
            f"{name} must be smtp://, smtp+tls://, smtp+ssl://, console://, file:// or memory://,"
            f" got {redacted(raw)!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a bad port (1-65535): {redacted(raw)!r}") from None
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} needs a host: {redacted(raw)!r}")
    result.update(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=parts.hostname,
        EMAIL_PORT=port or (465 if parts.scheme == "smtp+ssl" else 25),
        EMAIL_HOST_USER=unquote(parts.username or ""),
        EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
        EMAIL_USE_TLS=parts.scheme == "smtp+tls",
        EMAIL_USE_SSL=parts.scheme == "smtp+ssl",
        EMAIL_TIMEOUT=20,
    )
    return result


S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rule for bucket names
S3_REGION = re.compile(r"[a-z0-9-]{1,50}")


def artifact_storage(*, bucket: str, endpoint_url: str, region: str) -> dict[str, Any]:
    """``STORAGES["artifacts"]``: ``LABBOOK_HOME/artifacts``, or the S3 bucket named.

    Credentials come the standard AWS way (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role). A custom endpoint
    (MinIO, Ceph, R2) is addressed by path, as those servers expect.
    """
    if not bucket:
        for name, value in (
            ("ARTIFACTS_S3_ENDPOINT_URL", endpoint_url),
            ("ARTIFACTS_S3_REGION", region),
        ):
            if value:
                raise ImproperlyConfigured(f"{name} needs ARTIFACTS_S3_BUCKET, the bucket to use")
        return {"BACKEND": "tracking.storage.ArtifactFileStorage"}
    _check_s3(bucket, endpoint_url, region)
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,
        "region_name": region or None,
        "addressing_style": "path" if endpoint_url else None,
        "file_overwrite": True,
        "default_acl": None,  # the bucket's own policy: never public-read
        "querystring_auth": True,
        "transfer_config": _s3_transfers(),
    }
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def _check_s3(bucket: str, endpoint_url: str, region: str) -> None:
    if not S3_BUCKET.fullmatch(bucket):
        raise ImproperlyConfigured(
            "ARTIFACTS_S3_BUCKET must be a bucket name (3-63 lowercase letters, digits, dots,"
            f" hyphens), got {bucket!r}"
        )
    endpoint = urlsplit(endpoint_url)
    if endpoint_url and (endpoint.scheme not in ("http", "https") or not endpoint.hostname):
        raise ImproperlyConfigured(
            "ARTIFACTS_S3_ENDPOINT_URL must be an http:// or https:// address,"
            f" got {redacted(endpoint_url)!r}"
        )
    if region and not S3_REGION.fullmatch(region):
        raise ImproperlyConfigured(f"ARTIFACTS_S3_REGION must be a region name, got {region!r}")
    if any(importlib.util.find_spec(name) is None for name in ("storages", "boto3")):
        raise ImproperlyConfigured(
            "ARTIFACTS_S3_BUCKET needs django-storages and boto3:"
            " python -m pip install 'labbook[s3]'"
        )


def _s3_transfers() -> Any:
    """Uploads stream in 8 MiB parts, at most two read ahead and two in flight.

    boto3's defaults (ten of each) held 110 MiB for one 256 MiB upload.
    """
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(max_concurrency=2, multipart_chunksize=8 * 1024 * 1024)
    config.max_in_memory_upload_chunks = 2  # s3transfer's knob, not among boto3's arguments
    return config
