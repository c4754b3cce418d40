"""What tenants announce to the apps above them, which it may not import (the layers contract).

`draft_box_changed`: WeChat pushed, through the message-and-event URL, an event that follows a change of an
account's draft box (docs/wechat/draft-events.md). Sent with `component_id`, `authorizer_appid` and `event` (the
Event name), after the push verified and decrypted, while WeChat waits for the answer (5 s): receivers only
record and queue. The drafts app connects its receiver in DraftsConfig.ready().
"""

from __future__ import annotations

from django.dispatch import Signal

draft_box_changed = Signal()
