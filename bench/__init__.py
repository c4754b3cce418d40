"""Benchmarks (`python -m bench`); helpers shared by several of them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any


def group_rss(pgid: int) -> dict[int, int]:
    """RSS in bytes of every process in process group `pgid` (a server and its workers, a worker and its pool)."""
    sizes: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            # Fields after the command name (which may hold spaces): state ppid pgrp ...
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[int(entry)] = int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return sizes


def onboarded_tenants(accounts: Sequence[dict[str, Any]], **fields: Any) -> list[Any]:
    """Tenant rows (unsaved) for sandbox accounts as onboarding leaves them: the default platform, a Service
    Account with set 11, eligible and active, its tokens; `fields` adds or overrides columns. A bench shortcut
    for seeding thousands of accounts with one bulk_create; Django must be set up."""
    from django.utils import timezone

    from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
    from wxplatform.component.services import default_component

    now = timezone.now()
    component = default_component()
    return [
        Tenant(
            component=component,
            authorizer_appid=a["appid"],
            account_kind=AccountKind.SERVICE,
            func_ids=[1, 11],
            status=TenantStatus.ACTIVE,
            eligibility=Eligibility.ELIGIBLE,
            access_token=a["authorizer_access_token"],
            access_token_expires_at=now + timedelta(seconds=a["expires_in"]),
            refresh_token=a["authorizer_refresh_token"],
            token_version=1,
            authorized_at=now,
            **fields,
        )
        for a in accounts
    ]
