"""Users of the console: a superuser (pytest-django's `admin_client`) and a read-only support user."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.test import Client
from django_celery_beat.models import PeriodicTask

SUPPORT_PASSWORD = "support-password-123"


# The data migrations that make the support group and grant it each app's view permissions, in their order.
SUPPORT_GRANTS = (
    ("wxplatform.migrations.0002_support_group", "support_group_create"),
    ("tenants.migrations.0014_support_group_sees_push_log", "grant"),
    ("webhooks.migrations.0003_support_group_views", "support_views_add"),
    ("wxplatform.authority.migrations.0005_support_group_views", "support_views_add"),
)


@pytest.fixture
def support_group(db: None) -> Group:
    group = Group.objects.filter(name="support").first()
    if group is None:
        # A transactional test elsewhere flushed the tables the data migrations had filled; run them again.
        for module, function in SUPPORT_GRANTS:
            getattr(importlib.import_module(module), function)(apps, None)
        group = Group.objects.get(name="support")
    return group


@pytest.fixture
def sync_schedule(db: None) -> PeriodicTask:
    """The beat entry of the draft-count sync, as the drafts data migration creates it."""
    if not PeriodicTask.objects.filter(task="drafts.sync_all").exists():
        # Flushed by a transactional test elsewhere, like the support group above.
        migration = importlib.import_module("drafts.migrations.0002_beat_schedule")
        migration.create_entries(apps, None)
    return PeriodicTask.objects.get(task="drafts.sync_all")


@pytest.fixture
def support_user(support_group: Group) -> User:
    user = User.objects.create_user("support", password=SUPPORT_PASSWORD, is_staff=True)
    user.groups.add(support_group)
    return user


@pytest.fixture
def support_client(support_user: User) -> Client:
    client = Client()
    client.force_login(support_user)
    return client
