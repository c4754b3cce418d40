from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from wxplatform import liveness, metrics, observability


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
