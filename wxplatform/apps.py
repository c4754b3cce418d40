from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WxPlatformConfig(AppConfig):
    name = "wxplatform"
    verbose_name = _("WeChat platform")
    default_auto_field = "django.db.models.BigAutoField"
