"""The import graph has no cycle, counting imports inside functions (STYLE: an import hidden in a function
to dodge a cycle is a cycle). `make lint` checks the layers with import-linter; this finds every cycle.

The one allowed pair is documented where it lives: an app's services reach its tasks through an accessor
to enqueue them, and the tasks call the services (drafts.services ↔ drafts.tasks).
"""

from __future__ import annotations

import grimp
import pytest

ROOTS = ("wxplatform", "tenants", "webhooks", "drafts")
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
