from django.contrib import admin
from django.urls import include, path

from wxplatform import admin_views, health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("wechat/", include("tenants.urls")),
    # The console's status page lives under /admin/ and behind admin_view (staff login), before admin's catch-all.
    path("admin/status/", admin.site.admin_view(admin_views.platform_status), name="admin-platform-status"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]
