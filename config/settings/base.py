"""Settings shared by every environment.

Every knob is read from the environment here, with a safe default, and is
documented in docs/configuration.md. `dev.py` and `test.py` only adjust.
"""

import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def _generated_secret_key() -> str:
    """A key generated once per checkout and kept under var/ (never committed)."""
    VAR_DIR.mkdir(exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _generated_secret_key()
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# The public base URL used for every link sent by email or SMS. Never derived
# from the request's Host header (host-header poisoning of reset links).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# DEMO=1: demo data and the demo mailbox (/demo/boite-mail/) are enabled.
DEMO = env.bool("DEMO", default=True)
# "state": the French State's identity (Marianne block); "neutral": a plain
# header for an operator not entitled to the State's identity.
BRAND = env.str("BRAND", default="state")
SERVICE_NAME = env.str("SERVICE_NAME", default="Mon compte santé")
FUND_NAME = env.str("FUND_NAME", default="Assurance Maladie")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "dsfr",
    "django_tasks",
    "django_tasks_db",
    "phonenumber_field",
    "portal.core",
    "portal.audit",
    "portal.members",
    "portal.accounts",
    "portal.notifications",
    "portal.staff",
    "portal.recovery",
    "portal.payments",
    "portal.appointments",
    "portal.www",
]

MIDDLEWARE = [
    # First and last: request counts and latencies by view for /metrics.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "portal.core.middleware.RequestIdMiddleware",
    "portal.core.middleware.AccessLogMiddleware",
    "portal.api.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's SessionMiddleware, saving an unchanged session at most every minute.
    "portal.accounts.sessions.SlidingSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, taking the account read with the session (one query for both).
    "portal.accounts.middleware.AuthenticationMiddleware",
    "portal.staff.auth.StaffMiddleware",
    "portal.accounts.middleware.SessionLifetimeMiddleware",
    # GET on Mes paiements and its API read the payment tables from the replica, if any.
    "portal.core.db_router.ReplicaReadsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "portal.core.middleware.NoStoreMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "portal.core.context_processors.site",
                "portal.console.context_processors.console",
            ],
        },
    }
]
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Each web worker keeps its connection between requests instead of opening one
# per request (a new server process and a SCRAM exchange each time: most of the
# time of a light page). Checked before its first use in a request, so that a
# restarted database costs a reconnection, not an error: on PostgreSQL by
# looking at the socket, without a round trip (portal/core/postgresql/base.py).
# 0: one connection per request.
DATABASE_CONN_MAX_AGE = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASE_CONN_HEALTH_CHECKS = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=True)
DATABASES["default"].setdefault("CONN_MAX_AGE", DATABASE_CONN_MAX_AGE)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", DATABASE_CONN_HEALTH_CHECKS)
# On PostgreSQL, Django's backend with a health check of no round trip and
# prepared statements for the reads of every request (the session with its
# account, an API token, the brief of a member's payments): psycopg prepares
# one once it ran this many times on a connection. Turn them off
# (DATABASE_PREPARED_STATEMENTS=0) behind PgBouncer
# older than 1.21 in transaction mode (portal/core/postgresql/base.py).
POSTGRESQL_ENGINE = "portal.core.postgresql"
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
PREPARE_THRESHOLD = 5 if DATABASE_PREPARED_STATEMENTS else None


def _our_postgresql(database: dict) -> None:
    if database["ENGINE"] == "django.db.backends.postgresql":
        database["ENGINE"] = POSTGRESQL_ENGINE
    if database["ENGINE"] == POSTGRESQL_ENGINE:
        database.setdefault("OPTIONS", {}).setdefault("prepare_threshold", PREPARE_THRESHOLD)


_our_postgresql(DATABASES["default"])
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the task worker use the file at once.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
# A read replica of the primary (postgres://…, docs/scaling.md): when set, the
# read-only member pages (Mes paiements, Mes indemnités) read the payment
# tables from it; everything else, and every write, uses `default`
# (portal/core/db_router.py). Tests mirror it onto `default`.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"]["ATOMIC_REQUESTS"] = False
    DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASE_CONN_MAX_AGE)
    DATABASES["replica"].setdefault("CONN_HEALTH_CHECKS", DATABASE_CONN_HEALTH_CHECKS)
    _our_postgresql(DATABASES["replica"])
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["portal.core.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttling counters live in the cache: a shared cache (Redis) is required
# as soon as several processes serve the web (see docs/configuration.md).
# CACHE_URL=redis://… gives Django's own RedisCache (it needs only the `redis`
# package). Short socket timeouts: an unreachable Redis fails a request (and
# /readyz) in two seconds instead of hanging a web worker; the URL's query
# string may set others (?socket_timeout=5).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://portal")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["OPTIONS"] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        **CACHES["default"].get("OPTIONS", {}),
    }

