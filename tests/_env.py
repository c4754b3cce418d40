"""Loaded with `-p tests._env` before pytest-django reads settings: test secrets, production-like DEBUG off.

The WeChat values match the sandbox defaults (wxsandbox/config.py) so that pushes verify.
DATABASE_URL and REDIS_URL come from the caller (the Makefile points them at PostgreSQL and Redis).
"""

import atexit
import os
import shutil
import tempfile
import uuid

_DEFAULTS = {
    "DEBUG": "false",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789",
    "TOKEN_ENCRYPTION_KEYS": (
        "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=,b2xkLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTI="
    ),
    "WECHAT_COMPONENT_APPID": "wx0000sandbox0comp",
    "WECHAT_COMPONENT_APPSECRET": "sandbox-component-secret",
    "WECHAT_COMPONENT_TOKEN": "sandboxtoken",
    "WECHAT_COMPONENT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
    "SECURE_COOKIES": "false",
    "LANGUAGE_CODE": "en",
    # The per-address limit of the authorization pages: the suite visits them from 127.0.0.1 all the time;
    # the tests of the limit set their own.
    "AUTHORIZE_RATE_LIMIT": "100000/min",
    # Never a developer's `make run` environment (var/dev.env): the suite is configured here.
    "DEV_ENV_FILE": "",
}
# Redis keys and the Celery queue are namespaced per test session, so that parallel runs sharing one Redis
# (developers, CI) never see each other's tasks or cache entries. Worker subprocesses inherit it.
_DEFAULTS["REDIS_KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:10]}"
# Metrics files (prometheus_client multiprocess mode) per test session as well, for the same reason.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _DEFAULTS["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wxp-test-metrics-")
    atexit.register(shutil.rmtree, _DEFAULTS["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)
