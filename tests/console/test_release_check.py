"""`python manage.py release_check`: WeChat's full-release test, played by the sandbox against a live server
and a real worker, end to end; its table on stdout, its verdict in the exit status."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tenants.models import AuthorizationCode, Tenant
from tenants.selectors import syncable_tenants
from tests.fixtures.platform import LivePlatform

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = [
    "ticket",
    "pre_auth_code",
    "authorized",
    "query_auth",
    "text_message",
    "api_text_message",
    "event_message",
    "unauthorized",
]


def release_check(platform: LivePlatform, **options: Any) -> str:
    out = StringIO()
    call_command("release_check", sandbox=platform.sandbox.base_url, service=platform.url, stdout=out, **options)
    return out.getvalue()


def result_of(output: str, step: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(f"{step} ·")]
    return line


# Group 0 also runs in the smoke part: on SQLite and the filesystem broker, what `make run` uses.
@pytest.mark.parametrize("group", [pytest.param(0, marks=pytest.mark.smoke), 3])
def test_release_check_passes_every_step_against_the_service_and_leaves_no_account_behind(
    platform: LivePlatform, worker_factory: Any, group: int, admin_client: Client
) -> None:
    worker_factory()

    output = release_check(platform, group=group, window=20)

    for step in STEPS:
        assert " pass " in result_of(output, step) + " ", output
    assert output.rstrip().endswith("PASSED")
    [result] = platform.control.release_test_results()
    assert result["passed"] is True
    # WeChat's own account came and went, and the check removed what it left: no row in the merchant list, in
    # the console or in the query behind it, and no code for the sweep to exchange later.
    assert not Tenant.objects.filter(authorizer_appid=result["authorizer_appid"]).exists()
    assert not AuthorizationCode.objects.filter(authorizer_appid=result["authorizer_appid"]).exists()
    assert not syncable_tenants().exists()
    merchant_list = admin_client.get("/admin/tenants/tenant/")
    assert merchant_list.status_code == 200
    assert result["authorizer_appid"] not in merchant_list.content.decode()
    assert "0 merchant accounts" in merchant_list.content.decode()


def test_release_check_fails_with_the_reason_when_no_worker_runs(platform: LivePlatform) -> None:
    with pytest.raises(CommandError) as failed:
        release_check(platform, group=1, window=2)

    assert failed.value.returncode == 1
    [result] = platform.control.release_test_results()
    rows = {row["step"]: row for row in result["rows"]}
    assert rows["query_auth"]["result"] == "fail"
    assert "api_query_auth was not called" in rows["query_auth"]["detail"]
    assert rows["text_message"]["result"] == "pass"
    assert rows["event_message"]["result"] == "pass"
    assert rows["api_text_message"]["result"] == "fail"
    # Failed midway, it still removed what it left: the pushed code no worker exchanged, which the sweep would
    # otherwise turn into a test account in the merchant list once a worker runs.
    assert not AuthorizationCode.objects.filter(authorizer_appid=result["authorizer_appid"]).exists()
    assert not Tenant.objects.filter(authorizer_appid=result["authorizer_appid"]).exists()


def test_release_check_says_why_when_there_is_no_sandbox(platform: LivePlatform) -> None:
    with pytest.raises(CommandError) as failed:
        call_command("release_check", sandbox="http://127.0.0.1:9", service=platform.url, stdout=StringIO())

    assert failed.value.returncode == 2
