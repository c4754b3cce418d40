"""Shared fixtures live in tests/fixtures/*, one module per real dependency (sandbox, worker, ...)."""

from collections.abc import Iterator

import pytest
from django.utils import translation

# Every shared fixture is registered here, once; test modules import helpers, never fixtures.
pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.worker",
    "tests.fixtures.tenants",
    "tests.fixtures.platform",
    "tests.fixtures.sync",
    "tests.fixtures.proxy",
    "tests.fixtures.receiver",
    "tests.fixtures.pgbouncer",
    "tests.fixtures.browser",
]


@pytest.fixture(autouse=True)
def _language_of_the_settings() -> Iterator[None]:
    """Each test starts in the settings' language: a request or command that activated another (a zh-Hans
    page, a Chinese terminal) must not leave it active for the next test of the process."""
    yield
    translation.deactivate()
