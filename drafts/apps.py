import atexit

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from drafts.fetching import close_fetchers
from tenants.signals import draft_box_changed


class DraftsConfig(AppConfig):
    name = "drafts"
    verbose_name = _("Draft counts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models are importable only once apps are ready.
        from drafts.tasks import draft_box_changed_receiver

        # A worker process closes its keep-alive sessions to WeChat when it exits.
        atexit.register(close_fetchers)
        # WeChat's draft-box events reach tenants (the push URL); tenants may not import drafts, so it announces them.
        draft_box_changed.connect(draft_box_changed_receiver, dispatch_uid="drafts.draft_box_changed")
