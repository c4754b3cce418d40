"""A client generated from /api/schema/ by openapi-python-client works against the running server: every
operation, its typed models, its conditional headers and its documented errors, with a real worker running
the sync job against the WeChat sandbox. If the schema lied about a field, a type or a status code, the
generated client would fail to parse the answer (it is told to raise on undocumented statuses)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from django.utils import timezone

from tests.factories import make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant, worker_env
from tests.fixtures.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "wxp_generated_api_client"


@pytest.fixture
def generated(live_server: Any, tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """The client package generated from the live schema; call it with a module path inside the package."""
    schema = requests.get(f"{live_server.url}/api/schema/", params={"format": "json"}, timeout=30)
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_text(json.dumps(schema.json()))
    # No post hooks: the generator would otherwise run ruff over its output, which proves nothing here.
    (tmp_path / "config.json").write_text(json.dumps({"post_hooks": [], "package_name_override": PACKAGE}))
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none",
               "--path", str(tmp_path / "schema.json"), "--config", str(tmp_path / "config.json"),
               "--output-path", str(tmp_path / PACKAGE)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}{'.' if name else ''}{name}")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_works_against_the_server(
    generated: Callable[[str], ModuleType],
    live_server: Any,
    sync_settings: Sandbox,
    worker_factory: Callable[..., Worker],
) -> None:
    worker_factory(concurrency=1, env=worker_env())
    tenant = sandbox_tenant(sync_settings, draft_count=7)
    _key, raw_key = make_api_key(tenant)
    package = generated("")
    client = package.AuthenticatedClient(
        base_url=live_server.url, token=raw_key, prefix="Api-Key", raise_on_unexpected_status=True
    )
    stranger = package.AuthenticatedClient(
        base_url=live_server.url, token="nOtAkEy1.wrong", prefix="Api-Key", raise_on_unexpected_status=True
    )
    # Closing them ends their keep-alive connections, so that the live server's request threads end and
    # close their database connections before the test database is dropped.
    with client, stranger:
        use_every_operation(generated, client, stranger, tenant)


def use_every_operation(generated: Callable[[str], ModuleType], client: Any, stranger: Any, tenant: Any) -> None:
    tenant_retrieve = generated("api.account.tenant_retrieve")
    draft_count_retrieve = generated("api.draft_count.draft_count_retrieve")
    sync_create = generated("api.draft_count.draft_count_sync_create")
    job_retrieve = generated("api.draft_count.draft_count_sync_job_retrieve")
    history_list = generated("api.draft_count.draft_count_history_list")
    models = generated("models")

    me = tenant_retrieve.sync(client=client)
    assert isinstance(me, models.Tenant)
    assert (me.appid, me.status, me.permission_sets) == (
        tenant.authorizer_appid,
        models.TenantStatusEnum.ACTIVE,
        [1, 11],
    )

    never_fetched = draft_count_retrieve.sync_detailed(client=client)
    assert never_fetched.status_code == 404
    assert isinstance(never_fetched.parsed, models.Error)
    assert never_fetched.parsed.error.code == "draft_count_not_fetched"

    accepted = sync_create.sync_detailed(client=client)
    assert accepted.status_code == 202
    assert isinstance(accepted.parsed, models.SyncRequest)
    assert accepted.headers["Location"] == accepted.parsed.job.url
    job = accepted.parsed.job
    deadline = time.monotonic() + 30
    while job.state in (models.JobStateEnum.PENDING, models.JobStateEnum.RUNNING) and time.monotonic() < deadline:
        time.sleep(0.1)
        job = job_retrieve.sync(job_id=job.id, client=client)
    assert isinstance(job, models.SyncJob)
    assert (job.state, job.outcome, job.total_count, job.error) == (
        models.JobStateEnum.SUCCEEDED,
        models.SyncOutcomeEnum.CHANGED,
        7,
        None,
    )

    count = draft_count_retrieve.sync_detailed(client=client)
    assert count.status_code == 200
    assert isinstance(count.parsed, models.DraftCount)
    assert (count.parsed.total_count, count.parsed.stale) == (7, False)
    assert isinstance(count.parsed.fetched_at, datetime) and count.parsed.fetched_at.tzinfo is not None
    not_modified = draft_count_retrieve.sync_detailed(client=client, if_none_match=count.headers["ETag"])
    assert (not_modified.status_code, not_modified.parsed) == (304, None)

    page = history_list.sync(client=client, since=timezone.now() - timedelta(hours=1), page_size=10)
    assert isinstance(page, models.DraftSnapshotPage)
    assert [snapshot.total_count for snapshot in page.results] == [7]
    assert page.next_ is None
    bad_query = history_list.sync_detailed(client=client, page_size=0)
    assert bad_query.status_code == 400
    assert (bad_query.parsed.error.code, bad_query.parsed.error.parameter) == ("invalid_parameter", "page_size")

    refused = tenant_retrieve.sync_detailed(client=stranger)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Error)
    assert refused.parsed.error.code == "authentication_failed"
