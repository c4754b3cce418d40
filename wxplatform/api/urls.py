"""/api/: the merchant API (v1), its OpenAPI schema and its interactive docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from wxplatform.api import errors, views, webhooks

app_name = "api"

urlpatterns = [
    path("v1/tenant", views.TenantView.as_view(), name="tenant"),
    path("v1/draft-count", views.DraftCountView.as_view(), name="draft-count"),
    path("v1/draft-count/sync", views.DraftCountSyncView.as_view(), name="draft-count-sync"),
    path("v1/draft-count/sync/<uuid:job_id>", views.DraftCountSyncJobView.as_view(), name="draft-count-sync-job"),
    path("v1/draft-count/history", views.DraftCountHistoryView.as_view(), name="draft-count-history"),
    path("v1/quota", views.QuotaView.as_view(), name="quota"),
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
    # The split view serves Swagger UI's start-up script as a file, so that the CSP needs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Everything else under /api/ (a malformed job id, /api/v1/ itself) is a 404 in the API's error shape, also
    # with DEBUG on, where Django would otherwise answer its HTML debug page. "schema" and "docs" without their
    # slash are left to CommonMiddleware's redirect.
    re_path(r"^(?!(?:schema|docs)$).*$", errors.not_found, name="not-found"),
]
