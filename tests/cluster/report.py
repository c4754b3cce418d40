"""The figures each scenario measured, printed as one table when the session ends."""

from __future__ import annotations

ROWS: list[tuple[str, str]] = []


def record(scenario: str, figures: str) -> None:
    ROWS.append((scenario, figures))


def render(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {figures}" for name, figures in rows)
