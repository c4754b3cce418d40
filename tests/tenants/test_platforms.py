"""Two third-party platforms side by side in one database, against one sandbox that emulates both on one base URL
(as WeChat serves every platform from api.weixin.qq.com): tickets, onboarding, sync, pushes, revocation, the push
log, and a platform switched off."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from html import unescape
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from drafts.models import SyncAttempt
from drafts.services import draft_count_chunk_sync, draft_count_run_start
from tenants.models import AuthorizationCode, PushLog, Tenant, TenantStatus
from tenants.selectors import api_key_find, syncable_tenants
from tests.fixtures.platform import LivePlatform, signed_push, ticket_fields
from tests.fixtures.sandbox import SECOND_COMPONENT
from tests.fixtures.sync import make_all_due
from wxplatform.component.models import Platform
from wxplatform.component.services import (
    ComponentInactive,
    component_access_token,
    component_add,
    default_component,
)
from wxplatform.component.tasks import refresh_component_token
from wxplatform.wechat.crypto import MessageCrypto, build_xml
from wxsandbox.control import SandboxControl

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.smoke]

SECOND = SECOND_COMPONENT["appid"]
COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"


@dataclass(frozen=True)
class Two:
    url: str
    first: SandboxControl
    second: SandboxControl
    first_component: Platform
    second_component: Platform


@pytest.fixture
def two(platform: LivePlatform, second_component: SandboxControl) -> Two:
    """The default platform and a second one, both wired to the live server and holding a ticket."""
    second = component_add(
        appid=SECOND,
        secret=SECOND_COMPONENT["appsecret"],
        token=SECOND_COMPONENT["token"],
        aes_key=SECOND_COMPONENT["aes_key"],
        name="Second entity",
    )
    second_component.set_event_url(f"{platform.url}/wechat/components/{SECOND}/events")
    second_component.set_message_url(f"{platform.url}/wechat/components/{SECOND}/authorizers/$APPID$/events")
    for control in (platform.control, second_component):
        answer = control.push_ticket()
        assert answer["push"]["status"] == 200, answer["push"]
    return Two(platform.url, platform.control, second_component, default_component(), second)


def onboard(url: str, control: SandboxControl, appid: str, component: str | None = None) -> None:
    """The merchant's path: our authorization page (for `component`), WeChat's consent, our callback."""
    page = requests.get(f"{url}/wechat/authorize", params={"component": component} if component else None, timeout=10)
    assert page.status_code == 200, page.text
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert query["component_appid"] == (component or default_component().component_appid)
    answer = control.consent(query["pre_auth_code"], appid, redirect_uri=query["redirect_uri"], push=False)
    assert requests.get(answer["redirect_url"], timeout=30).status_code == 200


def same_account_on_both(two: Two, *, first_drafts: int = 3, second_drafts: int = 8) -> tuple[Tenant, Tenant]:
    """One Official Account authorizing both platforms: two tenants, one per platform."""
    account = two.first.create_authorizer(kind="service", func_ids=[1, 11], draft_count=first_drafts)
    two.second.create_authorizer(appid=account["appid"], kind="service", func_ids=[1, 11], draft_count=second_drafts)
    onboard(two.url, two.first, account["appid"])
    onboard(two.url, two.second, account["appid"], component=SECOND)
    first = Tenant.objects.get(component=two.first_component, authorizer_appid=account["appid"])
    second = Tenant.objects.get(component=two.second_component, authorizer_appid=account["appid"])
    return first, second


def sync_all() -> None:
    make_all_due()
    run = draft_count_run_start(trigger="schedule", enqueue_chunks=False).run
    for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
        draft_count_chunk_sync(chunk_id=chunk_id, chain=False)


def calls(control: SandboxControl, path: str) -> int:
    return int(control.counters()["endpoints"].get(path, {}).get("calls", 0))


def test_each_platform_keeps_its_own_ticket_and_component_token(two: Two) -> None:
    first = Platform.objects.get(pk=two.first_component.pk)
    second = Platform.objects.get(pk=two.second_component.pk)

    assert first.verify_ticket == two.first.ticket()
    assert second.verify_ticket == two.second.ticket()
    assert first.verify_ticket != second.verify_ticket
    first_token, second_token = component_access_token(first), component_access_token(second)
    assert first_token != second_token
    assert two.first.component()["component_access_token"] == first_token
    assert two.second.component()["component_access_token"] == second_token


def test_one_account_authorizing_two_platforms_is_two_tenants_with_their_own_tokens(two: Two) -> None:
    first, second = same_account_on_both(two)

    assert first.pk != second.pk
    assert first.refresh_token and second.refresh_token
    assert first.refresh_token != second.refresh_token
    assert first.access_token != second.access_token
    # The pair is unique: the same account cannot be a second tenant of the same platform.
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.create(
            component=two.second_component, authorizer_appid=second.authorizer_appid, account_kind="service"
        )


def test_a_sync_reads_each_tenant_with_its_own_platforms_token(two: Two) -> None:
    first, second = same_account_on_both(two, first_drafts=3, second_drafts=8)

    sync_all()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.draft_count, second.draft_count) == (3, 8)


def test_an_expired_token_is_refreshed_through_its_own_platform(two: Two) -> None:
    _first, second = same_account_on_both(two)
    two.second.expire_authorizer_tokens(second.authorizer_appid)
    Tenant.objects.filter(pk=second.pk).update(access_token_expires_at=None)
    two.first.reset_all_counters()

    sync_all()

    assert calls(two.second, AUTHORIZER_TOKEN) == 1
    assert calls(two.first, AUTHORIZER_TOKEN) == 0
    second.refresh_from_db()
    assert second.status == TenantStatus.ACTIVE
    assert second.draft_count == 8


def test_revoking_one_platform_leaves_the_other_authorization_alone(two: Two) -> None:
    first, second = same_account_on_both(two)

    answer = two.second.revoke(second.authorizer_appid, push=True)

    assert answer["push"]["status"] == 200, answer
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == TenantStatus.REVOKED
    assert second.refresh_token == ""
    assert first.status == TenantStatus.ACTIVE
    assert first.refresh_token


def test_the_push_log_keeps_each_platforms_pushes_apart(two: Two) -> None:
    same_account_on_both(two)

    tickets = PushLog.objects.filter(kind="component_verify_ticket")
    assert set(tickets.values_list("component_appid", flat=True)) == {two.first_component.component_appid, SECOND}
    assert all(push.outcome == "success" for push in tickets)


def test_a_push_for_one_platform_posted_to_anothers_url_is_refused_and_changes_nothing(two: Two) -> None:
    before = Platform.objects.get(pk=two.second_component.pk).verify_ticket
    # Sealed with the default platform's token and key, posted to the second platform's URL.
    body, query = signed_push(ticket_fields("ticket@@@forged-for-the-other-platform"))

    response = requests.post(f"{two.url}/wechat/components/{SECOND}/events", params=query, data=body, timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert Platform.objects.get(pk=two.second_component.pk).verify_ticket == before
    refused = PushLog.objects.filter(component_appid=SECOND, outcome="rejected").get()
    assert refused.signature_ok is False


def test_a_push_sealed_by_the_right_platform_for_another_appid_is_refused(two: Two) -> None:
    body, query = signed_push(
        ticket_fields("ticket@@@wrong-appid"), appid=SECOND, token=SECOND_COMPONENT["token"]
    )  # sealed with the second platform's token but the default platform's key: does not decrypt

    response = requests.post(f"{two.url}/wechat/components/{SECOND}/events", params=query, data=body, timeout=10)

    assert 400 <= response.status_code < 500
    assert Platform.objects.get(pk=two.second_component.pk).verify_ticket != "ticket@@@wrong-appid"


def test_an_unknown_platforms_url_is_a_404_in_the_error_shape_and_logs_nothing(two: Two) -> None:
    body, query = signed_push(ticket_fields("ticket@@@nobody"))
    logged = PushLog.objects.count()

    for path in (
        "/wechat/components/wx0000nosuch0comp/events",
        "/wechat/components/wx0000nosuch0comp/authorizers/wx1234567890abcdef/events",
    ):
        response = requests.post(f"{two.url}{path}", params=query, data=body, timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "unknown_component"
    assert PushLog.objects.count() == logged


def test_the_authorization_page_of_an_unknown_platform_is_a_404(two: Two) -> None:
    response = requests.get(f"{two.url}/wechat/authorize", params={"component": "wx0000nosuch0comp"}, timeout=10)

    assert response.status_code == 404
    assert calls(two.first, "/cgi-bin/component/api_create_preauthcode") == 0


def test_a_platform_switched_off_refreshes_and_syncs_nothing(two: Two) -> None:
    first, second = same_account_on_both(two)
    Platform.objects.filter(pk=two.second_component.pk).update(active=False)
    Platform.objects.filter(pk=two.second_component.pk).update(access_token_expires_at=None)
    Tenant.objects.filter(pk=second.pk).update(access_token_expires_at=None)
    two.first.reset_all_counters()

    assert set(syncable_tenants().values_list("pk", flat=True)) == {first.pk}
    with pytest.raises(ComponentInactive):
        component_access_token(Platform.objects.get(pk=two.second_component.pk))
    refresh_component_token()
    sync_all()

    assert calls(two.second, COMPONENT_TOKEN) == 0
    assert calls(two.second, AUTHORIZER_TOKEN) == 0
    assert calls(two.second, "/cgi-bin/draft/count") == 0
    first.refresh_from_db()
    assert first.draft_count == 3


def test_the_default_platforms_record_follows_its_settings(two: Two, settings: Any) -> None:
    settings.WECHAT_COMPONENT_APPSECRET = "rotated-secret"

    assert default_component().appsecret == "rotated-secret"
    assert Platform.objects.get(pk=two.first_component.pk).appsecret == "rotated-secret"
    # Stored encrypted, like the authorizer tokens.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT appsecret, token, aes_key FROM component_platform WHERE id = %s",
            [two.second_component.pk],
        )
        stored = cursor.fetchone()
    assert SECOND_COMPONENT["appsecret"] not in stored[0]
    assert SECOND_COMPONENT["token"] not in stored[1]
    assert SECOND_COMPONENT["aes_key"] not in stored[2]


def test_commands_name_the_platform_of_an_account_that_authorized_two(two: Two) -> None:
    first, second = same_account_on_both(two, first_drafts=3, second_drafts=8)

    with pytest.raises(CommandError, match="--component"):
        call_command("issue_api_key", first.authorizer_appid, stdout=StringIO(), stderr=StringIO())
    stdout = StringIO()
    call_command("issue_api_key", first.authorizer_appid, "--component", SECOND, stdout=stdout, stderr=StringIO())
    key = api_key_find(raw_key=stdout.getvalue().strip())
    assert key is not None and key.tenant_id == second.pk

    # A sync of the account syncs both of its authorizations, or the one named.
    call_command("sync_drafts", "--tenant", first.authorizer_appid, "--no-progress", stdout=StringIO())
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.draft_count, second.draft_count) == (3, 8)
    attempts = {t.pk: SyncAttempt.objects.filter(tenant=t).count() for t in (first, second)}
    call_command(
        "sync_drafts", "--tenant", first.authorizer_appid, "--component", SECOND, "--no-progress", stdout=StringIO()
    )
    assert SyncAttempt.objects.filter(tenant=first).count() == attempts[first.pk]
    assert SyncAttempt.objects.filter(tenant=second).count() == attempts[second.pk] + 1


# --- A code brought to the wrong platform first (issue 28, finding 9) -------------------------------------------


def second_platform_code(two: Two, appid: str, browser: requests.Session | None = None) -> dict[str, Any]:
    """The merchant opens the second platform's authorization page in `browser` and consents on WeChat's page;
    WeChat's push is left for later."""
    page = (browser or requests.Session()).get(f"{two.url}/wechat/authorize", params={"component": SECOND}, timeout=10)
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    return two.second.consent(query["pre_auth_code"], appid, redirect_uri=query["redirect_uri"], push=False)


