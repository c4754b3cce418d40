"""A revoked authorization's API keys read the history only, expire after the grace period, and a
re-authorization (perhaps by a new owner of the account) never revives them (issue 18, Low 3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.test import Client
from django.utils import timezone

from tenants.models import TenantAPIKey
from tenants.services import tenant_revoke
from tests.factories import api_headers
from tests.fixtures.platform import LivePlatform
from tests.tenants.test_authorize import api_key_on, consent
from wxplatform.component.services import default_component

pytestmark = pytest.mark.django_db(transaction=True)


def test_revoked_keys_read_history_only_and_reauthorization_issues_a_new_first_key(
    ready_platform: LivePlatform, settings: Any
) -> None:
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[11])
    merchant = requests.Session()
    answer = consent(ready_platform, account["appid"], push=False, browser=merchant)
    old_key = api_key_on(merchant.get(answer["redirect_url"], timeout=30))
    assert old_key is not None

    tenant_revoke(component_id=default_component().pk, authorizer_appid=account["appid"])
    api = Client()
    history = api.get("/api/v1/draft-count/history", **api_headers(old_key))
    profile = api.get("/api/v1/tenant", **api_headers(old_key))
    count = api.get("/api/v1/draft-count", **api_headers(old_key))

    assert history.status_code == 200
    assert (profile.status_code, profile.json()["error"]["code"]) == (403, "api_key_history_only")
    assert (count.status_code, count.json()["error"]["code"]) == (403, "api_key_history_only")
    stored = TenantAPIKey.objects.get()
    expected = timezone.now() + timedelta(days=settings.API_KEY_REVOKED_GRACE_DAYS)
    assert stored.expiry_date is not None and abs((stored.expiry_date - expected).total_seconds()) < 60

    # The account is authorized again (a new owner, say): a new first key, the old one stays limited.
    new_owner = requests.Session()
    again = consent(ready_platform, account["appid"], push=False, browser=new_owner)
    new_key = api_key_on(new_owner.get(again["redirect_url"], timeout=30))

    assert new_key is not None and new_key != old_key
    assert api.get("/api/v1/tenant", **api_headers(new_key)).status_code == 200
    assert api.get("/api/v1/tenant", **api_headers(old_key)).status_code == 403

    # After the grace period the old key is refused altogether.
    TenantAPIKey.objects.filter(history_only=True).update(expiry_date=timezone.now() - timedelta(seconds=1))
    expired = api.get("/api/v1/draft-count/history", **api_headers(old_key))
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "api_key_expired")
