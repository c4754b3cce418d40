"""GET /api/v1/draft-count renders its answer once per change and serves those bytes after: the answer must
be exactly DRF's own, and change with everything it depends on, the clock included."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date
from rest_framework.renderers import JSONRenderer

from drafts.api.serializers import draft_count_representation
from drafts.selectors import draft_count_current
from tenants.models import Tenant
from tests.factories import api_headers, make_api_key, make_tenant

pytestmark = pytest.mark.django_db


def key_for(tenant: Tenant) -> dict[str, str]:
    return api_headers(make_api_key(tenant)[1])


def wait_until(moment: Any) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def test_the_served_bytes_are_drfs_own_rendering(client: Client) -> None:
    tenant = make_tenant(draft_count=5, draft_count_fetched_at=timezone.now(), last_error_code=45009)
    headers = key_for(tenant)

    first, second = (client.get("/api/v1/draft-count", **headers) for _ in range(2))

    expected = JSONRenderer().render(draft_count_representation(draft_count_current(tenant=tenant)))
    assert first.content == second.content == expected
    assert first["Content-Type"] == second["Content-Type"] == "application/json"
    assert {name: first[name] for name in ("ETag", "Last-Modified", "Cache-Control", "Vary")} == {
        name: second[name] for name in ("ETag", "Last-Modified", "Cache-Control", "Vary")
    }


def test_a_change_of_the_tenant_changes_the_answer(client: Client) -> None:
    tenant = make_tenant(draft_count=5, draft_count_fetched_at=timezone.now())
    headers = key_for(tenant)
    before = client.get("/api/v1/draft-count", **headers)

    tenant.draft_count = 6
    tenant.save(update_fields=["draft_count"])
    after = client.get("/api/v1/draft-count", **headers)

    assert (before.json()["total_count"], after.json()["total_count"]) == (5, 6)
    assert before["ETag"] != after["ETag"]


def test_the_count_turns_stale_on_time_without_any_write(client: Client, settings: Any) -> None:
    settings.API_DRAFT_COUNT_STALE_AFTER = 60
    fetched_at = timezone.now() - timedelta(seconds=59)
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=fetched_at))
    fresh = client.get("/api/v1/draft-count", **headers)
    assert fresh.json()["stale"] is False

    wait_until(fetched_at + timedelta(seconds=60))
    stale = client.get("/api/v1/draft-count", **headers)

    assert stale.json()["stale"] is True
    assert stale["Last-Modified"] == http_date((fetched_at + timedelta(seconds=60)).timestamp())
    assert stale["ETag"] != fresh["ETag"]


def test_a_quota_pause_disappears_when_it_ends(client: Client) -> None:
    paused_until = timezone.now() + timedelta(seconds=1)
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=timezone.now(), paused_until=paused_until))
    assert client.get("/api/v1/draft-count", **headers).json()["sync_paused_until"] is not None

    wait_until(paused_until)

    assert client.get("/api/v1/draft-count", **headers).json()["sync_paused_until"] is None


def test_the_staleness_setting_applies_at_once(client: Client, settings: Any) -> None:
    settings.API_DRAFT_COUNT_STALE_AFTER = 3600
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=timezone.now() - timedelta(minutes=5)))
    assert client.get("/api/v1/draft-count", **headers).json()["stale"] is False

    settings.API_DRAFT_COUNT_STALE_AFTER = 60

    assert client.get("/api/v1/draft-count", **headers).json()["stale"] is True


def test_each_language_and_media_type_has_its_own_answer(client: Client) -> None:
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=timezone.now()))

    english = client.get("/api/v1/draft-count", HTTP_ACCEPT_LANGUAGE="en", **headers)
    chinese = client.get("/api/v1/draft-count", HTTP_ACCEPT_LANGUAGE="zh-hans", **headers)
    indented = client.get("/api/v1/draft-count", HTTP_ACCEPT="application/json; indent=2", **headers)
    compact = client.get("/api/v1/draft-count", **headers)

    assert english["ETag"] != chinese["ETag"], "the ETag names the language"
    assert english.json() == chinese.json() == indented.json() == compact.json()
    assert indented.content == json.dumps(indented.json(), indent=2, ensure_ascii=False).encode()
    assert b"\n" not in compact.content


def test_a_not_modified_answer_from_the_rendered_copy_has_no_body(client: Client) -> None:
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=timezone.now()))
    first = client.get("/api/v1/draft-count", **headers)

    again = client.get("/api/v1/draft-count", HTTP_IF_NONE_MATCH=first["ETag"], **headers)

    assert again.status_code == 304
    assert again.content == b""
    assert "Content-Type" not in again
    assert (again["ETag"], again["Last-Modified"]) == (first["ETag"], first["Last-Modified"])


def test_negotiation_answers_are_remembered_per_accept_header_but_refusals_never(client: Client) -> None:
    headers = key_for(make_tenant(draft_count=5, draft_count_fetched_at=timezone.now()))

    refused = [client.get("/api/v1/draft-count", HTTP_ACCEPT="application/xml", **headers) for _ in range(2)]
    accepted = [
        client.get("/api/v1/draft-count", HTTP_ACCEPT=accept, **headers)
        for accept in ("application/xml, application/json;q=0.5", "*/*", "application/json; indent=4", "*/*")
    ]
    by_format = client.get("/api/v1/draft-count?format=json", **headers)

    assert [r.status_code for r in refused] == [406, 406]
    assert [r.status_code for r in accepted] == [200, 200, 200, 200]
    assert [b"\n" in r.content for r in accepted] == [False, False, True, False]
    assert by_format.status_code == 200
