"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import os
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from wxplatform.component.services import platforms_readiness
from wxplatform.core.egress import base_readiness, whitelist_readiness
from wxplatform.core.redis_client import redis_client

ReadinessCheck = Callable[[], str | None]
# Conditions are shown in /readyz (None when fine, else a short reason) but do not make the service unready:
# the API keeps serving stored data without them.
CONDITIONS: dict[str, ReadinessCheck] = {
    "component": platforms_readiness,
    "whitelist": whitelist_readiness,
    "wechat_base": lambda: base_readiness(settings.WECHAT_API_BASE),
}


def _check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


def _check_broker() -> str | None:
    if settings.REDIS_URL:
        redis_client().ping()
        return None
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    return None if os.access(str(folder), os.W_OK) else "broker folder is not writable"


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    failed: list[str] = []
    for name, check in [("database", _check_database), ("broker", _check_broker)]:
        try:
            problem = check()
        except Exception as exc:  # noqa: BLE001 - a probe reports any failure, by its type only
            problem = f"unreachable ({type(exc).__name__})"
        checks[name] = problem or "ok"
        if problem:
            failed.append(name)
    conditions: dict[str, str] = {}
    if not failed:
        for name, condition in CONDITIONS.items():
            try:
                conditions[name] = condition() or "ok"
            except Exception as exc:  # noqa: BLE001
                conditions[name] = f"unknown ({type(exc).__name__})"
    body = {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks, "conditions": conditions}
    return JsonResponse(body, status=503 if failed else 200)
