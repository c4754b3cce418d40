"""URLs and small readers shared by the token authority's tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from wxplatform.component.models import Platform
from wxplatform.component.services import default_component

METRICS_TOKEN = "authority-test-scrape-token"


def component_url(component_appid: str | None = None) -> str:
    return f"/internal/v1/components/{component_appid or settings.WECHAT_COMPONENT_APPID}/token"


def authorizer_url(appid: str, component_appid: str | None = None) -> str:
    return f"/internal/v1/components/{component_appid or settings.WECHAT_COMPONENT_APPID}/authorizers/{appid}/token"


def platform_with_token(
    token: str = "component-token-stored",  # noqa: S107  # a test value
    *,
    expires_in: timedelta = timedelta(hours=2),
) -> Any:
    """The configured platform holding a component token (no WeChat involved while it is fresh)."""
    credential = default_component()
    Platform.objects.filter(pk=credential.pk).update(
        access_token=token, access_token_expires_at=timezone.now() + expires_in
    )
    credential.refresh_from_db()
    return credential


def handouts_metric(client: Any, **labels: str) -> float:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == "wxp_token_handouts_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0
