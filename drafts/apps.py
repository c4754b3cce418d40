import atexit

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from drafts.fetching import close_fetchers


class DraftsConfig(AppConfig):
    name = "drafts"
    verbose_name = _("Draft counts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A worker process closes its keep-alive sessions to WeChat when it exits.
        atexit.register(close_fetchers)
