"""Shared fixtures live in tests/fixtures/*, one module per real dependency (sandbox, worker, ...)."""

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.worker",
]
