"""Shared fixtures live in tests/fixtures/*, one module per real dependency (sandbox, worker, ...)."""

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
]
