"""Settings from the environment: the typed readers, and every bad value of every variable of
the configuration table (docs/configuration.md) ending start-up with one line, naming it, exit
code 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from labbook import env
from tests.support import free_port


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


def test_a_secret_key_file_left_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("k" * 50)
    path.chmod(0o644)
    assert env.secret_key_from_file(path) == "k" * 50
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_new_home_is_private_to_its_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_UNDER_TEST", str(tmp_path / "new-home"))
    home = env.home_directory("HOME_UNDER_TEST", "unused", subdirectories=("logs",))
    assert home.stat().st_mode & 0o777 == 0o700


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
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "labbook.settings",
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


# --- The helpers added for the configuration table ----------------------------------------


def test_it_reads_ports_and_log_levels(monkeypatch):
    monkeypatch.setenv("PORT", "8080")
    assert env.env_port("PORT", 8000) == 8080
    for bad in ("0", "65536", "99999", "http"):
        monkeypatch.setenv("PORT", bad)
        with pytest.raises(ImproperlyConfigured, match="PORT must be a port number from 1 to"):
            env.env_port("PORT", 8000)
    monkeypatch.setenv("LOG_LEVEL", "warning")
    assert env.env_log_level("LOG_LEVEL", "INFO") == "WARNING"
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ImproperlyConfigured, match="one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        env.env_log_level("LOG_LEVEL", "INFO")


def test_it_reads_hosts_origins_and_frame_ancestors(monkeypatch):
    monkeypatch.setenv("HOSTS", "labbook.example.org, .example.org, 127.0.0.1, [::1], *")
    assert len(env.env_hosts("HOSTS", [])) == 5
    monkeypatch.setenv("ORIGINS", "https://a.example.org, http://127.0.0.1:8000")
    assert len(env.env_origins("ORIGINS", [])) == 2
    monkeypatch.setenv("SOURCES", "https://blog.example.org, *.example.org, https:, 'self', *")
    assert len(env.env_csp_sources("SOURCES", [])) == 5
    for name, reader, bad in [
        ("HOSTS", env.env_hosts, "https://labbook.example.org"),
        ("HOSTS", env.env_hosts, "labbook.example.org:8000"),
        ("ORIGINS", env.env_origins, "labbook.example.org"),
        ("ORIGINS", env.env_origins, "https://labbook.example.org/path"),
        ("SOURCES", env.env_csp_sources, "https://blog.example.org; script-src *"),
        ("SOURCES", env.env_csp_sources, "'unsafe-inline'"),
    ]:
        monkeypatch.setenv(name, bad)
        with pytest.raises(ImproperlyConfigured, match=name):
            reader(name, [])


def test_urls_in_messages_hide_their_password(monkeypatch):
    assert env.redacted("postgres://lab:s3cret@db:5432/lab") == "postgres://lab:***@db:5432/lab"
    monkeypatch.setenv("DATABASE_URL", "mysql://lab:s3cret@db/lab")
    with pytest.raises(ImproperlyConfigured) as error:
        env.env_url("DATABASE_URL", "", schemes=("postgres",))
    assert "s3cret" not in str(error.value) and "lab:***@db" in str(error.value)


def test_it_refuses_a_short_secret_key(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 31)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be at least 32 characters"):
        env.env_secret_key("SECRET_KEY")
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    assert env.env_secret_key("SECRET_KEY") == "x" * 32


def test_the_home_is_created_with_its_folders_or_refused_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME_DIR", str(tmp_path / "new" / "home"))
    home = env.home_directory("HOME_DIR", "var", subdirectories=("logs",))
    assert (home / "logs").is_dir()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOME_DIR", str(tmp_path / "file" / "home"))
    with pytest.raises(ImproperlyConfigured, match=r"HOME_DIR .*: Not a directory"):
        env.home_directory("HOME_DIR", "var")


# --- Every variable of docs/configuration.md's table, bad, through manage.py ---------------

ROOT = Path(__file__).resolve().parents[1]
A_FILE = "{a_file}"  # replaced by the path of a regular file in the test's tmp_path

# (variable, bad value): at least one for every variable of docs/configuration.md's table.
BAD_VALUES = [
    ("LABBOOK_HOME", "/proc/labbook"),
    ("LABBOOK_HOME", f"{A_FILE}/home"),
    ("DATABASE_URL", "mysql://labbook:s3cret@db/labbook"),
    ("DATABASE_URL", "postgres://labbook:s3cret@db:99999/labbook"),
    ("DATABASE_URL", "sqlite:////no/such/folder/labbook.sqlite3"),
    ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ("REDIS_URL", "redis://127.0.0.1:99999/0"),
    ("SECRET_KEY", "short"),
    ("DEBUG", "perhaps"),
    ("ALLOWED_HOSTS", "https://labbook.example.org"),
    ("ALLOWED_HOSTS", ""),
    ("BASE_URL", "labbook.example.org"),
    ("BASE_URL", "http://"),
    ("BASE_URL", "http://127.0.0.1:99999"),
    ("EMAIL_URL", "pop3://mail.example.org"),
    ("EMAIL_URL", "smtp://"),
    ("EMAIL_URL", "smtp://mail.example.org:port"),
    ("SQLITE_BUSY_TIMEOUT", "soon"),
    ("SQLITE_BUSY_TIMEOUT", "0"),
    ("DATABASE_POOL_SIZE", "0"),
    ("PORT", "99999"),
    ("PORT", "0"),
    ("PORT", "http"),
    ("MAX_REQUEST_BYTES", "16MB"),
    ("ARTIFACTS_MAX_BYTES", "0"),
    ("CONSOLE_MAX_BYTES", "0"),
    ("ARTIFACTS_S3_BUCKET", "Not_A_Bucket"),
    ("ARTIFACTS_S3_ENDPOINT_URL", "minio.internal:9000"),  # and without a bucket
    ("ARTIFACTS_S3_REGION", "eu west 1"),
    ("LOG_LEVEL", "LOUD"),
    ("USE_X_FORWARDED_HOST", "maybe"),
    ("SECURE_PROXY_SSL_HEADER", "maybe"),
    ("SESSION_COOKIE_SECURE", "maybe"),
    ("CSRF_COOKIE_SECURE", "maybe"),
    ("SECURE_SSL_REDIRECT", "maybe"),
    ("SECURE_HSTS_SECONDS", "-1"),
    ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "maybe"),
    ("SECURE_HSTS_PRELOAD", "maybe"),
    ("CSRF_TRUSTED_ORIGINS", "labbook.example.org"),
    ("TRUSTED_PROXIES", "10.0.0.0/33"),
    ("TRUSTED_PROXIES", "proxy.example.org"),
    ("SHARE_FRAME_ANCESTORS", "https://blog.example.org; script-src *"),
    ("LOGIN_FAILURE_LIMIT", "0"),
    ("LOGIN_ADDRESS_FAILURE_LIMIT", "twenty"),
    ("LOGIN_LOCKOUT_SECONDS", "0"),
    ("RENDER_CONCURRENCY", "0"),
    ("LIVE_ACCESS_RECHECK_SECONDS", "31"),
    ("ALERTS_SCAN_SECONDS", "0"),
    ("RUN_CRASH_AFTER_SECONDS", "10m"),
    ("ALERTS_MAX_ATTEMPTS", "0"),
    ("ALERTS_RETRY_BASE_SECONDS", "-1"),
    ("ALERTS_ALLOW_PRIVATE_WEBHOOKS", "maybe"),
    ("ALERTS_SWEEP_SECONDS", "0"),
    ("ALERTS_LEASE_SECONDS", "0"),
    ("INGEST_THROTTLE_RATE", "fast"),
    ("API_THROTTLE_RATE", "100/fortnight"),
]


def configuration_table_variables() -> set[str]:
    """The variables named in the first column of docs/configuration.md's table."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_the_bad_values_cover_the_whole_configuration_table():
    assert configuration_table_variables() == {name for name, _ in BAD_VALUES}


