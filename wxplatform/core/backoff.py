"""The one retry delay formula: capped exponential backoff, half of it jitter, for everything retried
(docs/wechat/errors.md#retry-policy).

Every retry in the service (a sync round after -1/45011, a task retried after a transient WeChat error or a
database outage: BackoffTask) waits `backoff_delay(attempt, base=…, cap=…)`, so that the shape is the same
everywhere and only the scale differs. Half of the delay is fixed and half random: retries of many tenants
spread out, yet none comes back sooner than half its step.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1-based): min(cap, base·2^(attempt-1)), half jittered."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class BackoffTask(Task[Any, Any]):
    """The base of every task that retries: a retry without a countdown (`self.retry(exc=exc)`, and the retries
    of `autoretry_for`) waits backoff_delay(retry number, base=backoff_base, cap=backoff_cap), instead of
    Celery's flat default_retry_delay or its own retry_backoff formula. Set both as task options:
    `@shared_task(base=BackoffTask, backoff_base=2, backoff_cap=60)`."""

    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Any = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        if countdown is None and eta is None:
            countdown = backoff_delay(self.request.retries + 1, base=self.backoff_base, cap=self.backoff_cap)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
