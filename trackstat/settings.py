"""TrackStat settings, read from the environment.

Every variable has a development default, so that with ``DEBUG=1`` (what ``make run`` sets) the
whole product runs on one machine: SQLite and a file-based Celery broker under ``var/``, the
sandbox providers and the console email backend. ``.env.example`` documents each variable.
``DEBUG`` is off unless set, and with it off the process refuses to start on an insecure default
(see ``check_production_settings``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRACKSTAT_VAR_DIR", BASE_DIR / "var"))

DEVELOPMENT_SECRET_KEY = "django-insecure-trackstat-development-key-do-not-use-in-production"  # noqa: S105


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off).")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def check_production_settings(*, debug: bool, secret_key: str, allowed_hosts: list[str]) -> None:
    """Refuse to run a production process (DEBUG off) on an insecure default."""
    if debug:
        return
    if not secret_key or secret_key == DEVELOPMENT_SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is unset or the development default while DEBUG is off: "
            "set SECRET_KEY to a long random value (or DEBUG=1 for development)."
        )
    if len(secret_key) < 32:
        raise ImproperlyConfigured("SECRET_KEY is shorter than 32 characters while DEBUG is off.")
    if not allowed_hosts:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is empty while DEBUG is off: set it to the comma-separated host names "
            "this deployment answers to."
        )


# Off unless set: a forgotten variable must not serve the debug page (``make run`` sets it on).
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY if DEBUG else "")
# Old keys, during a rotation: sessions, reset links and stored provider secrets made with
# them still verify (docs/operations.md, "Rotating keys").
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver" if DEBUG else "")
check_production_settings(debug=DEBUG, secret_key=SECRET_KEY, allowed_hosts=ALLOWED_HOSTS)

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

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
    "django_htmx",
    "trackstat",
    "patients",
    "campaigns",
    "messaging",
    "reports",
    "demo",
]

MIDDLEWARE = [
    "trackstat.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "trackstat.middleware.RejectNulCharactersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "trackstat.middleware.SessionTimeoutMiddleware",
    "trackstat.middleware.NoStoreMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "trackstat.tenancy.CurrentPracticeMiddleware",
    "trackstat.tenancy.PracticeTimeZoneMiddleware",
    "trackstat.middleware.FriendlyErrorPagesMiddleware",
]

ROOT_URLCONF = "trackstat.urls"
WSGI_APPLICATION = "trackstat.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "trackstat.navigation.navigation",
            ],
        },
    },
]

# Database: DATABASE_URL (postgres://… in production), SQLite under var/ by default.
VAR_DIR.mkdir(parents=True, exist_ok=True)
# SQLite (the embedded default) ignores INCLUDE columns of covering indexes; Postgres uses them.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'trackstat.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers run beside the one writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
if sys.argv[1:2] == ["runserver"]:
    # The development server serves each HTTP connection in a thread of its own, and with a
    # connection age every such thread kept its database connection while the browser's
    # keep-alive connection lasted, until PostgreSQL refused new clients (and status callbacks
    # failed). There, each request closes its database connection when it ends.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "trackstat.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24 * 3  # invitations use the same tokens: three days
# Automatic logoff (HIPAA): a session ends after this long without a request, and this long
# after signing in however active (trackstat.middleware.SessionTimeoutMiddleware).
SESSION_IDLE_TIMEOUT_SECONDS = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 30 * 60)
SESSION_MAX_AGE_SECONDS = env_int("SESSION_MAX_AGE_SECONDS", 12 * 60 * 60)
if SESSION_IDLE_TIMEOUT_SECONDS <= 0 or SESSION_MAX_AGE_SECONDS <= 0:
    raise ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT_SECONDS and SESSION_MAX_AGE_SECONDS must be positive."
    )
SESSION_COOKIE_AGE = SESSION_MAX_AGE_SECONDS

# How many proxies (the TLS proxy, a load balancer) stand in front of the app and append the
# address they were reached from to X-Forwarded-For: the client is the entry that many places
# from the right. 0: no proxy, the peer's own address (X-Forwarded-For is not believed).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")

# Failed-login throttling: this many failures for one email (or from one address) within the
# window lock further attempts until the window has passed.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
# Password-reset throttling: at most this many reset emails for one email address (and four
# times as many requests from one client address) within the window; later requests get the
# same answer and no email.
PASSWORD_RESET_LIMIT = env_int("PASSWORD_RESET_LIMIT", 3)
PASSWORD_RESET_WINDOW_SECONDS = env_int("PASSWORD_RESET_WINDOW_SECONDS", 60 * 60)

# Cache: Redis in production (CACHE_URL=redis://…), a shared database table otherwise so that
# login throttling holds across web processes.
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "trackstat_cache",
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Email for staff (password resets, invitations): the console in development, SMTP when
# EMAIL_BACKEND names it (Django's MAILERS setting).
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "TrackStat <no-reply@trackstat.localhost>")
_mail_backend = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
_mail_options: dict = {}
if _mail_backend.endswith("smtp.EmailBackend"):
    _mail_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 587),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", True),
    }
MAILERS = {"default": {"BACKEND": _mail_backend, "OPTIONS": _mail_options}}

# Message providers: sandbox unless credentials are set (DESIGN §10).
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")
TWILIO_API_BASE_URL = env_str("TWILIO_API_BASE_URL")
SENDGRID_API_KEY = env_str("SENDGRID_API_KEY")
SENDGRID_API_BASE_URL = env_str("SENDGRID_API_BASE_URL")
SENDGRID_WEBHOOK_PUBLIC_KEY = env_str("SENDGRID_WEBHOOK_PUBLIC_KEY")
# A signed SendGrid batch whose signing time is further than this from now is refused (a
# replay of a captured request).
SENDGRID_WEBHOOK_MAX_AGE_SECONDS = env_int("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", 600)
# Outbound webhooks to the practice's EMR connector (DESIGN §4.1.1) never go to private or
# loopback addresses unless this is on (development and tests only).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
# Seconds to wait for a webhook receiver to connect and to answer.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# Stored webhook events, once applied (or given up), are deleted after this many days.
WEBHOOK_EVENT_RETENTION_DAYS = env_int("WEBHOOK_EVENT_RETENTION_DAYS", 30)
SMS_PROVIDER = env_str(
    "SMS_PROVIDER", "twilio" if TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN else "sandbox"
)
EMAIL_PROVIDER = env_str("EMAIL_PROVIDER", "sendgrid" if SENDGRID_API_KEY else "sandbox")
if SMS_PROVIDER not in {"sandbox", "twilio"}:
    raise ImproperlyConfigured("SMS_PROVIDER must be 'sandbox' or 'twilio'.")
if EMAIL_PROVIDER not in {"sandbox", "sendgrid"}:
    raise ImproperlyConfigured("EMAIL_PROVIDER must be 'sandbox' or 'sendgrid'.")

# Celery: Redis in production; with nothing set, kombu's filesystem transport under var/,
# which needs no server and works across the web, worker and beat processes.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
CELERY_RESULT_BACKEND = env_str(
    "CELERY_RESULT_BACKEND",
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'celery-results'}",
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Celery's Django fixup closes the database connection around every task unless this is set
# (a new PostgreSQL backend per task); with it, a worker keeps its connection for about this
# many tasks (CONN_MAX_AGE and the health checks still apply). 0: close around every task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 200)
# The most messages one practice may hand to its provider per wall-clock minute, however many
# ticks run in it: its sender's pace. Each practice has its own allowance, so no practice waits
# on another's blast. SEND_RATE_PER_PRACTICE_PER_TICK is its old name, still read when the new
# one is unset (a deployment that set it keeps its pace).
SEND_RATE_PER_PRACTICE_PER_MINUTE = env_int(
    "SEND_RATE_PER_PRACTICE_PER_MINUTE", env_int("SEND_RATE_PER_PRACTICE_PER_TICK", 600)
)
# Beat's tick fans out into one task per group of practices (practice id modulo this), which
# the workers run side by side (docs/engine-fanout.md). More groups than worker processes
# keeps every process busy when one group is heavier; each group costs a few queries a
# minute even when idle. 1: one task runs every practice's tick.
TICK_GROUPS = max(1, env_int("TICK_GROUPS", 8))
# How many claimed messages one send task takes (a few queries per batch, not per message).
# In the send benchmark 50 took a quarter less worker CPU per message than 20 and no more of
# PostgreSQL's; with 20 a worker reconnects every 4,000 messages, and the closed backends'
# CPU had gone uncounted (it looked as if 50 doubled PostgreSQL's share).
SEND_TASK_BATCH_SIZE = max(1, env_int("SEND_TASK_BATCH_SIZE", 50))
# Provider calls one send task keeps in flight at once (Twilio and SendGrid; the sandbox sends
# one at a time). They are marked in one commit just before they start: fewer commits, and a
# batch waits for the slowest of each group instead of for every call in turn.
SEND_CONCURRENCY = max(1, env_int("SEND_CONCURRENCY", 4))
# Evaluate every continuous campaign in full at every tick instead of by what changed since
# the watermark (docs/engine-watermark.md): the same enrollments, slower; a switch to compare.
CONTINUOUS_FULL_EVALUATION = env_bool("CONTINUOUS_FULL_EVALUATION", False)
# Compile every continuous campaign's audience statement directly as well as from its template
# of the day (campaigns/engine/compiled.py) and fail if they differ: on in the tests.
AUDIENCE_TEMPLATE_VERIFY = env_bool("AUDIENCE_TEMPLATE_VERIFY", False)
# Run the narrowed runs of continuous campaigns as session-level prepared statements
# (campaigns/engine/prepared.py): off behind a pooler in transaction mode.
ENGINE_PREPARED_STATEMENTS = env_bool("ENGINE_PREPARED_STATEMENTS", True)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    for folder in ("processed", "control"):
        (CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Longer than any task runs, so Redis does not redeliver a task that is still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)

# REST API (DESIGN §4.1). A request body may be this large (a larger one answers 413): a
# bulk of 5,000 full patient records is 3 to 5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trackstat.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["trackstat.api_auth.IsPracticeMember"],
    "DEFAULT_PARSER_CLASSES": [
        "trackstat.api_parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "trackstat.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "trackstat.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TrackStat API",
    "DESCRIPTION": "EMR sync and drip campaigns. Send `Authorization: Api-Key <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENUM_NAME_OVERRIDES": {"OptOutSourceEnum": "patients.models.OptOutSource"},
}

# Security headers. A Content Security Policy from Django's own middleware: everything is
# served from our origin (htmx included), so nothing else is allowed.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "filters": {
        "no_query_strings": {"()": "trackstat.log_filters.StripQueryStringsFilter"},
        "no_client_error_tracebacks": {
            "()": "trackstat.log_filters.NoTracebackForClientErrorsFilter"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["no_client_error_tracebacks"],
        },
        # runserver's request lines, by path only: a patient search's query string (names,
        # phones, emails) stays out of the log (gunicorn: trackstat.gunicorn_conf).
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["no_query_strings"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # The provider SDKs log whole requests (phone numbers, addresses, message text) at INFO
    # and DEBUG: no PHI in logs, so only their warnings and errors.
    "loggers": {
        "twilio.http_client": {"level": "WARNING"},
        "python_http_client": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
