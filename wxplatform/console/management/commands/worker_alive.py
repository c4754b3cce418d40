"""`python manage.py worker_alive`: exit 0 only if this host's Celery worker made progress recently.

The liveness probe of a worker container (compose HEALTHCHECK, Kubernetes exec liveness probe); the design
is in wxplatform/core/liveness.py. Run it where the worker runs: it reads the worker's marker file.
"""

from __future__ import annotations

import time
from typing import Any

from celery.utils.nodenames import default_nodename
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from wxplatform.celery import app
from wxplatform.core.liveness import ping_publish, progress_age
from wxplatform.core.queueing import publish_fail_fast


class Command(BaseCommand):
    help = _("Exit 0 only if this host's Celery worker took or finished a task within the bound.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--node",
            default=None,
            help=_("The worker's node name (default: celery@HOSTNAME, what `celery worker` calls itself)."),
        )
        parser.add_argument(
            "--max-age",
            type=int,
            default=None,
            help=_(
                "Seconds without progress after which the worker counts as stalled (default: WORKER_LIVENESS_MAX_AGE)."
            ),
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=2.0,
            help=_("Seconds to wait for the worker to take this probe's ping."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        node: str = options["node"] or default_nodename("")
        max_age: int = options["max_age"] or settings.WORKER_LIVENESS_MAX_AGE
        if max_age <= 0:
            raise CommandError(_("--max-age must be a positive number of seconds."))
        # One bounded attempt: a probe must answer within its timeout even when Redis does not.
        publish_fail_fast(app)
        sent_at = time.time()
        try:
            ping_publish(app, node, ttl=max_age)
        except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; the verdict is the marker's age
            self.stderr.write(
                _("Could not send the ping to worker %(node)s (%(error)s); judging by its last progress.")
                % {"node": node, "error": type(exc).__name__}
            )
        # The ping is taken within milliseconds by an idle worker; a busy one shows progress on its own.
        deadline = time.monotonic() + max(0.0, options["wait"])
        age = progress_age(node)
        while (age is None or age > time.time() - sent_at) and time.monotonic() < deadline:
            time.sleep(0.05)
            age = progress_age(node)
        if age is None:
            raise CommandError(
                _("Worker %(node)s has not started on this host (no liveness marker in %(dir)s).")
                % {"node": node, "dir": settings.VAR_DIR / "liveness"}
            )
        if age > max_age:
            raise CommandError(
                _("Worker %(node)s is stalled: no task taken or finished for %(age)d s (bound %(max)d s).")
                % {"node": node, "age": age, "max": max_age}
            )
        self.stdout.write(
            _("Worker %(node)s is alive: last progress %(age).1f s ago (bound %(max)d s).")
            % {"node": node, "age": age, "max": max_age}
        )
