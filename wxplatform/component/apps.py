from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComponentConfig(AppConfig):
    name = "wxplatform.component"
    label = "component"
    verbose_name = _("Third-party platform")
    default_auto_field = "django.db.models.BigAutoField"
