from axes.apps import AppConfig as AxesAppConfig
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class ConsoleConfig(AppConfig):
    """The roof: the root URLconf, the health probes, the /metrics collector, the service-provider console
    (merchant admin, platform status page). It may import every app; nothing imports it."""

    name = "wxplatform.console"
    label = "console"
    verbose_name = _("Service-provider console")
    default_auto_field = "django.db.models.BigAutoField"


class AxesConsoleConfig(AxesAppConfig):  # type: ignore[misc]  # django-axes ships no type hints
    """django-axes under a name staff understand (its own is "Axes", untranslated); its models' names are
    translated in the project's catalogue."""

    verbose_name = _("Login lockouts")


# django-axes ships no zh-Hans: the names its admin shows (models, fields, filters, actions) are translated in
# the project's catalogue. Listed here so that `make messages` keeps them; nothing reads this tuple.
AXES_STRINGS = (
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("Username"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Access lock out"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("Logout Time"),
    gettext_noop("Locked Out"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Not set"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Access Attempt"),
    gettext_noop("Expires At"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("Session key hash (sha256)"),
)
