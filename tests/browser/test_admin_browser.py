"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright.

An operator logs in, filters the account list, opens an account, and after the merchant's draft box
changed (set through the sandbox's control API) clicks "Sync now" and sees the new count and the chart.
Screenshots are left under /tmp/wxp-admin-*.png for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from django.utils import timezone

from tenants.models import Tenant
from tests.factories import make_snapshot, make_tenant
from tests.fixtures.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.fixtures.platform import LivePlatform
from tests.fixtures.sandbox import Sandbox
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add

SHOTS = Path("/tmp")

pytestmark = list(BROWSER_MARKS)


def _sandbox_tenant(sandbox: Sandbox, *, nickname: str, draft_count: int) -> Tenant:
    account = sandbox.control.create_authorizer(
        kind="service", func_ids=[1, 11], draft_count=draft_count, authorized=True
    )
    return make_tenant(
        authorizer_appid=account["appid"],
        nickname=nickname,
        access_token=account["authorizer_access_token"],
        access_token_expires_at=timezone.now() + timedelta(seconds=account["expires_in"]),
        refresh_token=account["authorizer_refresh_token"],
        draft_count=draft_count,
        # Longer ago than DRAFT_SYNC_MIN_INTERVAL, so that "Sync now" really asks WeChat.
        draft_count_fetched_at=timezone.now() - timedelta(hours=3),
    )


def test_operator_filters_opens_an_account_and_syncs_it_now(
    live_server: object, wechat_settings: Sandbox, browser_page: object
) -> None:
    page = browser_page
    base_url = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser("operator", password=PASSWORD)
    tenant = _sandbox_tenant(wechat_settings, nickname="Browser Test Account", draft_count=5)
    now = timezone.now()
    for days_ago, count in ((25, 1), (12, 3), (4, 5)):
        make_snapshot(tenant, total_count=count, fetched_at=now - timedelta(days=days_ago))
    make_tenant(nickname="Revoked Elsewhere", status="revoked", access_token="", refresh_token="")

    log_in(page, base_url, "operator")
    page.click("text=Merchant accounts")  # type: ignore[attr-defined]
    # Filter: active accounts only, then search by nickname.
    page.click("a[href*='status__exact=active']")  # type: ignore[attr-defined]
    page.wait_for_url("**status__exact=active**")  # type: ignore[attr-defined]
    assert page.locator("#result_list").inner_text().count("Revoked Elsewhere") == 0  # type: ignore[attr-defined]
    page.fill("#searchbar", "Browser Test")  # type: ignore[attr-defined]
    page.press("#searchbar", "Enter")  # type: ignore[attr-defined]
    page.wait_for_url("**q=Browser+Test**")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "wxp-admin-list.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("#result_list a:has-text('Browser Test Account')")  # type: ignore[attr-defined]
    assert page.inner_text("#latest-count") == "5"  # type: ignore[attr-defined]

    # The merchant writes drafts; WeChat (the sandbox) now says 42.
    wechat_settings.control.update_authorizer(tenant.authorizer_appid, draft_count=42)
    page.click("#sync-now")  # type: ignore[attr-defined]
    page.wait_for_selector(".messagelist")  # type: ignore[attr-defined]

    assert "Synced: 42 drafts." in page.inner_text(".messagelist")  # type: ignore[attr-defined]
    assert page.inner_text("#latest-count") == "42"  # type: ignore[attr-defined]
    chart = page.locator("#draft-chart svg")  # type: ignore[attr-defined]
    assert chart.is_visible()
    assert chart.locator(".wxp-chart-latest").text_content() == "42"
    assert chart.locator("circle").count() == 4  # three snapshots, and the sync's new value
    page.screenshot(path=str(SHOTS / "wxp-admin-tenant-synced.png"), full_page=True)  # type: ignore[attr-defined]
    page.goto(f"{base_url}/admin/status/")  # type: ignore[attr-defined]
    assert page.inner_text("h1") == "Platform status"  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "wxp-admin-status.png"), full_page=True)  # type: ignore[attr-defined]

    tenant.refresh_from_db()
    assert tenant.draft_count == 42
    assert wechat_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}


