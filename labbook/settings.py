"""Labbook settings: everything comes from the environment (docs/configuration.md).

The defaults are the embedded shape (SQLite, filesystem broker, in-memory
channel layer) so a fresh machine runs with zero setup; production differs
only by environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from labbook.env import (
    artifact_storage,
    email_settings,
    env_bool,
    env_csp_sources,
    env_hosts,
    env_int,
    env_log_level,
    env_networks,
    env_origins,
    env_port,
    env_rate,
    env_secret_key,
    env_str,
    env_url,
    home_directory,
    redacted,
    secret_key_from_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Created and proven writable here, so a bad home is one line, not a traceback later.
LABBOOK_HOME = home_directory("LABBOOK_HOME", "var", subdirectories=("logs", "artifacts"))
LOG_DIR = LABBOOK_HOME / "logs"
# The default port of `manage.py up`; read here so every command checks it.
PORT = env_port("PORT", 8000)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret_key("SECRET_KEY") or secret_key_from_file(LABBOOK_HOME / "secret_key")

BASE_URL = env_url(
    "BASE_URL", "http://127.0.0.1:8000", schemes=("http", "https"), require_host=True
).rstrip("/")
_base = urlsplit(BASE_URL)
ALLOWED_HOSTS = env_hosts(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", _base.hostname or ""]
)
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)

# --- HTTPS, cookies, security headers ----------------------------------------

# An https:// BASE_URL says the site is served over TLS: secure cookies, a redirect
# from plain HTTP and HSTS follow unless set otherwise. The embedded default serves
# plain HTTP on localhost, where a browser would never send a secure cookie back.
_https = _base.scheme == "https"
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS", [f"{_base.scheme}://{_base.netloc}"])
# Proxies whose X-Forwarded-For / X-Forwarded-Proto the web server believes (the
# client address in the audit log and the login lockout): none unless listed.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _https)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _https else 0, minimum=0)
# Both reach beyond this site (every subdomain; browsers' built-in lists): opt in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Scripts come only from our own static files: no inline script, no event handler
# attribute, no eval. Inline styles stay allowed because plotly.js writes its own
# style rules and style attributes while it draws.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],  # plotly's "download as PNG" draws through both
        "font-src": [SELF],
        "connect-src": [SELF],  # the middleware adds this host's ws:// or wss:// URL
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Who may frame a share link marked embeddable (CSP frame-ancestors sources).
SHARE_FRAME_ANCESTORS = env_csp_sources("SHARE_FRAME_ANCESTORS", ["*"])

# --- Logins ---------------------------------------------------------------------

LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 300, minimum=1)
AUTHENTICATION_BACKENDS = ["workspace.login_throttle.ThrottledModelBackend"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "csp",
    "labbook",
    "workspace",
    "reports_app",
    "alerts",
    "tracking",
    "audit",
    "kernel",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "labbook.middleware.ContentSecurityPolicyMiddleware",
    "labbook.middleware.RejectNulCharactersMiddleware",
    "labbook.middleware.StaticFilesMiddleware",  # WhiteNoise, callable from async
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "labbook.database_busy.DatabaseBusyMiddleware",  # "database is locked" -> 503
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labbook.urls"
ASGI_APPLICATION = "labbook.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workspace.team_pages.top_bar",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

# WAL lets readers work while one writer commits; IMMEDIATE transactions take
# the write lock up front so concurrent writers queue (up to `timeout`
# seconds) instead of failing with "database is locked" mid-transaction.
# Checkpoints are Labbook's own and memory-mapped reads stay off: see
# labbook/sqlite/base.py (SQLite's WAL-reset bug).
SQLITE_ENGINE = "labbook.sqlite"
SQLITE_OPTIONS = {
    "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
    "transaction_mode": "IMMEDIATE",
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA temp_store=MEMORY;"
        "PRAGMA cache_size=-65536;"
        "PRAGMA wal_autocheckpoint=0;"
    ),
}


# Read whatever the database: a bad value is refused even before it is used.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=1)


def _database(url: str) -> dj_database_url.DBConfig:
    # Under ASGI every request runs in a fresh thread, so per-thread persistent
    # connections would pile up: SQLite connections are cheap to open, and
    # PostgreSQL gets a real pool (psycopg_pool) instead.
    try:
        config = dj_database_url.parse(url, conn_max_age=0)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL ({error}), got {redacted(url)!r}"
        ) from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        _sqlite_folder_check(str(config["NAME"]), url)
        config["ENGINE"] = SQLITE_ENGINE
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        pool = {"min_size": 1, "max_size": DATABASE_POOL_SIZE}
        config["OPTIONS"] = {"pool": pool, **config.get("OPTIONS", {})}
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be sqlite:// or postgres://, got {redacted(url)!r}"
        )
    return config


def _sqlite_folder_check(name: str, url: str) -> None:
    """SQLite creates the file but not its folder: say so now, not at the first query."""
    if name and name != ":memory:" and not Path(name).parent.is_dir():
        raise ImproperlyConfigured(
            f"DATABASE_URL names a SQLite file in a folder that does not exist, got {url!r}"
        )


DATABASES = {
    "default": _database(
        env_url(
            "DATABASE_URL",
            f"sqlite:///{LABBOOK_HOME / 'labbook.sqlite3'}",
            schemes=("sqlite", "postgres", "postgresql", "pgsql"),
        )
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker, channel layer -------------------------------------------------

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes=("redis", "rediss", "unix"))
QUEUE_DIR = LABBOOK_HOME / "queue"

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    (QUEUE_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    # Kombu's filesystem transport with an atomic enqueue and a consumer that sets
    # undecodable files aside in queue/bad instead of dying (see labbook/broker.py).
    CELERY_BROKER_TRANSPORT = "labbook.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(QUEUE_DIR),
        "data_folder_out": str(QUEUE_DIR),
        # Same filesystem as the queue: consumers claim a message by renaming it here.
        "processed_folder": str(QUEUE_DIR / "processed"),
        "bad_folder": str(QUEUE_DIR / "bad"),
        "control_folder": str(QUEUE_DIR / "control"),
        "store_processed": False,
        # Listing a directory is cheap: poll often so an alert waits ~0.2 s, not ~1 s.
        "polling_interval": 0.2,
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Renders (Markdown, report figures) running at once in one web process; more wait for a
# slot, so CPU-bound renders never crowd out /healthz and ingest (reports_app.render_slots).
RENDER_CONCURRENCY = env_int("RENDER_CONCURRENCY", 1, minimum=1, maximum=64)

# An open websocket checks again what its user or share link may read this often, as a
# backstop to the immediate check on a change Labbook announces (reports_app.consumers).
LIVE_ACCESS_RECHECK_SECONDS = env_int("LIVE_ACCESS_RECHECK_SECONDS", 30, minimum=1, maximum=30)

# The cache holds counters every web process must agree on (failed logins, per-token
# rate limits): Redis when REDIS_URL is set. The embedded default runs exactly one
# web process, whose own memory is then the whole truth; several need REDIS_URL.
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, sharing one Redis client per process (see the module).
            "BACKEND": "labbook.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "labbook",
            # A Redis that does not answer is an empty cache within a second, not a hang.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    # Share-link renders (reports_app/share_cache.py): entries of up to 6 MB that expire
    # within a minute, under a prefix of their own.
    CACHES["renders"] = {**CACHES["default"], "KEY_PREFIX": "labbook-renders"}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # At most 32 renders of up to 6 MB each in this process's memory.
        "renders": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "renders",
            "OPTIONS": {"MAX_ENTRIES": 32},
        },
    }

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(LABBOOK_HOME / "celerybeat-schedule")

# --- Email ------------------------------------------------------------------

DEFAULT_FROM_EMAIL = "Labbook <labbook@localhost>"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
globals().update(email_settings("EMAIL_URL", "console://"))

# --- Static files, auth, i18n ----------------------------------------------

STATIC_URL = "/static/"
# Collected by `up` (labbook/staticfiles.py): hashed names, each with .br and .gz copies,
# served cached for a year; pages name the plain files wherever nothing was collected.
STATIC_ROOT = LABBOOK_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "labbook.staticfiles.StaticFilesStorage"},
    # Run files (tracking.storage): LABBOOK_HOME/artifacts, or a shared S3-compatible bucket.
    "artifacts": artifact_storage(
        bucket=env_str("ARTIFACTS_S3_BUCKET", ""),
        endpoint_url=env_str("ARTIFACTS_S3_ENDPOINT_URL", ""),
        region=env_str("ARTIFACTS_S3_REGION", ""),
    ),
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = True  # the plain names come from the apps' folders:
WHITENOISE_USE_FINDERS = True  # served without a collect (runserver, tests), cached briefly
# Source maps are for the browser's developer tools only: not worth compressing.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]
STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.AppDirectoriesFinder"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- API ----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tracking.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "tracking.api.auth.TokenScopePermission",  # read / ingest tokens: tracking.scopes
    ],
    # Per token, in the default cache (tracking.throttling); rates in LABBOOK below.
    "DEFAULT_THROTTLE_CLASSES": [
        "tracking.throttling.TokenRateThrottle",
        "tracking.throttling.IngestRateThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": ["tracking.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["tracking.api.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "tracking.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "tracking.api.schema.AutoSchema",  # + the JSON error answers
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Labbook API",
    "DESCRIPTION": (
        "Training runs, metrics, reports and alerts. Auth: `Authorization: Bearer <token>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" or "state": each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "tracking.models.RunStatus",
        "NotificationStatusEnum": "alerts.models.NotificationStatus",
        "AlertStateEnum": "alerts.models.AlertState",
        "DestinationKindEnum": "alerts.models.DestinationKind",
    },
}

# Largest request body Django will read (a 10,000-point batch is ~1 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024)


class LabbookSettings(TypedDict):
    """Labbook's own settings (``settings.LABBOOK``), typed key by key."""

    MAX_POINTS_PER_BATCH: int
    RUN_CRASH_AFTER_SECONDS: int
    ALERTS_SCAN_SECONDS: int
    ALERTS_MAX_ATTEMPTS: int
    ALERTS_RETRY_BASE_SECONDS: int
    ALERTS_ALLOW_PRIVATE_WEBHOOKS: bool
    ALERTS_LEASE_SECONDS: int
    ALERTS_SWEEP_SECONDS: int
    ARTIFACTS_MAX_BYTES: int
    CONSOLE_MAX_BYTES: int
    API_THROTTLE_RATE: str | None
    INGEST_THROTTLE_RATE: str | None


