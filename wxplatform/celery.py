"""Celery application: `celery -A wxplatform worker` / `celery -A wxplatform beat`.

All settings live in wxplatform/settings.py under the CELERY_ prefix, so that the worker, beat and the web
process read the same environment.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wxplatform.settings")

app = Celery("wxplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
