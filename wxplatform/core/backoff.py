"""The one retry delay formula: capped exponential backoff, half of it jitter, for everything retried
(docs/wechat/errors.md#retry-policy).

Every retry in the service (a sync round after -1/45011, a task retried after a transient WeChat error)
waits `backoff_delay(attempt, base=…, cap=…)`, so that the shape is the same everywhere and only the scale
differs. Half of the delay is fixed and half random: retries of many tenants spread out, yet none comes
back sooner than half its step.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1-based): min(cap, base·2^(attempt-1)), half jittered."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
