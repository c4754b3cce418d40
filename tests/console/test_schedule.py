"""The schedule table (wxplatform/core/schedule.py): what the migrations created, installed again after migrate
without touching what staff changed, every task a registered Celery task, every name in Chinese, and beat
sending every entry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from tests.fixtures.worker import ROOT, _database_url
from wxplatform.celery import app as celery_app
from wxplatform.core.schedule import SCHEDULE, schedule_install

ZH = {"accept-language": "zh-hans"}
_FIELDS = ("name", "task", "interval_id", "enabled", "expire_seconds", "description", "args", "kwargs")


def _rows() -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in PeriodicTask.objects.values(*_FIELDS)}


def _ensure_installed() -> None:
    # A transactional test elsewhere may have flushed the rows; flush runs post_migrate too, but be explicit.
    schedule_install(apps=apps)


@pytest.mark.django_db
def test_the_table_is_what_the_migrations_created() -> None:
    _ensure_installed()
    rows = {
        (t.name, t.task, t.interval.every, t.interval.period, t.expire_seconds, t.description, t.enabled)
        for t in PeriodicTask.objects.select_related("interval").exclude(name="celery.backend_cleanup")
    }

    assert len(SCHEDULE) == 12
    assert rows == {(e.name, e.task, e.every, e.period, e.expire_seconds, e.description, True) for e in SCHEDULE}


def test_every_task_of_the_table_is_a_registered_celery_task() -> None:
    celery_app.loader.import_default_modules()

    assert [entry.task for entry in SCHEDULE if entry.task not in celery_app.tasks] == []
    assert len({entry.name for entry in SCHEDULE}) == len({entry.task for entry in SCHEDULE}) == len(SCHEDULE)


@pytest.mark.django_db
def test_a_second_migrate_keeps_what_staff_changed_and_brings_back_a_deleted_entry() -> None:
    _ensure_installed()
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.filter(task="drafts.sync_all").update(interval=hourly, expire_seconds=3600)
    PeriodicTask.objects.filter(task="webhooks.prune").update(enabled=False, description="off during the audit")
    PeriodicTask.objects.filter(task="tenants.prune_push_log").update(name="Push log clean-up", args="[7]")
    PeriodicTask.objects.filter(task="authority.prune_token_handouts").delete()
    before = _rows()
    marker = PeriodicTasks.objects.get(ident=1).last_update

    call_command("migrate", verbosity=0)

    after = _rows()
    recreated = after.pop("Prune token hand-outs")
    assert after == before
    assert (recreated["task"], recreated["enabled"], recreated["expire_seconds"]) == (
        "authority.prune_token_handouts",
        True,
        86400,
    )
    assert PeriodicTasks.objects.get(ident=1).last_update > marker  # a running beat reloads

    # Nothing missing: a third migrate writes nothing at all, not even the change marker.
    marker = PeriodicTasks.objects.get(ident=1).last_update
    call_command("migrate", verbosity=0)
    assert _rows() == {**before, "Prune token hand-outs": recreated}
    assert PeriodicTasks.objects.get(ident=1).last_update == marker


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("edited", [False, True])
def test_a_description_change_reaches_rows_still_holding_the_old_text_and_no_row_staff_edited(edited: bool) -> None:
    _ensure_installed()
    old_text = "Queues again on-demand sync jobs whose task never reached a worker, or whose worker died."
    before = "paused during the migration audit" if edited else old_text
    executor = MigrationExecutor(connection)
    executor.migrate([("drafts", "0014_snapshot_one_index")])
    try:
        # The row as drafts 0009 left it, or as staff edited it in the console.
        PeriodicTask.objects.filter(task="drafts.sweep_jobs").update(description=before)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    sweep = next(entry for entry in SCHEDULE if entry.task == "drafts.sweep_jobs")
    expected = before if edited else sweep.description
    assert PeriodicTask.objects.get(task="drafts.sweep_jobs").description == expected
    assert expected != old_text or edited


@pytest.mark.django_db
def test_the_chinese_periodic_tasks_page_names_every_task_in_chinese(admin_client: Client) -> None:
    _ensure_installed()

    html = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"), headers=ZH).content.decode()

    cells = html.split('class="field-translated_name">')[1:]
    names = [re.sub(r"<[^>]+>", "", cell.split("</th>")[0]) for cell in cells]
    with translation.override("zh-hans"):
        expected = {str(entry.label) for entry in SCHEDULE}
    assert set(names) >= expected
    assert len(expected) == len(SCHEDULE)
    assert all(re.search(r"[\u4e00-\u9fff]", name) for name in names)


@pytest.mark.django_db(transaction=True)
def test_beat_sends_every_entry_of_the_schedule(tmp_path: Path) -> None:
    _ensure_installed()
    # Every entry due now: beat sends each one at its first tick.
    PeriodicTask.objects.update(last_run_at=timezone.now() - timedelta(days=2))
    env = dict(os.environ)
    env["DATABASE_URL"] = _database_url()
    # The filesystem broker in a folder of this test: the messages beat sends stay there, read by no worker.
    env.pop("REDIS_URL", None)
    env["VAR_DIR"] = str(tmp_path)
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wxplatform", "beat", "-l", "INFO", "-s", str(tmp_path / "s")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        sent: set[str] = set()
        while time.monotonic() < deadline and len(sent) < len(SCHEDULE) and beat.poll() is None:
            time.sleep(0.5)
            sent = set(re.findall(r"Sending due task .+ \(([\w.]+)\)", log.read_text(errors="replace")))
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)

    assert sent >= {entry.task for entry in SCHEDULE}, log.read_text(errors="replace")[-4000:]
