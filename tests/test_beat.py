"""One active beat per environment (wxplatform/core/beat.py): the first scheduler to tick holds the lease and sends,
a second stands by and sends nothing, and takes over once the first is closed or its lease lapses. The
several-host version, with real beat processes and a killed host, is tests/cluster/test_two_beats.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from wxplatform.celery import app
from wxplatform.core.beat import SingleBeatScheduler, beat_lease_key
from wxplatform.core.redis_client import redis_client

# DatabaseScheduler closes old connections on each read, which a test wrapped in a transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lease(settings: Any) -> Any:
    if not settings.REDIS_URL:
        pytest.skip("the lease lives in Redis; without REDIS_URL the scheduler is plain DatabaseScheduler")
    settings.BEAT_LEASE_SECONDS = 1.5
    redis_client().delete(beat_lease_key())
    yield
    redis_client().delete(beat_lease_key())


def scheduler() -> SingleBeatScheduler:
    return SingleBeatScheduler(app=app, lazy=True)


def test_the_second_beat_stands_by_and_says_so(lease: None, caplog: pytest.LogCaptureFixture) -> None:
    first, second = scheduler(), scheduler()
    caplog.set_level(logging.INFO, logger="wxplatform.core.beat")

    first.tick()
    second.tick()

    assert (first.active, second.active) == (True, False)
    assert redis_client().get(beat_lease_key()) == first.lease_owner.encode()
    assert any("beat is standby" in r.getMessage() for r in caplog.records)
    # The standby polls a third of the lease; the holder never sleeps longer, so it renews in time.
    assert second.tick() == pytest.approx(0.5)
    assert first.tick() <= 0.5


def test_the_standby_takes_over_when_the_active_beat_stops(lease: None) -> None:
    first, second = scheduler(), scheduler()
    first.tick()
    second.tick()

    first.close()
    second.tick()

    assert second.active
    assert redis_client().get(beat_lease_key()) == second.lease_owner.encode()


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_does_not_renew_it(lease: None) -> None:
    first, second = scheduler(), scheduler()
    first.tick()
    redis_client().delete(beat_lease_key())  # as if first was cut off for longer than the lease

    second.tick()
    first.tick()

    assert (first.active, second.active) == (False, True)
    assert redis_client().get(beat_lease_key()) == second.lease_owner.encode()
