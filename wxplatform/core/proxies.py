"""Who the client is behind the configured reverse proxies (settings.TRUSTED_PROXIES).

Forwarding headers (X-Forwarded-For, X-Forwarded-Proto) are believed only when the connecting address is
one of those proxies; from anyone else they are dropped before Django reads them, so that a client cannot
pose as HTTPS (SECURE_PROXY_SSL_HEADER) or as another address (the per-address rate limits).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _is_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind trusted proxies the nearest address in X-Forwarded-For
    that is not one of them (each proxy appends the address it saw, so only the right end is trustworthy)."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if not _is_proxy(remote):
        return remote
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_proxy(hop):
            return hop
    return hops[0] if hops else remote


class TrustedProxyMiddleware:
    """First in the chain: forwarding headers from a client that is not a trusted proxy are removed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_proxy(str(request.META.get("REMOTE_ADDR", ""))):
            for header in _FORWARDING_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
