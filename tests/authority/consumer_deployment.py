"""A second deployment of the service (staging, a copy of production) in consumer mode, run as a subprocess
with its own database by tests/authority/test_consumer.py:

    python -m tests.authority.consumer_deployment < accounts.json

stdin: the accounts of production's copy, [{"appid", "refresh_token"}] (their stored tokens expired). The
process migrates its database, stores the accounts, syncs their draft counts and gets the component token,
all through the token authority named by WECHAT_TOKEN_AUTHORITY_URL / _KEY, and prints what it ended with as
JSON. It never sees the test's database.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from drafts.models import SyncTrigger
    from drafts.services import draft_count_sync_tenant
    from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
    from wxplatform.component.models import Platform
    from wxplatform.component.services import component_access_token, default_component

    call_command("migrate", verbosity=0, interactive=False)
    expired = timezone.now() - timedelta(minutes=1)
    platform = default_component()
    for account in json.load(sys.stdin):
        Tenant.objects.create(
            component=platform,
            authorizer_appid=account["appid"],
            account_kind=AccountKind.SERVICE,
            func_ids=[1, 11],
            status=TenantStatus.ACTIVE,
            eligibility=Eligibility.ELIGIBLE,
            access_token="copied-and-expired",
            access_token_expires_at=expired,
            refresh_token=account["refresh_token"],
            token_version=1,
            authorized_at=expired,
        )
    results = {}
    for tenant in Tenant.objects.order_by("id"):
        result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)
        results[tenant.authorizer_appid] = str(result.outcome)
    component_token = component_access_token(platform)
    tenants = {
        t.authorizer_appid: {"status": t.status, "draft_count": t.draft_count, "access_token": t.access_token}
        for t in Tenant.objects.all()
    }
    credential = Platform.objects.get(pk=platform.pk)
    print(
        json.dumps(
            {
                "results": results,
                "tenants": tenants,
                "component_token": component_token,
                "has_ticket": bool(credential.verify_ticket),
            }
        )
    )


if __name__ == "__main__":
    main()