AUTH_USER_MODEL = "accounts.Account"
AUTHENTICATION_BACKENDS = ["portal.accounts.backends.NirBackend"]
LOGIN_URL = "www:login"
LOGIN_REDIRECT_URL = "www:home"

# Argon2id at OWASP's first recommended setting (m=19 MiB, t=2, p=1): see
# docs/security.md for the choice and how to raise it.
ARGON2_TIME_COST = env.int("ARGON2_TIME_COST", default=2)
ARGON2_MEMORY_COST = env.int("ARGON2_MEMORY_COST", default=19456)  # KiB
ARGON2_PARALLELISM = env.int("ARGON2_PARALLELISM", default=1)
PASSWORD_HASHERS = ["portal.accounts.hashers.PortalArgon2Hasher"]
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=12)
PASSWORD_RESET_LINK_TTL = env.int("PASSWORD_RESET_LINK_TTL", default=1800)
# Reset emails per account (per hour, per day) and reset requests per IP per hour.
PASSWORD_RESET_LIMIT_PER_ACCOUNT_HOUR = env.int("PASSWORD_RESET_LIMIT_PER_ACCOUNT_HOUR", default=3)
PASSWORD_RESET_LIMIT_PER_ACCOUNT_DAY = env.int("PASSWORD_RESET_LIMIT_PER_ACCOUNT_DAY", default=10)
PASSWORD_RESET_LIMIT_PER_IP = env.int("PASSWORD_RESET_LIMIT_PER_IP", default=20)
# Attempts at the reset confirm step (opening links, submitting) per IP per hour.
PASSWORD_RESET_CONFIRM_LIMIT_PER_IP = env.int("PASSWORD_RESET_CONFIRM_LIMIT_PER_IP", default=60)
# An address confirmed less than this many hours ago does not receive reset links
# (when the account had another one before): see docs/security.md.
RESET_RECENT_EMAIL_HOURS = env.int("RESET_RECENT_EMAIL_HOURS", default=72)
PASSWORD_MAX_LENGTH = 128
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "portal.accounts.passwords.PolicyValidator"},
]

SESSION_ENGINE = "portal.accounts.sessions"  # Django's database sessions, read faster
SESSION_COOKIE_NAME = "portal_session"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool(
    "SECURE_COOKIES", default=not DEBUG and SITE_URL.startswith("https")
)
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_TIMEOUT = env.int("SESSION_ABSOLUTE_TIMEOUT", default=12 * 3600)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT
# Sliding idle timeout: an unchanged session is saved again (its expiry pushed
# back) at most every SESSION_REFRESH_EVERY seconds, not at every request
# (portal/accounts/sessions.py).
SESSION_SAVE_EVERY_REQUEST = False
SESSION_REFRESH_EVERY = env.int("SESSION_REFRESH_EVERY", default=60)
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_FAILURE_VIEW = "portal.www.views.errors.csrf_failure"

