"""The protocol notes resolve inside the repository (docs/README.md#citing-these-notes).

- A `docs/….md` or `docs/….md#anchor` reference anywhere in the repository (code, templates, Markdown,
  configuration) names an existing file and, with an anchor, one of its headings (GitHub slug) or an
  explicit `<a id="…">`.
- A relative link in a Markdown file resolves the same way, relative to that file, and stays inside the
  repository.
- Nothing cites notes kept outside the repository.
- Every endpoint method of the WeChat client cites its section and WeChat's official page.

Plain file reads, no database, no network: well under a second.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wxplatform.wechat.client import WeChatClient

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[1]

# What the repository does not hold as its own text: tool state, virtualenvs, run-time files (.gitignore).
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "var",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "build",
        "dist",
        "staticfiles",
        "htmlcov",
    }
)
_SKIP_PATHS = frozenset({"bench/results"})

# Notes kept outside the repository. Spelled in two halves so that this file does not cite them itself.
_OUTSIDE = ("wechat-protocol" + ".md", ".." + "/shared")
_SECTION = re.compile("\u00a7" + r"\s*\d+(?:\.\d+)*")
_RFC_BEFORE = re.compile(r"RFC \d+\s*$")
# Files that cited the outside notes before docs/ existed. The replacements are listed with the change that
# added docs/; delete an entry when its file is fixed. An entry whose file no longer cites them fails the
# test, so this list can only shrink.
_PENDING_OUTSIDE_CITATIONS: frozenset[str] = frozenset()

# `docs/<path>.md` with an optional `#anchor`, not preceded by a path or URL character (so neither
# `../docs/x.md` nor `https://host/docs/x.md` counts: the first is a relative link, the second not ours).
_DOCS_REF = re.compile(r"(?<![\w./-])(docs/(?:[\w-]+/)*[\w.-]+\.md)(?:#([\w-]+))?")
# A Markdown inline link or image target: `[text](target)` or `[text](<target> "title")`.
_MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=[\"']([^\"']+)[\"']", re.IGNORECASE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


@dataclass(frozen=True)
class Problem:
    where: str
    line: int
    reference: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.reference}: {self.reason}"


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _outside_fences(lines: list[str]) -> Iterator[tuple[int, str]]:
    fenced = False
    for number, line in enumerate(lines, start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors_of(markdown: str) -> set[str]:
    """Every anchor a Markdown file defines: heading slugs (numbered on repeats, as GitHub does) and `<a id>`."""
    anchors = set(_EXPLICIT_ANCHOR.findall(markdown))
    seen: dict[str, int] = {}
    for _number, line in _outside_fences(markdown.splitlines()):
        match = _ATX_HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


class Repository:
    """The text files under `root` and the anchors of its Markdown files, read once."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._anchors: dict[Path, set[str]] = {}
        self.texts: dict[Path, str] = {}
        for path in sorted(self._files(self.root)):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if b"\0" in data[:8192]:
                continue
            try:
                self.texts[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue

    def _files(self, directory: Path) -> Iterator[Path]:
        for entry in directory.iterdir():
            relative = entry.relative_to(self.root).as_posix()
            if entry.is_symlink() or relative in _SKIP_PATHS:
                continue
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS and not entry.name.endswith(".egg-info"):
                    yield from self._files(entry)
            elif entry.is_file():
                yield entry

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def anchors(self, path: Path) -> set[str]:
        if path not in self._anchors:
            self._anchors[path] = anchors_of(path.read_text(encoding="utf-8"))
        return self._anchors[path]

    def check_target(self, target: Path, anchor: str | None) -> str | None:
        """Why `target#anchor` does not resolve inside the repository, or None when it does."""
        target = target.resolve()
        if not target.is_relative_to(self.root):
            return "points outside the repository"
        if not target.exists():
            return "no such file"
        if anchor and target.suffix == ".md" and anchor not in self.anchors(target):
            return f"no heading or <a id> with anchor #{anchor} in {self.relative(target)}"
        return None

    def docs_reference_problems(self) -> list[Problem]:
        problems = []
        for path, text in self.texts.items():
            for number, line in enumerate(text.splitlines(), start=1):
                for match in _DOCS_REF.finditer(line):
                    reason = self.check_target(self.root / match.group(1), match.group(2))
                    if reason:
                        problems.append(Problem(self.relative(path), number, match.group(0), reason))
        return problems

    def markdown_link_problems(self) -> list[Problem]:
        problems = []
        for path, text in self.texts.items():
            if path.suffix != ".md":
                continue
            for number, line in _outside_fences(text.splitlines()):
                for match in _MD_LINK.finditer(_INLINE_CODE.sub("", line)):
                    reference = match.group(1)
                    if _SCHEME.match(reference) or reference.startswith("//"):
                        continue
                    file_part, _hash, anchor = reference.partition("#")
                    target = path.parent / file_part if file_part else path
                    reason = self.check_target(target, anchor or None)
                    if reason:
                        problems.append(Problem(self.relative(path), number, reference, reason))
        return problems

    def outside_citations(self) -> dict[str, list[Problem]]:
        found: dict[str, list[Problem]] = {}
        for path, text in self.texts.items():
            for number, line in enumerate(text.splitlines(), start=1):
                for needle in _OUTSIDE:
                    if needle in line:
                        problem = Problem(self.relative(path), number, needle, "cites notes outside the repository")
                        found.setdefault(self.relative(path), []).append(problem)
                # A bare section number ("protocol §6", "§3.4") names a section of those notes; docs/ pages
                # number nothing, and an RFC's sections are cited with the RFC.
                where = self.relative(path)
                if not where.startswith("docs/") and path != Path(__file__).resolve():
                    for match in _SECTION.finditer(line):
                        if not _RFC_BEFORE.search(line[: match.start()]):
                            problem = Problem(where, number, match.group(0), "cites a numbered section outside docs/")
                            found.setdefault(where, []).append(problem)
        return found


@pytest.fixture(scope="module")
def repository() -> Repository:
    return Repository(ROOT)


def _report(problems: list[Problem]) -> str:
    return "\n".join(str(problem) for problem in problems)


def test_every_docs_reference_names_an_existing_file_and_anchor(repository: Repository) -> None:
    problems = repository.docs_reference_problems()

    assert not problems, "unresolved docs/ references:\n" + _report(problems)


def test_every_relative_markdown_link_resolves_inside_the_repository(repository: Repository) -> None:
    problems = repository.markdown_link_problems()

    assert not problems, "unresolved Markdown links:\n" + _report(problems)


def test_nothing_cites_notes_kept_outside_the_repository(repository: Repository) -> None:
    found = repository.outside_citations()

    new = [
        problem for where, problems in found.items() if where not in _PENDING_OUTSIDE_CITATIONS for problem in problems
    ]
    fixed = sorted(_PENDING_OUTSIDE_CITATIONS - found.keys())
    assert not new, "cite docs/ instead:\n" + _report(new)
    assert not fixed, f"{fixed} no longer cite outside notes: drop them from _PENDING_OUTSIDE_CITATIONS"


def test_the_protocol_notes_are_there_and_cite_wechat(repository: Repository) -> None:
    pages = sorted((ROOT / "docs" / "wechat").glob("*.md"))

    assert (ROOT / "docs" / "README.md").is_file()
    assert len(pages) >= 10
    without_official_link = [
        repository.relative(page)
        for page in pages
        if "https://developers.weixin.qq.com/doc/" not in repository.texts[page.resolve()]
    ]
    assert not without_official_link


def _endpoint_methods() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(WeChatClient, inspect.isfunction)
        if not name.startswith("_") and name not in {"close", "for_component", "with_read_timeout", "forward", "bases"}
    ]


