"""Celery tasks for tenants: thin wrappers that take ids and call services; safe to run twice."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from importlib import import_module

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from tenants.models import AuthorizationCode, Tenant
from tenants.quota import tenant_quota_read
from tenants.reconcile import authorizers_reconcile
from tenants.services import (
    TenantHasNoToken,
    TenantNotActive,
    authorizer_message_answer,
    push_log_prune,
    tenant_authorize_pending,
    tenant_token_refresh,
    tenants_with_expiring_tokens,
)
from wxplatform.component.services import ComponentNotReady, active_components
from wxplatform.core.backoff import BackoffTask
from wxplatform.core.freshness import AUTHORIZER_REFRESH_LOOKAHEAD
from wxplatform.core.queueing import enqueue
from wxplatform.wechat.errors import RetryableError, WeChatError

logger = logging.getLogger(__name__)

# The beat refresher spreads its refreshes over this window (it looks AUTHORIZER_AUTHORIZER_REFRESH_LOOKAHEAD ahead).
REFRESH_SPREAD_SECONDS = 300
REFRESH_BATCH = 500


@shared_task(
    name="tenants.authorize_from_push",
    bind=True,
    max_retries=5,
    acks_late=True,
    base=BackoffTask,
    backoff_base=2,
    backoff_cap=60,
)
def authorize_from_push(self, authorization_code_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        tenant_authorize_pending(authorization_code_id=authorization_code_id)
    except (RetryableError, ComponentNotReady) as exc:
        raise self.retry(exc=exc) from exc
    except WeChatError as exc:
        # 61009/61010 and the like: the code cannot be used; the merchant sees the callback page's error.
        logger.warning("authorization code from push not usable: errcode %s", exc.errcode)


# A row outlives its code (10 minutes) only to answer a late duplicate of the push or the callback.
AUTHORIZATION_CODE_RETENTION = timedelta(days=1)


@shared_task(
    name="tenants.answer_query_auth_code",
    bind=True,
    max_retries=5,
    acks_late=True,
    base=BackoffTask,
    backoff_base=1,
    backoff_cap=10,
)
def answer_query_auth_code(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    """The release test's QUERY_AUTH_CODE case, after the empty answer (tenants.messages)."""
    try:
        authorizer_message_answer(message_id=message_id)
    except (RetryableError, ComponentNotReady) as exc:
        raise self.retry(exc=exc) from exc
    except (TenantNotActive, TenantHasNoToken, WeChatError) as exc:
        logger.warning("QUERY_AUTH_CODE message not answered: %s", type(exc).__name__)


@shared_task(name="tenants.authorize_pending_codes", acks_late=True)
def authorize_pending_codes() -> int:
    """Sweeps codes recorded from verified pushes whose task was never enqueued (broker down) or lost, and
    prunes: codes past their 10 minutes, rows past a day, and expired sessions (the authorization page
    starts one for each visitor)."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=10)
    ids = list(
        AuthorizationCode.objects.filter(pushed=True, processed_at__isnull=True, received_at__gte=cutoff)
        .exclude(code="")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        enqueue(authorize_from_push, pk)
    # Codes live 10 minutes; an unused one past that is useless and only a liability.
    AuthorizationCode.objects.filter(processed_at__isnull=True, received_at__lt=cutoff).update(code="")
    AuthorizationCode.objects.filter(received_at__lt=now - AUTHORIZATION_CODE_RETENTION).delete()
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()  # what `clearsessions` does
    return len(ids)


@shared_task(
    name="tenants.refresh_token",
    bind=True,
    max_retries=3,
    acks_late=True,
    base=BackoffTask,
    backoff_base=20,
    backoff_cap=300,
)
def refresh_token(self, tenant_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        tenant_token_refresh(tenant_id=tenant_id, margin=AUTHORIZER_REFRESH_LOOKAHEAD)
    except (RetryableError, ComponentNotReady) as exc:
        raise self.retry(exc=exc) from exc
    except (TenantNotActive, TenantHasNoToken, WeChatError) as exc:
        logger.info("token refresh skipped for tenant %s: %s", tenant_id, type(exc).__name__)


@shared_task(name="tenants.refresh_expiring_tokens", acks_late=True)
def refresh_expiring_tokens() -> int:
    """Beat: refresh tokens that expire soon, spread with jitter so that WeChat sees no burst."""
    ids = tenants_with_expiring_tokens(within=AUTHORIZER_REFRESH_LOOKAHEAD)
    for start in range(0, len(ids), REFRESH_BATCH):
        for tenant_id in ids[start : start + REFRESH_BATCH]:
            enqueue(refresh_token, tenant_id, countdown=random.uniform(0, REFRESH_SPREAD_SECONDS))
    return len(ids)


@shared_task(name="tenants.read_quota", acks_late=True)
def read_quota(tenant_id: int) -> None:
    """After a 45009: what WeChat says the account's draft/count limit and use are (docs/wechat/quota.md#45009)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    try:
        tenant_quota_read(tenant=tenant)
    except (TenantNotActive, TenantHasNoToken, ComponentNotReady, WeChatError) as exc:
        logger.info("quota read skipped for tenant %s: %s", tenant_id, type(exc).__name__)


# A pass over 10,000 accounts takes minutes (make bench); it is safe to kill, so the limit only bounds a stuck one.
RECONCILE_TIME_LIMIT = 3 * 3600


# Not acks_late, alone among the tasks: a pass may outlast the broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT,
# 15 min), after which Redis would hand the unacknowledged message to a second worker and two passes would run
# side by side. A pass lost with its worker is made by the next day's beat entry (or `reconcile_authorizers`).
@shared_task(
    name="tenants.reconcile_authorizers",
    acks_late=False,
    soft_time_limit=RECONCILE_TIME_LIMIT,
    time_limit=RECONCILE_TIME_LIMIT + 60,
)
def reconcile_authorizers() -> dict[str, object]:
    """Beat (daily by default): each active platform's tenants against its authorizer list (tenants.reconcile).
    A platform that cannot be reconciled now is reported and the next one is done all the same."""
    reports: dict[str, object] = {}
    for component in active_components():
        try:
            reports[component.component_appid] = authorizers_reconcile(component).as_dict()
        except (ComponentNotReady, WeChatError) as exc:
            logger.warning(
                "reconciliation failed: %s", type(exc).__name__, extra={"component_appid": component.component_appid}
            )
            reports[component.component_appid] = {"error": type(exc).__name__}
    return reports


@shared_task(name="tenants.prune_push_log", acks_late=True)
def prune_push_log() -> int:
    """Beat, daily: the push log keeps PUSH_LOG_RETENTION_DAYS days."""
    return push_log_prune()
