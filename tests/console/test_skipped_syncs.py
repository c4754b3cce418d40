"""Syncs the rules skip on purpose (revoked, ineligible, quota budget used, WeChat degraded) are shown as skipped,
with the reason in words, never as failures: the job list, its filter and the account's attempts."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from drafts.models import JobState, SyncJob, SyncTrigger
from drafts.services import draft_count_sync_tenant
from tenants.models import Eligibility, TenantStatus
from tests.factories import make_tenant


def _rows(html: str) -> list[str]:
    body = html.split('id="result_list"')[1].split("<tbody>")[1].split("</tbody>")[0]
    return body.split("<tr")[1:]


@pytest.mark.django_db
def test_the_job_list_shows_a_skipped_job_as_skipped_with_its_reason(admin_client: Client) -> None:
    ineligible = make_tenant(nickname="Mini Program", eligibility=Eligibility.WRONG_KIND)
    revoked = make_tenant(nickname="Gone", status=TenantStatus.REVOKED, access_token="", refresh_token="")
    draft_count_sync_tenant(tenant=ineligible, trigger=SyncTrigger.CLI)
    draft_count_sync_tenant(tenant=revoked, trigger=SyncTrigger.CLI)
    # The job itself keeps the merchant API's contract: a job that was not run ends "failed".
    assert set(SyncJob.objects.values_list("state", "outcome")) == {(JobState.FAILED, "skipped")}

    html = admin_client.get(reverse("admin:drafts_syncjob_changelist")).content.decode()

    rows = _rows(html)
    assert len(rows) == 2
    for row, reason in zip(
        sorted(rows, key=lambda r: "Gone" in r),
        ("Not eligible for draft/count", "Authorization revoked or to be renewed"),
        strict=True,
    ):
        state = row.split('class="field-state_label">')[1].split("</td>")[0]
        assert state == "Skipped"
        assert f'class="field-why">{reason}</td>' in row
        assert "Failed" not in row


@pytest.mark.django_db
def test_the_job_filter_tells_skipped_jobs_from_failed_ones(admin_client: Client) -> None:
    skipped = make_tenant(nickname="Skipped one", eligibility=Eligibility.WRONG_KIND)
    draft_count_sync_tenant(tenant=skipped, trigger=SyncTrigger.CLI)
    failed = make_tenant(nickname="Failed one")
    SyncJob.objects.create(tenant=failed, trigger=SyncTrigger.API, state=JobState.FAILED, outcome="failed", errcode=-1)
    url = reverse("admin:drafts_syncjob_changelist")

    only_skipped = admin_client.get(f"{url}?state=skipped").content.decode()
    only_failed = admin_client.get(f"{url}?state=failed").content.decode()

    assert [("Skipped one" in row, "Failed one" in row) for row in _rows(only_skipped)] == [(True, False)]
    assert [("Skipped one" in row, "Failed one" in row) for row in _rows(only_failed)] == [(False, True)]


@pytest.mark.django_db
def test_the_accounts_attempts_name_the_reason_of_a_skip(admin_client: Client) -> None:
    tenant = make_tenant(eligibility=Eligibility.WRONG_KIND)
    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)

    html = admin_client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk])).content.decode()

    attempts = html.split('id="sync-attempts"')[1].split("</table>")[0]
    assert "<td>Skipped</td>" in attempts and "Not eligible for draft/count" in attempts
    assert "Failed" not in attempts
