"""The third-party platforms in the admin: adding one, changing its name, active flag and secrets (write-only,
empty keeps), the default platform left to the settings, the URLs to enter at WeChat, and the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.factories import make_tenant
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, default_component
from wxplatform.models import AuditEntry

APPID = "wx2c2769f8efd9abc2"
SECRET = "secret0KNOWN0appsecret0000000001"
TOKEN = "token0KNOWN0platform02"
AES_KEY = "KNOWNaeskey0abcdefghijklmnopqrstuvwxyz01234"
ADD_URL = reverse("admin:component_platform_add")


def _change_url(platform: Platform) -> str:
    return reverse("admin:component_platform_change", args=[platform.pk])


def _form(**overrides: Any) -> dict[str, Any]:
    data = {"component_appid": APPID, "name": "Second entity", "active": "on"}
    data.update({"new_appsecret": SECRET, "new_token": TOKEN, "new_aes_key": AES_KEY})
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def platform(db: None) -> Platform:
    return component_add(appid=APPID, secret=SECRET, token=TOKEN, aes_key=AES_KEY, name="Second entity")


@pytest.mark.django_db
def test_staff_add_a_platform_with_its_secrets_and_the_addition_is_audited(admin_client: Client) -> None:
    response = admin_client.post(ADD_URL, _form())

    assert response.status_code == 302
    platform = Platform.objects.get(component_appid=APPID)
    assert (platform.name, platform.active) == ("Second entity", True)
    assert (platform.appsecret, platform.token, platform.aes_key) == (SECRET, TOKEN, AES_KEY)
    entry = AuditEntry.objects.get(action="admin.add")
    assert entry.actor_label == "admin"
    assert entry.target == f"component.platform:{platform.pk} Second entity ({APPID})"
    assert SECRET not in str(entry.detail) and TOKEN not in str(entry.detail)


@pytest.mark.django_db
def test_a_platform_added_switched_off_stays_off(admin_client: Client) -> None:
    admin_client.post(ADD_URL, _form(active=None))

    assert Platform.objects.get(component_appid=APPID).active is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("component_appid", "wx123", "A component AppID is “wx” followed by 16 letters or digits."),
        ("new_aes_key", AES_KEY[:42], "The EncodingAESKey must be 43 letters or digits"),
        ("new_token", "a-b", "The message verification token must be 3 to 32 letters or digits"),
        ("new_appsecret", "", "This field is required."),
        ("new_token", "", "This field is required."),
    ],
)
def test_adding_a_platform_with_a_value_wechat_would_refuse_changes_nothing(
    admin_client: Client, field: str, value: str, message: str
) -> None:
    before = Platform.objects.count()

    response = admin_client.post(ADD_URL, _form(**{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert Platform.objects.count() == before
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_the_default_platform_cannot_be_added_here(admin_client: Client) -> None:
    default_component()

    response = admin_client.post(ADD_URL, _form(component_appid=settings.WECHAT_COMPONENT_APPID))

    assert response.status_code == 200
    assert "is the default platform" in response.content.decode()
    assert default_component().appsecret == settings.WECHAT_COMPONENT_APPSECRET


@pytest.mark.django_db
def test_empty_secret_fields_keep_the_stored_secrets(admin_client: Client, platform: Platform) -> None:
    response = admin_client.post(
        _change_url(platform), _form(name="Renamed", new_appsecret="", new_token="", new_aes_key="")
    )

    assert response.status_code == 302
    platform.refresh_from_db()
    assert platform.name == "Renamed"
    assert (platform.appsecret, platform.token, platform.aes_key) == (SECRET, TOKEN, AES_KEY)
    assert AuditEntry.objects.get(action="admin.change").detail == {"change": [{"changed": {"fields": ["Name"]}}]}


@pytest.mark.django_db
def test_a_secret_typed_in_replaces_the_stored_one_and_the_audit_names_it_without_its_value(
    admin_client: Client, platform: Platform
) -> None:
    response = admin_client.post(_change_url(platform), _form(new_appsecret="f" * 32, new_token="", new_aes_key=""))

    assert response.status_code == 302
    platform.refresh_from_db()
    assert (platform.appsecret, platform.token, platform.aes_key) == ("f" * 32, TOKEN, AES_KEY)
    entry = AuditEntry.objects.get(action="admin.change")
    assert entry.detail == {"change": [{"changed": {"fields": ["AppSecret"]}}]}
    assert "f" * 32 not in str(entry.detail)


@pytest.mark.django_db
def test_switching_a_platform_off_is_saved_and_audited(admin_client: Client, platform: Platform) -> None:
    response = admin_client.post(
        _change_url(platform), _form(active=None, new_appsecret="", new_token="", new_aes_key="")
    )

    assert response.status_code == 302
    platform.refresh_from_db()
    assert platform.active is False
    assert AuditEntry.objects.get(action="admin.change").detail == {"change": [{"changed": {"fields": ["Active"]}}]}


@pytest.mark.django_db
def test_a_refused_secret_is_not_written_back_into_the_page(admin_client: Client, platform: Platform) -> None:
    bad_key = "NOTAKEY0KNOWN0bad"

    response = admin_client.post(_change_url(platform), _form(new_aes_key=bad_key, new_appsecret="", new_token=""))

    assert response.status_code == 200
    html = response.content.decode()
    assert "The EncodingAESKey must be 43 letters or digits" in html
    assert bad_key not in html
    platform.refresh_from_db()
    assert platform.aes_key == AES_KEY


@pytest.mark.django_db
def test_the_change_page_has_empty_password_fields_and_the_urls_to_enter_at_wechat(
    admin_client: Client, platform: Platform
) -> None:
    html = admin_client.get(_change_url(platform)).content.decode()

    assert '<input type="password" name="new_appsecret" autocomplete="new-password"' in html
    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in html
    base = settings.PUBLIC_BASE_URL
    assert f"<code>{base}/wechat/components/{APPID}/events</code>" in html
    assert f"<code>{base}/wechat/components/{APPID}/authorizers/$APPID$/events</code>" in html
    assert f"<code>{base}/wechat/authorize?component={APPID}</code>" in html


@pytest.mark.django_db
def test_the_default_platform_takes_a_name_but_neither_secrets_nor_switching_off(admin_client: Client) -> None:
    default = default_component()

    html = admin_client.get(_change_url(default)).content.decode()
    assert 'name="new_appsecret"' not in html
    assert 'name="active"' not in html
    assert "come from the WECHAT_COMPONENT_* settings" in html

    # A crafted POST with the fields the page does not offer changes only the name.
    response = admin_client.post(
        _change_url(default),
        {"name": "Main entity", "new_appsecret": "x" * 32, "new_token": "forged1", "new_aes_key": AES_KEY},
    )
    assert response.status_code == 302
    default.refresh_from_db()
    assert default.name == "Main entity"
    assert default.active is True
    assert (default.appsecret, default.token, default.aes_key) == (
        settings.WECHAT_COMPONENT_APPSECRET,
        settings.WECHAT_COMPONENT_TOKEN,
        settings.WECHAT_COMPONENT_AES_KEY,
    )


@pytest.mark.django_db
def test_the_list_shows_name_appid_state_default_and_tenant_count(admin_client: Client, platform: Platform) -> None:
    make_tenant(component=platform)
    make_tenant(component=platform)
    Platform.objects.filter(pk=platform.pk).update(
        problem="platform configuration rejected by WeChat", problem_code=40125
    )

    response = admin_client.get(reverse("admin:component_platform_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    (row,) = [row for row in html.split("<tr")[1:] if f">{APPID}<" in row]
    assert "Second entity" in row
    assert '<td class="field-tenant_count">2</td>' in row
    assert "platform configuration rejected by WeChat (40125 platform secret rejected)" in row
    assert settings.WECHAT_COMPONENT_APPID in html


@pytest.mark.django_db
def test_platforms_cannot_be_deleted(admin_client: Client, platform: Platform) -> None:
    response = admin_client.post(reverse("admin:component_platform_delete", args=[platform.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Platform.objects.filter(pk=platform.pk).exists()


@pytest.mark.django_db
def test_the_support_group_sees_platforms_but_cannot_add_or_change_them(
    support_client: Client, platform: Platform
) -> None:
    assert support_client.get(reverse("admin:component_platform_changelist")).status_code == 200
    page = support_client.get(_change_url(platform))
    assert page.status_code == 200
    assert 'name="new_appsecret"' not in page.content.decode()

    add = support_client.post(ADD_URL, _form(component_appid="wx0000000000000002"))
    change = support_client.post(_change_url(platform), _form(active=None, new_token="forged1"))

    assert add.status_code == 403
    assert change.status_code == 403
    platform.refresh_from_db()
    assert (platform.active, platform.token) == (True, TOKEN)
    assert not Platform.objects.filter(component_appid="wx0000000000000002").exists()


@pytest.mark.django_db
def test_staff_with_the_change_permission_only_may_change_but_not_add(platform: Platform) -> None:
    user = User.objects.create_user("operator", password="operator-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_platform"))
    client = Client()
    client.force_login(user)

    add = client.post(ADD_URL, _form(component_appid="wx0000000000000002"))
    change = client.post(_change_url(platform), _form(active=None, new_appsecret="", new_token="", new_aes_key=""))

    assert add.status_code == 403
    assert change.status_code == 302
    platform.refresh_from_db()
    assert platform.active is False
