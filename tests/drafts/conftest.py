"""Tenants that exist both here and in the sandbox's WeChat, with the tokens the sandbox issued them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from drafts.fetching import close_fetchers
from drafts.ratelimit import _limiter
from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from wxplatform.component.services import component_ticket_store

# Settings that keep the suite fast: short backoffs and timeouts, no minimum interval unless a test sets one.
FAST = {
    "DRAFT_SYNC_BACKOFF_BASE": 0.01,
    "DRAFT_SYNC_BACKOFF_MAX": 0.05,
    "DRAFT_SYNC_MIN_INTERVAL": 0.0,
    "WECHAT_READ_TIMEOUT": 2.0,
}


@pytest.fixture
def sync_settings(settings: Any, wechat_settings: Sandbox) -> Iterator[Sandbox]:
    """The sandbox as WeChat, with FAST settings; the per-process HTTP session and limiter start fresh."""
    for name, value in FAST.items():
        setattr(settings, name, value)
    close_fetchers()
    _limiter.cache_clear()
    yield wechat_settings
    close_fetchers()
    _limiter.cache_clear()


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for a worker subprocess: the same FAST settings as the test."""
    return {name: str(value) for name, value in FAST.items()} | extra


def sandbox_tenant(sandbox: Sandbox, *, draft_count: int = 0, **overrides: Any) -> Tenant:
    """An onboarded tenant: an authorized sandbox account and our row with its tokens."""
    account = sandbox.control.create_authorizer(authorized=True, draft_count=draft_count)
    return make_tenant(**(_tenant_fields(account) | overrides))


def sandbox_tenants(sandbox: Sandbox, count: int, *, draft_count: int | tuple[int, int] = 0) -> list[Tenant]:
    accounts = sandbox.control.bulk_create_authorizers(count, prefix="t", draft_count=draft_count)
    return Tenant.objects.bulk_create([Tenant(**_tenant_fields(account)) for account in accounts])


def _tenant_fields(account: dict[str, Any]) -> dict[str, Any]:
    return {
        "authorizer_appid": account["appid"],
        "account_kind": AccountKind.SERVICE,
        "func_ids": [1, 11],
        "status": TenantStatus.ACTIVE,
        "eligibility": Eligibility.ELIGIBLE,
        "access_token": account["authorizer_access_token"],
        "access_token_expires_at": timezone.now() + timedelta(seconds=account["expires_in"]),
        "refresh_token": account["authorizer_refresh_token"],
        "token_version": 1,
        "authorized_at": timezone.now(),
    }


def component_ready(sandbox: Sandbox) -> None:
    """The platform holds a verify ticket, so that it can get a component token and refresh tenant tokens."""
    ticket = sandbox.control.push_ticket()["ticket"]
    component_ticket_store(ticket=ticket, created_at=timezone.now())
