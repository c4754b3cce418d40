from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The roof: the root URLconf, the health probes, the /metrics collector, the service-provider console
    (merchant admin, platform status page). It may import every app; nothing imports it."""

    name = "wxplatform.console"
    label = "console"
    verbose_name = _("Service-provider console")
    default_auto_field = "django.db.models.BigAutoField"