@pytest.mark.parametrize("method", _endpoint_methods())
def test_each_client_endpoint_cites_its_section_and_the_official_page(method: str) -> None:
    docstring = inspect.getdoc(getattr(WeChatClient, method)) or ""

    assert f"docs/wechat/endpoints.md#{method}" in docstring
    assert "https://developers.weixin.qq.com/doc/" in docstring


# --- the checker itself -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("api_query_auth", "api_query_auth"),
        ("Padding to 32 bytes", "padding-to-32-bytes"),
        ("Draft-box permission: 11 or 100", "draft-box-permission-11-or-100"),
        ("Account IP whitelist (40164)", "account-ip-whitelist-40164"),
        ("The URL and $APPID$", "the-url-and-appid"),
        ("`draft_count` and [links](x.md)", "draft_count-and-links"),
        ("全网发布 test", "全网发布-test"),
    ],
)
def test_slugs_follow_github(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_get_numbered_anchors_and_fenced_ones_none() -> None:
    markdown = '# Notes\n## Errors\n## Errors\n```\n## Not a heading\n```\n<a id="kept"></a>\n'

    assert anchors_of(markdown) == {"notes", "errors", "errors-1", "kept"}


def test_the_checker_reports_each_kind_of_broken_reference(tmp_path: Path) -> None:
    # Built from parts so that this file's own text holds no reference for the real check to trip on.
    docs = "docs"
    (tmp_path / docs).mkdir()
    (tmp_path / docs / "notes.md").write_text("# Notes\n## Tokens\n[fine](#tokens) [bad](#nowhere) [out](../../x.md)\n")
    (tmp_path / "code.py").write_text(
        f"# {docs}/notes.md#tokens {docs}/notes.md#missing {docs}/gone.md\n# see {_OUTSIDE[0]}\n"
    )
    repository = Repository(tmp_path)

    assert [(p.where, p.reference) for p in repository.docs_reference_problems()] == [
        ("code.py", f"{docs}/notes.md#missing"),
        ("code.py", f"{docs}/gone.md"),
    ]
    assert [(p.reference, p.reason) for p in repository.markdown_link_problems()] == [
        ("#nowhere", f"no heading or <a id> with anchor #nowhere in {docs}/notes.md"),
        ("../../x.md", "points outside the repository"),
    ]
    assert list(repository.outside_citations()) == ["code.py"]
