"""The signature recipe of the README and docs/webhooks.md, followed by hand: its worked example's values give its
signature, the Standard Webhooks library accepts them, and so does the service's own signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tenants.models import OutboxEvent
from webhooks.services import event_body

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("secret", "webhook-id", "webhook-timestamp", "body", "webhook-signature")


def worked_example(page: Path) -> dict[str, str]:
    text = page.read_text(encoding="utf-8")
    values = {}
    for name in FIELDS:
        found = re.findall(rf"^{re.escape(name)}:\s+(.+)$", text, re.MULTILINE)
        assert len(found) == 1, (page, name, found)
        values[name] = found[0].strip()
    return values


@pytest.mark.parametrize("page", ["README.md", "docs/webhooks.md", "README.zh-CN.md"])
def test_the_worked_example_signs_as_the_recipe_says(page: str) -> None:
    if not (ROOT / page).exists():
        pytest.fail(f"{page} is missing")
    example = worked_example(ROOT / page)

    # The recipe, step by step: the key is the base64-decoded part after whsec_.
    key = base64.b64decode(example["secret"].removeprefix("whsec_"))
    signed = f"{example['webhook-id']}.{example['webhook-timestamp']}.{example['body']}".encode()
    by_hand = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    assert by_hand == example["webhook-signature"]
    # The library a merchant would use, and the one the service signs with, agree.
    at = datetime.fromtimestamp(int(example["webhook-timestamp"]), tz=UTC)
    assert Webhook(example["secret"]).sign(example["webhook-id"], at, example["body"]) == by_hand


def test_the_docs_give_the_decoded_key_of_the_example() -> None:
    text = (ROOT / "docs/webhooks.md").read_text(encoding="utf-8")
    key_hex = re.search(r"^key \(hex\):\s+([0-9a-f]+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]

    assert bytes.fromhex(key_hex) == base64.b64decode(worked_example(ROOT / "README.md")["secret"][len("whsec_") :])


def test_the_worked_example_body_is_the_one_the_service_writes() -> None:
    # Its created_at in the one form of times (docs/reference.md "Times"), byte for byte what event_body writes.
    example = worked_example(ROOT / "README.md")
    event = OutboxEvent(
        id=uuid.UUID(example["webhook-id"]),
        type="draft_count.changed",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={"appid": "wxdemo0000000001", "total_count": 13},
    )

    assert event_body(event).decode() == example["body"]
