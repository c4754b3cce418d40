"""The console in both of its languages: Simplified Chinese (the default) and English."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import Tenant


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "home"), [("zh-hans", "首页"), ("en", "Home")])
def test_console_pages_render_in_each_language(admin_client: Client, tenant: Tenant, language: str, home: str) -> None:
    pages = [
        reverse("admin:index"),
        reverse("admin-platform-status"),
        reverse("admin:tenants_tenant_changelist"),
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        reverse("admin:tenants_tenant_revoke", args=[tenant.pk]),
    ]
    for url in pages:
        response = admin_client.get(url, headers={"accept-language": language})
        html = response.content.decode()
        assert response.status_code == 200, url
        assert f'<html lang="{language}"' in html, url
    assert home in admin_client.get(pages[1], headers={"accept-language": language}).content.decode()


@pytest.mark.django_db
def test_language_can_be_switched_from_the_admin(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index"), headers={"accept-language": "en"}).content.decode()
    assert f'action="{reverse("set_language")}"' in html

    admin_client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("admin:index")})

    assert '<html lang="zh-hans"' in admin_client.get(reverse("admin:index")).content.decode()
