from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from reports_app import env


def test_it_reads_booleans_strictly(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env.env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env.env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env.env_bool("FLAG", False)


def test_it_reads_integers_with_bounds(monkeypatch):
    monkeypatch.setenv("N", "12")
    assert env.env_int("N", 1, minimum=1) == 12
    monkeypatch.setenv("N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env.env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env.env_int("N", 1, minimum=1)


def test_it_checks_url_schemes(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.env_url("DATABASE_URL", "", schemes=("sqlite", "postgres"))


def test_it_generates_the_secret_key_once(tmp_path):
    path = tmp_path / "home" / "secret_key"
    first = env.secret_key_from_file(path)
    assert len(first) > 40
    assert env.secret_key_from_file(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp+tls://me%40x.org:p%40ss@mail.x.org:587?from=lab%40x.org",
            {
                "EMAIL_HOST": "mail.x.org",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "me@x.org",
                "EMAIL_HOST_PASSWORD": "p@ss",
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
                "DEFAULT_FROM_EMAIL": "lab@x.org",
            },
        ),
        ("smtp+ssl://mail.x.org", {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True}),
        ("smtp://127.0.0.1:2525", {"EMAIL_PORT": 2525, "EMAIL_USE_TLS": False}),
        ("console://", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
    ],
)
def test_it_reads_email_urls(monkeypatch, url, expected):
    monkeypatch.setenv("EMAIL_URL", url)
    result = env.email_settings("EMAIL_URL", "console://")
    assert expected.items() <= result.items()


@pytest.mark.parametrize("url", ["pop3://x", "smtp://", "smtp://host:notaport"])
def test_it_rejects_bad_email_urls(monkeypatch, url):
    monkeypatch.setenv("EMAIL_URL", url)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        env.email_settings("EMAIL_URL", "console://")


def test_a_bad_setting_stops_django_from_starting(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "reports_app.settings",
            "LABBOOK_HOME": str(tmp_path),
            "DEBUG": "perhaps",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr
