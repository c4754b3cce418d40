"""Prints the import graph's layers as pyproject.toml's layers contract names them, top to bottom: each layer's
modules and lines, and how many imports it makes into each layer below (an import upwards would be a broken
contract, which `make lint` refuses). Run: `.venv/bin/python scripts/layers.py`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c.get("id") == "layers")["layers"]
    graph = grimp.build_graph("wxplatform", "tenants", "webhooks", "drafts", cache_dir=None)
    groups = [[part.strip() for part in layer.replace(":", "|").split("|")] for layer in layers]

    def members(packages: list[str]) -> set[str]:
        return {m for p in packages for m in graph.modules if m == p or m.startswith(p + ".")}

    resolved = [members(g) for g in groups]
    for depth, (names, modules) in enumerate(zip(groups, resolved, strict=True)):
        product = [m for m in modules if ".migrations" not in m]
        lines = 0
        for module in product:
            path = REPO / (module.replace(".", "/") + ".py")
            if not path.exists():
                path = REPO / module.replace(".", "/") / "__init__.py"
            lines += len(path.read_text().splitlines()) if path.exists() else 0
        below = []
        for lower_names, lower in zip(groups[depth + 1 :], resolved[depth + 1 :], strict=True):
            count = sum(len(graph.find_modules_directly_imported_by(m) & lower) for m in modules)
            if count:
                below.append(f"{' | '.join(lower_names)} x{count}")
        print(f"{depth + 1}. {' | '.join(names)}: {len(product)} modules, {lines} lines")
        print(f"   imports: {', '.join(below) or 'nothing of the project'}")


if __name__ == "__main__":
    main()
