"""`manage.py sync_drafts`: foreground syncs with a summary table."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from drafts.models import DraftSnapshot, SyncJob, SyncRun
from drafts.rules import quota_day
from tenants.models import Eligibility, Tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant, sandbox_tenants
from tests.fixtures.worker import ROOT, _database_url
from wxplatform.core.errcodes import MEANINGS
from wxplatform.core.summary import columns

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_drafts", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def summary_rows(output: str) -> list[tuple[str, int]]:
    """The table under the heading, as (label, number) pairs."""
    rows = []
    for line in output.splitlines()[1:]:
        label, number = line.rsplit(maxsplit=1)
        rows.append((label.rstrip(), int(number)))
    return rows


def test_sync_all_syncs_every_eligible_account_and_prints_a_summary(sync_settings: Sandbox) -> None:
    sandbox_tenants(sync_settings, 12, draft_count=3)
    tenant = Tenant.objects.order_by("pk").first()
    assert tenant is not None
    # One account has withdrawn set 11 from the platform, one is over today's budget for manual syncs, one is
    # paused (45009).
    sync_settings.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])
    Tenant.objects.filter(pk=tenant.pk + 1).update(quota_day=quota_day(timezone.now()), quota_used=950)
    Tenant.objects.filter(pk=tenant.pk + 2).update(paused_until="2999-01-01T00:00:00Z")

    out, err = run("--all")

    assert out.splitlines()[0].startswith("12 accounts in ")
    assert summary_rows(out) == [
        ("synced (changed)", 9),
        ("unchanged", 0),
        ("skipped", 2),
        ("  Daily quota exhausted, paused until it resets", 1),
        ("  Daily quota budget used", 1),
        ("failed", 1),
        ("  61007 permission set not granted to this platform", 1),
    ]
    assert "12/12" in err  # the progress bar
    assert DraftSnapshot.objects.count() == 9
    run_row = SyncRun.objects.get()
    assert (run_row.trigger, run_row.changed, run_row.skipped, run_row.failed) == ("cli", 9, 2, 1)
    tenant.refresh_from_db()
    assert tenant.eligibility == Eligibility.REJECTED


def test_in_chinese_the_numbers_stand_in_one_column_and_a_failure_says_what_its_code_means(
    sync_settings: Sandbox,
) -> None:
    tenants = sandbox_tenants(sync_settings, 3, draft_count=3)
    sync_settings.control.update_authorizer(tenants[0].authorizer_appid, func_ids=[1])
    Tenant.objects.filter(pk=tenants[1].pk).update(paused_until="2999-01-01T00:00:00Z")

    with translation.override("zh-hans"):
        out, _err = run("--all", "--no-progress")
        meaning = str(MEANINGS[61007])

    lines = out.splitlines()[1:]
    assert [line.split()[-1] for line in lines] == ["1", "0", "1", "1", "1", "1"]
    # A Chinese character takes two columns of a terminal: every number ends in the same column.
    assert len({columns(line) for line in lines}) == 1
    assert f"  61007 {meaning}" in out
    assert re.search(r"[\u4e00-\u9fff]", meaning)


def test_sync_tenant_syncs_the_named_accounts_only(sync_settings: Sandbox, settings: Any) -> None:
    settings.DRAFT_SYNC_MIN_INTERVAL = 60
    first = sandbox_tenant(sync_settings, draft_count=2)
    second = sandbox_tenant(sync_settings, draft_count=5)
    untouched = sandbox_tenant(sync_settings, draft_count=7)

    out, _err = run("--tenant", first.authorizer_appid, second.authorizer_appid, "--no-progress")
    again, _err = run("--tenant", first.authorizer_appid, "--no-progress")

    assert summary_rows(out) == [("synced (changed)", 2), ("unchanged", 0), ("skipped", 0), ("failed", 0)]
    # Within the minimum interval the stored value is the answer.
    assert summary_rows(again) == [
        ("synced (changed)", 0),
        ("unchanged", 0),
        ("skipped", 1),
        ("  Synced moments ago", 1),
        ("failed", 0),
    ]
    counts = dict(Tenant.objects.values_list("pk", "draft_count"))
    assert counts == {first.pk: 2, second.pk: 5, untouched.pk: None}
    assert sync_settings.control.counters()["draft_count_calls"] == {
        first.authorizer_appid: 1,
        second.authorizer_appid: 1,
    }


def test_an_unknown_appid_stops_the_command_before_anything_is_synced(sync_settings: Sandbox) -> None:
    known = sandbox_tenant(sync_settings, draft_count=2)

    with pytest.raises(CommandError, match="Unknown AppID: wxnope"):
        run("--tenant", known.authorizer_appid, "wxnope")

    known.refresh_from_db()
    assert known.draft_count is None
    assert SyncJob.objects.count() == 0
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db(transaction=True)
def test_an_unknown_appid_exits_with_a_non_zero_status() -> None:
    env = dict(os.environ, DATABASE_URL=_database_url())
    done = subprocess.run(
        [sys.executable, "manage.py", "sync_drafts", "--tenant", "wxnope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "Unknown AppID: wxnope" in done.stderr
    assert done.stdout == ""