def test_operator_issues_a_key_shown_once_then_marks_the_account_revoked(
    live_server: object, browser_page: object
) -> None:
    page = browser_page
    base_url = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser("operator", password=PASSWORD)
    tenant = make_tenant(nickname="Key Holder")

    log_in(page, base_url, "operator")
    page.goto(f"{base_url}/admin/tenants/tenant/{tenant.pk}/change/")  # type: ignore[attr-defined]
    page.fill("#api-key-name", "ERP")  # type: ignore[attr-defined]
    page.click("#api-key-create input[type=submit]")  # type: ignore[attr-defined]
    raw_key = page.inner_text("#raw-api-key")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "wxp-admin-api-key-once.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("text=Back to the account")  # type: ignore[attr-defined]
    assert raw_key not in page.content()  # type: ignore[attr-defined]
    prefix = raw_key.split(".")[0]
    # Rotate: a new key, shown once, replaces the old one.
    page.click(f"#api-key-{prefix} input[value=Rotate]")  # type: ignore[attr-defined]
    rotated = page.inner_text("#raw-api-key")  # type: ignore[attr-defined]
    page.click("text=Back to the account")  # type: ignore[attr-defined]
    assert rotated not in page.content()  # type: ignore[attr-defined]
    assert page.locator(f"#api-key-{prefix} .wxp-badge").inner_text() == "revoked"  # type: ignore[attr-defined]
    prefix = rotated.split(".")[0]
    page.click(f"#api-key-{prefix} input[value=Revoke]")  # type: ignore[attr-defined]
    assert f"API key {prefix} revoked." in page.inner_text(".messagelist")  # type: ignore[attr-defined]

    page.click("#mark-revoked")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "wxp-admin-revoke-confirm.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("#confirm-revoke")  # type: ignore[attr-defined]

    assert "Marked revoked; the tokens were purged." in page.inner_text(".messagelist")  # type: ignore[attr-defined]
    assert page.locator("#mark-revoked").count() == 0  # type: ignore[attr-defined]
    tenant.refresh_from_db()
    assert (tenant.status, tenant.access_token, tenant.refresh_token) == ("revoked", "", "")
    assert [k.revoked for k in tenant.api_keys.all()] == [True, True]


def test_console_reads_in_simplified_chinese(live_server: object, browser_page: object) -> None:
    page = browser_page
    base_url = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser("operator", password=PASSWORD)
    make_tenant(nickname="示例服务号")

    log_in(page, base_url, "operator")
    page.select_option("#wxp-language select", "zh-hans")  # type: ignore[attr-defined]
    page.wait_for_selector("html[lang='zh-hans']")  # type: ignore[attr-defined]
    page.goto(f"{base_url}/admin/tenants/tenant/")  # type: ignore[attr-defined]

    assert page.get_attribute("html", "lang") == "zh-hans"  # type: ignore[attr-defined]
    assert "示例服务号" in page.inner_text("#result_list")  # type: ignore[attr-defined]
    assert "首页" in page.inner_text(".breadcrumbs")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "wxp-admin-list-zh-hans.png"), full_page=True)  # type: ignore[attr-defined]


