"""The calls behind the rids of WeChat's error answers, for openapi/rid/get (docs/wechat/errors.md#rid).

WeChat puts a request id in every error's errmsg and keeps the call behind it for 7 days, readable only by the
account that made the call [D:service/openApi/get_rid_info.html]. Success answers carry no rid, so only error
answers are remembered here: a dict lookup and an append per error, nothing per successful call. Memory is
bounded by count (the oldest entry goes first) and every stored body is cut short.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# "606d52e0-101a945b-1de9c138": three groups of 8 lowercase hex digits.
RID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}")
# Stored request and response bodies are cut to this many characters.
BODY_LIMIT = 2048


@dataclass(slots=True)
class RidRecord:
    rid: str
    # The appid of the account that made the call (the component's for component calls), or None when the
    # caller could not be told (an unknown token): nobody can read such a record.
    owner: str | None
    invoke_time: int
    cost_in_ms: int
    # WeChat's field holds the query string as sent, tokens included ("access_token=50_Im7xxxx").
    request_url: str
    request_body: str
    response_body: str
    client_ip: str
    path: str

    def request_info(self) -> dict[str, Any]:
        """The `request` object of an openapi/rid/get answer."""
        return {
            "invoke_time": self.invoke_time,
            "cost_in_ms": self.cost_in_ms,
            "request_url": self.request_url,
            "request_body": self.request_body,
            "response_body": self.response_body,
            "client_ip": self.client_ip,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"rid": self.rid, "owner": self.owner, "path": self.path, **self.request_info()}


class RidLog:
    def __init__(self) -> None:
        self._records: OrderedDict[str, RidRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: RidRecord, capacity: int) -> None:
        self._records[record.rid] = record
        # OrderedDict.popitem(last=False) is O(1); a plain dict's oldest key would cost a scan past every
        # deleted slot.
        while len(self._records) > max(capacity, 0):
            self._records.popitem(last=False)

    def get(self, rid: str) -> RidRecord | None:
        return self._records.get(rid)

    def records(self) -> list[RidRecord]:
        return list(self._records.values())

    def clear(self) -> None:
        self._records.clear()


def cut(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT]
