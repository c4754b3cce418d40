"""Reads for the token authority."""

from __future__ import annotations

from wxplatform.authority.models import ServiceKey
from wxplatform.core.keys import key_find


def service_key_find(*, raw_key: str) -> ServiceKey | None:
    """The service key (revoked or not) whose secret is `raw_key`, with its scope, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher."""
    return key_find(ServiceKey.objects.select_related("component"), raw_key=raw_key)