# Key of the HMAC chaining the audit entries (docs/security.md); empty: plain SHA-256.
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default="")
# Keys encrypting the staff's TOTP secrets at rest (portal/core/sealing.py): the
# first seals, all unseal (rotation). Empty: derived from SECRET_KEY (and fallbacks).
TOTP_ENCRYPTION_KEYS = env.list("TOTP_ENCRYPTION_KEYS", default=[])
ACCOUNT_CONFIRMATION_TTL = env.int("ACCOUNT_CONFIRMATION_TTL", default=24 * 3600)
API_TOKEN_TTL = env.int("API_TOKEN_TTL", default=3600)
# Account creation: attempts per NIR and per client IP in one hour.
ACCOUNT_CREATION_LIMIT_PER_NIR = env.int("ACCOUNT_CREATION_LIMIT_PER_NIR", default=5)
ACCOUNT_CREATION_LIMIT_PER_IP = env.int("ACCOUNT_CREATION_LIMIT_PER_IP", default=50)
# Login: free failures before the progressive delay, its cap, and the hourly ceilings.
LOGIN_FREE_FAILURES = env.int("LOGIN_FREE_FAILURES", default=5)
LOGIN_MAX_DELAY = env.int("LOGIN_MAX_DELAY", default=60)
LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int("LOGIN_MAX_FAILURES_PER_ACCOUNT", default=100)
LOGIN_FREE_FAILURES_PER_IP = env.int("LOGIN_FREE_FAILURES_PER_IP", default=50)
LOGIN_MAX_FAILURES_PER_IP = env.int("LOGIN_MAX_FAILURES_PER_IP", default=1000)
# Client IP: REMOTE_ADDR, unless the request comes from one of these proxies.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# /metrics (Prometheus): answered only to these client IPs or networks, or to
# `Authorization: Bearer METRICS_TOKEN`; both empty: to nobody (403).
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where /metrics reads the values of every process (several web and task
# workers): by default the directory prometheus_client writes to.
METRICS_COLLECT_DIR = env.str(
    "METRICS_COLLECT_DIR", default=env.str("PROMETHEUS_MULTIPROC_DIR", default="")
)

# Email: the demo mailbox unless EMAIL_URL is set (smtp://user:pass@host:port).
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(environ.Env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="Assurance Maladie <ne-pas-repondre@example.org>"
)
EMAIL_TIMEOUT = 10
SMS_WEBHOOK_URL = env.str("SMS_WEBHOOK_URL", default="")
SMS_WEBHOOK_SECRET = env.str("SMS_WEBHOOK_SECRET", default="")
# SMS gateway: "outbox" (demo mailbox), "webhook" or "console" (development only).
SMS_BACKEND = env.str("SMS_BACKEND", default="outbox")
SMS_WEBHOOK_TIMEOUT = env.float("SMS_WEBHOOK_TIMEOUT", default=10.0)
# Rolling 24-hour SMS caps, against SMS pumping.
SMS_DAILY_CAP_PER_MEMBER = env.int("SMS_DAILY_CAP_PER_MEMBER", default=5)
SMS_DAILY_CAP_PER_SENDER = env.int("SMS_DAILY_CAP_PER_SENDER", default=100)
SMS_DAILY_CAP_GLOBAL = env.int("SMS_DAILY_CAP_GLOBAL", default=10000)
# Supervisors alerted (once a day) when fewer than half of the SMS codes of the last 24 h are used.
SMS_CODE_USAGE_MIN_SAMPLE = env.int("SMS_CODE_USAGE_MIN_SAMPLE", default=20)
SUPERVISOR_ALERT_EMAILS = env.list("SUPERVISOR_ALERT_EMAILS", default=[])
# Delivery attempts before a message is given up (exponential backoff).
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=8)

# Relay appointments (LSF, TTRP, LfPC) for deaf and hard-of-hearing members.
# The provider of the video-call link: "builtin" (a room under VISIO_BASE_URL)
# or "webhook" (the booking POSTed, signed, to RELAY_WEBHOOK_URL, which
# answers {"url": ...}).
RELAY_PROVIDER = env.str("RELAY_PROVIDER", default="builtin")
VISIO_BASE_URL = env.str("VISIO_BASE_URL", default="https://visio.example.org/salle")
RELAY_WEBHOOK_URL = env.str("RELAY_WEBHOOK_URL", default="")
RELAY_WEBHOOK_SECRET = env.str("RELAY_WEBHOOK_SECRET", default="")
RELAY_WEBHOOK_TIMEOUT = env.float("RELAY_WEBHOOK_TIMEOUT", default=10.0)
RELAY_WEBHOOK_MAX_ATTEMPTS = env.int("RELAY_WEBHOOK_MAX_ATTEMPTS", default=8)
# The relay service's opening hours (Europe/Paris; ISO weekdays, 1 = Monday).
RELAY_SERVICE_HOURS = env.str("RELAY_SERVICE_HOURS", default="1-4 08:30-17:00; 5 08:30-16:00")

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
    }
}
# Task workers (`manage.py task_worker`, portal/core/workers.py): each writes
# a heartbeat this often; a task left RUNNING by a worker silent for longer
# than TASK_WORKER_DEAD_AFTER_SECONDS is queued again.
TASK_WORKER_HEARTBEAT_SECONDS = 10
TASK_WORKER_DEAD_AFTER_SECONDS = 60

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "portal" / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The DSFR assets are served from our own origin, hashed by the manifest
# storage, which rewrites url() inside the CSS: the upstream SRI digests would
# then block them. Same-origin assets gain nothing from SRI.
DSFR_USE_INTEGRITY_CHECKSUMS = False

# Security headers.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes and the monitoring reach the app directly, in plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

NINJA_PAGINATION_PER_PAGE = 50
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024 + 1024  # bodies above ~1 MiB are refused

# "text" (one readable line) or "json" (one JSON object per line, for a log collector).
LOG_FORMAT = env.str("LOG_FORMAT", default="text").lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "mask_secrets": {"()": "portal.core.logging.MaskSecretsFilter"},
        "request_id": {"()": "portal.core.logging.RequestIdFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "portal.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id", "mask_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # WeasyPrint narrates every PDF at INFO; only its warnings matter.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
