"""Celery application: `celery -A wxplatform worker` / `celery -A wxplatform beat`.

All settings live in wxplatform/settings.py under the CELERY_ prefix, so that the worker, beat and the web
process read the same environment.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wxplatform.settings")

# A plain `celery -A wxplatform worker` runs as compose and Kubernetes run it: without gossip, mingle and
# heartbeats (docs/celery.md). Celery's command line reads each option from CELERY_<COMMAND>_<OPTION> when it
# is not given (click's auto_envvar_prefix), and it parses the worker's options after it has imported this
# module, so these defaults apply; an operator who wants one back sets it to false.
# Heartbeats are the reason it matters: each is published from the worker's event loop with retries that
# wait for the broker, so a worker cut off from Redis froze for the whole outage (no time limit enforced, no
# result read) and could then crash on a half-read result (tests/cluster/test_node_cut_off.py).
for _option in ("WITHOUT_GOSSIP", "WITHOUT_MINGLE", "WITHOUT_HEARTBEAT"):
    os.environ.setdefault(f"CELERY_WORKER_{_option}", "true")

app = Celery("wxplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
