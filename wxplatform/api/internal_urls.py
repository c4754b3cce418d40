"""/internal/v1/: the token authority's HTTP endpoints, for the provider's own services (README "Token authority")."""

from django.urls import path

from wxplatform.api import authority as views
from wxplatform.api import gateway

app_name = "authority"

urlpatterns = [
    path("v1/components/<str:component_appid>/token", views.ComponentTokenView.as_view(), name="component-token"),
    path(
        "v1/components/<str:component_appid>/authorizers/<str:appid>/token",
        views.AuthorizerTokenView.as_view(),
        name="authorizer-token",
    ),
    # The WeChat gateway (README "WeChat gateway"): the rest of the path is WeChat's.
    path(
        "v1/components/<str:component_appid>/authorizers/<str:appid>/wechat/<path:wechat_path>",
        gateway.AuthorizerGatewayView.as_view(),
        name="authorizer-gateway",
    ),
    path(
        "v1/components/<str:component_appid>/wechat/<path:wechat_path>",
        gateway.ComponentGatewayView.as_view(),
        name="component-gateway",
    ),
]
