"""Prefix keys in the Authorization header (`<Keyword> <prefix>.<secret>`): the one stack both kinds of key use.

The merchants' `Api-Key` (tenants.authentication) and the provider's own `Service-Key`
(wxplatform.authority.authentication) are two tables of djangorestframework-api-key keys, hashed at rest by
the library. What they share lives here: finding a key by its visible prefix and letting the library verify
the secret, recording its use at most once per API_KEY_TOUCH_INTERVAL, revoking it once, the DRF
authentication that refuses malformed, unknown, revoked and expired keys, the per-key request throttle, and
the OpenAPI scheme. Each kind is a thin subclass naming its keyword, its model, its messages and what
`request.user` becomes. Nothing here remembers a key: a revoked one is refused on the very next request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework_api_key.models import AbstractAPIKey

from wxplatform.core.throttling import window_exceeded

if TYPE_CHECKING:
    # Not at run time: DRF imports authentication modules while rest_framework.views is still being imported;
    # the stubs' helper types are a development dependency.
    from django_stubs_ext import StrOrPromise
    from rest_framework.views import APIView

KeyT = TypeVar("KeyT", bound=AbstractAPIKey)

# djangorestframework-api-key makes "<prefix>.<secret>" from letters and digits; anything else is not a key,
# and is turned away before it reaches the database (which, for one, refuses NUL characters).
KEY_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,128}")


def key_find(queryset: QuerySet[KeyT], *, raw_key: str) -> KeyT | None:
    """The key of `queryset` (revoked or not) whose secret is `raw_key`, in one query; None if no key matches.
    The secret is checked by djangorestframework-api-key's own hasher. The queryset says what is read with
    the key (select_related, only)."""
    if not KEY_SHAPE.fullmatch(raw_key):
        return None
    try:
        key = queryset.get(prefix=raw_key.partition(".")[0])  # the prefix is unique
    except queryset.model.DoesNotExist:
        return None
    return key if key.is_valid(raw_key) else None


def key_mark_used(key: AbstractAPIKey, *, at: datetime, interval: int) -> None:
    """Records that the key was used (`last_used_at`), at most once per `interval` seconds whatever the request
    rate: a recent key is not written at all, and the condition is in the UPDATE, so concurrent requests write
    once."""
    last_used_at: datetime | None = getattr(key, "last_used_at")  # noqa: B009 - a field of both key models
    if last_used_at is not None and (at - last_used_at).total_seconds() < interval:
        return
    type(key).objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=at - timedelta(seconds=interval))
    ).update(last_used_at=at)
    setattr(key, "last_used_at", at)  # noqa: B010


def key_revoke(key: AbstractAPIKey) -> bool:
    """Revokes the key for good; False if it was already revoked. A conditional update, so that two concurrent
    revocations (or a revocation racing a rotation) agree on which one did it."""
    revoked: bool = type(key).objects.filter(pk=key.pk, revoked=False).update(revoked=True) == 1
    key.revoked = True
    return revoked


@dataclass(frozen=True, kw_only=True)
class KeyPrincipal:
    """`request.user` of a key-authenticated request: the key (and what a subclass adds), never a Django user."""

    key: Any
    is_authenticated: bool = True
    is_anonymous: bool = False


class PrefixKeyAuthentication(BaseAuthentication):
    """`Authorization: <keyword> <key>`. A subclass names the keyword, finds the key (`find`), says what the
    request's principal is (`principal`) and gives the messages and the revoked and expired errors."""

    keyword: ClassVar[str]
    malformed_message: ClassVar[StrOrPromise]
    invalid_message: ClassVar[StrOrPromise]
    revoked_error: ClassVar[type[exceptions.AuthenticationFailed]]
    expired_error: ClassVar[type[exceptions.AuthenticationFailed]]

    def find(self, request: Request, raw_key: str) -> AbstractAPIKey | None:
        raise NotImplementedError

    def principal(self, request: Request, key: Any) -> KeyPrincipal:
        raise NotImplementedError

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, AbstractAPIKey] | None:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        if not header:
            return None  # DRF answers 401 not_authenticated
        key = self.verified_key(request, header)
        key_mark_used(key, at=timezone.now(), interval=settings.API_KEY_TOUCH_INTERVAL)
        return self.principal(request, key), key

    def verified_key(self, request: Request, header: str) -> AbstractAPIKey:
        """The valid key the header names; AuthenticationFailed for any other header."""
        scheme, _space, raw = header.partition(" ")
        # Authentication schemes are case-insensitive tokens (RFC 9110 section 11.1), as the library's parser has it.
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            # Another scheme lands here too: a merchant key is not a service key, nor the other way round.
            raise exceptions.AuthenticationFailed(self.malformed_message, code="authentication_failed")
        key = self.find(request, raw.strip())
        # Revoked and expired are told apart only once the secret has verified, so they reveal nothing to
        # someone guessing keys.
        if key is None:
            raise exceptions.AuthenticationFailed(self.invalid_message, code="authentication_failed")
        if key.revoked:
            raise self.revoked_error()
        if key.has_expired:
            raise self.expired_error()
        return key

    def authenticate_header(self, request: Request) -> str:
        # Its presence turns NotAuthenticated into 401 (not 403), with WWW-Authenticate: <keyword>.
        return self.keyword


class PerKeyThrottle(BaseThrottle):
    """A fixed-window request counter per key (wxplatform.core.throttling), for requests whose principal is a
    `principal_type`; counted in the process while Redis is down, or let through with `open_when_unavailable`.
    A subclass names its scope and rate."""

    scope: ClassVar[str]
    principal_type: ClassVar[type[KeyPrincipal]]
    open_when_unavailable: ClassVar[bool] = False

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def rate(self) -> str:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, self.principal_type):
            return True
        # The rate is read on every request rather than at import, so that settings overrides (tests, bench) apply.
        self.wait_seconds = window_exceeded(
            scope=self.scope,
            ident=principal.key.prefix,
            rate=self.rate(),
            open_when_unavailable=self.open_when_unavailable,
        )
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


class PrefixKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the header in the OpenAPI schema, so that generated clients send it. A subclass names its
    `target_class`, `name` and `description`; this base matches no class (its target_class is None)."""

    description: ClassVar[str]

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # OpenAPI 3.0 has no scheme for a custom Authorization prefix: an apiKey scheme on the header it is.
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": self.description}