def wrong_platform_callback(two: Two, code: str) -> requests.Response:
    """The same code brought to the default platform's callback from a browser that opened that platform's
    authorization page (a wrong link, or someone who saw the code and tries it)."""
    browser = requests.Session()
    assert browser.get(f"{two.url}/wechat/authorize", timeout=10).status_code == 200
    return browser.get(f"{two.url}/wechat/authorize/callback", params={"auth_code": code}, timeout=30)


def authorized_push(two: Two, appid: str, code: str) -> requests.Response:
    """WeChat's `authorized` push to the second platform's URL, sealed with its keys."""
    crypto = MessageCrypto(SECOND_COMPONENT["token"], SECOND_COMPONENT["aes_key"], SECOND)
    now = str(int(time.time()))
    fields: dict[str, str | int] = {
        "AppId": SECOND,
        "CreateTime": now,
        "InfoType": "authorized",
        "AuthorizerAppid": appid,
        "AuthorizationCode": code,
        "AuthorizationCodeExpiredTime": int(now) + 3600,
    }
    encrypt, signature = crypto.encrypt_message(build_xml(fields), timestamp=now, nonce="4242")
    return requests.post(
        f"{two.url}/wechat/components/{SECOND}/events",
        params={"timestamp": now, "nonce": "4242", "encrypt_type": "aes", "msg_signature": signature},
        data=build_xml({"AppId": SECOND, "Encrypt": encrypt}).encode(),
        timeout=30,
    )


