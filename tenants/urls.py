from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("component/events", views.component_events, name="component-events"),
    path("authorize", views.authorize, name="authorize"),
    path("authorize/callback", views.authorize_callback, name="authorize-callback"),
]
