"""Settings, driven by the environment (see README "Configuration")."""

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.utils.translation import gettext_lazy as _

from common.env import env_bool, env_int, env_list, env_str

django_stubs_ext.monkeypatch()  # lets admin and serializer classes take type parameters

# pyarrow (Parquet exports) reads this when first imported: the system allocator hands
# memory back between row groups, where jemalloc kept ~40 MB more per web worker
# (bench/bench_export.py: 216 MB -> 178 MB peak).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# The built-in key is public (it is in this file): only DEBUG=1 (`make run`, on 127.0.0.1) may
# use it. Any other server refuses to start without a key of its own; `make stack`, `make
# bench` and the tests generate one, docker/entrypoint.py generates one into its volume.
SECRET_KEY = env_str("SECRET_KEY") or ("insecure-dev-key-only-for-make-run" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set in production, i.e. whenever DEBUG is "
        "not 1: there is no built-in key outside `make run`"
    )
# The audit log's chain key and its head outside the database (docs/audit.md). Unset, the
# key is derived from SECRET_KEY: set AUDIT_KEY (or AUDIT_KEY_FILE) to keep the log verifiable
# across a SECRET_KEY rotation. The head file must be shared by every process that writes
# the log (the compose file puts it in the appdata volume).
AUDIT_KEY = env_str("AUDIT_KEY")
AUDIT_HEAD_FILE = env_str("AUDIT_HEAD_FILE") or str(BASE_DIR / "var" / "audit-head.json")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "trials",
    "scoring",
    "accounts",
    "audit",
    "instruments",
    "dashboard",
    "reminders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.csp.ContentSecurityPolicyMiddleware",
    "common.throttle.ParticipantMissThrottleMiddleware",
    # The participant API (/api/v1/sessions/...) leaves here for PARTICIPANT_API_MIDDLEWARE
    # below: it uses no cookie, session, login, CSRF, message or per-request language.
    "common.lane.ParticipantApiLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# What the participant API's requests pass through after the lane (common.lane), in the
# order they have in MIDDLEWARE: the Host check and Content-Length, X-Frame-Options.
PARTICIPANT_API_MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "belief_web.urls"
WSGI_APPLICATION = "belief_web.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# Database: SQLite by default (make run); PostgreSQL through DATABASE_URL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Only common.db.prepared_cursor() binds on the server and so prepares; the ORM's
    # cursors never do. 0: prepare on first use; "off" for a PgBouncer in transaction mode.
    _prepare = env_str("DB_PREPARE_THRESHOLD", "0")
    DATABASES["default"]["OPTIONS"] = {
        "prepare_threshold": None if _prepare == "off" else int(_prepare),
    }
    if env_bool("DB_POOL", True):
        # Django's built-in psycopg pool: a new connection costs 7-8 ms (DESIGN.md).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        # Each pooled connection is checked as a request takes it: after a database restart
        # a dead connection would otherwise answer one 500 each. DB_POOL_CHECK 1: asks the
        # socket first, a round trip only if the server wrote (common/postgresql/base.py);
        # "full": a round trip every time (psycopg_pool's check); 0: no check.
        _full_check = env_str("DB_POOL_CHECK").strip().lower() == "full"
        DATABASES["default"]["ENGINE"] = "common.postgresql"
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = _full_check or env_bool("DB_POOL_CHECK", True)
        # Read by common.postgresql (django-stubs' DBConfig lists Django's own keys only).
        DATABASES["default"]["POOL_CHECK"] = "full" if _full_check else "socket"  # type: ignore[typeddict-unknown-key]
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 1),
            "max_size": env_int("DB_POOL_MAX", 8),
            "timeout": env_int("DB_POOL_TIMEOUT", 10),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default under a few participants at once (tests/test_embedded.py): in
    # SQLite's default mode a reader blocks the writer and a transaction that reads, then
    # writes, fails at once with "database is locked" when another one wrote meanwhile (the
    # busy timeout does not apply to that upgrade). WAL lets readers run beside the writer;
    # IMMEDIATE takes the write lock at BEGIN, where the busy timeout does wait for it.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_TIMEOUT", 20),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
