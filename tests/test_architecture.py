"""The import graph has no cycle, counting imports inside functions (STYLE: an import hidden in a function
to dodge a cycle is a cycle). `make lint` checks the layers with import-linter; this finds every cycle.

The one allowed pair is documented where it lives: an app's services reach its tasks through an accessor
to enqueue them, and the tasks call the services (drafts.services ↔ drafts.tasks).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOTS = ("wxplatform", "tenants", "webhooks", "drafts", "wxsandbox")
ALLOWED = {frozenset({"drafts.services", "drafts.tasks"})}


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over module-level edges (a package's __init__ counts as its own module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative, so that a long chain cannot exhaust the recursion limit.
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start) & modules)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
                continue
            if child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOTS, cache_dir=None)


def test_the_project_has_no_import_cycle(graph: grimp.ImportGraph) -> None:
    modules = {m for m in graph.modules if m.split(".")[0] in ROOTS}

    cycles = [sorted(c) for c in strongly_connected(graph, modules) if frozenset(c) not in ALLOWED]

    assert cycles == []


def test_the_cycle_finder_finds_a_cycle(graph: grimp.ImportGraph) -> None:
    # The allowed pair is a real cycle: the finder must see it (and would see any other).
    modules = {m for m in graph.modules if m.split(".")[0] in ROOTS}

    assert {frozenset(c) for c in strongly_connected(graph, modules)} == ALLOWED


REPO = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict[str, object]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _named_packages() -> set[str]:
    """Every package or module below a root that some import contract names as a layer or a source."""
    named: set[str] = set()
    for contract in _contracts():
        for layer in contract.get("layers", []):  # type: ignore[attr-defined]
            named.update(part.strip() for part in str(layer).replace(":", "|").split("|"))
        named.update(contract.get("source_modules", []))  # type: ignore[arg-type]
    # A whole root package as a source (the product never imports the sandbox) says nothing of direction.
    return {n for n in named if "." in n or n == "wxsandbox"}


def test_every_module_of_the_project_package_is_held_by_a_contract(graph: grimp.ImportGraph) -> None:
    named = _named_packages()
    modules = {m for m in graph.modules if m.split(".")[0] in {"wxplatform", "wxsandbox"}}

    uncovered = sorted(
        m
        for m in modules
        if m not in {"wxplatform", "wxsandbox"} and not any(m == n or m.startswith(n + ".") for n in named)
    )

    assert uncovered == []


def test_the_coverage_check_sees_a_module_no_contract_names(graph: grimp.ImportGraph) -> None:
    # A module added at the root of wxplatform/ without a contract would be reported: the named set is no
    # catch-all.
    named = _named_packages()

    assert not any("wxplatform.newmodule" == n or "wxplatform.newmodule".startswith(n + ".") for n in named)
    assert "wxplatform" not in named


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None, reason="needs import-linter"
)
def test_the_contracts_catch_a_new_upward_import(tmp_path: Path) -> None:
    # A temporary copy of the tree in which a floor module imports an app: lint-imports must fail on it.
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "tests", "bench", "*_cache", "__pycache__", "docs", "locale"
        ),
    )
    floor = copy / "wxplatform" / "core" / "backoff.py"
    floor.write_text(floor.read_text() + "\nimport tenants.models  # an upward import\n")
    lint_imports = str(Path(sys.executable).parent / "lint-imports")

    kept = subprocess.run([lint_imports], cwd=REPO, capture_output=True, text=True, timeout=120)
    broken = subprocess.run(
        [lint_imports],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )

    assert kept.returncode == 0, kept.stdout[-2000:]
    assert broken.returncode != 0
    assert "wxplatform.core.backoff -> tenants.models" in broken.stdout
