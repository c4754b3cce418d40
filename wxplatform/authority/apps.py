from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthorityConfig(AppConfig):
    name = "wxplatform.authority"
    label = "authority"
    verbose_name = _("Token authority")
    default_auto_field = "django.db.models.BigAutoField"
