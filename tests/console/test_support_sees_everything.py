"""docs/reference.md says the `support` group sees everything and changes nothing (issue 28, finding 10b: it
could not open the token authority's pages). Every page of the console, for support: every model's list opens,
read-only; users, groups and login lockouts (who may log in, and from where) are the deliberate exception; a
secret is never shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests.factories import make_service_key
from wxplatform.authority.models import ServiceKey

pytestmark = pytest.mark.django_db

# Who may log in, with which rights, and the lockouts of their logins (django-axes) are for superusers only.
NOT_FOR_SUPPORT = {"auth", "axes"}
MODELS = sorted(
    (model._meta.app_label, model._meta.model_name)
    for model in admin.site._registry
    if model._meta.app_label not in NOT_FOR_SUPPORT
)


def test_the_console_registers_the_authoritys_models() -> None:
    assert ("authority", "servicekey") in MODELS and ("authority", "tokenhandout") in MODELS


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_support_opens_every_list_of_the_console_read_only(support_client: Client, app: str, model: str) -> None:
    response = support_client.get(reverse(f"admin:{app}_{model}_changelist"))

    assert response.status_code == 200, (app, model)
    assert f'href="{reverse(f"admin:{app}_{model}_add")}"' not in response.content.decode()


def test_support_sees_a_service_key_but_not_its_hash_and_cannot_issue_or_revoke_one(
    support_client: Client, support_user: Any
) -> None:
    key, _raw = make_service_key(name="publishing")
    page = support_client.get(reverse("admin:authority_servicekey_change", args=[key.pk]))
    listing = support_client.get(reverse("admin:authority_servicekey_changelist"))

    issue = support_client.post(reverse("admin:authority_servicekey_add"), {"name": "mine"})
    revoke = support_client.post(
        reverse("admin:authority_servicekey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk]},
    )

    assert page.status_code == 200 and "publishing" in page.content.decode()
    assert key.prefix in listing.content.decode()
    for response in (page, listing):
        assert key.hashed_key not in response.content.decode()
        assert key.hashed_key.split("$")[-1] not in response.content.decode()
    assert issue.status_code == 403
    assert revoke.status_code == 403
    assert ServiceKey.objects.get().revoked is False
    assert ServiceKey.objects.count() == 1
    assert not support_user.has_perm("authority.change_servicekey")