# Elements that hold a short label and must never be squeezed narrower than their longest word (for Chinese,
# which has no spaces, narrower than the whole label): the landing page's cards, links and chart titles, the
# merchant list's headers, nicknames, appids and badges.
_LABELS = (
    "#wxp-home h2, #wxp-home h3, #wxp-home .wxp-figure, #wxp-home .wxp-link strong, "
    "#result_list thead th, #result_list .field-nickname a, #result_list .field-authorizer_appid, "
    "#result_list .wxp-badge, #result_list .field-kind_label, #result_list .field-status_badge"
)
_SQUEEZED = """(selector) => {
  const canvas = document.createElement('canvas').getContext('2d');
  const squeezed = [];
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    canvas.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const text = (el.innerText || '').trim();
    if (!text) continue;
    const words = /[\\u4e00-\\u9fff]/.test(text) ? [text.replace(/\\s+/g, '')] : text.split(/\\s+/);
    const longest = Math.max(...words.map((w) => canvas.measureText(w).width));
    const box = el.getBoundingClientRect();
    const room = box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (longest > room + 1) {
      const what = `${el.tagName}.${el.className} "${text.slice(0, 30)}"`;
      squeezed.push(`${what}: ${Math.ceil(longest)} > ${Math.floor(room)}px`);
    }
  }
  return squeezed;
}"""


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_landing_page_merchant_list_and_platform_pages_fit_a_laptop_screen(
    live_server: object, browser_page: object, language: str
) -> None:
    page = browser_page
    base_url = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser("operator", password=PASSWORD)
    for n in range(12):
        make_tenant(nickname=f"未授权素材管理权限的订阅号{n}" if n % 2 else f"Subscription account number {n}")
    make_tenant(nickname="示例小程序", eligibility="wrong_kind", account_kind="mini_program")
    # A second platform with a long name, switched off: the landing page's card, the status page and the
    # platform list show every platform.
    second = component_add(
        appid="wx2c2769f8efd9abc2",
        secret="s" * 32,
        token="second",
        aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        name="第二家主体的第三方平台 Second legal entity's platform",
    )
    Platform.objects.filter(pk=second.pk).update(
        active=False, problem="component_verify_ticket rejected by WeChat", problem_code=61006
    )
    page.set_viewport_size({"width": 1366, "height": 900})  # type: ignore[attr-defined]

    log_in(page, base_url, "operator")
    page.select_option("#wxp-language select", language)  # type: ignore[attr-defined]
    page.wait_for_selector(f"html[lang='{language}']")  # type: ignore[attr-defined]
    pages = (
        ("home", "/admin/"),
        ("list", "/admin/tenants/tenant/"),
        ("status", "/admin/status/"),
        ("platforms", "/admin/component/platform/"),
        ("platform", f"/admin/component/platform/{second.pk}/change/"),
    )
    for name, path in pages:
        page.goto(f"{base_url}{path}")  # type: ignore[attr-defined]
        page.screenshot(path=str(SHOTS / f"wxp-admin-{name}-{language}-1366.png"), full_page=True)  # type: ignore[attr-defined]
        # Neither the page nor a box in it (the list's results) scrolls sideways; a text field scrolls its own
        # long value (the platform's name), as every text field does.
        overflowing = page.evaluate(  # type: ignore[attr-defined]
            """() => [document.documentElement, ...document.querySelectorAll('#content *')]
              .filter((el) => el.tagName !== 'INPUT')
              .filter((el) => el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1)
              .filter((el) => getComputedStyle(el).overflowX !== 'visible')
              .map((el) => `${el.tagName}#${el.id}.${el.className} ${el.scrollWidth} > ${el.clientWidth}`)"""
        )
        assert overflowing == [], f"{path} scrolls sideways at 1366 px"
        assert page.evaluate(_SQUEEZED, _LABELS) == [], path  # type: ignore[attr-defined]


