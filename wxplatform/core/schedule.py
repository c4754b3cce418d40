"""The schedule in one table: every periodic task beat runs, its interval and its name in the console.

Beat reads its entries from the database (django-celery-beat's DatabaseScheduler), where staff edit them in
the console (Periodic tasks). `schedule_install` runs after every `migrate` (post_migrate, connected in
wxplatform.apps) and creates the entries of this table that are missing, and nothing else:

- an entry is missing when no row has its name and no row runs its task (so an entry staff renamed is not
  created a second time);
- an existing row is never written: interval, enabled, expiry, arguments, description, even the task name
  are staff's to edit in the console, and the code cannot tell an edit from the value it once wrote. A
  change of interval or description meant for every deployment therefore needs a data migration of its own,
  which rewrites only the value it replaces (drafts 0015 does so for a description);
- the one write besides new rows is the change marker (PeriodicTasks), and only when a row was created, so
  that a running beat reloads its schedule;
- a deleted entry comes back at the next migrate: staff switch a task off by disabling it, which is kept.

The data migrations that created the first twelve entries (drafts 0002, 0005, 0009; tenants 0008, 0013;
webhooks 0002, 0004; authority 0002) stay as history; on a database they already ran on this finds every
entry present. Each entry expires after one interval, so that a beat that ran while no worker did leaves
no pile of identical tasks behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


@dataclass(frozen=True)
class Entry:
    name: str  # the row's name, what entries are looked up by; shown translated (`label`)
    task: str  # the Celery task's registered name
    every: int
    period: str  # an IntervalSchedule period: seconds, minutes, hours, days
    label: Promise
    description: str

    @property
    def expire_seconds(self) -> int:
        return self.every * _SECONDS[self.period]


SCHEDULE = (
    Entry(
        "Sync draft counts (all tenants)",
        "drafts.sync_all",
        15,
        "minutes",
        _("Sync draft counts (all tenants)"),
        "Fetches draft/count for every eligible, active merchant account, in chunks.",
    ),
    Entry(
        "First sync of new authorizations",
        "drafts.sync_first",
        1,
        "minutes",
        _("First sync of new authorizations"),
        "Fetches the first draft count of accounts authorized since their last sync.",
    ),
    Entry(
        "Sweep lost on-demand sync jobs",
        "drafts.sweep_jobs",
        1,
        "minutes",
        _("Sweep lost on-demand sync jobs"),
        "Queues again on-demand sync jobs whose task never reached a worker, or whose worker died, and the next "
        "chunks of sync runs that stalled (their chunk messages lost).",
    ),
    Entry(
        "Prune draft sync history",
        "drafts.prune",
        1,
        "days",
        _("Prune draft sync history"),
        "Deletes sync attempts, finished jobs and runs older than SYNC_ATTEMPT_RETENTION_DAYS.",
    ),
    Entry(
        "Refresh component access token",
        "component.refresh_token",
        10,
        "minutes",
        _("Refresh component access token"),
        "Keeps the platform's component_access_token valid ahead of its 2-hour expiry.",
    ),
    Entry(
        "Refresh expiring authorizer tokens",
        "tenants.refresh_expiring_tokens",
        5,
        "minutes",
        _("Refresh expiring authorizer tokens"),
        "Renews merchant access tokens that expire within 30 minutes.",
    ),
    Entry(
        "Authorize pending codes",
        "tenants.authorize_pending_codes",
        2,
        "minutes",
        _("Authorize pending codes"),
        "Exchanges authorization codes received by push whose task was never run.",
    ),
    Entry(
        "Reconcile tenants with WeChat's authorizer list",
        "tenants.reconcile_authorizers",
        1,
        "days",
        _("Reconcile tenants with WeChat's authorizer list"),
        "Walks api_get_authorizer_list: onboards accounts whose authorized push was missed, revokes tenants "
        "WeChat no longer lists (confirmed by 61003), replaces changed refresh tokens, re-reads profiles and quotas.",
    ),
    Entry(
        "Prune push log",
        "tenants.prune_push_log",
        1,
        "days",
        _("Prune push log"),
        "Deletes pushes to the WeChat URLs older than PUSH_LOG_RETENTION_DAYS.",
    ),
    Entry(
        "Deliver merchant webhooks",
        "webhooks.deliver",
        10,
        "seconds",
        _("Deliver merchant webhooks"),
        "Sends new webhook events and retries due deliveries.",
    ),
    Entry(
        "Prune webhook history",
        "webhooks.prune",
        1,
        "days",
        _("Prune webhook history"),
        "Deletes finished webhook deliveries and dispatched events older than WEBHOOK_RETENTION_DAYS.",
    ),
    Entry(
        "Prune token hand-outs",
        "authority.prune_token_handouts",
        1,
        "days",
        _("Prune token hand-outs"),
        "Deletes token hand-out rows older than TOKEN_HANDOUT_RETENTION_DAYS.",
    ),
)

# What the console shows for each row name: the table's entries, and the entry beat adds on its own when
# results expire (celery's backend clean-up). A name staff gave an entry is shown as they wrote it.
LABELS: dict[str, Promise] = {
    **{entry.name: entry.label for entry in SCHEDULE},
    "celery.backend_cleanup": _("Celery result clean-up (celery.backend_cleanup)"),
}


def schedule_install(*, apps: Apps, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Creates the entries of SCHEDULE that are missing (see the module's docstring); returns their names.
    `apps` is the model registry of the migrated state (post_migrate's), so that this runs at any migration."""
    try:
        interval_model: Any = apps.get_model("django_celery_beat", "IntervalSchedule")
        task_model: Any = apps.get_model("django_celery_beat", "PeriodicTask")
        marker_model: Any = apps.get_model("django_celery_beat", "PeriodicTasks")
    except LookupError:
        return []  # django-celery-beat migrated to zero (or not at all): nothing to install into
    present = list(task_model.objects.using(using).values_list("name", "task"))
    names, tasks = {name for name, _task in present}, {task for _name, task in present}
    created = []
    for entry in SCHEDULE:
        if entry.name in names or entry.task in tasks:
            continue
        interval = interval_model.objects.using(using).filter(every=entry.every, period=entry.period).first()
        if interval is None:
            interval = interval_model.objects.using(using).create(every=entry.every, period=entry.period)
        task_model.objects.using(using).create(
            name=entry.name,
            task=entry.task,
            interval=interval,
            expire_seconds=entry.expire_seconds,
            description=entry.description,
            enabled=True,
        )
        created.append(entry.name)
    if created:
        # Tells a running DatabaseScheduler to reload its schedule.
        marker_model.objects.using(using).update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return created


def install_after_migrate(*, using: str = DEFAULT_DB_ALIAS, apps: Apps = global_apps, **kwargs: Any) -> None:
    """The post_migrate receiver (wxplatform.apps). `migrate` passes the migrated state's registry; `flush`
    (which emits post_migrate too, as the transactional tests do) passes none: the models' own."""
    schedule_install(apps=apps, using=using)
