from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Holds the development commands; it has no models. Installed when `wxsandbox` can be imported."""

    name = "wxsandbox.devtools"
    label = "wxsandbox_devtools"
    verbose_name = "WeChat sandbox (development)"
