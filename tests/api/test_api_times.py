"""One form for every time the service hands to a machine (docs/reference.md "Times"): RFC 3339 in UTC with six
fractional digits and `Z`, e.g. `2026-01-01T00:00:00.000000Z`. Walked over real answers: every merchant API
endpoint that carries a time, a webhook body as a real receiver got it, the token authority's hand-outs, the
readiness probe, and the examples of the OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from drafts.models import SyncChunk, SyncTrigger
from drafts.rules import quota_day
from drafts.services import draft_count_chunk_sync, draft_count_run_start
from tenants.models import EventType, Tenant
from tests.authority.helpers import authorizer_url, component_url, platform_with_token
from tests.factories import api_headers, make_api_key, make_service_key, service_headers
from tests.fixtures.receiver import Receiver
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant
from tests.webhooks.helpers import run_until_settled, verified
from webhooks.models import Delivery
from webhooks.services import webhooks_run
from wxplatform.core.times import machine_time

pytestmark = pytest.mark.django_db

# The one form, and anything that looks like a time in any form (a date and an hour), which must then be it.
THE_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
INDEX = re.compile(r"\[[0-9]+\]")


def times_in(body: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(path, value) of every string in a JSON body that looks like a time."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield from times_in(value, f"{where}.{key}")
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from times_in(value, f"{where}[{index}]")
    elif isinstance(body, str) and LOOKS_LIKE_A_TIME.match(body):
        yield where, body


class Walk:
    """Every time seen, by the name of its field, and every one that is not in the one form."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.wrong: list[str] = []

    def check(self, name: str, body: Any) -> Any:
        for path, value in times_in(body):
            self.seen.add(name + INDEX.sub("[]", path))
            if not THE_FORM.fullmatch(value):
                self.wrong.append(f"{name}{path} = {value}")
        return body


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.content
    return response.json()


def test_the_formatter_writes_utc_with_six_fractional_digits_and_z() -> None:
    shanghai = timezone.get_default_timezone()

    assert machine_time(datetime(2026, 1, 1, 8, 0, tzinfo=shanghai)) == "2026-01-01T00:00:00.000000Z"
    assert machine_time(datetime(2026, 1, 1, 0, 0, 0, 482113, tzinfo=UTC)) == "2026-01-01T00:00:00.482113Z"
    with pytest.raises(ValueError, match="naive"):
        machine_time(datetime(2026, 1, 1))


def test_every_time_handed_to_a_machine_is_utc_with_z(
    client: Client, sync_settings: Sandbox, webhook_settings: Any, receiver: Receiver
) -> None:
    walk = Walk()
    sandbox = sync_settings
    tenant = sandbox_tenant(sandbox, draft_count=5)
    # A count fetched an hour ago that the sync finds changed: a real draft_count.changed event.
    Tenant.objects.filter(pk=tenant.pk).update(
        draft_count=5, draft_count_fetched_at=timezone.now() - timedelta(hours=1)
    )
    key = api_headers(make_api_key(tenant)[1])
    hook = ok(
        client.post(
            "/api/v1/webhooks",
            {"url": receiver.url(), "events": [EventType.DRAFT_COUNT_CHANGED]},
            content_type="application/json",
            **key,
        ),
        201,
    )
    walk.check("POST /webhooks", hook)
    sandbox.control.update_authorizer(tenant.authorizer_appid, draft_count=9)
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    for chunk_id in SyncChunk.objects.filter(run=run).values_list("pk", flat=True):
        draft_count_chunk_sync(chunk_id=chunk_id, chain=False)

    # The webhook: one failed try (a delivery with its next retry a minute later), then delivered.
    receiver.respond(500)
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 60
    webhooks_run(budget_seconds=5)
    walk.check("GET deliveries (pending)", ok(client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", **key)))
    Delivery.objects.update(next_attempt_at=timezone.now())
    run_until_settled()
    [*_, delivered] = receiver.requests
    walk.check("webhook body", verified(hook["secret"], delivered))
    walk.check("GET deliveries", ok(client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", **key)))
    for enabled in (False, True):
        patched = client.patch(
            f"/api/v1/webhooks/{hook['id']}", {"enabled": enabled}, content_type="application/json", **key
        )
        walk.check(f"PATCH /webhooks enabled={enabled}", ok(patched))
    walk.check("GET /webhooks", ok(client.get("/api/v1/webhooks", **key)))
    walk.check("GET /webhooks/id", ok(client.get(f"/api/v1/webhooks/{hook['id']}", **key)))

    # The merchant API's reads, with every optional time set.
    now = timezone.now()
    Tenant.objects.filter(pk=tenant.pk).update(
        last_error_code=45009,
        last_error_at=now - timedelta(minutes=5),
        paused_until=now + timedelta(hours=3),
        quota_day=quota_day(now),
        quota_daily_limit=1000,
        quota_wechat_used=300,
        quota_remain=700,
        quota_used_at_read=20,
        quota_read_at=now - timedelta(minutes=1),
    )
    walk.check("GET /tenant", ok(client.get("/api/v1/tenant", **key)))
    walk.check("GET /draft-count", ok(client.get("/api/v1/draft-count", **key)))
    walk.check("GET /quota", ok(client.get("/api/v1/quota", **key)))
    walk.check("GET /draft-count/history", ok(client.get("/api/v1/draft-count/history", **key)))
    Tenant.objects.filter(pk=tenant.pk).update(paused_until=None)
    sync = walk.check("POST /draft-count/sync", ok(client.post("/api/v1/draft-count/sync", **key), 202))
    walk.check("GET /draft-count/sync/id", ok(client.get(sync["job"]["url"], **key)))

    # The token authority's hand-outs and the readiness probe.
    platform_with_token()
    service = service_headers(make_service_key()[1])
    walk.check("GET component token", ok(client.get(component_url(), **service)))
    walk.check("GET authorizer token", ok(client.get(authorizer_url(tenant.authorizer_appid), **service)))
    walk.check("GET /readyz", client.get("/readyz").json())

    assert walk.wrong == []
    assert {
        "POST /webhooks.created_at",
        "GET deliveries (pending).results[].event_created_at",
        "GET deliveries (pending).results[].next_attempt_at",
        "GET deliveries (pending).results[].attempts[].at",
        "webhook body.created_at",
        "webhook body.data.fetched_at",
        "PATCH /webhooks enabled=False.disabled_at",
        "GET /webhooks[].updated_at",
        "GET /tenant.authorized_at",
        "GET /draft-count.fetched_at",
        "GET /draft-count.stale_at",
        "GET /draft-count.last_attempt_at",
        "GET /draft-count.last_error_at",
        "GET /draft-count.sync_paused_until",
        "GET /quota.read_at",
        "GET /draft-count/history.results[].fetched_at",
        "POST /draft-count/sync.job.requested_at",
        "GET /draft-count/sync/id.requested_at",
        "GET component token.expires_at",
        "GET authorizer token.expires_at",
    } <= walk.seen


def test_every_time_in_the_openapi_schema_has_an_example_in_the_one_form(client: Client) -> None:
    document = ok(client.get("/api/schema/", {"format": "json"}))

    fields = {
        f"{name}.{field}": schema.get("example")
        for name, component in document["components"]["schemas"].items()
        for field, schema in component.get("properties", {}).items()
        if schema.get("format") == "date-time"
    }
    assert len(fields) >= 20
    assert {field: example for field, example in fields.items() if not THE_FORM.fullmatch(example or "")} == {}
