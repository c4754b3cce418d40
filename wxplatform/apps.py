from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

from wxplatform.core import liveness, metrics, observability, schedule


class WxPlatformConfig(AppConfig):
    name = "wxplatform"
    verbose_name = _("WeChat platform")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Process set-up, not import side effects (STYLE "Avoid"): every process that loads Django gets its
        # metrics storage and Celery signal wiring here.
        metrics.setup()
        observability.connect_task_signals()
        liveness.connect_worker_signals()
        # The periodic tasks of wxplatform/core/schedule.py that are missing, after every migrate; once per
        # migrate (this app's signal), whichever apps it migrated.
        post_migrate.connect(schedule.install_after_migrate, sender=self, dispatch_uid="wxplatform.schedule")