# Pushes of every kind the log meets: WeChat's InfoTypes and MsgTypes, an event, and a forger's unknown kind.
_PUSH_KINDS = (
    ("component", "component_verify_ticket", "verify ticket", "验证票据"),
    ("component", "authorized", "authorization", "授权"),
    ("component", "unauthorized", "authorization revoked", "取消授权"),
    ("message", "text", "text message", "文本消息"),
    ("message", "event:subscribe", "event", "事件"),
)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_push_log_fits_a_laptop_screen_and_names_the_kinds(
    live_server: object, browser_page: object, language: str
) -> None:
    from tenants.models import PushLog, PushOutcome

    page = browser_page
    base_url = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser("operator", password=PASSWORD)
    now = timezone.now()
    outcomes = (PushOutcome.SUCCESS, PushOutcome.EMPTY, PushOutcome.REPLY, PushOutcome.REJECTED)
    PushLog.objects.bulk_create(
        PushLog(
            received_at=now - timedelta(minutes=n),
            endpoint=_PUSH_KINDS[n % len(_PUSH_KINDS)][0],
            component_appid="wx1234567890abcdef",
            authorizer_appid="" if n % 3 == 0 else f"wxauthorizer{n:06d}",
            kind=_PUSH_KINDS[n % len(_PUSH_KINDS)][1],
            signature_ok=n % 4 != 3,
            decrypted=n % 4 != 3,
            outcome=outcomes[n % 4],
            status_code=401 if n % 4 == 3 else 200,
            error_code="bad_signature" if n % 4 == 3 else "",
            duration_ms=1.5 + n,
            query={},
            body="<xml/>",
            replayed_at=now if n % 7 == 0 else None,
        )
        for n in range(44)
    )
    page.set_viewport_size({"width": 1366, "height": 900})  # type: ignore[attr-defined]
    log_in(page, base_url, "operator")
    page.select_option("#wxp-language select", language)  # type: ignore[attr-defined]
    page.wait_for_selector(f"html[lang='{language}']")  # type: ignore[attr-defined]

    page.goto(f"{base_url}/admin/tenants/pushlog/")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-admin-pushlog-{language}-1366.png"), full_page=True)  # type: ignore[attr-defined]

    # Neither the page nor the list's box scrolls sideways: every column is on the screen.
    overflowing = page.evaluate(  # type: ignore[attr-defined]
        """() => [document.documentElement, ...document.querySelectorAll('#content *')]
          .filter((el) => el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1)
          .filter((el) => el === document.documentElement || getComputedStyle(el).overflowX !== 'visible')
          .map((el) => `${el.tagName}#${el.id}.${el.className} ${el.scrollWidth} > ${el.clientWidth}`)"""
    )
    assert overflowing == []
    off_screen = page.evaluate(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('#result_list thead th')]
          .filter((th) => th.getBoundingClientRect().right > window.innerWidth)
          .map((th) => th.innerText.trim())"""
    )
    assert off_screen == []
    # The URL is a short label on a line or two, never a column of single characters (the text's own height:
    # the cell is as tall as the row's tallest neighbour).
    tallest = page.evaluate(  # type: ignore[attr-defined]
        """() => Math.max(...[...document.querySelectorAll('#result_list td.field-endpoint_label')].map((td) => {
             const range = document.createRange();
             range.selectNodeContents(td);
             return range.getBoundingClientRect().height;
           }))"""
    )
    assert 0 < tallest <= 40
    urls = set(page.locator("#result_list td.field-endpoint_label").all_inner_texts())  # type: ignore[attr-defined]
    assert urls == (
        {"授权事件", "消息与事件"} if language == "zh-hans" else {"authorization events", "messages and events"}
    )
    assert page.evaluate("() => document.documentElement.scrollHeight") < 3000  # type: ignore[attr-defined]
    squeezed = page.evaluate(  # type: ignore[attr-defined]
        _SQUEEZED,
        "#result_list thead th, #result_list .field-received, #result_list .field-endpoint_label, "
        "#result_list .field-authorizer_appid, #result_list .wxp-badge",
    )
    assert squeezed == []

    # Kinds in words with WeChat's code beside them, in the list and in the filter.
    kinds = [  # the code is on a line of its own
        " ".join(text.split())
        for text in page.locator("#result_list td.field-kind_label").all_inner_texts()  # type: ignore[attr-defined]
    ]
    filters = page.inner_text("#changelist-filter")  # type: ignore[attr-defined]
    for _endpoint, code, english, chinese in _PUSH_KINDS:
        words = chinese if language == "zh-hans" else english
        shown = f"{words} ({code.removeprefix('event:')})" if code.startswith("event:") else f"{words} ({code})"
        assert shown in kinds, (shown, sorted(set(kinds)))
        assert shown in filters, (shown, filters)


# What the callback page says, per language: where the key goes, in the page's own words.
_WHERE_TO_USE = {
    "en": ("Using your key", "API base URL", "Header", "Try it", "API documentation"),
    "zh-hans": ("如何使用密钥", "API 地址", "请求头", "试一试", "API 文档"),
}


@pytest.fixture
def merchant_page(browser_page: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A page of a browser set to the merchant's language (`locale`, its Accept-Language), 1366 px wide."""
    browser = browser_page.context.browser  # type: ignore[attr-defined]
    context = browser.new_context(locale=request.param, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.mark.parametrize(
    ("merchant_page", "language"), [("en-US", "en"), ("zh-CN", "zh-hans")], indirect=["merchant_page"]
)
def test_merchant_authorizes_in_a_browser_and_the_callback_page_says_where_to_use_the_key(
    ready_platform: LivePlatform, merchant_page: object, language: str
) -> None:
    page = merchant_page
    base_url = ready_platform.url
    ready_platform.control.create_authorizer(
        appid="wxbrowser00000001", nickname="浏览器测试服务号", kind="service", func_ids=[1, 11], draft_count=7
    )

    # The merchant's way: the platform's page, WeChat's consent page (the sandbox's), back to the callback.
    page.goto(f"{base_url}/wechat/authorize")  # type: ignore[attr-defined]
    page.click("#authorize-pc")  # type: ignore[attr-defined]
    page.select_option("#authorizer_appid", "wxbrowser00000001")  # type: ignore[attr-defined]
    page.click("#agree")  # type: ignore[attr-defined]
    page.wait_for_selector("#api-key")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-authorize-done-{language}-1366.png"), full_page=True)  # type: ignore[attr-defined]

    assert page.get_attribute("html", "lang") == language  # type: ignore[attr-defined]
    key = page.inner_text("#api-key").strip()  # type: ignore[attr-defined]
    # Absolute, from the request: what the merchant's program calls.
    assert page.inner_text("#api-base").strip() == f"{base_url}/api/v1/"  # type: ignore[attr-defined]
    assert page.inner_text("#api-header").strip() == f"Authorization: Api-Key {key}"  # type: ignore[attr-defined]
    curl = page.inner_text("#api-curl").strip()  # type: ignore[attr-defined]
    assert curl == f'curl -H "Authorization: Api-Key {key}" {base_url}/api/v1/draft-count'
    assert page.get_attribute("#api-docs", "href") == f"{base_url}/api/docs/"  # type: ignore[attr-defined]
    text = page.inner_text("body")  # type: ignore[attr-defined]
    for words in _WHERE_TO_USE[language]:
        assert words in text, (words, text)

    # The example's key and header are accepted (no worker here to fetch the first count, so the API says so).
    answer = requests.get(f"{base_url}/api/v1/draft-count", headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "draft_count_not_fetched")

    # Nothing scrolls sideways and nothing reaches past the screen's right edge: the long example wraps.
    overflowing = page.evaluate(  # type: ignore[attr-defined]
        """() => [document.documentElement, ...document.querySelectorAll('body *')]
          .filter((el) => (el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1
                           && (el === document.documentElement || getComputedStyle(el).overflowX !== 'visible'))
                          || el.getBoundingClientRect().right > window.innerWidth)
          .map((el) => `${el.tagName}#${el.id}.${el.className} ${el.scrollWidth} > ${el.clientWidth}`)"""
    )
    assert overflowing == []
