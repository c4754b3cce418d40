"""Reads for the token authority."""

from __future__ import annotations

from wxplatform.authority.models import ServiceKey
from wxplatform.core.keys import key_find

# Every field of a key, and of its platform (when it is scoped to one) the appid only: authenticating a service
# neither loads nor decrypts the platform's secrets and tokens. The hand-out and the gateway read the platform
# again, as they need it (wxplatform.authority.services.key_platform, key_account).
_KEY_FIELDS = (*(field.name for field in ServiceKey._meta.concrete_fields), "component__component_appid")


def service_key_find(*, raw_key: str) -> ServiceKey | None:
    """The service key (revoked or not) whose secret is `raw_key`, with its scope, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher."""
    return key_find(ServiceKey.objects.select_related("component").only(*_KEY_FIELDS), raw_key=raw_key)
