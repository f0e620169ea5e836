"""Settings from the environment (django-environ); embedded defaults run everything under ``var/``."""

import os
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("NATSCTL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# ------------------------------------------------------------------------------------------------
# Core
# https://docs.djangoproject.com/en/5.2/ref/settings/
# ------------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The embedded default gets a per-checkout random key under var/; production sets DJANGO_SECRET_KEY.
_secret_file = VAR_DIR / "django-secret-key"
if "DJANGO_SECRET_KEY" not in env.ENVIRON and not _secret_file.exists():
    import secrets

    _secret_file.write_text(secrets.token_urlsafe(50))
    _secret_file.chmod(0o600)
# Read as it is, not through django-environ: environ takes a value that starts with "$" for the name of another
# variable and recursed forever on such a key (Django's get_random_secret_key starts one in 50 that way).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (_secret_file.read_text().strip() if _secret_file.exists() else "")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# ------------------------------------------------------------------------------------------------
# Security: production (behind TLS) sets DJANGO_SECURE=true; `manage.py check --deploy` is clean then.
# The embedded default serves plain http on loopback, where secure-only cookies would break login.
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# ------------------------------------------------------------------------------------------------
SECURE = env.bool("DJANGO_SECURE", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=SECURE)
# A TLS-terminating proxy (an Ingress) tells us the original scheme.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE else None
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE
# Health probes come over plain http from the kubelet, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every response (core.middleware.ContentSecurityPolicyMiddleware; empty sends none).
# The console and the Swagger UI at /api/docs/ load only this origin's files, with no inline script, handler or
# style, so nothing else is allowed; an operator who adds e.g. a report-to endpoint sets CSP_POLICY whole.
# https://developer.mozilla.org/en-US/docs/Web/HTTP/Guides/CSP
CSP_POLICY = env(
    "CSP_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "operators",
    "accounts_service.apps.AccountsServiceConfig",
    "billing",
    "broker_gateway",
    "payouts.apps.PayoutsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "accounts_service.urls"
WSGI_APPLICATION = "accounts_service.wsgi.application"
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
            ],
        },
    },
]

