from tests.factories import other_tenant_fixture, tenant_fixture  # noqa: F401 - fixtures
