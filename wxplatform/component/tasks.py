"""Celery tasks for the platforms' own credentials."""

from __future__ import annotations

import logging

from celery import shared_task

from wxplatform.component.services import ComponentNotReady, active_components, component_access_token
from wxplatform.wechat.errors import WeChatError

logger = logging.getLogger(__name__)


@shared_task(name="component.refresh_token", acks_late=True)
def refresh_component_token() -> bool:
    """Beat: keep every active platform's component access token fresh ahead of expiry (each refreshes only
    when within its margin). True when every one is fresh."""
    ok = True
    for component in active_components():
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
