"""Typed readers for settings that come from the environment.

Each helper fails loudly (``ImproperlyConfigured`` naming the variable) on a
value it cannot read, so a typo in a deployment never turns into a silent
default.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
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


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
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


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    raw = os.environ.get(name, default)
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {raw!r}")
    return raw


def secret_key_from_file(path: Path) -> str:
    """Read the secret key kept in ``path``, creating it once if missing.

    ``O_EXCL`` makes the creation race-free when several processes start at
    once: exactly one writes, the others read what it wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if not key:
            raise ImproperlyConfigured(
                f"{path} is empty: delete it to generate a new key"
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
            result["EMAIL_FILE_PATH"] = unquote(parts.path)
        return result
    if parts.scheme not in {"smtp", "smtp+tls", "smtp+ssl"}:
        raise ImproperlyConfigured(
            f"{name} must be smtp://, smtp+tls://, smtp+ssl://, console://, file:// or memory://,"
            f" got {raw!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a bad port: {raw!r}") from None
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} needs a host: {raw!r}")
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
