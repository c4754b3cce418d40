"""The merchant API's docs page (Swagger UI at /api/docs/) in a real browser, at 1366 px, in both languages:
each shows the operations in its language and links the other (issue 27: the API docs were English only).
Screenshots are left under /tmp/wxp-api-docs-*.png for a human to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.browser import BROWSER_MARKS

SHOTS = Path("/tmp")

pytestmark = list(BROWSER_MARKS)


@pytest.fixture
def docs_page(browser_page: object) -> Iterator[object]:
    """The shared English browser (the page's language comes from ?lang=, not from the browser), 1366 px wide."""
    browser_page.set_viewport_size({"width": 1366, "height": 900})  # type: ignore[attr-defined]
    yield browser_page


@pytest.mark.parametrize(
    ("lang", "summary", "other_label", "other_lang"),
    [
        ("zh-hans", "已保存的草稿数量", "English", "en"),
        ("en", "The stored draft count", "中文", "zh-hans"),
    ],
)
def test_the_docs_page_shows_the_api_in_its_language_and_links_the_other(
    docs_page: object, live_server: object, lang: str, summary: str, other_label: str, other_lang: str
) -> None:
    page: object = docs_page
    base = live_server.url  # type: ignore[attr-defined]

    page.goto(f"{base}/api/docs/?lang={lang}")  # type: ignore[attr-defined]

    page.get_by_text(summary, exact=True).wait_for()  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"wxp-api-docs-{lang}.png"), full_page=False)  # type: ignore[attr-defined]
    link = page.get_by_role("link", name=other_label, exact=True)  # type: ignore[attr-defined]
    assert link.get_attribute("href") == f"/api/docs/?lang={other_lang}"
