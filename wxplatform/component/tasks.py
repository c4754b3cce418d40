"""Celery tasks for the platform's own credentials."""

from __future__ import annotations

import logging

from celery import shared_task

from wxplatform.component.services import ComponentNotReady, component_access_token
from wxplatform.wechat.errors import WeChatError

logger = logging.getLogger(__name__)


@shared_task(name="component.refresh_token", acks_late=True)
def refresh_component_token() -> bool:
    """Beat: keep the component access token fresh ahead of expiry (refreshes only when within the margin)."""
    try:
        component_access_token()
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("component token refresh failed: %s", type(exc).__name__)
        return False
    return True
