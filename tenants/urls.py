from django.urls import path, re_path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("component/events", views.component_events, name="component-events"),
    # Anything between the two, slashes included, so that a path that is not an AppID gets the error shape
    # (invalid_appid), not Django's 404 page.
    re_path(r"^authorizers/(?P<appid>[\s\S]*)/events$", views.authorizer_events, name="authorizer-events"),
    # Every platform's own URLs (docs/wechat/platforms.md); the two above are the default platform's.
    re_path(r"^components/(?P<component_appid>[^/]+)/events$", views.component_events, name="platform-events"),
    re_path(
        r"^components/(?P<component_appid>[^/]+)/authorizers/(?P<appid>[\s\S]*)/events$",
        views.authorizer_events,
        name="platform-authorizer-events",
    ),
    path("authorize", views.authorize, name="authorize"),
    path("authorize/callback", views.authorize_callback, name="authorize-callback"),
]
