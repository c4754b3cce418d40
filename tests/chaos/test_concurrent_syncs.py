"""Two syncs of one tenant overlap (an on-demand job finishes while the scheduled chunk that read the tenant
before it is still fetching): the value is recorded once, whichever writes last."""

from __future__ import annotations

import pytest

from drafts.models import DraftSnapshot, SnapshotReason, SyncTrigger
from drafts.services import draft_count_sync_tenant
from drafts.sync import SYNC_FIELDS, sync_tenants
from tenants.models import Tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant

pytestmark = [pytest.mark.chaos, pytest.mark.django_db]


def test_a_batch_that_read_a_tenant_before_another_sync_wrote_it_records_the_value_once(
    sync_settings: Sandbox,
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=7)
    # The chunk reads its tenants (no count yet) ...
    read_by_chunk = Tenant.objects.only(*SYNC_FIELDS).get(pk=tenant.pk)
    # ... meanwhile a merchant's on-demand sync fetches and records 7 ...
    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.API)

    # ... and then the chunk fetches 7 too, believing the tenant had no count.
    sync_tenants([read_by_chunk], trigger=SyncTrigger.SCHEDULE)

    assert list(DraftSnapshot.objects.values_list("total_count", "reason")) == [(7, SnapshotReason.CHANGED)]
    tenant.refresh_from_db()
    assert tenant.draft_count == 7
    assert tenant.last_snapshot_at == DraftSnapshot.objects.get().fetched_at


def test_a_batch_older_than_the_stored_fetch_records_nothing_and_keeps_the_newer_count(
    sync_settings: Sandbox,
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=7)
    read_by_chunk = Tenant.objects.only(*SYNC_FIELDS).get(pk=tenant.pk)
    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.API)
    stored = Tenant.objects.get(pk=tenant.pk)
    # The chunk's fetch is the older one: as if it had been answered before the job's.
    Tenant.objects.filter(pk=tenant.pk).update(draft_count_fetched_at=stored.draft_count_fetched_at.replace(year=2100))
    sync_settings.control.update_authorizer(tenant.authorizer_appid, draft_count=8)

    sync_tenants([read_by_chunk], trigger=SyncTrigger.SCHEDULE)

    assert list(DraftSnapshot.objects.values_list("total_count", flat=True)) == [7]
    tenant.refresh_from_db()
    assert tenant.draft_count == 7
