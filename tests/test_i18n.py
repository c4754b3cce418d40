"""zh-Hans ships beside English: every extracted string is translated and the compiled catalogue is current."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import translation

PO = Path(__file__).resolve().parents[1] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"

pytestmark = pytest.mark.smoke


def test_every_message_in_the_catalogue_is_translated_and_none_is_fuzzy() -> None:
    entries = PO.read_text(encoding="utf-8").split("\n\n")[1:]  # the first entry is the header

    # An empty msgstr not continued on the next line ("" followed by more quoted lines is a long string).
    untranslated = [e for e in entries if re.search(r'^msgstr(\[0\])? ""(\n(?!")|\Z)', e.strip(), re.MULTILINE)]
    fuzzy = [e for e in entries if "#, fuzzy" in e]

    assert len(entries) > 300
    assert untranslated == []
    assert fuzzy == []


def test_compiled_catalogue_matches_the_source(tmp_path: Path) -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext's msgfmt is not installed")
    compiled = tmp_path / "django.mo"

    subprocess.run([msgfmt, "--check", "-o", str(compiled), str(PO)], check=True, timeout=60)

    assert compiled.read_bytes() == PO.with_suffix(".mo").read_bytes()


@pytest.mark.parametrize(
    ("english", "chinese"),
    [("Authorization complete", "授权成功"), ("Merchant accounts", None), ("Draft count", None)],
)
def test_user_facing_strings_render_in_simplified_chinese(english: str, chinese: str | None) -> None:
    with translation.override("zh-hans"):
        rendered = translation.gettext(english)

    assert rendered != english
    assert re.search(r"[\u4e00-\u9fff]", rendered)
    if chinese is not None:
        assert rendered == chinese