def run_manage(env: dict[str, str], *args: str, timeout: float = 90) -> tuple[int, str]:
    """``manage.py args`` in its own session; (exit code, stderr). A run that starts servers
    instead of refusing is stopped at ``timeout`` with everything it started."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"manage.py {' '.join(args)} did not refuse to start:\n{stderr[-2000:]}")
    return process.returncode, stderr


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without any configuration variable, rooted in ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in configuration_table_variables()}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["LABBOOK_HOME"] = str(home)
    return env


@pytest.mark.subprocess
@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_stops_up_in_one_line(tmp_path, name, value):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    env = clean_env(tmp_path / "home")
    env[name] = value.replace(A_FILE, str(a_file))

    code, stderr = run_manage(env, "up", "--port", str(free_port()))

    assert code == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"labbook: {name} ")
    assert "Traceback" not in stderr and "s3cret" not in stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("port", ["70000", "0", "-1", "http"])
def test_a_bad_port_argument_stops_up_in_one_line(tmp_path, port):
    code, stderr = run_manage(clean_env(tmp_path / "home"), "up", f"--port={port}")

    assert code == 2, stderr
    assert stderr == f"labbook: --port must be a port number from 1 to 65535, got '{port}'\n"


@pytest.mark.subprocess
def test_every_command_reports_bad_settings_the_same_way(tmp_path):
    env = {**clean_env(tmp_path / "home"), "LOG_LEVEL": "LOUD"}
    for command in (["migrate"], ["createtoken", "someone"], ["check"]):
        code, stderr = run_manage(env, *command)
        assert (code, stderr) == (
            2,
            "labbook: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'\n",
        )
