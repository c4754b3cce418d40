"""The summary tables management commands print when they finish (sync_drafts, reconcile_authorizers).

A heading, then one label and one number a line, the numbers in one column also when the labels are Chinese:
a Chinese character takes two terminal columns, so labels are padded by the columns they take, not by their
length. A WeChat errcode is shown with its meaning (wxplatform/core/errcodes.py), never bare.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from django.utils.translation import gettext as _

from wxplatform.core.errcodes import errcode_label


def summary_table(heading: str, rows: Iterable[tuple[str, int]]) -> str:
    rows = [(str(label), n) for label, n in rows]
    width = max((columns(label) for label, _n in rows), default=0)
    return "\n".join([heading, *(f"{label}{' ' * (width - columns(label))}  {n:>7}" for label, n in rows)])


def failure_rows(failed: Mapping[int | None, int]) -> list[tuple[str, int]]:
    """One indented row per errcode, known codes first in order, then the failures without one."""
    rows = []
    for errcode, n in sorted(failed.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        label = errcode_label(errcode) if errcode is not None else _("no errcode (network or platform)")
        rows.append((f"  {label}", n))
    return rows


def columns(text: str) -> int:
    """The terminal columns `text` takes: a wide or full-width character (Chinese, its punctuation) takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
