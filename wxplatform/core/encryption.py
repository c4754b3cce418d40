"""Encryption of secrets at rest (authorizer tokens, the component token and ticket).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, behind MultiFernet so that keys rotate: the first
key in TOKEN_ENCRYPTION_KEYS encrypts, every key decrypts, and `manage.py rotate_token_keys` re-encrypts
stored values under the first key before an old key is dropped.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _fernet_for(key: str) -> Fernet:
    raw = key.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return Fernet(raw)
    except ValueError:
        pass
    # Any other string is stretched into a key, so an operator may use a long passphrase instead.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS is empty")
    return MultiFernet([_fernet_for(k) for k in keys])


def _cipher() -> MultiFernet:
    return _multi_fernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))


class DecryptionError(Exception):
    """A stored secret cannot be read with any configured key (a key was dropped too early)."""


def encrypt_str(value: str) -> str:
    return _cipher().encrypt(value.encode()).decode()


def decrypt_str(value: str) -> str:
    try:
        return _cipher().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with TOKEN_ENCRYPTION_KEYS") from exc


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A text column holding a Fernet token; Python sees the plaintext, the database never does.

    Empty string means "no secret" and is stored as-is. Values are not queryable by content.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt_str(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_str(str(value))
