"""`python manage.py release_check`: WeChat's full-release test, played by the sandbox against a live server
and a real worker, end to end; its table on stdout, its verdict in the exit status."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Tenant
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
def test_release_check_passes_every_step_against_the_service(
    platform: LivePlatform, worker_factory: Any, group: int
) -> None:
    worker_factory()

    output = release_check(platform, group=group, window=20)

    for step in STEPS:
        assert " pass " in result_of(output, step) + " ", output
    assert output.rstrip().endswith("PASSED")
    [result] = platform.control.release_test_results()
    assert result["passed"] is True
    # WeChat's own account came and went: marked as a test account, revoked, never a merchant to sync.
    tenant = Tenant.objects.get(authorizer_appid=result["authorizer_appid"])
    assert tenant.is_test_account is True
    assert tenant.status == "revoked"
    assert not syncable_tenants().exists()


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


def test_release_check_says_why_when_there_is_no_sandbox(platform: LivePlatform) -> None:
    with pytest.raises(CommandError) as failed:
        call_command("release_check", sandbox="http://127.0.0.1:9", service=platform.url, stdout=StringIO())

    assert failed.value.returncode == 2
