"""Where a webhook may be sent (SSRF protection), checked when an endpoint is saved and again at every delivery.

A merchant chooses the URL, and the worker that sends to it sits inside the provider's network: without
these checks a webhook could reach the database, Redis, an admin port or the cloud metadata service. So:

- https only, and only public (globally routable) addresses, unless WEBHOOK_ALLOW_PRIVATE_TARGETS is on;
- 169.254.169.254 (cloud instance metadata, credentials included) never, whatever the setting;
- an IPv6 address that carries an IPv4 address (NAT64, 6to4, Teredo, mapped and translated forms) is judged by
  the IPv4 address it reaches, so that 64:ff9b::a9fe:a9fe is the metadata address; the prefixes whose IPv4
  address cannot be read from the address alone (local-use NAT64, deprecated IPv4-compatible) are refused;
- the name is resolved again at delivery and every address it resolves to is checked, and the connection
  is made to exactly those checked addresses (the resolver below), so a name that resolved to a public
  address when the endpoint was saved and to 127.0.0.1 later (DNS rebinding) is refused at that delivery.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext as _

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

# Syntax only (scheme, host, port, characters); what the host may be is decided below.
_URL_SYNTAX = URLValidator(schemes=["http", "https"])

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The URL or an address it resolves to may not be sent to; the message names why (for people)."""


# IPv6 prefixes that reach IPv4 addresses through a translator or a tunnel.
# The well-known NAT64 prefix (RFC 6052) and SIIT's IPv4-translated form put the IPv4 address in the last 32 bits;
# a DNS64 resolver on an IPv6-only network answers 64:ff9b::<IPv4> for every IPv4-only name, so those are
# judged by that IPv4 address rather than refused outright.
_LAST_32_BITS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))
# Local-use NAT64 (RFC 8215) may embed the IPv4 address at any of six positions, and IPv4-compatible
# addresses (::a.b.c.d, deprecated by RFC 4291) are routed to IPv4 by some stacks: neither is a public target,
# so both are refused whatever the setting (the metadata address could hide in either).
_UNREADABLE = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("::/96"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a translation or tunnelling prefix (none: a plain
    IPv6 address)."""
    if address.sixtofour is not None:  # 2002::/16, RFC 3056
        return [address.sixtofour]
    if address.teredo is not None:  # 2001::/32, RFC 4380: the relay (server) and the client's NAT
        return list(address.teredo)
    if any(address in network for network in _LAST_32_BITS):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address may not be a webhook target, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        for ipv4 in _embedded_ipv4(address):
            if (problem := address_problem(ipv4, allow_private=allow_private)) is not None:
                return _("%(address)s reaches the IPv4 address %(ipv4)s: %(problem)s") % {
                    "address": address,
                    "ipv4": ipv4,
                    "problem": problem,
                }
        if int(address) > 1 and any(address in network for network in _UNREADABLE):  # not :: nor ::1
            return _("%(address)s reaches IPv4 through a prefix that is never a webhook target.") % {"address": address}
    if address in METADATA_ADDRESSES:
        return _("%(address)s is the cloud metadata address and is never a webhook target.") % {"address": address}
    if allow_private:
        return None
    if address.is_loopback:
        return _("%(address)s is a loopback address.") % {"address": address}
    if address.is_link_local:
        return _("%(address)s is a link-local address.") % {"address": address}
    if not address.is_global or address.is_multicast:
        return _("%(address)s is a private or reserved address.") % {"address": address}
    return None


def url_problem(url: str, *, allow_private: bool | None = None) -> str | None:
    """Why this URL may not be a webhook target, judged by its text alone (scheme, host, literal address)."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS if allow_private is None else allow_private
    try:
        _URL_SYNTAX(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except (ValueError, ValidationError):
        return _("The URL is not valid.")
    if parts.scheme != "https" and not (allow and parts.scheme == "http"):
        return _("The URL must use https.")
    if not parts.hostname:
        return _("The URL has no host.")
    if parts.username or parts.password:
        return _("The URL must not contain a user name or password.")
    literal = _literal(parts.hostname)
    if literal is not None:
        return address_problem(literal, allow_private=allow)
    return None


def resolved_problem(url: str, *, allow_private: bool | None = None) -> str | None:
    """url_problem, then every address the host resolves to now. A host that does not resolve is no problem
    here (DNS may be set up later); it is resolved and checked again at each delivery."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS if allow_private is None else allow_private
    problem = url_problem(url, allow_private=allow)
    if problem is not None:
        return problem
    parts = urlsplit(url)
    assert parts.hostname is not None
    if _literal(parts.hostname) is not None:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        problem = address_problem(ipaddress.ip_address(info[4][0]), allow_private=allow)
        if problem is not None:
            return _("%(host)s resolves to a refused address: %(problem)s") % {
                "host": parts.hostname,
                "problem": problem,
            }
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class CheckedResolver(AbstractResolver):
    """aiohttp resolver that refuses a host if any address it resolves to is refused, so the connection is
    only ever made to addresses that were checked (aiohttp skips resolvers for literal IPs: those are checked
    by url_problem before the request)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            problem = address_problem(ipaddress.ip_address(result["host"]), allow_private=self._allow_private)
            if problem is not None:
                raise TargetRefused(
                    _("%(host)s resolves to a refused address: %(problem)s") % {"host": host, "problem": problem}
                )
        return results

    async def close(self) -> None:
        await self._resolver.close()
