"""Health and readiness probes by IP address, without opening the host check to the world.

An orchestrator probes `http://127.0.0.1:8000/readyz` (docker compose) or the pod's IP (Kubernetes): that
Host is not in ALLOWED_HOSTS, so Django answered 400 DisallowedHost and logged an ERROR each time, and the
probe could never pass. This middleware, first in the chain, answers /healthz and /readyz itself for
clients in HEALTH_CHECK_NETWORKS (loopback by default), whatever their Host header; anyone else goes
through the usual host check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from wxplatform.console import health

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": health.healthz, "/readyz": health.readyz}


def _from_probe_network(request: HttpRequest) -> bool:
    try:
        ip = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in settings.HEALTH_CHECK_NETWORKS)


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and _from_probe_network(request):
            return probe(request)
        return self.get_response(request)
