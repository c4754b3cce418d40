"""`manage.py add_component`: adds a platform or updates one added before, checks every value as WeChat would,
refuses the default platform, and never prints a secret."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from wxplatform.component.models import Platform
from wxplatform.component.services import default_component
from wxplatform.wechat.crypto import MessageCrypto

APPID = "wx2c2769f8efd9abc2"
SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "pamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _run(**options: str) -> str:
    arguments = {"appid": APPID, "secret": SECRET, "token": TOKEN, "aes_key": AES_KEY, **options}
    out = StringIO()
    call_command("add_component", *[f"--{k.replace('_', '-')}={v}" for k, v in arguments.items()], stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_add_component_adds_an_active_platform_with_its_secrets_encrypted() -> None:
    out = _run(name="Second entity")

    platform = Platform.objects.get(component_appid=APPID)
    assert (platform.name, platform.active) == ("Second entity", True)
    assert (platform.appsecret, platform.token, platform.aes_key) == (SECRET, TOKEN, AES_KEY)
    assert out == f"Added platform Second entity ({APPID}).\n"
    # Stored encrypted, like the authorizer tokens.
    with connection.cursor() as cursor:
        cursor.execute("SELECT appsecret, token, aes_key FROM component_platform WHERE id = %s", [platform.pk])
        stored = cursor.fetchone()
    assert SECRET not in stored and TOKEN not in stored and AES_KEY not in stored


@pytest.mark.django_db
def test_add_component_updates_a_platform_added_before_and_keeps_its_name() -> None:
    _run(name="Second entity")
    new_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"

    out = _run(secret="f" * 32, token="newtoken1", aes_key=new_key)

    platform = Platform.objects.get(component_appid=APPID)
    assert (platform.appsecret, platform.token, platform.aes_key) == ("f" * 32, "newtoken1", new_key)
    assert platform.name == "Second entity"
    assert Platform.objects.filter(component_appid=APPID).count() == 1
    assert out == f"Updated platform Second entity ({APPID}): AppSecret, token and EncodingAESKey replaced.\n"


@pytest.mark.django_db
def test_add_component_prints_no_secret() -> None:
    out = _run()

    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in out


@pytest.mark.django_db
def test_add_component_refuses_the_default_platform_whose_credentials_come_from_the_settings() -> None:
    default = default_component()

    with pytest.raises(CommandError) as refused:
        _run(appid=settings.WECHAT_COMPONENT_APPID, secret="x" * 32)

    assert "is the default platform" in str(refused.value)
    assert "WECHAT_COMPONENT_*" in str(refused.value)
    default.refresh_from_db()
    assert default.appsecret == settings.WECHAT_COMPONENT_APPSECRET


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("appid", "wx123", "A component AppID is “wx” followed by 16 letters or digits."),
        ("appid", "gh_2c2769f8efd9abc2", "A component AppID is “wx” followed by 16 letters or digits."),
        ("aes_key", AES_KEY[:42], "The EncodingAESKey must be 43 letters or digits"),
        ("aes_key", AES_KEY[:42] + "=", "The EncodingAESKey must be 43 letters or digits"),
        ("aes_key", AES_KEY[:42] + "+", "The EncodingAESKey must be 43 letters or digits"),
        ("token", "ab", "The message verification token must be 3 to 32 letters or digits"),
        ("token", "a" * 33, "The message verification token must be 3 to 32 letters or digits"),
        ("token", "has space", "The message verification token must be 3 to 32 letters or digits"),
        ("token", "dash-token", "The message verification token must be 3 to 32 letters or digits"),
        ("secret", "with space", "The AppSecret must be 1 to 128 printable characters without spaces."),
    ],
)
def test_add_component_refuses_a_value_wechat_would_refuse(option: str, value: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        _run(**{option: value})

    assert message in str(refused.value)
    assert not Platform.objects.filter(component_appid=APPID).exists()


def test_the_boundary_values_the_command_accepts_are_ones_message_crypto_accepts() -> None:
    # The EncodingAESKey check is MessageCrypto's own: a key the command stores is one the push URLs can use.
    crypto = MessageCrypto("a" * 32, AES_KEY, APPID)
    assert crypto.decrypt(crypto.encrypt("<xml/>")) == "<xml/>"


@pytest.mark.django_db
def test_add_component_reports_every_bad_value_at_once() -> None:
    with pytest.raises(CommandError) as refused:
        _run(token="x", aes_key="short")

    assert "token" in str(refused.value)
    assert "EncodingAESKey" in str(refused.value)
