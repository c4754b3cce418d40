"""/api/: the merchant API (v1), its OpenAPI schema and its interactive docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from drafts.api import views

app_name = "api"

urlpatterns = [
    path("v1/tenant", views.TenantView.as_view(), name="tenant"),
    path("v1/draft-count", views.DraftCountView.as_view(), name="draft-count"),
    path("v1/draft-count/sync", views.DraftCountSyncView.as_view(), name="draft-count-sync"),
    path("v1/draft-count/sync/<uuid:job_id>", views.DraftCountSyncJobView.as_view(), name="draft-count-sync-job"),
    path("v1/draft-count/history", views.DraftCountHistoryView.as_view(), name="draft-count-history"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so that the CSP needs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
