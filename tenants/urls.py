from django.urls import path

from tenants import views
from wxplatform.component import views as component_views

app_name = "tenants"

urlpatterns = [
    path("component/events", component_views.component_events, name="component-events"),
    path("authorize", views.authorize, name="authorize"),
    path("authorize/callback", views.authorize_callback, name="authorize-callback"),
]
