"""Deleting old rows in batches: every retention prune (push log, sync history, webhook history, token
hand-outs) goes through here, so that none holds row locks for long or builds one huge cascade in memory."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

BATCH = 5000


def delete_in_batches(queryset: QuerySet[Any], *, batch: int = BATCH) -> int:
    """Deletes every row of `queryset`, `batch` primary keys at a time (each a statement of its own, so that
    a concurrent writer waits for one batch at most); returns how many rows of the queryset's own model went,
    not counting the rows their deletion cascaded to."""
    label = queryset.model._meta.label
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        _total, by_model = queryset.model._default_manager.filter(pk__in=ids).delete()
        deleted += by_model.get(label, 0)
