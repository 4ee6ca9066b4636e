"""Switchyard settings, driven by the environment.

``SWITCHYARD_ENV`` picks the run mode: ``sandbox`` (the default: SQLite under ``var/``, a local moto
server as AWS, a visible SANDBOX banner) or ``production`` (PostgreSQL, Redis, real AWS), which refuses
to start without the variables it needs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SWITCHYARD_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()

SWITCHYARD_ENV = env.str("SWITCHYARD_ENV", default="sandbox")
if SWITCHYARD_ENV not in {"sandbox", "production"}:
    raise ImproperlyConfigured(f"SWITCHYARD_ENV must be 'sandbox' or 'production', not {SWITCHYARD_ENV!r}.")
SANDBOX = SWITCHYARD_ENV == "sandbox"
PRODUCTION = not SANDBOX

PRODUCTION_REQUIRED = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "SWITCHYARD_ENCRYPTION_KEY")
if PRODUCTION:
    missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name)]
    if missing:
        raise ImproperlyConfigured(
            "Switchyard will not start in production without these environment variables: "
            + ", ".join(missing)
        )

# Sandbox-only fallbacks: fixed, public, and useless anywhere else.
SANDBOX_SECRET_KEY = "sandbox-only-insecure-secret-key-do-not-use-in-production-0123456789"  # noqa: S105
SANDBOX_ENCRYPTION_KEY = "c2FuZGJveC1vbmx5LWtleS1kby1ub3QtdXNlLTEyMzQ="  # noqa: S105

SECRET_KEY = env.str("SECRET_KEY", default=SANDBOX_SECRET_KEY)
SWITCHYARD_ENCRYPTION_KEY = env.str("SWITCHYARD_ENCRYPTION_KEY", default=SANDBOX_ENCRYPTION_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_celery_beat",
    "csp",
    "portal",
    "onboarding",
    "switchroles",
    "billing",
    "elevations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.RequireMfaMiddleware",
    "elevations.middleware.ClientContactConfinementMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.switchyard",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
if SANDBOX:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'switchyard.sqlite3'}")}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the workers share the sandbox database.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # IMMEDIATE: a transaction takes the write lock when it starts, so concurrent writers (web,
        # workers) wait up to the timeout instead of failing with "database is locked" on upgrade.
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file, not memory, so tests can start real worker processes that share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and cache -----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or f"redis+socket://{VAR_DIR / 'redis.sock'}"
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A cache shared by every process (rate limits must hold across web workers), without Redis.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "switchyard_cache"}
    }

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- AWS ------------------------------------------------------------------------------------------
SANDBOX_MAIN_ACCOUNT_ID = "123456789012"
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="http://127.0.0.1:5000" if SANDBOX else "")
AWS_REGION = env.str("AWS_REGION", default="us-east-1")
SWITCHYARD_MAIN_ACCOUNT_ID = env.str("SWITCHYARD_MAIN_ACCOUNT_ID", default=SANDBOX_MAIN_ACCOUNT_ID)
SWITCHYARD_ACCOUNT_MAILBOX = env.str("SWITCHYARD_ACCOUNT_MAILBOX", default="awsaccounts@example.com")
SWITCHYARD_ORG_ACCOUNT_QUOTA = env.int("SWITCHYARD_ORG_ACCOUNT_QUOTA", default=10)
SWITCHYARD_MAX_CREATIONS_IN_FLIGHT = 5
# How long a worker may hold an onboarding step before another may take it over (a killed worker's
# step is re-driven after this), and when a step nobody picked up is re-driven by the reconciler.
SWITCHYARD_ONBOARDING_LEASE_SECONDS = env.int("SWITCHYARD_ONBOARDING_LEASE_SECONDS", default=200)
SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS = env.int("SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS", default=120)

# --- Authentication (django-allauth, MFA mandatory) ----------------------------------------------
AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # we log out the *other* sessions, not this one
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "5/5m/ip,5/5m/key",
    "reauthenticate": "10/m/user",
}
MFA_ADAPTER = "portal.adapters.MfaAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Switchyard"

SESSION_COOKIE_AGE = env.int("SWITCHYARD_SESSION_HOURS", default=8) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# --- Security headers -----------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'", "https://signin.aws.amazon.com"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Sandbox conveniences ------------------------------------------------------------------------
if SANDBOX:
    # moto accepts any credentials; these keep boto3 from looking for real ones.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles" if SANDBOX else Path(env.str("STATIC_ROOT", default="/app/staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

AUDIT_VERIFY_INTERVAL = timedelta(hours=1)

# --- Billing (Cost Explorer; each request costs $0.01) ---------------------------------------------
# The most Cost Explorer requests Switchyard makes in any 24 hours, scheduled and on-demand together.
SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY = env.int("SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY", default=40)
# A client is flagged when its month runs this many percent above the average of its previous months.
SWITCHYARD_BILLING_ANOMALY_PERCENT = env.int("SWITCHYARD_BILLING_ANOMALY_PERCENT", default=25)
SWITCHYARD_BILLING_ANOMALY_BASELINE_MONTHS = env.int("SWITCHYARD_BILLING_ANOMALY_BASELINE_MONTHS", default=3)
# AmortizedCost too (spreads reservations and savings plans over the month); off by default.
SWITCHYARD_BILLING_AMORTIZED = env.bool("SWITCHYARD_BILLING_AMORTIZED", default=False)
# Bringing accounts in (onboarding: adopt, invite): the identity Switchyard's workers run as in the main
# account. Invited accounts' access roles trust only it (aws:PrincipalArn).
SWITCHYARD_WORKER_PRINCIPAL_ARN = env.str(
    "SWITCHYARD_WORKER_PRINCIPAL_ARN", default=f"arn:aws:iam::{SWITCHYARD_MAIN_ACCOUNT_ID}:role/SwitchyardWorker"
)

# Elevations (break-glass): the longest a request may ask for, and how long it waits for an answer.
SWITCHYARD_ELEVATION_MAX_MINUTES = env.int("SWITCHYARD_ELEVATION_MAX_MINUTES", default=240)
SWITCHYARD_ELEVATION_ANSWER_MINUTES = env.int("SWITCHYARD_ELEVATION_ANSWER_MINUTES", default=60)
