"""/internal/v1/: the token authority's HTTP endpoints, for the provider's own services (README "Token authority")."""

from django.urls import path

from wxplatform.api import authority as views

app_name = "authority"

urlpatterns = [
    path("v1/components/<str:component_appid>/token", views.ComponentTokenView.as_view(), name="component-token"),
    path(
        "v1/components/<str:component_appid>/authorizers/<str:appid>/token",
        views.AuthorizerTokenView.as_view(),
        name="authorizer-token",
    ),
]
