"""Hostile input at every merchant API endpoint: requests generated from the OpenAPI schema (valid and invalid,
by schemathesis, with the API's own fixtures from tests/api/test_api_fuzz.py) and hostile credentials (by
Hypothesis). No request gets a 5xx; a refused request, and any read, changes no table at all; a sync request
changes only the sync bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tenants.models import TenantAPIKey
from tests.api.test_api_fuzz import api_schema as api_schema
from tests.api.test_api_fuzz import key_headers as key_headers
from tests.chaos.harness import Row, changed_tables, database_fingerprint, record, scaled
from tests.factories import make_api_key, make_tenant

pytestmark = [pytest.mark.chaos, pytest.mark.django_db]

# What a successful sync request may write: its job (or the job it joined) and, when answered from storage,
# the attempt. Nothing else, and nothing at all when the request is refused.
SYNC_BOOKKEEPING = {"drafts_syncjob", "drafts_syncattempt"}
API_OPERATIONS = [
    ("GET", "/api/v1/tenant"),
    ("GET", "/api/v1/draft-count"),
    ("GET", "/api/v1/draft-count/history"),
    ("POST", "/api/v1/draft-count/sync"),
    ("GET", "/api/v1/draft-count/sync/00000000-0000-4000-8000-000000000000"),
]

_sent: dict[str, list[int]] = {"schema": [], "keys": []}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    for name, scenario in (("schema", "API fuzz (schemathesis)"), ("keys", "API hostile credentials (Hypothesis)")):
        if _sent[name]:
            statuses = _sent[name]
            record(
                Row(
                    scenario=scenario,
                    requests=len(statuses),
                    faults=f"{len(statuses)} generated",
                    correct=None,
                    total=None,
                    lost=0,
                    duplicated=0,
                    server_errors=sum(1 for s in statuses if s >= 500),
                )
            )


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=scaled(40, 400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_requests_get_no_5xx_and_change_nothing_they_should_not(
    case: schemathesis.Case, key_headers: dict[str, str]
) -> None:
    # The key was used a moment ago: its last_used_at is not written again within API_KEY_TOUCH_INTERVAL.
    TenantAPIKey.objects.update(last_used_at=timezone.now())
    case.headers = {**(case.headers or {}), **key_headers}
    before = database_fingerprint()

    response = case.call_wsgi()

    _sent["schema"].append(response.status_code)
    assert response.status_code < 500
    changed = changed_tables(before, database_fingerprint())
    if case.method.upper() == "POST" and response.status_code == 202:
        assert set(changed) <= SYNC_BOOKKEEPING
    else:
        assert changed == [], f"{case.method} {case.formatted_path} -> {response.status_code} changed {changed}"


_AUTHORIZATION = st.one_of(
    st.text(max_size=200),
    st.builds(lambda s: f"Api-Key {s}", st.text(max_size=100)),
    st.builds(lambda p, s: f"Api-Key {p}.{s}", st.text("abcdefghAB0123", max_size=10), st.text(max_size=60)),
    st.sampled_from(["Api-Key", "Api-Key ", "Bearer x", "Api-Key .", "Api-Key a.\x00b", "api-key " + "A" * 5000]),
)


def test_hostile_credentials_are_refused_and_change_nothing(client: Any) -> None:
    tenant = make_tenant(draft_count=3, draft_count_fetched_at=timezone.now())
    revoked, raw_revoked = make_api_key(tenant, revoked=True)
    _valid, raw_valid = make_api_key(tenant)
    prefix = raw_valid.partition(".")[0]
    before = database_fingerprint()

    @hypothesis_settings(
        max_examples=scaled(200, 2000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        operation=st.sampled_from(API_OPERATIONS),
        authorization=st.one_of(
            _AUTHORIZATION,
            # The right prefix with a wrong secret, and a revoked key: known to the database, still refused.
            st.builds(lambda s: f"Api-Key {prefix}.{s}", st.text("abcdefXYZ0123456789", min_size=1, max_size=40)),
            st.just(f"Api-Key {raw_revoked}"),
        ),
    )
    def check(operation: tuple[str, str], authorization: str) -> None:
        method, path = operation
        response = client.generic(method, path, HTTP_AUTHORIZATION=authorization)
        _sent["keys"].append(response.status_code)

        assert response.status_code in (401, 403), (authorization[:80], response.status_code)
        assert response.json()["error"]["code"] in {"not_authenticated", "authentication_failed", "api_key_revoked"}
        after = database_fingerprint()
        assert after == before, f"tables changed: {changed_tables(before, after)}"

    check()
    assert revoked.revoked
