"""When a stored token counts as fresh: every margin in one table, with the reason for each.

WeChat's component and authorizer access tokens live 7200 s (docs/wechat/tokens.md). A token is refreshed
ahead of its expiry so that no caller ever sends an expired one, and the margins below are ordered from
the furthest look-ahead to the last moment a token may still be handed out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

# The beat refresher renews authorizer tokens that expire within this window, spread over a few minutes.
AUTHORIZER_REFRESH_LOOKAHEAD = timedelta(minutes=30)
# The component token is renewed when it has less than this left (WeChat suggests about 1h50m of 2h).
COMPONENT_REFRESH_MARGIN = timedelta(minutes=15)
# An authorizer token refresh asked for without a stale version (beat task, admin action) is skipped when
# the stored token has more than this left.
AUTHORIZER_REFRESH_MARGIN = timedelta(minutes=10)
# A sync batch refreshes first any token that would expire within this margin: a batch takes seconds, and
# no token may expire in the middle of it.
BATCH_TOKEN_MARGIN = timedelta(minutes=5)
# Staff's "refresh token" button: a margin longer than any token lives, so the refresh always happens.
FORCE_REFRESH_MARGIN = timedelta(days=1)
# The least life a token must have left to be handed to a single call.
USABLE_MARGIN = timedelta(seconds=60)


def token_is_fresh(token: str, expires_at: datetime | None, *, margin: timedelta, now: datetime | None = None) -> bool:
    """Whether `token` exists and will still be valid `margin` from now."""
    if not token or expires_at is None:
        return False
    return expires_at - (now or timezone.now()) > margin