# ------------------------------------------------------------------------------------------------
# Database: SQLite under var/ by default, PostgreSQL with DATABASE_URL
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
# ------------------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'natsctl.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web app, workers and commands share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# PostgreSQL: ngs.usage's reads are prepared on their connection (core.db.rows_read); 0 behind a transaction-mode pooler
DATABASE_PREPARED_READS = env.bool("DATABASE_PREPARED_READS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# ------------------------------------------------------------------------------------------------
# Web: sign-up, login, mail
# https://docs.djangoproject.com/en/5.2/topics/auth/default/#module-django.contrib.auth.views
# ------------------------------------------------------------------------------------------------
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:dashboard"
LOGOUT_REDIRECT_URL = "home"
# Mail goes to the console unless EMAIL_URL is set (smtp://user:pass@host:587, consolemail://, filemail://...).
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="natsctl <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24  # reset and verification links live one day
WEB_INVITATION_DAYS = 7
# (attempts, window seconds, block seconds): the attempt that reaches the limit starts the block.
WEB_ATTEMPT_RULES = {
    "login_email": (env.int("LOGIN_MAX_FAILURES", default=5), 15 * 60, 15 * 60),
    "login_ip": (50, 15 * 60, 15 * 60),
    "signup": (env.int("SIGNUP_PER_HOUR", default=10), 60 * 60, 60 * 60),
    "password_reset": (10, 60 * 60, 60 * 60),
}

# ------------------------------------------------------------------------------------------------
# Key custody: seeds are sealed with AES-GCM keys from SEED_ENCRYPTION_KEYS ("id:base64,..." newest
# first). Unset, the embedded default generates one key file under var/ and says so.
# ------------------------------------------------------------------------------------------------
SEED_ENCRYPTION_KEYS = env("SEED_ENCRYPTION_KEYS", default="")
SEED_ENCRYPTION_KEY_FILE = VAR_DIR / "seed-encryption.keys"

# ------------------------------------------------------------------------------------------------
# NATS
# ------------------------------------------------------------------------------------------------
NATS_OPERATOR_NAME = env("NATS_OPERATOR_NAME", default="natsctl")
NATS_SERVER_BIN = env("NATS_SERVER_BIN", default="")
# A short resolver interval: nodes also sync among themselves, as a second path behind our pushes.
NATS_RESOLVER_INTERVAL = env("NATS_RESOLVER_INTERVAL", default="30s")
NATS_PUSH_TIMEOUT = env.float("NATS_PUSH_TIMEOUT", default=2.0)
# The URLs tenants' clients use (the connect page and GET /api/v1/connect), comma separated, when they differ from
# the nodes' own addresses (Kubernetes: the NATS Service's external name, not the pods' cluster DNS names).
NATS_PUBLIC_URLS = env.list("NATS_PUBLIC_URLS", default=[])
# Each region's client URLs when they differ from its nodes' own addresses (a load balancer per region):
# "us-east=nats://us.example.com:4222,eu-west=nats://eu.example.com:4222|nats://eu2.example.com:4222".
NATS_REGION_URLS = {
    region.strip(): [u.strip() for u in urls.split("|") if u.strip()]
    for region, _, urls in (part.partition("=") for part in env.list("NATS_REGION_URLS", default=[]))
    if region.strip()
}
# The leafnode URLs tenants' own nats-servers solicit (a leafnode config's remote), comma separated, when they differ
# from the nodes' own nats-leaf://host:leafnode_port. https://docs.nats.io/running-a-nats-service/configuration/leafnodes
NATS_PUBLIC_LEAFNODE_URLS = env.list("NATS_PUBLIC_LEAFNODE_URLS", default=[])

# ------------------------------------------------------------------------------------------------
# The broker fleet: nodes as desired state, supervised by `manage.py fleet run`
# ------------------------------------------------------------------------------------------------
FLEET_DRIVER = env("FLEET_DRIVER", default="local")
FLEET_DIR = Path(env("FLEET_DIR", default=str(VAR_DIR / "fleet")))
FLEET_NODES = env.int("FLEET_NODES", default=3)
# The region of a node added without one (each region is a NATS cluster of that name; regions are joined by
# gateways into one supercluster).
FLEET_REGION = env("FLEET_REGION", default="us-east")
# What `fleet run` and `up` create on an empty fleet: REGION=NODES,... The embedded default is two small
# regions on loopback ports (three nodes in all); FLEET_NODES alone means that many nodes in FLEET_REGION.
FLEET_TOPOLOGY = env("FLEET_TOPOLOGY", default=f"{FLEET_REGION}={FLEET_NODES}" if "FLEET_NODES" in os.environ
                     else "us-east=2,eu-west=1")
# A new node's ports are these plus its index when free, else free ports.
FLEET_BASE_PORTS = {
    "client_port": env.int("FLEET_CLIENT_PORT", default=4222),
    "cluster_port": env.int("FLEET_CLUSTER_PORT", default=6222),
    "monitoring_port": env.int("FLEET_MONITORING_PORT", default=8222),
    "leafnode_port": env.int("FLEET_LEAFNODE_PORT", default=7422),
    "gateway_port": env.int("FLEET_GATEWAY_PORT", default=7222),
}
FLEET_START_TIMEOUT = env.float("FLEET_START_TIMEOUT", default=15.0)
FLEET_LIVENESS_TIMEOUT = env.float("FLEET_LIVENESS_TIMEOUT", default=30.0)
FLEET_MAX_FAILURES = env.int("FLEET_MAX_FAILURES", default=5)
FLEET_BACKOFF_BASE = env.float("FLEET_BACKOFF_BASE", default=0.5)
FLEET_BACKOFF_MAX = env.float("FLEET_BACKOFF_MAX", default=30.0)
FLEET_STABLE_SECONDS = env.float("FLEET_STABLE_SECONDS", default=10.0)
FLEET_STOP_GRACE = env.float("FLEET_STOP_GRACE", default=10.0)
# nats-server refuses a lame duck duration under 30s.
FLEET_LAME_DUCK_DURATION = env("FLEET_LAME_DUCK_DURATION", default="30s")
# A node counts as healthy only while the supervisor keeps confirming it (it writes every 5 s).
FLEET_HEALTH_STALE_SECONDS = env.float("FLEET_HEALTH_STALE_SECONDS", default=20.0)
FLEET_PUSH_CONCURRENCY = env.int("FLEET_PUSH_CONCURRENCY", default=256)
# The fleet supervisor (`fleet run`) reconciles on a thread of its own this often, whatever Celery and Redis do:
# it pushes every account some healthy node has not acknowledged at its latest JWT and deletes accounts the
# database no longer has, so a revocation or a suspension reaches every node within about this long with no
# worker at all (the queued push is the fast path). 0 turns it off. See docs/DEPLOY.md.
FLEET_RECONCILE_SECONDS = env.float("FLEET_RECONCILE_SECONDS", default=2.0)
# The beat's fleet-reconcile task is only a backstop for a deployment whose supervisor is down: a minute is enough.
FLEET_BEAT_RECONCILE_SECONDS = env.float("FLEET_BEAT_RECONCILE_SECONDS", default=60.0)
FLEET_VERIFY_SECONDS = env.float("FLEET_VERIFY_SECONDS", default=60.0)
# The collector polls every node's STATZ this often; on a crash, a node's traffic since its last poll is lost.
METERING_POLL_SECONDS = env.float("METERING_POLL_SECONDS", default=5.0)
# Export use (docs/ECONOMICS.md) is read from every node's SUBSZ this often; a subscription that closes loses what it
# counted since the last poll, so this bounds what a publisher can miss.
EXPORT_USE_POLL_SECONDS = env.float("EXPORT_USE_POLL_SECONDS", default=5.0)
# The collector forwards every event and poll reply into the METERING stream (the platform's metering account);
# ledger writers consume it, one partition of the accounts each (broker_gateway/ledger_stream.py). Partitions are
# fixed once the stream exists (an account's partition is a hash of its key); writers (processes the collector
# starts) may be changed at any restart. Replicas: 3 on a fleet of 3 or more nodes, so losing a node loses nothing.
METERING_PARTITIONS = env.int("METERING_PARTITIONS", default=4)
METERING_WRITERS = env.int("METERING_WRITERS", default=2)
METERING_STREAM_REPLICAS = env.int("METERING_STREAM_REPLICAS", default=1)
# ngs.usage responder processes the collector starts (a queue group; each answers one request at a time).
USAGE_RESPONDERS = env.int("USAGE_RESPONDERS", default=2)
# A batch a writer took and did not acknowledge (it died) is delivered again after this long.
METERING_ACK_WAIT = env.float("METERING_ACK_WAIT", default=30.0)
# A period is invoiced once it has been over this long (late metering data lands first); its invoice is final.
INVOICE_GRACE_SECONDS = env.float("INVOICE_GRACE_SECONDS", default=3600.0)
# The payment provider (billing/payments.py): a dotted path to a class; the default needs no network.
BILLING_PAYMENT_PROVIDER = env("BILLING_PAYMENT_PROVIDER", default="billing.payments.ManualProvider")
# Plans are priced, and invoices and bills issued, in this ISO 4217 currency, as integers of its minor unit (cents:
# a currency with two decimals). Invoices keep the currency they were issued in. See docs/BILLING.md.
BILLING_CURRENCY = env("BILLING_CURRENCY", default="USD")

# ------------------------------------------------------------------------------------------------
# The Kubernetes fleet driver (FLEET_DRIVER=kubernetes): nodes are the pods <K8S_STATEFULSET>-<ordinal> of the
# chart's NATS StatefulSet, scaled through the API server. Inside a pod, the API server, token, CA and
# namespace come from the service account; these override them (e.g. K8S_API_URL=http://127.0.0.1:8001 for
# `kubectl proxy`). Set FLEET_NODES=0 with this driver: nodes come from the pods, not from `node-N` rows.
# https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/
# ------------------------------------------------------------------------------------------------
K8S_API_URL = env("K8S_API_URL", default="")  # empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
K8S_TOKEN_FILE = env("K8S_TOKEN_FILE", default="")  # empty: the service account token (none: no Authorization)
K8S_CA_FILE = env("K8S_CA_FILE", default="")  # empty: the service account's ca.crt, else the system CAs
K8S_NAMESPACE = env("K8S_NAMESPACE", default="")  # empty: the service account's namespace
K8S_API_TIMEOUT = env.float("K8S_API_TIMEOUT", default=5.0)
K8S_STATEFULSET = env("K8S_STATEFULSET", default="natsctl-nats")
# A supercluster chart: one StatefulSet per region, REGION=STATEFULSET,... (the chart sets it); discovered pods
# are registered in their StatefulSet's region. Empty: the one K8S_STATEFULSET, its pods in the default region.
K8S_STATEFULSETS = env("K8S_STATEFULSETS", default="")
K8S_CONTAINER = env("K8S_CONTAINER", default="nats")  # the nats-server container of each pod
# A node's host for pushes and client URLs; {pod} {service} (the StatefulSet's headless serviceName)
# {namespace} {ordinal}. The pod DNS name is stable across restarts, unlike the pod IP.
K8S_NODE_HOST = env("K8S_NODE_HOST", default="{pod}.{service}.{namespace}.svc")
# Where the chart mounts the resolver and JetStream volumes in the pods (for the config the supervisor checks).
K8S_RESOLVER_DIR = env("K8S_RESOLVER_DIR", default="/data/resolver")
K8S_JETSTREAM_DIR = env("K8S_JETSTREAM_DIR", default="/data/jetstream")
# How often the supervisor registers pods the database lacks (a driver that can discover nodes only).
FLEET_DISCOVER_SECONDS = env.float("FLEET_DISCOVER_SECONDS", default=30.0)

# ------------------------------------------------------------------------------------------------
# Redis and Celery
# https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
# ------------------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Queues (https://docs.celeryq.dev/en/stable/userguide/routing.html): "celery", the default, for whatever names
# no queue; "propagation" for broker_gateway's pushes to the fleet; "billing" for quotas, invoices and plan
# edits; "mail" for quota mail (slow SMTP must not hold up the others). Every worker consumes all of them
# (`-Q`, built from WORKER_QUEUES by `manage.py up` and written in the Helm chart's worker.queues).
CELERY_TASK_DEFAULT_QUEUE = "celery"
WORKER_QUEUES = ("celery", "propagation", "billing", "mail")
# A child killed mid-task gives its message back at once; a whole worker killed gives it back after
# the visibility timeout. The reconciler re-pushes anything either path missed.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=300)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Enqueueing happens on commit of a tenant's change: with Redis down, give up fast (the reconciler
# pushes the change) instead of holding the request for seconds.
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "fleet-reconcile": {"task": "broker_gateway.tasks.fleet_reconcile", "schedule": FLEET_BEAT_RECONCILE_SECONDS},
    "fleet-verify": {"task": "broker_gateway.tasks.fleet_verify", "schedule": FLEET_VERIFY_SECONDS},
    "quotas-enforce": {"task": "billing.tasks.quotas_enforce", "schedule": env.float("QUOTA_SECONDS", default=60.0)},
    "invoices-generate": {"task": "billing.tasks.invoices_generate",
                          "schedule": env.float("INVOICE_SECONDS", default=3600.0)},
    # Monthly, after the invoice run (hourly, once INVOICE_GRACE_SECONDS past the month): last month's payout
    # statement (docs/ECONOMICS.md). https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html#crontab-schedules
    "payouts-run": {"task": "payouts.tasks.payouts_run_due",
                    "schedule": crontab(minute=0, hour=env.int("PAYOUTS_HOUR", default=3), day_of_month=1)},
}

# ------------------------------------------------------------------------------------------------
# REST framework: one error shape, bearer tokens hashed at rest
# ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts_service.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts_service.authentication.TokenScopePermission",  # read-only tokens: GET/HEAD/OPTIONS only
    ],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "accounts_service.api.utils.StrictLimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": ["core.api.JSONParser"],  # the API is JSON only
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "accounts_service.api.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/minute"),
        "user": env("API_THROTTLE_USER", default="6000/minute"),
    },
}

# OpenAPI at /api/schema/, Swagger UI at /api/docs/ served from the sidecar package (no CDN).
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "natsctl API",
    "DESCRIPTION": "A hosted, multi-tenant NATS control plane: accounts, users, credentials, exports and imports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts_service.api.schema.error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Invitation tokens live in URLs; Django logs 4xx paths and runserver every request line (core.logfilters).
    "filters": {"secret_urls": {"()": "core.logfilters.SecretUrlFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["secret_urls"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # runserver's request lines, through the same filter (Django's own handler for them has none).
    "loggers": {"django.server": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

# Tests use a database file (not memory) so a test can scan it for seeds in clear.
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"].setdefault("NAME", str(VAR_DIR / f"test-{os.getpid()}.sqlite3"))
