"""The one form of every time the service hands to a machine (docs/reference.md "Times"): RFC 3339 in UTC with
six fractional digits and `Z`, e.g. `2026-01-01T00:00:00.482113Z`.

UTC, so that an instant reads the same whatever TIME_ZONE the deployment has (the console shows local time, for
people). Microseconds, always six digits, because that is what PostgreSQL stores: a time read from the API and sent
back (`since=`) names exactly that row, two events of one second keep their order, and the fixed width makes the
strings sort as the instants do.
"""

from __future__ import annotations

from datetime import UTC, datetime

MACHINE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def machine_time(value: datetime) -> str:
    if value.tzinfo is None:
        # A naive time has no instant to convert; the service keeps aware datetimes only (USE_TZ).
        raise ValueError(f"machine_time: naive datetime {value!r}")
    return value.astimezone(UTC).strftime(MACHINE_TIME_FORMAT)
