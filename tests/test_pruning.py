"""The floor's batched delete (wxplatform/core/pruning.py), which every retention prune uses."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from wxplatform.core.pruning import delete_in_batches
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_deletes_every_matching_row_a_batch_at_a_time_and_keeps_the_others() -> None:
    AuditEntry.objects.bulk_create([AuditEntry(actor_label="old", action="x") for _ in range(5)])
    kept = AuditEntry.objects.create(actor_label="new", action="x")

    with CaptureQueriesContext(connection) as queries:
        deleted = delete_in_batches(AuditEntry.objects.filter(actor_label="old"), batch=2)

    assert deleted == 5
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 2 + 2 + 1


def test_nothing_to_delete_costs_one_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert delete_in_batches(AuditEntry.objects.filter(actor_label="nobody")) == 0

    assert len(queries.captured_queries) == 1
