from django.contrib import admin
from django.urls import include, path

from wxplatform import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("wechat/", include("tenants.urls")),
    path("admin/", admin.site.urls),
]