_NODE = BASE_DIR / "node_modules"
# npm packages served as static files (installed by `make`/`npm ci`); a missing folder is
# skipped so that management commands run before the npm install.
_VENDOR = {
    "vendor/jspsych": _NODE / "jspsych" / "dist",
    "vendor/vega": _NODE / "vega" / "build",
    "vendor/vega-lite": _NODE / "vega-lite" / "build",
    "vendor/vega-embed": _NODE / "vega-embed" / "build",
}
STATICFILES_DIRS: list[Path | tuple[str, Path]] = [BASE_DIR / "static"]
STATICFILES_DIRS += [(prefix, path) for prefix, path in _VENDOR.items() if path.is_dir()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("PRODUCTION")
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

# The participant API refuses large bodies itself (413); this is Django's own ceiling.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
PARTICIPANT_BODY_LIMIT = 4096

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.BoundedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    # Throttles key on REMOTE_ADDR unless proxies of ours add X-Forwarded-For.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
    # Failed researcher-token authentications per client address (accounts.authentication).
    "DEFAULT_THROTTLE_RATES": {"auth_failure": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "belief-web API",
    "DESCRIPTION": "Participant and researcher API of belief-web (the belief-updating task).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: Redis when REDIS_URL is set; otherwise tasks run in-process after commit.
REDIS_URL = env_str("REDIS_URL")
# The broker may be a Redis of its own (CELERY_BROKER_URL: a broker wants noeviction, a
# cache an eviction policy); by default it is REDIS_URL, shared with the cache.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == "memory://"
# Embedded mode: eager tasks run in a thread started after commit (common.publish), so a
# completion does not wait for its scoring. The test suite turns it off (tests/conftest.py)
# to score within the request it tests.
EMBEDDED_TASKS_IN_THREAD = env_bool("EMBEDDED_TASKS_IN_THREAD", True)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest task (300 s, plus a retry countdown of at most 60 s), so a live
    # worker's message is never handed to a second one; a dead worker's comes back after it.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600),
    # Look for such messages every interval (kombu's default scans every 100 s).
    "unacked_restore_throttle": 1,
    # A broker that refuses or hangs fails a publish within ~1 s instead of holding the
    # request that completes a session (the sweep queues it later); without a socket
    # timeout a hung Redis blocks the publish for ever. A healthy Redis answers in
    # milliseconds; the worker reads BRPOP replies only once they have arrived.
    "socket_connect_timeout": 1,
    "socket_timeout": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = max(
    1, min(10, CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 10)
)
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Trials imports (POST .../imports/): a file over this many bytes is checked and stored by a
# worker (202 and a status URL), so that no request outlives the web server's limit
# (WEB_TIMEOUT); smaller ones answer in the request. The documented limit is 20 MB
# (trials.services.imports).
IMPORT_ASYNC_BYTES = env_int("IMPORT_ASYNC_BYTES", 2 * 1024 * 1024)
SESSION_ABANDON_AFTER_HOURS = env_int("SESSION_ABANDON_AFTER_HOURS", 72)
# Sessions one scoring task scores in one pass at a completion peak, its own included
# (scoring.services.scores_claim_waiting); 1: each session by its own task.
SCORE_PEAK_BATCH = max(1, env_int("SCORE_PEAK_BATCH", 50))
CELERY_BEAT_SCHEDULE = {
    "abandon-stale-sessions": {"task": "trials.abandon_stale_sessions", "schedule": 3600},
    "sweep-reminders": {
        "task": "reminders.sweep",
        "schedule": env_int("REMINDER_SWEEP_SECONDS", 60),
    },
    "sweep-import-jobs": {"task": "trials.sweep_import_jobs", "schedule": 300},
    "sweep-unscored-sessions": {
        "task": "scoring.sweep_unscored",
        "schedule": env_int("SWEEP_SECONDS", 60),
        # Sessions completed or queued less than this ago are left to their own message.
        "kwargs": {"grace_seconds": env_int("SWEEP_GRACE_SECONDS", 60)},
    },
}

# Mail (reminders): Django's e-mail framework. Without EMAIL_HOST the console backend prints
# each message (make run); with it, SMTP to the lab's relay.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "belief-web <noreply@localhost>")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
# The address participants' links start with in messages sent by the worker (no request).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# One reminder's send: attempts before it is marked failed, the doubling delay between
# them (capped under the broker's visibility timeout), when a claim whose worker died is
# taken again (above the send task's hard time limit, 60 s, so never a live worker's), and
# when a queued reminder that was not sent is queued again.
REMINDER_MAX_ATTEMPTS = env_int("REMINDER_MAX_ATTEMPTS", 6)
REMINDER_RETRY_BASE_SECONDS = env_int("REMINDER_RETRY_BASE_SECONDS", 60)
REMINDER_RETRY_MAX_SECONDS = env_int("REMINDER_RETRY_MAX_SECONDS", 480)
REMINDER_CLAIM_STALE_SECONDS = env_int("REMINDER_CLAIM_STALE_SECONDS", 120)
REMINDER_REQUEUE_SECONDS = env_int("REMINDER_REQUEUE_SECONDS", 300)
REMINDER_QUEUE_BATCH = env_int("REMINDER_QUEUE_BATCH", 500)

CACHES = {
    "default": (
        {
            "BACKEND": "common.cache.ReusingRedisCache",
            "LOCATION": REDIS_URL,
            # A hung Redis must cost a participant's request a fraction of a second, not 5 s:
            # the throttles that read the cache fail open (common.throttle).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Production hardening (PRODUCTION=1): HTTPS only, HTTPS-only cookies, HSTS. The app sits
# behind a TLS-terminating proxy that sets X-Forwarded-Proto, and that header is trusted: the
# app's port must be reachable through the proxy only (docker-compose.yml publishes it on
# 127.0.0.1).
if env_bool("PRODUCTION"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Container and load-balancer probes call the app itself over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# The production server's access log (common.requestlog, one line per request with its route:
# no token, no recruiter id) and its limit for a request that produces nothing (the worker
# is replaced, as gunicorn's timeout did): the longest legitimate requests are an import of
# up to 2 MB checked in the request and a whole-study export (~10 s for 1,000,000 trials).
ACCESS_LOG = env_bool("ACCESS_LOG", True)
WEB_TIMEOUT_S = env_int("WEB_TIMEOUT", 120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "access": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "line",
        },
    },
    "loggers": {
        "belief_web.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
