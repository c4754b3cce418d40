"""Eligibility a merchant can act on: 61007 (this platform was not granted permission set 11) points to the
authorization page of the right platform; 48001 (the account itself may not use the draft APIs) says what the
account lacks and offers no page (docs/wechat/permissions.md#missing-permission-errors)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from drafts.models import SyncTrigger
from tenants.models import AccountKind, Eligibility, Tenant
from tests.api.test_api import error_of, key_for
from tests.drafts.test_sync import DRAFT_COUNT, sync_all
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant
from wxplatform.component.services import component_add

pytestmark = pytest.mark.django_db

AUTHORIZE = "http://127.0.0.1:8000/wechat/authorize"
SECOND = "wx2c2769f8efd9abc2"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def rejected(code: int, **overrides: Any) -> Tenant:
    return make_tenant(
        eligibility=Eligibility.REJECTED,
        eligibility_detail=f"WeChat refused draft/count ({code}).",
        last_error_code=code,
        draft_count=5,
        **overrides,
    )


@pytest.mark.parametrize("url", ["/api/v1/draft-count", "/api/v1/draft-count/sync"])
def test_61007_gives_the_authorization_page_that_grants_set_11_again(client: Client, url: str) -> None:
    tenant = rejected(61007)
    method = client.post if url.endswith("sync") else client.get

    response = method(url, **key_for(tenant))

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "tenant_ineligible"
    assert error["authorize_url"] == AUTHORIZE
    assert "not granted permission set 11 (material management)" in error["message"]
    assert "(WeChat errcode 61007)" in error["message"]
    assert AUTHORIZE in error["message"]


def test_61007_of_another_platform_names_that_platform_on_the_page(client: Client) -> None:
    platform = component_add(appid=SECOND, secret="s" * 32, token="second", aes_key=AES_KEY, name="Second")
    tenant = rejected(61007, component=platform)

    error = error_of(client.get("/api/v1/draft-count", **key_for(tenant)))

    assert error["authorize_url"] == f"{AUTHORIZE}?component={SECOND}"
    # The page it names is that platform's own authorization page.
    assert f"{reverse('tenants:authorize')}?component={SECOND}" in error["authorize_url"]


def test_a_set_missing_at_authorization_gives_the_page_too(client: Client) -> None:
    tenant = make_tenant(func_ids=[1, 7], eligibility=Eligibility.MISSING_PERMISSION, draft_count=1)

    error = error_of(client.get("/api/v1/draft-count", **key_for(tenant)))

    assert error["authorize_url"] == AUTHORIZE


@pytest.mark.parametrize(
    "tenant_of",
    [lambda: rejected(48001), lambda: make_tenant(account_kind=AccountKind.MINI_PROGRAM, eligibility="wrong_kind")],
)
def test_48001_says_what_the_account_lacks_and_offers_no_page(client: Client, tenant_of: Any) -> None:
    tenant = tenant_of()

    response = client.get("/api/v1/draft-count", **key_for(tenant))

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "tenant_ineligible"
    assert "authorize_url" not in error
    assert "(WeChat errcode 48001)" in error["message"]
    assert "Official Accounts (formerly subscription accounts) and Service Accounts" in error["message"]
    assert "verification has lapsed" in error["message"]
    assert "authorizing this platform again does not change it" in error["message"]
    assert "try again" not in error["message"].lower()


def test_the_refusals_are_in_chinese_too(client: Client) -> None:
    tenant = rejected(61007)

    # (The override puts the suite's language back afterwards: the request activates Chinese in this thread.)
    with translation.override("en"):
        response = client.get("/api/v1/draft-count", **key_for(tenant), HTTP_ACCEPT_LANGUAGE="zh-hans")

    error = error_of(response)
    assert "素材管理" in error["message"]
    assert "61007" in error["message"]
    assert error["authorize_url"] == AUTHORIZE


def test_set_11_withdrawn_on_wechat_ends_in_the_authorization_page_end_to_end(
    client: Client, admin_client: Client, sync_settings: Sandbox
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=2)
    # The merchant unticks set 11 for this platform on WeChat's side: WeChat answers 61007, not 48001.
    sync_settings.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])

    assert sync_all(SyncTrigger.SCHEDULE).failed == {61007: 1}

    error = error_of(client.get("/api/v1/draft-count", **key_for(tenant)))
    assert (error["code"], error["authorize_url"]) == ("tenant_ineligible", AUTHORIZE)
    assert "(WeChat errcode 61007)" in error["message"]
    page = admin_client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk])).content.decode()
    assert f'<a href="{AUTHORIZE}" id="reauthorize-link">' in page


def test_a_48001_from_wechat_ends_in_what_the_account_lacks_end_to_end(client: Client, sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=2)
    # What WeChat answers an Official Account whose verification lapsed, which the sandbox does not model
    # (docs/wechat/lifecycle.md#verification-lapses-and-48001): injected.
    sync_settings.control.set_faults(rate=1.0, kinds=[48001], endpoints=[DRAFT_COUNT])

    assert sync_all(SyncTrigger.SCHEDULE).failed == {48001: 1}

    error = error_of(client.get("/api/v1/draft-count", **key_for(tenant)))
    assert error["code"] == "tenant_ineligible" and "authorize_url" not in error
    assert "(WeChat errcode 48001)" in error["message"]


def test_account_kinds_carry_wechats_current_names() -> None:
    with translation.override("zh-hans"):
        names = (str(AccountKind.SUBSCRIPTION.label), str(AccountKind.SERVICE.label))
    assert (str(AccountKind.SUBSCRIPTION.label), str(AccountKind.SERVICE.label)) == (
        "Official Account (formerly subscription account)",
        "Service Account",
    )
    assert names == ("公众号（原订阅号）", "服务号")  # noqa: RUF001 - WeChat writes full-width brackets