def test_a_code_brought_first_to_the_wrong_platform_still_works_on_its_own_callback(two: Two) -> None:
    account = two.second.create_authorizer(kind="service", func_ids=[1, 11])
    merchant = requests.Session()
    answer = second_platform_code(two, account["appid"], merchant)

    wrong = wrong_platform_callback(two, answer["auth_code"])
    right = merchant.get(answer["redirect_url"], timeout=30)

    assert wrong.status_code == 400
    assert right.status_code == 200, right.text
    # The merchant's own browser is shown the first key, as if the wrong attempt had never been.
    assert re.search(r'id="api-key">([^<]+)<', right.text) is not None
    tenant = Tenant.objects.get(authorizer_appid=account["appid"])
    assert tenant.component == two.second_component
    assert not Tenant.objects.filter(component=two.first_component).exists()
    assert calls(two.second, "/cgi-bin/component/api_query_auth") == 1


def test_a_code_brought_first_to_the_wrong_platform_is_still_exchanged_from_its_own_push(
    two: Two, worker_factory: Any
) -> None:
    worker_factory()
    account = two.second.create_authorizer(kind="service", func_ids=[1, 11])
    answer = second_platform_code(two, account["appid"])

    wrong = wrong_platform_callback(two, answer["auth_code"])
    pushed = authorized_push(two, account["appid"], answer["auth_code"])

    assert (wrong.status_code, pushed.status_code, pushed.text) == (400, 200, "success")
    deadline = time.monotonic() + 20
    while not Tenant.objects.filter(authorizer_appid=account["appid"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Tenant.objects.get(authorizer_appid=account["appid"]).component == two.second_component
    # The wrong platform's attempt is its own row, refused; the right platform's row was exchanged.
    codes = {row.component_id: row for row in AuthorizationCode.objects.all()}
    assert set(codes) == {two.first_component.pk, two.second_component.pk}
    assert codes[two.first_component.pk].tenant_id is None
    assert codes[two.second_component.pk].tenant is not None
