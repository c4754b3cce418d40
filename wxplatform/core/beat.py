"""One active beat per environment: django-celery-beat's DatabaseScheduler behind a lease in Redis.

django-celery-beat has no leader election: two `celery -A wxplatform beat` processes (a rollout that starts
the new beat before stopping the old, a second host given the same command) each read the schedule table
and each send every due entry, so every schedule would run twice. Here a beat sends only while it holds the
lease `<REDIS_KEY_PREFIX>:beat:lease` (SET NX with an expiry, renewed at least every third of the lease by
the holder, released only by its owner). Another beat logs once that it is standby and polls; when the
holder dies or is cut off, its lease lapses after BEAT_LEASE_SECONDS and the standby takes over, reading the
entries' last run times from the database (saved after every sent task: beat_sync_every = 1) so that nothing
the old holder sent is sent again.

Without REDIS_URL (one machine, the filesystem broker of `make run`) there is nothing to share a lease
through and only one beat is expected: the scheduler is plain DatabaseScheduler.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any, cast

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

# Extends the lease only if this beat still owns it: a beat that was cut off for longer than the lease must
# not renew a lease another beat has taken since.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def beat_lease_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:beat:lease"


class SingleBeatScheduler(DatabaseScheduler):  # type: ignore[misc]  # django-celery-beat has no type hints
    """DatabaseScheduler that sends only while it holds the environment's beat lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Who holds the lease, for the standby's log line: host, pid and a random part (two beats on one host).
        self.lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = float(settings.BEAT_LEASE_SECONDS)
        self.active = settings.REDIS_URL == ""
        self._standby_logged = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not settings.REDIS_URL:
            return float(super().tick(*args, **kwargs))
        if not self._hold_lease():
            # Poll often enough to take over soon after the holder's lease lapses.
            return self.lease_seconds / 3
        # The holder sleeps no longer than a third of the lease, so it renews in time even when the next
        # entry is due much later.
        return min(float(super().tick(*args, **kwargs)), self.lease_seconds / 3)

    def _hold_lease(self) -> bool:
        key, ttl_ms = beat_lease_key(), int(self.lease_seconds * 1000)
        holder: bytes | None = None
        try:
            client = redis_client()
            if self.active and client.eval(_RENEW, 1, key, self.lease_owner, str(ttl_ms)):
                return True
            taken = bool(client.set(key, self.lease_owner, nx=True, px=ttl_ms))
            if not taken:
                holder = cast("bytes | None", client.get(key))
        except redis.RedisError as exc:
            # Without Redis there is no broker to send to either; stop sending until the lease is ours again.
            if self.active:
                logger.warning("beat lease unreachable, standing by", extra={"error": str(exc)})
            self.active = False
            return False
        if taken:
            logger.info(
                "beat is active: it holds the schedule lease",
                extra={"owner": self.lease_owner, "lease_seconds": self.lease_seconds},
            )
            self.active, self._standby_logged = True, False
            # Entries as the previous holder left them (their last run times), not as read at start-up.
            self._initial_read = True
            return True
        if self.active or not self._standby_logged:
            logger.warning(
                "beat is standby: another beat holds the schedule lease; this one sends nothing until it lapses",
                extra={"holder": holder.decode() if holder else None, "lease_seconds": self.lease_seconds},
            )
            self._standby_logged = True
        self.active = False
        return False

    def close(self) -> None:
        # A clean stop hands over at once instead of after the lease.
        super().close()
        if settings.REDIS_URL and self.active:
            try:
                redis_client().eval(_RELEASE, 1, beat_lease_key(), self.lease_owner)
            except redis.RedisError:
                pass
