"""Switchyard settings, driven by the environment.

``SWITCHYARD_ENV`` picks the run mode: ``sandbox`` (the default: SQLite under ``var/``, a local moto
server as AWS, a visible SANDBOX banner) or ``production`` (PostgreSQL, Redis, real AWS), which refuses
to start without the variables it needs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Django's generic classes (ModelForm[Model], ModelAdmin[Model], ...) subscriptable at run time, as
# mypy --strict wants them written.
django_stubs_ext.monkeypatch()

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
# django-celery-beat's DatabaseScheduler, leaving beat's heartbeat on each tick (portal.operations.beat).
CELERY_BEAT_SCHEDULER = "portal.operations.beat:HeartbeatScheduler"
CELERY_TIMEZONE = "UTC"

# --- AWS ------------------------------------------------------------------------------------------
SANDBOX_MAIN_ACCOUNT_ID = "123456789012"
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="http://127.0.0.1:5000" if SANDBOX else "")
AWS_REGION = env.str("AWS_REGION", default="us-east-1")
SWITCHYARD_MAIN_ACCOUNT_ID = env.str("SWITCHYARD_MAIN_ACCOUNT_ID", default=SANDBOX_MAIN_ACCOUNT_ID)
SWITCHYARD_ACCOUNT_MAILBOX = env.str("SWITCHYARD_ACCOUNT_MAILBOX", default="awsaccounts@example.com")
SWITCHYARD_ORG_ACCOUNT_QUOTA = env.int("SWITCHYARD_ORG_ACCOUNT_QUOTA", default=10)
# The console roles' trust also requires the principal tag switchyard-person (which enforcement puts
# on the IAM users of the people it manages), so no other main-account IAM user can switch in. On in
# production; off in the sandbox (and its tests) unless asked for; turn it off for estates that cannot tag.
SWITCHYARD_PRINCIPAL_TAG_CONDITION = env.bool("SWITCHYARD_PRINCIPAL_TAG_CONDITION", default=not SANDBOX)
SWITCHYARD_MAX_CREATIONS_IN_FLIGHT = 5
# How long a worker may hold an onboarding step before another may take it over (a killed worker's
# step is re-driven after this), and when a step nobody picked up is re-driven by the reconciler.
SWITCHYARD_ONBOARDING_LEASE_SECONDS = env.int("SWITCHYARD_ONBOARDING_LEASE_SECONDS", default=200)
SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS = env.int("SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS", default=120)
# Heartbeats (portal.operations.heartbeats): how often beat and each worker report; stale after two periods.
SWITCHYARD_BEAT_HEARTBEAT_SECONDS = env.int("SWITCHYARD_BEAT_HEARTBEAT_SECONDS", default=30)
SWITCHYARD_WORKER_HEARTBEAT_SECONDS = env.int("SWITCHYARD_WORKER_HEARTBEAT_SECONDS", default=30)
SWITCHYARD_HEARTBEAT_FORGET_SECONDS = env.int("SWITCHYARD_HEARTBEAT_FORGET_SECONDS", default=3600)
# Organization-wide creation slots (portal.operations.capacity): a slot whose holder stopped renewing it
# comes back after this lease. Longer than AWS takes to create an account (about a minute), so a
# slot given back after its worker died never lets a sixth creation overlap the five in AWS.
SWITCHYARD_CREATION_SLOT_LEASE_SECONDS = env.int("SWITCHYARD_CREATION_SLOT_LEASE_SECONDS", default=300)
# How often a creation in progress is polled: from this, doubling, up to the max (AWS takes about a minute).
SWITCHYARD_CREATION_POLL_SECONDS = env.int("SWITCHYARD_CREATION_POLL_SECONDS", default=10)
SWITCHYARD_CREATION_POLL_MAX_SECONDS = env.int("SWITCHYARD_CREATION_POLL_MAX_SECONDS", default=60)
# The drift check's member-account part (switchroles.drift_run): how many accounts are checked side
# by side, and how long a worker holds one account before another may take it over.
SWITCHYARD_DRIFT_CONCURRENCY = env.int("SWITCHYARD_DRIFT_CONCURRENCY", default=8)
SWITCHYARD_DRIFT_ACCOUNT_LEASE_SECONDS = env.int("SWITCHYARD_DRIFT_ACCOUNT_LEASE_SECONDS", default=120)
# A template roll-out (switchroles.rollout): how many accounts' roles are re-provisioned side by side.
SWITCHYARD_ROLLOUT_CONCURRENCY = env.int("SWITCHYARD_ROLLOUT_CONCURRENCY", default=8)
# Main-account IAM writes per second across every worker (portal.operations.aws_limits); 0 turns the bound off.
SWITCHYARD_MAIN_IAM_WRITES_PER_SECOND = env.int("SWITCHYARD_MAIN_IAM_WRITES_PER_SECOND", default=10)

# --- Separation of duties (issue 18; portal/people/duties.py). Safe by default: both rules on. -----------
# Auditors hold no switch-role links: not in a team, no personal grant, nothing in the directory.
SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS = env.bool("SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS", default=True)
# Whoever made a grant cannot confirm it in an access review.
SWITCHYARD_SOD_NO_SELF_REVIEW = env.bool("SWITCHYARD_SOD_NO_SELF_REVIEW", default=True)

# --- Notifications (issue 18; portal/notifications.py) --------------------------------------------
# Links in notices point here. Mail: SMTP from the environment in production; in the sandbox
# (and unless EMAIL_BACKEND says otherwise) files under var/outbox/, one per message.
SWITCHYARD_PORTAL_URL = env.str("SWITCHYARD_PORTAL_URL", default="http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Switchyard <switchyard@example.com>")
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.filebased.EmailBackend" if SANDBOX
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "outbox"
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)

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
# A code is also accepted for the 30 s step just before or after the current one (RFC 6238's
# allowance for network delay): typed as the authenticator rolls over, or on a phone clock a few
# seconds out, it still signs in. A code is still accepted once only.
MFA_TOTP_TOLERANCE = 1
# The code field focused, and a reused code answered as such (portal/mfa_forms.py).
MFA_FORMS = {"authenticate": "portal.mfa_forms.SignInCodeForm",
             "reauthenticate": "portal.mfa_forms.ReauthenticationCodeForm"}

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
# --- The JSON API (/api/v1/, personal bearer tokens; portal/api/) ---------------------------------
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar"]
SWITCHYARD_API_RATE_PER_TOKEN = env.str("SWITCHYARD_API_RATE_PER_TOKEN", default="600/minute")
REST_FRAMEWORK = {
    # Bearer tokens only: no session (a browser's cookie never authorises an API call), so no CSRF.
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.CapabilityPermission"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.throttling.PerTokenThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.JsonObjectParser"],
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchyard API",
    "DESCRIPTION": "The portal's JSON API for the MSP's own automation. Authenticate with a personal token "
                   "(your account's API tokens page): `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "persistAuthorization": False},
    "ENUM_NAME_OVERRIDES": {
        "AccountOriginEnum": "onboarding.models.AwsAccount.Origin",
        "OnboardingOriginEnum": ["create", "invite", "adopt"],
        "AccountStateEnum": "onboarding.models.AwsAccount.State",
        "RoleStateEnum": "switchroles.models.AccountRole.State",
    },
}

# Elevations (break-glass): the longest a request may ask for, and how long it waits for an answer.
SWITCHYARD_ELEVATION_MAX_MINUTES = env.int("SWITCHYARD_ELEVATION_MAX_MINUTES", default=240)
SWITCHYARD_ELEVATION_ANSWER_MINUTES = env.int("SWITCHYARD_ELEVATION_ANSWER_MINUTES", default=60)
