"""Schema-driven fuzzing: requests generated from /api/schema/ (valid and invalid ones), sent with a valid key
to an account that has data, never get a 5xx nor a response that breaks the schema (status code, headers,
content type, body)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import DataGenerationMethod
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.specs.openapi.schemas import BaseOpenAPISchema

from drafts.models import SyncJob, SyncTrigger
from tests.factories import api_headers, make_api_key, make_snapshot, make_tenant


@pytest.fixture
def api_schema(db: None, settings: Any) -> Iterator[BaseOpenAPISchema]:
    # Every generated request uses the same key; the per-key throttle is not what is under test here.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "100000/min"}}
    # As Django's test client does: the test's transaction must survive the end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.from_wsgi(
            "/api/schema/?format=json",
            WSGIHandler(),
            data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
        )
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def key_headers(db: None) -> dict[str, str]:
    """A key of an account with a count, history and a finished job, so that reads have something to show."""
    now = timezone.now()
    tenant = make_tenant(draft_count=12, draft_count_fetched_at=now - timedelta(hours=3))
    for hours in range(3):
        make_snapshot(tenant, total_count=10 + hours, fetched_at=now - timedelta(hours=3 + hours))
    SyncJob.objects.create(tenant=tenant, trigger=SyncTrigger.API, state="succeeded", total_count=12)
    _key, raw = make_api_key(tenant)
    return {"Authorization": api_headers(raw)["HTTP_AUTHORIZATION"]}


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_requests_get_no_5xx_and_conform_to_the_schema(
    case: schemathesis.Case, key_headers: dict[str, str]
) -> None:
    # On the case itself, so that schemathesis' ignored_auth check can replay it without the key (expecting 401).
    case.headers = {**(case.headers or {}), **key_headers}
    response = case.call_wsgi()

    # Schemathesis 3 also "negates" parts it cannot send as such (a header made an integer still travels as
    # text), so its negative_data_rejection check reports valid requests; the 400s for bad parameters are
    # specified in test_api.py instead. Every other check runs, on valid and invalid requests alike.
    case.validate_response(response, excluded_checks=(negative_data_rejection,))
    assert response.status_code < 500
