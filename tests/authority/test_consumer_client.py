"""The consumer's client (wxplatform.component.consumer) against a real authority (a live server): a token and
its expiry, the authority's refusals as AuthorityRefused with their code, anything else as a TransportError
that callers retry; the key appears in no exception."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.authority.helpers import platform_with_token
from tests.factories import make_service_key, make_tenant
from wxplatform.authority.models import ServiceKey
from wxplatform.component.consumer import AuthorityRefused, authority_authorizer_token, authority_component_token
from wxplatform.wechat.errors import TransportError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def consumer_of(settings: Any, live_server: Any) -> Any:
    def configure(raw_key: str, url: str | None = None) -> None:
        settings.WECHAT_TOKEN_AUTHORITY_URL = url or live_server.url
        settings.WECHAT_TOKEN_AUTHORITY_KEY = raw_key

    return configure


def test_the_client_returns_the_token_and_its_aware_expiry(consumer_of: Any, settings: Any) -> None:
    credential = platform_with_token("component-token-for-consumer")
    tenant = make_tenant()
    _key, raw = make_service_key()
    consumer_of(raw)

    component = authority_component_token(settings.WECHAT_COMPONENT_APPID)
    authorizer = authority_authorizer_token(settings.WECHAT_COMPONENT_APPID, tenant.authorizer_appid)

    assert (component.access_token, component.expires_at) == (
        "component-token-for-consumer",
        credential.access_token_expires_at,
    )
    assert authorizer.access_token == tenant.access_token
    assert authorizer.expires_at == tenant.access_token_expires_at
    assert "component-token-for-consumer" not in repr(component)


def test_refusals_carry_the_authoritys_status_and_code_and_never_the_key(consumer_of: Any, settings: Any) -> None:
    platform_with_token()
    revoked = make_tenant(status="revoked")
    key, raw = make_service_key()
    consumer_of(raw)

    with pytest.raises(AuthorityRefused) as gone:
        authority_authorizer_token(settings.WECHAT_COMPONENT_APPID, revoked.authorizer_appid)
    with pytest.raises(AuthorityRefused) as unknown:
        authority_authorizer_token(settings.WECHAT_COMPONENT_APPID, "wxnotauthorized")
    ServiceKey.objects.filter(pk=key.pk).update(revoked=True)
    with pytest.raises(AuthorityRefused) as refused:
        authority_component_token(settings.WECHAT_COMPONENT_APPID)

    assert (gone.value.status, gone.value.code) == (403, "tenant_revoked")
    assert (unknown.value.status, unknown.value.code) == (404, "tenant_not_found")
    assert (refused.value.status, refused.value.code) == (401, "service_key_revoked")
    for raised in (gone, unknown, refused):
        assert raw not in str(raised.value)
        assert raw.partition(".")[2] not in repr(raised.value.args)


def test_an_unreachable_authority_is_a_transport_error_without_the_key(consumer_of: Any, settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _key, raw = make_service_key()
    consumer_of(raw, url=f"http://127.0.0.1:{port}")
    settings.WECHAT_CONNECT_TIMEOUT = 0.5

    with pytest.raises(TransportError) as raised:
        authority_component_token(settings.WECHAT_COMPONENT_APPID)

    assert raised.value.retryable
    assert raw not in str(raised.value)
