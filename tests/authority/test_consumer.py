"""Consumer mode: a second deployment (a subprocess with its own database, as staging would be) configured with
WECHAT_TOKEN_AUTHORITY_URL / _KEY gets every token from this one (the authority, a live server) and never calls
api_component_token, api_authorizer_token or api_start_push_ticket itself; draft/count it still calls at WeChat.
The settings are both or neither, checked at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

from tenants.models import Tenant, TenantStatus
from tests.factories import make_service_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, worker_env
from tests.fixtures.worker import ROOT
from wxplatform.component.services import component_access_token, default_component

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH_ENDPOINTS = (
    "/cgi-bin/component/api_component_token",
    "/cgi-bin/component/api_authorizer_token",
    "/cgi-bin/component/api_start_push_ticket",
)


def _admin_dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname=postgres"


@pytest.fixture
def consumer_database() -> Iterator[str]:
    """An empty database of the consumer deployment (its own, as staging's is): the DATABASE_URL to use."""
    if connection.vendor != "postgresql":
        pytest.skip("the second deployment's database is a PostgreSQL database")
    name = f"{connection.settings_dict['NAME']}_consumer"[:63]
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    s = connection.settings_dict
    yield f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_consumer(*, database_url: str, authority_url: str, key: str, accounts: list[dict[str, str]]) -> Any:
    env = {
        **os.environ,
        **worker_env(),
        "DJANGO_SETTINGS_MODULE": "wxplatform.settings",
        "DATABASE_URL": database_url,
        "WECHAT_API_BASE": django_settings.WECHAT_API_BASE,
        "WECHAT_TOKEN_AUTHORITY_URL": authority_url,
        "WECHAT_TOKEN_AUTHORITY_KEY": key,
        # Its own Redis namespace (locks, limits, queue), as a separate deployment has.
        "REDIS_KEY_PREFIX": f"{django_settings.REDIS_KEY_PREFIX}-consumer",
        "CELERY_QUEUE": f"{django_settings.REDIS_KEY_PREFIX}-consumer-default",
    }
    env.pop("TEST_DATABASE_NAME", None)
    result = subprocess.run(
        [sys.executable, "-m", "tests.authority.consumer_deployment"],
        cwd=ROOT,
        env=env,
        input=json.dumps(accounts),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert key not in result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_consumer_deployment_syncs_with_the_authoritys_tokens_and_refreshes_none_itself(
    sync_settings: Sandbox, live_server: Any, consumer_database: str
) -> None:
    sandbox = sync_settings
    component_ready(sandbox)
    component_token = component_access_token(default_component())
    first = sandbox_tenant(sandbox, draft_count=7)
    second = sandbox_tenant(sandbox, draft_count=12)
    gone = sandbox_tenant(sandbox, draft_count=3)
    Tenant.objects.filter(pk=gone.pk).update(status=TenantStatus.REVOKED, access_token="", refresh_token="")
    _key, raw = make_service_key(name="staging")
    # The authority is warm (its tokens are fresh), so that any refresh counted below would be the consumer's.
    sandbox.control.reset_counters()

    outcome = run_consumer(
        database_url=consumer_database,
        authority_url=live_server.url,
        key=raw,
        accounts=[{"appid": t.authorizer_appid, "refresh_token": t.refresh_token} for t in (first, second, gone)],
    )

    counters = sandbox.control.counters()["endpoints"]
    assert {path: counters.get(path, {}).get("calls", 0) for path in REFRESH_ENDPOINTS} == dict.fromkeys(
        REFRESH_ENDPOINTS, 0
    )
    assert counters["/cgi-bin/draft/count"]["calls"] == 2
    tenants = outcome["tenants"]
    assert tenants[first.authorizer_appid] == {"status": "active", "draft_count": 7, "access_token": first.access_token}
    assert tenants[second.authorizer_appid]["draft_count"] == 12
    assert tenants[second.authorizer_appid]["access_token"] == second.access_token
    # Revoked at the authority: revoked in the copy too, without a token.
    assert tenants[gone.authorizer_appid] == {"status": "revoked", "draft_count": None, "access_token": ""}
    assert outcome["component_token"] == component_token
    assert outcome["has_ticket"] is False
    # The authority's own tokens are untouched.
    assert Tenant.objects.get(pk=first.pk).token_version == first.token_version


@pytest.mark.parametrize(
    "env",
    [
        {"WECHAT_TOKEN_AUTHORITY_URL": "https://authority.internal"},
        {"WECHAT_TOKEN_AUTHORITY_KEY": "abc.def"},
    ],
)
def test_consumer_settings_are_both_or_neither(env: dict[str, str]) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_TOKEN_AUTHORITY_")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**base, **env, "DJANGO_SETTINGS_MODULE": "wxplatform.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "WECHAT_TOKEN_AUTHORITY_URL and WECHAT_TOKEN_AUTHORITY_KEY must be set together" in result.stderr
    assert "abc.def" not in result.stderr


def test_the_authority_url_must_be_a_base_url() -> None:
    env = {"WECHAT_TOKEN_AUTHORITY_URL": "ftp://authority.internal/x", "WECHAT_TOKEN_AUTHORITY_KEY": "abc.def"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "wxplatform.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "WECHAT_TOKEN_AUTHORITY_URL must be an http:// or https:// base URL" in result.stderr
