"""Settings, read from the environment in this one place.

Every variable is documented in `.env.example`. Local use needs nothing: SQLite under `var/`, an embedded
filesystem broker and database row locks. Production points DATABASE_URL at PostgreSQL and REDIS_URL at
Redis, and must provide every secret: with DEBUG off a missing one stops start-up with its name.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_REAL_ENVIRONMENT = frozenset(os.environ)
# A local .env is read for convenience; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Run-time files of a one-machine setup: the SQLite database, the embedded broker, the file cache, the metrics
# files, the sandbox's state and `make run`'s lock.
# Empty counts as unset (.env.example lists it as `VAR_DIR=`).
VAR_DIR = Path(env.str("VAR_DIR", default="") or BASE_DIR / "var")

# The development environment `make run` uses (its sandbox URLs, database, DEBUG), written by run_stack to
# VAR_DIR/dev.env, so that a command typed in a second terminal of the same checkout talks to the same sandbox
# and database instead of the real WeChat. Precedence: the real environment, then dev.env, then .env. Read only
# where the development tools are installed (the wxsandbox package, never in the production image) and unless
# DEV_ENV_FILE is set empty (make run itself starts so, to write the file afresh rather than read the last one).
DEV_ENV_FILE = env.str("DEV_ENV_FILE", default=str(VAR_DIR / "dev.env"))
DEV_ENV_LOADED: list[str] = []
if DEV_ENV_FILE and Path(DEV_ENV_FILE).is_file() and importlib.util.find_spec("wxsandbox") is not None:
    for _line in Path(DEV_ENV_FILE).read_text(encoding="utf-8").splitlines():
        _name, _sep, _value = _line.partition("=")
        if _sep and not _line.startswith("#") and _name.strip() not in _REAL_ENVIRONMENT:
            os.environ[_name.strip()] = _value
            DEV_ENV_LOADED.append(_name.strip())

DEBUG = env.bool("DEBUG", default=False)

# Values used only when DEBUG is on, so that `make run` works on a bare machine. They match the sandbox's
# defaults and are useless against the real WeChat.
_DEV_SECRETS = {
    "SECRET_KEY": "dev-insecure-secret-key-change-me-0123456789abcdef",
    "TOKEN_ENCRYPTION_KEYS": "ZGV2LW9ubHktdG9rZW4ta2V5LWNoYW5nZS1tZS0wMTI=",
    "WECHAT_COMPONENT_APPID": "wx0000sandbox0comp",
    "WECHAT_COMPONENT_APPSECRET": "sandbox-component-secret",
    "WECHAT_COMPONENT_TOKEN": "sandboxtoken",
    "WECHAT_COMPONENT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


def _secret(name: str) -> str:
    value: str = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return _DEV_SECRETS[name]
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (see .env.example)")


SECRET_KEY = _secret("SECRET_KEY")
# Fernet keys (urlsafe base64 of 32 bytes), comma-separated. The first encrypts; all decrypt, so a key is
# rotated by prepending a new one, running `manage.py rotate_token_keys`, then dropping the old one.
TOKEN_ENCRYPTION_KEYS = [k.strip() for k in _secret("TOKEN_ENCRYPTION_KEYS").split(",") if k.strip()]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Clients (CIDRs) whose /healthz and /readyz are answered whatever their Host header, so that a probe by IP
# passes while ALLOWED_HOSTS stays the public name (wxplatform/console/probes.py). Loopback by default (the
# compose health check runs in the container); add the node network for Kubernetes probes.
HEALTH_CHECK_NETWORKS = env.list("HEALTH_CHECK_NETWORKS", default=["127.0.0.0/8", "::1/128"])
for _network in HEALTH_CHECK_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"HEALTH_CHECK_NETWORKS: {_network!r} is not a network (CIDR)") from None

# --- WeChat ------------------------------------------------------------------------------------------
WECHAT_API_BASE = env.str("WECHAT_API_BASE", default="https://api.weixin.qq.com").rstrip("/")
# Hosts of the merchant-facing authorization pages (PC QR page and in-WeChat mobile page).
WECHAT_MP_BASE = env.str("WECHAT_MP_BASE", default="https://mp.weixin.qq.com").rstrip("/")
WECHAT_OPEN_BASE = env.str("WECHAT_OPEN_BASE", default="https://open.weixin.qq.com").rstrip("/")
WECHAT_COMPONENT_APPID = _secret("WECHAT_COMPONENT_APPID")
WECHAT_COMPONENT_APPSECRET = _secret("WECHAT_COMPONENT_APPSECRET")
WECHAT_COMPONENT_TOKEN = _secret("WECHAT_COMPONENT_TOKEN")
WECHAT_COMPONENT_AES_KEY = _secret("WECHAT_COMPONENT_AES_KEY")
WECHAT_CONNECT_TIMEOUT = env.float("WECHAT_CONNECT_TIMEOUT", default=3.05)
WECHAT_READ_TIMEOUT = env.float("WECHAT_READ_TIMEOUT", default=10.0)
# The egress proxy (a fixed-IP gateway whose address is on the platform's IP whitelist) that every call to
# WeChat goes through, the requests client and the aiohttp fan-out alike; empty: connect directly. It may
# carry credentials (http://user:pass@host:port), so it is never logged or shown.
# Other doors to WeChat, tried in order when a connection to WECHAT_API_BASE cannot be made (docs/wechat/
# endpoints.md#api-domains), e.g. "https://api2.weixin.qq.com,https://sh.api.weixin.qq.com"; a base that failed
# stays out for WECHAT_BASE_COOLDOWN seconds.
WECHAT_API_FALLBACK_BASES = [b.strip() for b in env.list("WECHAT_API_FALLBACK_BASES", default=[]) if b.strip()]
for _base in WECHAT_API_FALLBACK_BASES:
    if urlsplit(_base).scheme not in {"http", "https"} or not urlsplit(_base).hostname:
        raise ImproperlyConfigured(f"WECHAT_API_FALLBACK_BASES: {_base!r} is not an http(s):// URL with a host")
WECHAT_BASE_COOLDOWN = env.float("WECHAT_BASE_COOLDOWN", default=60.0)
# WeChat degraded for a platform (wxplatform/core/degradation.py): over WINDOW seconds at least MIN_CALLS calls,
# one retryable failure kind taking SHARE of them across MIN_ACCOUNTS distinct accounts. Then each batch probes
# PROBES accounts and skips the rest; the state lapses after HOLD seconds without a new trip.
WECHAT_DEGRADED_SHARE = env.float("WECHAT_DEGRADED_SHARE", default=0.5)
WECHAT_DEGRADED_MIN_CALLS = env.int("WECHAT_DEGRADED_MIN_CALLS", default=50)
WECHAT_DEGRADED_MIN_ACCOUNTS = env.int("WECHAT_DEGRADED_MIN_ACCOUNTS", default=20)
WECHAT_DEGRADED_WINDOW = env.int("WECHAT_DEGRADED_WINDOW", default=120)
WECHAT_DEGRADED_PROBES = env.int("WECHAT_DEGRADED_PROBES", default=5)
WECHAT_DEGRADED_HOLD = env.int("WECHAT_DEGRADED_HOLD", default=600)
# The WeChat gateway's largest request body: WeChat's largest upload (a 10 MB image or video, docs/wechat/
# endpoints.md#gateway) and its multipart framing.
WECHAT_GATEWAY_MAX_BODY = env.int("WECHAT_GATEWAY_MAX_BODY", default=10 * 1024 * 1024 + 64 * 1024)
WECHAT_HTTP_PROXY = env.str("WECHAT_HTTP_PROXY", default="").strip()
if WECHAT_HTTP_PROXY:
    _proxy = urlsplit(WECHAT_HTTP_PROXY)
    try:
        _proxy_port = _proxy.port
    except ValueError:
        _proxy_port = -1
    if _proxy.scheme not in ("http", "https") or not _proxy.hostname or _proxy_port == -1:
        raise ImproperlyConfigured("WECHAT_HTTP_PROXY must be an http:// or https:// URL with a host")
# Consumer mode (wxplatform/component/consumer.py): a deployment with both set gets every component and authorizer
# token from the provider's token authority (another deployment of this service, base URL without a path) and
# never refreshes them at WeChat itself. For staging and other copies of production. The key is a secret.
WECHAT_TOKEN_AUTHORITY_URL = env.str("WECHAT_TOKEN_AUTHORITY_URL", default="").strip().rstrip("/")
WECHAT_TOKEN_AUTHORITY_KEY = env.str("WECHAT_TOKEN_AUTHORITY_KEY", default="").strip()
if bool(WECHAT_TOKEN_AUTHORITY_URL) != bool(WECHAT_TOKEN_AUTHORITY_KEY):
    raise ImproperlyConfigured("WECHAT_TOKEN_AUTHORITY_URL and WECHAT_TOKEN_AUTHORITY_KEY must be set together")
if WECHAT_TOKEN_AUTHORITY_URL:
    _authority = urlsplit(WECHAT_TOKEN_AUTHORITY_URL)
    if _authority.scheme not in ("http", "https") or not _authority.hostname or _authority.path:
        raise ImproperlyConfigured("WECHAT_TOKEN_AUTHORITY_URL must be an http:// or https:// base URL, without a path")
# Views of the authorization page and of its callback per client address (each costs WeChat calls).
AUTHORIZE_RATE_LIMIT = env.str("AUTHORIZE_RATE_LIMIT", default="20/min")
if not re.fullmatch(r"[0-9]+/[smhd][a-z]*", AUTHORIZE_RATE_LIMIT):
    raise ImproperlyConfigured(f"AUTHORIZE_RATE_LIMIT: {AUTHORIZE_RATE_LIMIT!r} is not a rate such as 20/min")
# The anonymous authorization pages call WeChat while the visitor waits, holding a web thread each: at most
# AUTHORIZE_CONCURRENCY of them at once per web process (keep it below gunicorn's threads, 4 in the image, so
# that the API and the push URLs always have threads), the next answered 503 "busy" with Retry-After at once;
# and the authorization page waits at most AUTHORIZE_WECHAT_TIMEOUT seconds for WeChat's answer.
AUTHORIZE_CONCURRENCY = env.int("AUTHORIZE_CONCURRENCY", default=2)
if AUTHORIZE_CONCURRENCY < 1:
    raise ImproperlyConfigured("AUTHORIZE_CONCURRENCY must be at least 1")
AUTHORIZE_WECHAT_TIMEOUT = env.float("AUTHORIZE_WECHAT_TIMEOUT", default=5.0)
# Public base URL of this service, used to build the authorization redirect_uri.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Apps --------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "django_celery_beat",
    # django-axes, named for staff (wxplatform/console/apps.py).
    "wxplatform.console.apps.AxesConsoleConfig",
    "csp",
    "wxplatform.apps.WxPlatformConfig",
    "wxplatform.component.apps.ComponentConfig",
    "tenants.apps.TenantsConfig",
    "wxplatform.authority.apps.AuthorityConfig",
    "webhooks.apps.WebhooksConfig",
    "drafts.apps.DraftsConfig",
    # The roof, last: its admin module is discovered after every app's (it unregisters one of the API-key
    # library's). Its admin templates override django.contrib.admin's through TEMPLATES' DIRS below.
    "wxplatform.console.apps.ConsoleConfig",
]
# The development commands (make run, release_check, the sandbox) come with the sandbox package, which a checkout
# has and the production image does not: installed where it can be imported, so the image needs no setting.
if importlib.util.find_spec("wxsandbox") is not None:
    INSTALLED_APPS += ["wxsandbox.devtools.apps.DevtoolsConfig"]

MIDDLEWARE = [
    "wxplatform.core.proxies.TrustedProxyMiddleware",
    "wxplatform.core.observability.RequestIdMiddleware",
    "wxplatform.core.observability.NulByteMiddleware",
    # Before anything reads the Host header (SecurityMiddleware's redirect, CommonMiddleware): probes by IP.
    "wxplatform.console.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The console-only ones (wxplatform/console/middleware.py) are the libraries' own, passing /api/v1/ and
    # /internal/ requests straight on: keys, not cookies, authenticate those, and they answer JSON. CSRF and
    # X-Frame-Options stay Django's own classes, which `check --deploy` looks for by name (DRF's views are
    # CSRF-exempt already, and the header costs nothing).
    "wxplatform.console.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "wxplatform.console.middleware.AuthenticationMiddleware",
    "wxplatform.admin.AdminQueryGuardMiddleware",
    "wxplatform.console.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wxplatform.console.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "wxplatform.console.urls"
WSGI_APPLICATION = "wxplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "wxplatform" / "console" / "templates"],
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

# --- Database ----------------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every atomic block take SQLite's write lock up front, so that the "lock the row,
    # check again, then write" pattern used for token refreshes is single-flight here too.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A `SELECT 1` before a reused connection's first query in each request (Django's query log does not show
    # it): a connection PostgreSQL or a pooler closed is replaced instead of failing that request with a 503.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Seconds to wait for a new connection (libpq counts it per address and takes 2 at least). Below WeChat's 5 s,
    # so that a push meeting a database host that stopped answering is still answered (503) in time.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", 3)
# Behind a pooler in transaction mode (pgbouncer `pool_mode = transaction`) each transaction may run on another
# server connection, so nothing may outlive one: no server-side cursors (a named cursor lives until it is
# closed; .iterator() then fetches its chunks client-side), no prepared statements (psycopg prepares a query run
# 5 times on the server connection of the moment, should server-side binding ever be turned on). The code holds
# no other session state (no advisory locks, SET, LISTEN or temporary tables: docs/deploy/pgbouncer.md).
DATABASE_TRANSACTION_POOLING = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
if DATABASE_TRANSACTION_POOLING and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
# Lets parallel test runs on one server use distinct test databases. A SQLite test database is a file, so
# that a Celery worker started by the tests sees the same data.
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache, rate limits ---------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Prefix for every Redis key and queue name this deployment owns, so that several environments (or
# parallel test runs) can share one Redis.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="wxp")
# Every connection to Redis (broker, cache, rate limits, probes) gives up after these many seconds, so that a
# Redis outage costs a request seconds, never minutes (wxplatform/core/redis_client.py).
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=2.0)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
# Redis Sentinel (docs/deploy/redis-sentinel.md): the sentinels' addresses (host:port, comma-separated) and the
# name they monitor the master under. Every connection (broker, cache, rate limits, probes) then asks the
# sentinels for the current master, and follows a failover. REDIS_URL is optional then; when set, only its
# password and database number are used (its host and port are not). REDIS_SENTINEL_PASSWORD: the sentinels'
# own password (their requirepass), if they have one.
REDIS_SENTINELS: list[tuple[str, int]] = []
for _sentinel in env.list("REDIS_SENTINELS", default=[]):
    _host, _sep, _port = _sentinel.strip().rpartition(":")
    if not _host or not _port.isdigit() or not 0 < int(_port) < 65536:
        raise ImproperlyConfigured(f"REDIS_SENTINELS: {_sentinel!r} is not host:port")
    REDIS_SENTINELS.append((_host.strip("[]"), int(_port)))
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="").strip()
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_SENTINELS and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the sentinels monitor")
if REDIS_SENTINELS and not REDIS_URL:
    # The host of this URL names the master; the address comes from the sentinels.
    REDIS_URL = f"redis://{REDIS_SENTINEL_MASTER}/0"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT},
        }
    }
    if REDIS_SENTINELS:
        # Django builds the cache's pool with pool_class.from_url(LOCATION, **OPTIONS).
        CACHES["default"]["OPTIONS"]["pool_class"] = "wxplatform.core.redis_client.SentinelPool"
else:
    # Shared by every process on this machine, unlike the per-process local-memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery ------------------------------------------------------------------------------------------
_BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=10.0)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT = "wxplatform.core.broker:Transport"
    if REDIS_SENTINELS:
        # kombu's Sentinel transport: one sentinel:// URL per sentinel, ';'-separated; the first carries the
        # master's password and database number (from REDIS_URL). The master's name is a transport option.
        _redis = urlsplit(REDIS_URL)
        _auth = f"{_redis.username or ''}:{_redis.password}@" if _redis.password else ""
        _db = _redis.path.strip("/") or "0"
        CELERY_BROKER_URL = ";".join(
            f"sentinel://{_auth}{f'[{host}]' if ':' in host else host}:{port}/{_db}" for host, port in REDIS_SENTINELS
        )
        CELERY_BROKER_TRANSPORT = "wxplatform.core.broker:SentinelTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # An unacknowledged task (its worker died) is handed out again after this many seconds. It must
        # exceed the hard time limit, or a slow task would run twice at once.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900),
        # How often each worker looks for such tasks (kombu's default scans only every ~100 s, so a task
        # of a killed worker could wait that long after its visibility timeout). One cheap ZRANGE per sweep.
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
        "unacked_restore_throttle": 1,
        "global_keyprefix": f"{REDIS_KEY_PREFIX}:",
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        # A worker whose host was cut off (link down, nobody told) otherwise blocks on its broker socket until
        # TCP's retransmission backoff gets a packet through, a minute or more after the link is back, and
        # meanwhile enforces no time limit. With a timeout the command fails, Celery reconnects (it retries
        # the broker connection for ever) and consumes again as soon as the network is back
        # (tests/cluster/test_node_cut_off.py). Above kombu's 1 s BRPOP, so an idle queue is no error.
        "socket_timeout": _BROKER_SOCKET_TIMEOUT,
        "socket_keepalive": True,
        # Linux: bytes the peer has not acknowledged for as long end the connection (TCP_USER_TIMEOUT). Without it
        # a command written while the link was down (the BRPOP that asks for the next task) stayed in the kernel
        # and was retransmitted after the link came back, ~50 s later by TCP's backoff, even after kombu had
        # dropped that connection as stale: Redis then popped a task and answered a socket that was closed, and
        # the task was lost (2 runs of 2 of tests/cluster/test_node_cut_off.py lost a chain of 4 chunks).
        "socket_keepalive_options": (
            {socket.TCP_USER_TIMEOUT: int(_BROKER_SOCKET_TIMEOUT * 1000)} if hasattr(socket, "TCP_USER_TIMEOUT") else {}
        ),
    }
    if REDIS_SENTINELS:
        CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
        # Asking the sentinels is bounded like every other Redis connection.
        CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {
            "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            **({"password": REDIS_SENTINEL_PASSWORD} if REDIS_SENTINEL_PASSWORD else {}),
        }
else:
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport needs no host; naming one keeps it from warning about it on every connect.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast (remote control) state; kombu's default is a folder in the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
# Web processes (wsgi.py, asgi.py) publish with one attempt bounded by this many seconds (connect and each
# command) and no retries, so that a broker outage costs a request well under WeChat's 5 s; the work is
# recorded in the database first and swept into the queue when the broker returns.
WEB_BROKER_TIMEOUT = env.float("WEB_BROKER_TIMEOUT", default=0.5)
# Empty counts as unset: .env.example (and the Kubernetes ConfigMap) carry `CELERY_QUEUE=`, which would
# otherwise name the queue "" (workers, KEDA and the status page then watch a queue nobody uses).
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="") or f"{REDIS_KEY_PREFIX}-default"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged when it ends, so one whose worker dies is handed out again (tasks are safe to run
# twice). With acks_late the messages a worker runs stay unacknowledged, so a prefetch multiplier of 1 caps
# what it holds at one per pool slot: nothing waits in one worker behind a long task while another idles,
# and a killed worker takes at most `concurrency` tasks down with it, each back after the visibility timeout.
# (Countdown tasks are held apart from this cap; each stays unacknowledged from its fetch, so a countdown
# plus the time limit must stay below the visibility timeout: tests/production/test_celery_production.py.)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The prefork pool, with result pipes a failed task's traceback fits in (wxplatform/core/prefork.py).
CELERY_WORKER_POOL = "wxplatform.core.prefork:TaskPool"
# Events are off (Celery's defaults, stated): nothing here reads them (no flower, no `celery events`; metrics
# come from task signals in each process). Workers run with --without-gossip --without-mingle
# --without-heartbeat for the same reason (docker-compose.yml, deploy/kubernetes; docs/celery.md).
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# The worker's event loop enforces both limits, and one broker command (an ack to a Redis that went silent) can
# hold that loop for up to the broker's socket timeout. If the hard limit falls due while it is held, both fall
# due at once: the task gets no time to end cleanly, and its process is killed perhaps mid-way through writing
# its result, which celery 5.7 cannot read past ("Unrecoverable error": tests/cluster/test_node_cut_off.py).
_time_limit_gap = CELERY_TASK_TIME_LIMIT - CELERY_TASK_SOFT_TIME_LIMIT
if REDIS_URL and _BROKER_SOCKET_TIMEOUT >= _time_limit_gap:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_SOCKET_TIMEOUT ({_BROKER_SOCKET_TIMEOUT:g} s) must be shorter than the time between "
        f"CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT ({_time_limit_gap} s)"
    )
# `manage.py worker_alive` fails when the worker has taken or finished no task (nor its probe's ping) for this
# many seconds. Default: the hard time limit plus a minute, since a worker whose every slot is busy takes
# nothing until a task ends, and the hard limit ends one at the latest (wxplatform/core/liveness.py).
WORKER_LIVENESS_MAX_AGE = env.int("WORKER_LIVENESS_MAX_AGE", default=CELERY_TASK_TIME_LIMIT + 60)
# Results are not needed: job state that users ask about is stored in our own tables.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# On a lost broker connection the running acks_late tasks are cancelled and handed out again. With
# celery/kombu 5.7.0 a connection lost with a task in flight killed the worker; the Redis transport is
# patched for it (wxplatform/core/broker.py, CELERY_BROKER_TRANSPORT above).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Workers and beat log through LOGGING below (the JSON formatter, request ids, redaction), not Celery's own
# plain-text handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# One active beat per environment: django-celery-beat's DatabaseScheduler behind a lease in Redis, so that a
# second beat (a rollout, a second host) stands by instead of sending every entry again (wxplatform/core/beat.py).
# The holder renews the lease every third of BEAT_LEASE_SECONDS; a standby takes over when it lapses.
CELERY_BEAT_SCHEDULER = "wxplatform.core.beat:SingleBeatScheduler"
BEAT_LEASE_SECONDS = env.float("BEAT_LEASE_SECONDS", default=30.0)
# Each sent entry's last run time is written at once, so a beat taking over sends nothing the last one sent.
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TIMEZONE = "UTC"

# --- Auth, i18n, static ------------------------------------------------------------------------------
# django-axes throttles the console login: after AXES_FAILURE_LIMIT failures for one username from one
# client address (the address behind TRUSTED_PROXIES), that pair is locked out for AXES_COOLOFF_MINUTES
# (429). The merchant API authenticates keys, not users, and is not concerned.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "wxplatform.core.proxies.client_address"
AXES_RESET_ON_SUCCESS = True
# The lockout page in the console's look and the visitor's language (axes's own is an English sentence).
AXES_LOCKOUT_CALLABLE = "wxplatform.console.views.login_locked_out"
# No banner in the log of every process and command at start-up (make run, manage.py, workers).
AXES_VERBOSE = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# One date and time format on every page, in both languages (wxplatform/formats).
FORMAT_MODULE_PATH = ["wxplatform.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# Reverse proxies (CIDRs) in front of the service. Only from these are X-Forwarded-For (the client address of
# the per-address rate limits) and X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER) believed; from anyone else
# wxplatform.core.proxies.TrustedProxyMiddleware drops them. gunicorn trusts no one (gunicorn.conf.py), so this is
# the only list.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _network in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_network!r} is not a network (CIDR)") from None

SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Believed only from TRUSTED_PROXIES: wxplatform.core.proxies.TrustedProxyMiddleware drops it from anyone else.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only, behind settings that .env.example turns on for production (off for local use over HTTP).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes from elsewhere than HEALTH_CHECK_NETWORKS (answered before this) may come over plain HTTP too.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Content-Security-Policy (django-csp) on every page, the admin and the API docs included: everything is
# served from this origin (the docs' assets come from drf-spectacular-sidecar, their start-up script from
# SpectacularSwaggerSplitView rather than inline). Inline style attributes remain (admin widgets, charts);
# avatars are WeChat's images; Redoc and Swagger UI start web workers from blob: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# WeChat pushes are small; a larger body is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- Logging -----------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "wxplatform.core.observability.RequestIdFilter"},
        "redact": {"()": "wxplatform.core.observability.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "wxplatform.core.observability.RedactingJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "console": {"format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "console" if DEBUG else "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        # urllib3 logs full URLs, and WeChat puts tokens in the query string.
        "urllib3": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}

# A verified push older (or newer) than this many seconds is refused as a replay.
WECHAT_PUSH_MAX_AGE = env.int("WECHAT_PUSH_MAX_AGE", default=1800)

# --- Reconciliation with WeChat's authorizer list (tenants app) -------------------------------------
# api_get_authorizer_info / openapi/quota/get calls in flight during a reconciliation pass (a thread pool
# over the client's keep-alive connections, which hold at most 64).
RECONCILE_CONCURRENCY = env.int("RECONCILE_CONCURRENCY", default=16)

# WeChat's published full-release test accounts (docs/wechat/message-url.md#test-accounts): the five Official
# Accounts and the five Mini Programs. Their messages get the release test's answers; they are never merchants.
WECHAT_RELEASE_TEST_APPIDS = env.list(
    "WECHAT_RELEASE_TEST_APPIDS",
    default=[
        "wx570bc396a51b8ff8",
        "wx9252c5e0bb1836fc",
        "wx8e1097c5bc82cde9",
        "wx14550af28c71a144",
        "wxa35b9c23cfe664eb",
        "wxd101a85aa106f53e",
        "wxc39235c15087f6f3",
        "wx7720d01d4b2a4500",
        "wx05d483572dcd5d8b",
        "wx5910277cae6fd970",
    ],
)
# Pushes to both WeChat URLs are logged as received and deleted after this many days (beat prunes them).
PUSH_LOG_RETENTION_DAYS = env.int("PUSH_LOG_RETENTION_DAYS", default=14)
# Rejected pushes (bad signature, garbage) anyone can send: at most this many are logged per minute, with
# their body cut to PUSH_LOG_REJECTED_BODY_BYTES; the rest are only counted.
PUSH_LOG_REJECTED_PER_MINUTE = env.int("PUSH_LOG_REJECTED_PER_MINUTE", default=60)
PUSH_LOG_REJECTED_BODY_BYTES = env.int("PUSH_LOG_REJECTED_BODY_BYTES", default=2048)

# --- Draft-count sync (drafts app) -------------------------------------------------------------------
# Tenants per chunk task of a scheduled run, and WeChat calls in flight per chunk (aiohttp fan-out).
DRAFT_SYNC_CHUNK_SIZE = env.int("DRAFT_SYNC_CHUNK_SIZE", default=500)
DRAFT_SYNC_CONCURRENCY = env.int("DRAFT_SYNC_CONCURRENCY", default=128)
# Chunks of one run queued at a time; each finished chunk queues the next, so that on-demand jobs never
# wait behind a whole run's worth of chunks in the queue.
DRAFT_SYNC_CHUNKS_IN_FLIGHT = env.int("DRAFT_SYNC_CHUNKS_IN_FLIGHT", default=8)
# An unchanged count still gets a snapshot this often, so that the history has no unexplained gaps. Daily: at a
# million accounts the heartbeat, not the changes, makes most of the history (docs/performance.md).
DRAFT_SNAPSHOT_HEARTBEAT_HOURS = env.float("DRAFT_SNAPSHOT_HEARTBEAT_HOURS", default=24.0)
# Snapshots older than this many days are deleted by the daily prune (drafts.prune); 0 keeps them all.
DRAFT_SNAPSHOT_RETENTION_DAYS = env.int("DRAFT_SNAPSHOT_RETENTION_DAYS", default=0)
if DRAFT_SNAPSHOT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(f"DRAFT_SNAPSHOT_RETENTION_DAYS: {DRAFT_SNAPSHOT_RETENTION_DAYS!r} must be 0 or more")
# draft/count allows 1000 calls per account per day (docs/wechat/quota.md); the day starts at midnight in this zone
# (the reset time is undocumented, docs/wechat/open-questions.md#quota-reset-time).
DRAFT_QUOTA_DAILY_LIMIT = env.int("DRAFT_QUOTA_DAILY_LIMIT", default=1000)
DRAFT_QUOTA_TIMEZONE = env.str("DRAFT_QUOTA_TIMEZONE", default="Asia/Shanghai")
# Shares of the daily quota that scheduled and on-demand syncs may spend. The rest is left to the
# merchant's own tools, which draw on the same per-account quota
# (docs/wechat/flow.md#calling-on-behalf-of-an-authorizer).
DRAFT_QUOTA_SCHEDULE_SHARE = env.float("DRAFT_QUOTA_SCHEDULE_SHARE", default=0.8)
DRAFT_QUOTA_ON_DEMAND_SHARE = env.float("DRAFT_QUOTA_ON_DEMAND_SHARE", default=0.95)
# Others (other third parties, the merchant's own tools) using more than this share of an account's daily draft/count
# quota is shown on the status page and counted in wxp_draft_quota_others_over_share (alert WxpQuotaUsedByOthers).
DRAFT_QUOTA_OTHERS_ALERT_SHARE = env.float("DRAFT_QUOTA_OTHERS_ALERT_SHARE", default=0.5)
# A sync requested within this many seconds of the last successful fetch is answered from storage.
DRAFT_SYNC_MIN_INTERVAL = env.float("DRAFT_SYNC_MIN_INTERVAL", default=60.0)
# Platform-wide cap on draft/count calls per second across all workers (Redis token bucket; without
# REDIS_URL each process enforces it on its own). BURST: calls that may start at once after a quiet spell.
DRAFT_SYNC_RATE_LIMIT = env.float("DRAFT_SYNC_RATE_LIMIT", default=3000.0)
DRAFT_SYNC_RATE_BURST = env.int("DRAFT_SYNC_RATE_BURST", default=1000)
# Retryable failures (-1, 45011, transport): attempts per tenant within one chunk or job, and the capped
# exponential backoff between them (seconds, with jitter).
DRAFT_SYNC_MAX_ATTEMPTS = env.int("DRAFT_SYNC_MAX_ATTEMPTS", default=3)
DRAFT_SYNC_BACKOFF_BASE = env.float("DRAFT_SYNC_BACKOFF_BASE", default=0.5)
DRAFT_SYNC_BACKOFF_MAX = env.float("DRAFT_SYNC_BACKOFF_MAX", default=8.0)
# No scheduled run starts while the previous one is unfinished, unless it started this many seconds ago
# (then it is taken as stuck, e.g. a chunk lost while the broker was down).
DRAFT_SYNC_RUN_TIMEOUT = env.float("DRAFT_SYNC_RUN_TIMEOUT", default=1800.0)
# A run none of whose chunks finished for this many seconds has lost its chunk messages (a message published in
# the moment of a Redis failover, docs/deploy/redis-sentinel.md): the minute sweep queues its next chunks again.
# Above the chunk task's soft time limit, so that a chunk still working is never taken for a lost one.
DRAFT_SYNC_STALL_TIMEOUT = env.float("DRAFT_SYNC_STALL_TIMEOUT", default=600.0)
if DRAFT_SYNC_STALL_TIMEOUT <= 0:
    raise ImproperlyConfigured(f"DRAFT_SYNC_STALL_TIMEOUT: {DRAFT_SYNC_STALL_TIMEOUT!r} must be more than 0")
# An on-demand job whose worker went silent this many seconds ago may be taken over by another.
DRAFT_SYNC_JOB_LEASE = env.float("DRAFT_SYNC_JOB_LEASE", default=120.0)
# Per-account polling cadence of scheduled runs (docs/polling.md): an account whose draft box has been quiet for
# T is polled again after T * DRAFT_POLL_QUIET_FRACTION, never sooner than DRAFT_POLL_MIN_INTERVAL nor later than
# DRAFT_POLL_MAX_INTERVAL (seconds), and never more often than its scheduled quota share allows.
DRAFT_POLL_MIN_INTERVAL = env.float("DRAFT_POLL_MIN_INTERVAL", default=900.0)
DRAFT_POLL_MAX_INTERVAL = env.float("DRAFT_POLL_MAX_INTERVAL", default=21600.0)
DRAFT_POLL_QUIET_FRACTION = env.float("DRAFT_POLL_QUIET_FRACTION", default=0.01)
# WeChat's events that the draft box changed (PUBLISHJOBFINISH, MASSSENDJOBFINISH: docs/wechat/draft-events.md) make
# the account's count read again: a burst of events within DRAFT_EVENT_DEBOUNCE seconds makes one read, that long
# after the first (so the read is queued with that countdown, which must stay far below the broker's visibility
# timeout), and at most DRAFT_EVENT_SYNC_RATE such reads per account (a rate such as 12/h).
DRAFT_EVENT_DEBOUNCE = env.float("DRAFT_EVENT_DEBOUNCE", default=1.0)
if not 0 < DRAFT_EVENT_DEBOUNCE <= 60:
    raise ImproperlyConfigured(f"DRAFT_EVENT_DEBOUNCE: {DRAFT_EVENT_DEBOUNCE!r} must be more than 0 and at most 60")
DRAFT_EVENT_SYNC_RATE = env.str("DRAFT_EVENT_SYNC_RATE", default="12/h")
if not re.fullmatch(r"[0-9]+/[smhd][a-z]*", DRAFT_EVENT_SYNC_RATE):
    raise ImproperlyConfigured(f"DRAFT_EVENT_SYNC_RATE: {DRAFT_EVENT_SYNC_RATE!r} is not a rate such as 12/h")
# Sync attempts, finished jobs and runs are deleted after this many days; snapshots are kept.
SYNC_ATTEMPT_RETENTION_DAYS = env.int("SYNC_ATTEMPT_RETENTION_DAYS", default=30)

# --- Merchant REST API (wxplatform/api) ------------------------------------------------------------------
# Swagger UI and Redoc assets are served from this app, never from a CDN.
INSTALLED_APPS += ["drf_spectacular_sidecar"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.TenantAPIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.authentication.HasTenant"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.authentication.APIKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_THROTTLE_RATE", default="600/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "wxplatform.api.errors.api_exception_handler",
    # Keys, not users: an unauthenticated request has no user at all (and needs no auth tables).
    "UNAUTHENTICATED_USER": None,
    # No OPTIONS metadata: every operation is described by the OpenAPI schema instead.
    "DEFAULT_METADATA_CLASS": None,
}
# A stored draft count older than this many seconds is reported with "stale": true.
API_DRAFT_COUNT_STALE_AFTER = env.int("API_DRAFT_COUNT_STALE_AFTER", default=7200)
# After a revocation the tenant's keys read its history only, for this many days, then expire.
API_KEY_REVOKED_GRACE_DAYS = env.int("API_KEY_REVOKED_GRACE_DAYS", default=30)
# last_used_at of an API key is written at most this often, so that reads stay read-only.
API_KEY_TOUCH_INTERVAL = env.int("API_KEY_TOUCH_INTERVAL", default=60)
# The token authority (wxplatform/authority): hand-outs are audited and the rows deleted after this many days;
# failed Service-Key authentications per client address are limited to this rate.
TOKEN_HANDOUT_RETENTION_DAYS = env.int("TOKEN_HANDOUT_RETENTION_DAYS", default=30)
SERVICE_KEY_FAILURE_RATE = env.str("SERVICE_KEY_FAILURE_RATE", default="20/min")
# Requests per valid service key: a service asks once per token expiry; a runaway loop in one of them is held to
# this (each hand-out writes an audit row) instead of taking the whole authority.
SERVICE_KEY_RATE = env.str("SERVICE_KEY_RATE", default="3000/min")
for _rate_name, _rate in (
    ("SERVICE_KEY_FAILURE_RATE", SERVICE_KEY_FAILURE_RATE),
    ("SERVICE_KEY_RATE", SERVICE_KEY_RATE),
):
    if not re.fullmatch(r"[0-9]+/[smhd][a-z]*", _rate):
        raise ImproperlyConfigured(f"{_rate_name}: {_rate!r} is not a rate such as 20/min")
# The schema and the docs page are written in the request's language: ?lang=zh-hans or ?lang=en (drf-spectacular
# overrides the language with it), else Accept-Language as for every answer; each language's docs link the other.
SPECTACULAR_SETTINGS: dict[str, object] = {
    "TITLE": _("wxplatform merchant API"),
    "DESCRIPTION": format_lazy(
        "{}\n\n[中文](/api/docs/?lang=zh-hans) · [English](/api/docs/?lang=en)",
        _(
            "Draft-box counts of your authorized WeChat Official Account. Authenticate every request with the "
            "header `Authorization: Api-Key <key>`. Every error has the body "
            '`{"error": {"code": "...", "message": "..."}}`; branch on `code`, show `message`. Every time is '
            "RFC 3339 in UTC with six fractional digits, e.g. `2026-01-01T08:30:00.000000Z`."
        ),
    ),
    "VERSION": "1.0.0",
    # Tag names stay English (generated clients name their classes after them); their descriptions are translated.
    "TAGS": [
        {
            "name": "draft count",
            "description": _("The draft-box count: stored, fetched afresh on request, history, quota."),
        },
        {"name": "account", "description": _("The account your key belongs to.")},
        {"name": "webhooks", "description": _("Changes pushed to your own URL instead of polling.")},
    ],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Each enum is named after its meaning, not after the first field that happened to use it.
    "ENUM_NAME_OVERRIDES": {
        "TenantStatusEnum": "tenants.models.TenantStatus",
        "EligibilityEnum": "tenants.models.Eligibility",
        "AccountKindEnum": "tenants.models.AccountKind",
        "JobStateEnum": "drafts.models.JobState",
        "SnapshotReasonEnum": "drafts.models.SnapshotReason",
        "SyncOutcomeEnum": "drafts.models.AttemptOutcome",
        "SyncTriggerEnum": "drafts.models.SyncTrigger",
        "WebhookEventTypeEnum": "tenants.models.EventType",
        "DeliveryStateEnum": "webhooks.models.DeliveryState",
    },
}

# --- Merchant webhooks (webhooks app) ----------------------------------------------------------------
# Targets must be https on a public address; true also allows http and private, loopback and link-local
# addresses (development, tests). The cloud metadata address 169.254.169.254 is refused whatever this says.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# Seconds one delivery may take (connect, send, answer); a slower receiver's try fails and is retried.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Deliveries in flight at once per worker task, and at most this many of them to any one endpoint.
WEBHOOK_CONCURRENCY = env.int("WEBHOOK_CONCURRENCY", default=32)
WEBHOOK_CONCURRENCY_PER_ENDPOINT = env.int("WEBHOOK_CONCURRENCY_PER_ENDPOINT", default=4)
# Failed tries are retried after capped exponential backoff with jitter (base·2^n, at most MAX seconds), until
# the event is this many hours old; then the delivery is marked failed.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=4 * 3600.0)
WEBHOOK_RETRY_HOURS = env.float("WEBHOOK_RETRY_HOURS", default=24.0)
# An endpoint whose every try failed for this many hours is disabled (the merchant re-enables it).
WEBHOOK_DISABLE_AFTER_HOURS = env.float("WEBHOOK_DISABLE_AFTER_HOURS", default=24.0)
# Endpoints one merchant account may have.
WEBHOOK_MAX_ENDPOINTS = env.int("WEBHOOK_MAX_ENDPOINTS", default=10)
# Finished deliveries (with their attempts) and dispatched events are deleted after this many days.
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)

# --- Metrics (/metrics, wxplatform/core/metrics.py) -------------------------------------------------------
# Who may scrape: a bearer token, and/or client networks (CIDRs, matched against REMOTE_ADDR). With neither
# set, /metrics answers 404 unless DEBUG is on. When both are set, a scrape must pass both.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (CIDR)") from None
# Counters of every process (gunicorn workers, Celery children) are summed from files in this directory;
# web and workers on one host must share it, and it should be emptied when the whole stack starts.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="") or str(VAR_DIR / "metrics")
