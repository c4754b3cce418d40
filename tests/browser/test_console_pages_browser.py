"""The console's home and a merchant's page in a real browser, at a laptop's 1366 px (and the home at 1920 px),
in Simplified Chinese and English: what staff see after a sync, on a revoked account, and whether the pages
are drawn cleanly (labels whole, buttons of one height, one date format, the close bar last).

Screenshots are left under /tmp/wxp-console-*.png for a human to look at.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone, translation

from tenants.models import Eligibility, Tenant
from tenants.services import tenant_revoke
from tests.factories import make_api_key, make_snapshot, make_tenant
from tests.fixtures.browser import BROWSER_MARKS, PASSWORD, choose_language, log_in
from tests.fixtures.sandbox import Sandbox

SHOTS = Path("/tmp")
LANGUAGES = ["zh-hans", "en"]

pytestmark = list(BROWSER_MARKS)


def _words(language: str, text: str) -> str:
    with translation.override(language):
        return translation.gettext(text)


def _sandbox_tenant(sandbox: Sandbox, *, nickname: str, draft_count: int) -> Tenant:
    account = sandbox.control.create_authorizer(
        kind="service", func_ids=[1, 11], draft_count=draft_count, authorized=True
    )
    return make_tenant(
        authorizer_appid=account["appid"],
        nickname=nickname,
        access_token=account["authorizer_access_token"],
        refresh_token=account["authorizer_refresh_token"],
    )


def _open(page: object, base_url: str, path: str, *, language: str, width: int) -> None:
    User.objects.create_superuser("operator", password=PASSWORD)
    page.set_viewport_size({"width": width, "height": 900})  # type: ignore[attr-defined]
    log_in(page, base_url, "operator")
    choose_language(page, language)
    page.goto(f"{base_url}{path}")  # type: ignore[attr-defined]


# Every text of every chart in `selector` that reaches outside its picture, or that was shortened.
_CLIPPED_LABELS = """(selector) => {
  const clipped = [];
  for (const svg of document.querySelectorAll(selector)) {
    const box = svg.getBoundingClientRect();
    for (const text of svg.querySelectorAll('text')) {
      const t = text.getBoundingClientRect();
      const inside = t.left >= box.left - 0.5 && t.right <= box.right + 0.5 && t.top >= box.top - 0.5
        && t.bottom <= box.bottom + 0.5;
      if (!inside || text.textContent.includes('…')) {
        clipped.push(`${svg.closest('[id]').id} "${text.textContent}" ${Math.round(t.left)}..${Math.round(t.right)}`
          + ` outside ${Math.round(box.left)}..${Math.round(box.right)}`);
      }
    }
  }
  return clipped;
}"""


@pytest.fixture
def start_up_sync(live_server: object, wechat_settings: Sandbox) -> None:
    """`make run`'s start-up sync: its demo merchants by AppID, two of them ineligible on purpose. Run before
    the browser starts: the sync's own event loop cannot run beside Playwright's in one thread."""
    synced = _sandbox_tenant(wechat_settings, nickname="演示服务号", draft_count=3)
    mini = make_tenant(nickname="演示小程序", account_kind="mini_program", eligibility=Eligibility.WRONG_KIND)
    missing = make_tenant(nickname="未授权素材管理的订阅号", eligibility=Eligibility.MISSING_PERMISSION)
    appids = [synced.authorizer_appid, mini.authorizer_appid, missing.authorizer_appid]
    call_command("sync_drafts", "--tenant", *appids, "--no-progress")


@pytest.mark.parametrize("width", [1366, 1920])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_home_after_a_sync_shows_it_in_whole_charts_across_the_screen(
    live_server: object, start_up_sync: None, browser_page: object, language: str, width: int
) -> None:
    page = browser_page
    _open(page, live_server.url, "/admin/", language=language, width=width)  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-console-home-{language}-{width}.png"), full_page=True)  # type: ignore[attr-defined]

    # The sync is the last one, with what it did.
    card = page.inner_text("#wxp-card-run")  # type: ignore[attr-defined]
    assert _words(language, "none yet") not in card
    assert _words(language, "Command line") in card
    today = page.inner_text("#wxp-today")  # type: ignore[attr-defined]
    assert re.findall(r"\d+", today) == ["1", "2", "0"], today
    # Its day has a bar; the skipped accounts are counted by their reasons, in words.
    bars = page.evaluate(  # type: ignore[attr-defined]
        "(id) => [...document.querySelectorAll(`#${id} svg rect`)].map((r) => r.getBBox().width)", "wxp-chart-syncs"
    )
    assert len(bars) == 7 and bars[-1] > 100 and max(bars[:-1]) == 0
    reasons = page.inner_text("#wxp-chart-skipped")  # type: ignore[attr-defined]
    assert _words(language, "Not eligible for draft/count") in reasons
    # Every label whole, inside its picture.
    assert page.evaluate(_CLIPPED_LABELS, "#wxp-home svg") == []  # type: ignore[attr-defined]
    # The dashboard takes the screen (less the page's margins and Django's recent-actions column), not 600 px.
    home = page.evaluate("() => document.querySelector('#wxp-home').getBoundingClientRect().width")  # type: ignore[attr-defined]
    assert home >= 0.7 * width, home
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # type: ignore[attr-defined]
    if width == 1920:
        tops = page.evaluate(  # type: ignore[attr-defined]
            "() => [...document.querySelectorAll('.wxp-chart')].map((c) => c.getBoundingClientRect().top)"
        )
        assert len(tops) == 4 and len(set(tops)) == 2, tops  # three charts side by side, then one


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_revoked_merchants_page_offers_no_call_and_tells_what_its_keys_can_do(
    live_server: object, browser_page: object, language: str
) -> None:
    page = browser_page
    tenant = make_tenant(nickname="已取消授权的服务号")
    make_api_key(tenant, name="ERP")
    tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)
    make_api_key(tenant, name="报表")

    path = f"/admin/tenants/tenant/{tenant.pk}/change/"
    _open(page, live_server.url, path, language=language, width=1366)  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-console-revoked-{language}-1366.png"), full_page=True)  # type: ignore[attr-defined]

    for button in ("#sync-now", "#refresh-token", "#clear-quota", "#mark-revoked"):
        assert page.locator(button).count() == 0, button  # type: ignore[attr-defined]
    assert page.locator("#tenant-inactive").is_visible()  # type: ignore[attr-defined]
    states = page.locator("#api-keys .wxp-badge").all_inner_texts()  # type: ignore[attr-defined]
    assert states == [_words(language, "draft count refused"), _words(language, "history only")]
    notes = page.inner_text("#api-keys")  # type: ignore[attr-defined]
    assert "api_key_history_only" in notes and "tenant_revoked" in notes


# Dates as the console writes them (2026-12-08, 2026-12-08 09:30:00) and as anything else wrote them.
_ONE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")
_ANY_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?|\b\d{2}-\d{2}(?: \d{2}:\d{2})?\b"
    r"|\d{4}年\d{1,2}月\d{1,2}日[^\uff0c\u3002\s]*"
    r"|\b(?:Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)\.? \d{1,2}, \d{4}[^;\n]*|\b[ap]\.m\."
)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_merchant_page_is_drawn_cleanly(live_server: object, browser_page: object, language: str) -> None:
    page = browser_page
    now = timezone.now()
    tenant = make_tenant(nickname="示例服务号", draft_count=9, draft_count_fetched_at=now - timedelta(minutes=2))
    make_snapshot(tenant, total_count=1, fetched_at=now - timedelta(days=25))
    make_snapshot(tenant, total_count=4, fetched_at=now - timedelta(days=12))
    # Changed today, minutes ago.
    make_snapshot(tenant, total_count=9, fetched_at=now - timedelta(minutes=2))
    make_api_key(tenant, name="ERP")

    path = f"/admin/tenants/tenant/{tenant.pk}/change/"
    _open(page, live_server.url, path, language=language, width=1366)  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-console-merchant-{language}-1366.png"), full_page=True)  # type: ignore[attr-defined]

    # Every button on the page is one height, links drawn as buttons and submit buttons alike.
    heights = page.evaluate(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('#content .wxp-buttons :is(.button, input[type=submit])')]
             .map((b) => `${b.id || b.value || b.innerText}: ${Math.round(b.getBoundingClientRect().height)}`)"""
    )
    assert len(heights) == 7, heights  # sync, refresh, clear quota, mark revoked; rotate, revoke; create key
    assert len({h.rsplit(": ", 1)[1] for h in heights}) == 1, heights
    # The close bar is the last thing on the page, below every panel.
    below = page.evaluate(  # type: ignore[attr-defined]
        """() => {
             const bar = document.querySelector('.submit-row').getBoundingClientRect();
             return [...document.querySelectorAll('#content .module, #content .wxp-panel:not(#tenant-close)')]
               .filter((el) => el.getBoundingClientRect().bottom > bar.top + 1).map((el) => el.id || el.className);
           }"""
    )
    assert below == []
    assert page.inner_text(".submit-row").strip() == _words(language, "Close")  # type: ignore[attr-defined]
    # One date format, one mark for "no value".
    text = page.evaluate(  # type: ignore[attr-defined]
        "() => document.querySelector('#content').innerText + '\\n' + "
        "[...document.querySelectorAll('#content svg text')].map((t) => t.textContent).join('\\n')"
    )
    dates = _ANY_DATE.findall(text)
    assert len(dates) > 10 and [d for d in dates if not _ONE_FORMAT.match(d)] == []
    empties = page.evaluate(  # type: ignore[attr-defined]
        "() => [...document.querySelectorAll('#content .readonly')].map((el) => el.innerText.trim())"
    )
    assert "—" in empties and "-" not in empties
    # Today's change is drawn inside the chart's frame, a step and a dot away from its right edge.
    chart = page.evaluate(  # type: ignore[attr-defined]
        """() => {
             const svg = document.querySelector('#draft-chart svg');
             const frame = svg.querySelector('rect').getBBox();
             const dots = [...svg.querySelectorAll('circle')].map((c) => c.cx.baseVal.value);
             return {right: frame.x + frame.width, dots};
           }"""
    )
    assert len(chart["dots"]) == 3
    assert all(dot <= chart["right"] - 10 for dot in chart["dots"]), chart
    assert page.evaluate(_CLIPPED_LABELS, "#draft-chart svg") == []  # type: ignore[attr-defined]