LABBOOK: LabbookSettings = {
    "MAX_POINTS_PER_BATCH": 10_000,
    "RUN_CRASH_AFTER_SECONDS": env_int("RUN_CRASH_AFTER_SECONDS", 600, minimum=1),
    "ALERTS_SCAN_SECONDS": env_int("ALERTS_SCAN_SECONDS", 15, minimum=1),
    "ALERTS_MAX_ATTEMPTS": env_int("ALERTS_MAX_ATTEMPTS", 8, minimum=1),
    "ALERTS_RETRY_BASE_SECONDS": env_int("ALERTS_RETRY_BASE_SECONDS", 5, minimum=0),
    "ALERTS_ALLOW_PRIVATE_WEBHOOKS": env_bool("ALERTS_ALLOW_PRIVATE_WEBHOOKS", False),
    # A delivery whose worker died is retried once its lease runs out; longer than a
    # transport's worst case (10 s timeout, 3 redirects, an SMTP conversation).
    "ALERTS_LEASE_SECONDS": env_int("ALERTS_LEASE_SECONDS", 120, minimum=1),
    # How often beat sweeps the outbox for notifications the broker lost.
    "ALERTS_SWEEP_SECONDS": env_int("ALERTS_SWEEP_SECONDS", 60, minimum=1),
    # Largest single artifact an MLflow client may upload (streamed to disk, never held in memory).
    "ARTIFACTS_MAX_BYTES": env_int("ARTIFACTS_MAX_BYTES", 1024**3, minimum=1),
    # Console output kept per run (tracking/console.py): lines past it are counted, not kept.
    "CONSOLE_MAX_BYTES": env_int("CONSOLE_MAX_BYTES", 20 * 1024 * 1024, minimum=1),
    # Per token: a burst of N requests, then N per period (tracking.throttling). The
    # ingest budget covers what training jobs send; the API budget everything else.
    "API_THROTTLE_RATE": env_rate("API_THROTTLE_RATE", "1200/min"),
    "INGEST_THROTTLE_RATE": env_rate("INGEST_THROTTLE_RATE", "6000/min"),
}

# --- Logging ------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "filters": {"share_tokens": {"()": "labbook.log_redaction.RedactShareTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["share_tokens"],
        },
        "file": {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(LOG_DIR / "labbook.log"),
            "formatter": "plain",
            "filters": ["share_tokens"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": env_log_level("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
    },
}
