"""Celery tasks of the token authority."""

from __future__ import annotations

from celery import shared_task

from wxplatform.authority.services import token_handout_prune


@shared_task(name="authority.prune_token_handouts", acks_late=True)
def prune_token_handouts() -> int:
    """Beat, daily: the hand-out audit keeps TOKEN_HANDOUT_RETENTION_DAYS days."""
    return token_handout_prune()
