"""Reads for the token authority."""

from __future__ import annotations

import re

from wxplatform.authority.models import ServiceKey

# djangorestframework-api-key makes "<prefix>.<secret>" from letters and digits; anything else is not a key
# and is turned away before it reaches the database.
_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,128}")


def service_key_find(*, raw_key: str) -> ServiceKey | None:
    """The service key (revoked or not) whose secret is `raw_key`, with its scope, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher."""
    if not _KEY_SHAPE.fullmatch(raw_key):
        return None
    key = ServiceKey.objects.select_related("component").filter(prefix=raw_key.partition(".")[0]).first()
    return key if key is not None and key.is_valid(raw_key) else None
