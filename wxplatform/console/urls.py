from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from wxplatform.console import health, home, metrics, status, views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus scrape endpoint, protected by METRICS_TOKEN / METRICS_ALLOWED_NETWORKS (404 when neither is set).
    path("metrics", metrics.metrics_view, name="metrics"),
    path("wechat/", include("tenants.urls")),
    # The console's status page lives under /admin/ and behind admin_view (staff login), before admin's catch-all.
    path("admin/status/", admin.site.admin_view(status.platform_status), name="admin-platform-status"),
    # The platform record was called ComponentCredential until 2026-12: its old console addresses (bookmarks,
    # links in tickets) lead to the new ones.
    re_path(
        r"^admin/component/componentcredential/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/component/platform/%(rest)s", permanent=True, query_string=True),
    ),
    # The landing page: Django's admin index with the dashboard (same URL, so "admin:index" still points here).
    path("admin/", admin.site.admin_view(home.console_home), name="console-home"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("wxplatform.api.urls")),
    path("internal/", include("wxplatform.api.internal_urls")),
]

# Under /api/ and /internal/ these answer in the API's JSON error shape; elsewhere Django's usual pages.
handler400 = "wxplatform.api.errors.handler400"
handler403 = "wxplatform.api.errors.handler403"
handler404 = "wxplatform.api.errors.handler404"
handler500 = "wxplatform.api.errors.handler500"
