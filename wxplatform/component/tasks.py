"""Celery tasks for the platforms' own credentials."""

from __future__ import annotations

import logging

from celery import shared_task

from wxplatform.component.models import ComponentCredential
from wxplatform.component.services import ComponentNotReady, component_access_token, default_component
from wxplatform.wechat.errors import WeChatError

logger = logging.getLogger(__name__)


@shared_task(name="component.refresh_token", acks_late=True)
def refresh_component_token() -> bool:
    """Beat: keep every active platform's component access token fresh ahead of expiry (each refreshes only
    when within its margin). True when every one is fresh."""
    default_component()  # the default platform exists, and has the settings' secrets, before it is refreshed
    ok = True
    for component in ComponentCredential.objects.filter(active=True).order_by("pk"):
        try:
            component_access_token(component)
        except (ComponentNotReady, WeChatError) as exc:
            logger.warning(
                "component token refresh failed: %s",
                type(exc).__name__,
                extra={"component_appid": component.component_appid},
            )
            ok = False
    return ok
