"""Shared fixtures live in tests/fixtures/*, one module per real dependency (sandbox, worker, ...)."""

from collections.abc import Iterator

import pytest

from tenants.readcache import tenant_read_cache

# Every shared fixture is registered here, once; test modules import helpers, never fixtures.
pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.worker",
    "tests.fixtures.tenants",
    "tests.fixtures.platform",
    "tests.fixtures.sync",
]


@pytest.fixture(autouse=True)
def _tenant_read_cache_closed() -> Iterator[None]:
    """No test inherits tenant copies, and a listening connection never outlives its test: it would keep the
    test database from being dropped."""
    yield
    tenant_read_cache.close()
