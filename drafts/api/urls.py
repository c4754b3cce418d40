"""/api/: the merchant API (v1), its OpenAPI schema and its interactive docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from drafts.api import views, webhooks

app_name = "api"

urlpatterns = [
    path("v1/tenant", views.TenantView.as_view(), name="tenant"),
    path("v1/draft-count", views.DraftCountView.as_view(), name="draft-count"),
    path("v1/draft-count/sync", views.DraftCountSyncView.as_view(), name="draft-count-sync"),
    path("v1/draft-count/sync/<uuid:job_id>", views.DraftCountSyncJobView.as_view(), name="draft-count-sync-job"),
    path("v1/draft-count/history", views.DraftCountHistoryView.as_view(), name="draft-count-history"),
    path("v1/webhooks", webhooks.WebhookListView.as_view(), name="webhooks"),
    path("v1/webhooks/<uuid:webhook_id>", webhooks.WebhookDetailView.as_view(), name="webhook"),
    path(
        "v1/webhooks/<uuid:webhook_id>/rotate-secret",
        webhooks.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "v1/webhooks/<uuid:webhook_id>/deliveries", webhooks.WebhookDeliveriesView.as_view(), name="webhook-deliveries"
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
