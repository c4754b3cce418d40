from django.urls import path, re_path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("component/events", views.component_events, name="component-events"),
    # Any segment, so that a path segment that is not an AppID gets the error shape, not Django's 404 page.
    re_path(r"^authorizers/(?P<appid>[^/]*)/events$", views.authorizer_events, name="authorizer-events"),
    path("authorize", views.authorize, name="authorize"),
    path("authorize/callback", views.authorize_callback, name="authorize-callback"),
]
