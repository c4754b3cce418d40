"""README.md and README.zh-CN.md are kept in step: the same sections in the same order (by level), the same code
blocks (so the same commands), the same links; and the README stays a guide, its reference in docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[1]
ENGLISH, CHINESE = ROOT / "README.md", ROOT / "README.zh-CN.md"
CODE = re.compile(r"^( *)```[a-z]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def outline(page: Path) -> list[int]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return [len(m.group(1)) for m in re.finditer(r"^(#+) ", text, re.MULTILINE)]


def code_blocks(page: Path) -> list[str]:
    return [m.group(2) for m in CODE.finditer(page.read_text(encoding="utf-8"))]


def links(page: Path) -> list[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    targets = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r"<(https?://[^>]+)>", text)
    return sorted(t for t in targets if not t.startswith("README"))


def test_the_chinese_readme_has_the_english_ones_sections_in_the_same_order() -> None:
    assert len(outline(ENGLISH)) >= 5
    assert outline(CHINESE) == outline(ENGLISH)
    # Its headings are Chinese.
    headings = re.findall(r"^#+ (.+)$", CODE.sub("", CHINESE.read_text(encoding="utf-8")), re.MULTILINE)
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in headings), headings


def test_both_readmes_show_the_same_commands_and_links() -> None:
    assert code_blocks(CHINESE) == code_blocks(ENGLISH)
    assert links(CHINESE) == links(ENGLISH)


def test_each_readme_links_the_other() -> None:
    assert "](README.zh-CN.md)" in ENGLISH.read_text(encoding="utf-8")
    assert "](README.md)" in CHINESE.read_text(encoding="utf-8")


# An italic word in the paragraph that introduces the merchant list: a column's name.
ITALIC = re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])")


@pytest.mark.parametrize(
    ("page", "language", "intro"), [(ENGLISH, "en", "merchant list"), (CHINESE, "zh-hans", "商户列表")]
)
def test_the_readme_names_the_merchant_lists_columns_as_the_console_labels_them(
    page: Path, language: str, intro: str
) -> None:
    from django.contrib import admin
    from django.contrib.admin.utils import label_for_field
    from django.utils import translation

    from tenants.models import Tenant

    paragraphs = re.split(r"\n\s*\n|\n(?=\d+\. )", page.read_text(encoding="utf-8"))
    paragraph = next(p for p in paragraphs if intro in p)
    model_admin = admin.site._registry[Tenant]
    with translation.override(language):
        labels = [str(label_for_field(name, Tenant, model_admin)) for name in model_admin.list_display]

    assert ITALIC.findall(paragraph) == labels
