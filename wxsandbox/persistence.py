"""The sandbox's WeChat state in a file, so that a restarted sandbox (`make run`) still knows its accounts.

What is kept is what WeChat itself remembers, for every component: accounts, tokens, codes, tickets, quotas,
fans, customer-service messages and the rid log, plus the random generator's state (a seeded sandbox must not
issue a token it issued before the restart), and the definitions of the components added at run time (so that
they come back too). The default component's state is at the top level (a file of another default component
is not loaded), the others' in "components"; a saved component that is neither configured nor was added at run
time is skipped. Test-harness matter is not kept: counters, faults, latency, recorded pushes and messages, and
run-time config changes (the command line and the control API set those again).

The file is rewritten whole, atomically (a temporary file, fsync, rename), at most every
`state_save_interval` seconds while something changed (less often when a dump is slow: 0.3 s of event loop at
10,000 accounts), and once more on shutdown. A missing or unreadable file
means a fresh start, said so in the log; an unreadable one is kept aside as `<file>.corrupt`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from wxsandbox.components import Components
from wxsandbox.ridlog import RidRecord
from wxsandbox.state import (
    AuthCode,
    Authorizer,
    ControlError,
    Fan,
    PreAuthCode,
    QuotaBook,
    SandboxState,
    Token,
)

logger = logging.getLogger(__name__)

# The default component's state at the top level, the further components' in "components" (a file saved before
# there were several components has no such list).
FORMAT = 1
_AUTHORIZER_PLAIN = [
    f.name for f in fields(Authorizer) if f.name not in ("quota", "fans", "func_ids", "tokens", "custom_messages")
]


def _quota(book: QuotaBook) -> dict[str, Any]:
    return {
        "day": book.day.isoformat() if book.day is not None else None,
        "used": book.used,
        "limits": book.limits,
        "rate_limits": book.rate_limits,
        "clear_month": book.clear_month,
        "clears": book.clears,
    }


def _load_quota(data: dict[str, Any]) -> QuotaBook:
    day = data["day"]
    return QuotaBook(
        day=date.fromisoformat(day) if day is not None else None,
        used={str(k): int(v) for k, v in data["used"].items()},
        limits={str(k): int(v) for k, v in data["limits"].items()},
        rate_limits=data["rate_limits"],
        clear_month=data["clear_month"],
        clears=int(data["clears"]),
    )


def _authorizer(authorizer: Authorizer) -> dict[str, Any]:
    data = {name: getattr(authorizer, name) for name in _AUTHORIZER_PLAIN}
    data["func_ids"] = authorizer.func_ids
    data["tokens"] = authorizer.tokens
    data["quota"] = _quota(authorizer.quota)
    data["fans"] = [[f.openid, f.last_message_at, f.sent_since] for f in authorizer.fans.values()]
    data["custom_messages"] = authorizer.custom_messages
    return data


def _load_authorizer(data: dict[str, Any]) -> Authorizer:
    plain = {name: data[name] for name in _AUTHORIZER_PLAIN}
    return Authorizer(
        **plain,
        func_ids=[int(i) for i in data["func_ids"]],
        tokens=[str(t) for t in data["tokens"]],
        quota=_load_quota(data["quota"]),
        fans={openid: Fan(openid, float(at), int(sent)) for openid, at, sent in data["fans"]},
        custom_messages=list(data["custom_messages"]),
    )


def _slots(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def dump(components: Components) -> str:
    """Every component's state as JSON text. Runs on the event loop, so that it sees one consistent moment."""
    data = _component_data(components.default.state)
    further = []
    for component in components:
        if component is components.default:
            continue
        item = _component_data(component.state)
        if component.added is not None:
            item["added"] = component.added
        further.append(item)
    data["components"] = further
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _component_data(state: SandboxState) -> dict[str, Any]:
    version, internal, gauss = state.rng.getstate()
    return {
        "format": FORMAT,
        "saved_at": state.clock(),
        "component_appid": state.config.component_appid,
        "rng": [version, list(internal), gauss],
        "authorizers": [_authorizer(a) for a in state.authorizers.values()],
        "authorized_order": list(state.authorized_order),
        "component_tokens": [_slots(t) for t in state.component_tokens.values()],
        "current_component_token": state.current_component_token,
        "authorizer_tokens": [_slots(t) for t in state.authorizer_tokens.values()],
        "pre_auth_codes": [_slots(c) for c in state.pre_auth_codes.values()],
        "auth_codes": [_slots(c) for c in state.auth_codes.values()],
        "tickets": state.tickets,
        "current_ticket": state.current_ticket,
        "component_quota": _quota(state.component_quota),
        "rids": [_slots(r) for r in state.rids.records()],
    }


def restore_all(components: Components, data: dict[str, Any]) -> None:
    """Load a saved file into freshly reset components; raises ValueError (or KeyError/TypeError) when the data
    does not fit, possibly after restoring some components (the caller then resets them all)."""
    restore(components.default.state, data)
    further = data.get("components", [])
    if not isinstance(further, list):
        raise ValueError("components is not a list")
    for item in further:
        appid = item["component_appid"]
        component = components.get(appid)
        if component is None and isinstance(item.get("added"), dict):
            component = components.add(item["added"])
        if component is None or component is components.default:
            logger.warning("sandbox state file: component %r is no longer configured; its state is dropped", appid)
            continue
        restore(component.state, item)


def restore(state: SandboxState, data: dict[str, Any]) -> None:
    """Load one component's `data` into a freshly reset `state`; raises ValueError (or KeyError/TypeError) and
    changes nothing when the data does not fit."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown format {data.get('format')!r}")
    if data.get("component_appid") != state.config.component_appid:
        raise ValueError(f"it belongs to component {data.get('component_appid')!r}")
    version, internal, gauss = data["rng"]
    rng_state = (int(version), tuple(int(i) for i in internal), gauss)
    authorizers = {a.appid: a for a in map(_load_authorizer, data["authorizers"])}
    order = {str(appid): None for appid in data["authorized_order"]}
    if not set(order) <= set(authorizers):
        raise ValueError("authorized_order names unknown accounts")
    component_tokens = {t.value: t for t in (Token(**d) for d in data["component_tokens"])}
    authorizer_tokens = {t.value: t for t in (Token(**d) for d in data["authorizer_tokens"])}
    if any(t.owner not in authorizers for t in authorizer_tokens.values()):
        raise ValueError("an access token belongs to an unknown account")
    pre_auth_codes = {c.value: c for c in (PreAuthCode(**d) for d in data["pre_auth_codes"])}
    auth_codes = {c.value: c for c in (AuthCode(**d) for d in data["auth_codes"])}
    rids = [RidRecord(**d) for d in data["rids"]]
    component_quota = _load_quota(data["component_quota"])
    tickets = {str(k): float(v) for k, v in data["tickets"].items()}

    # Everything parsed: now change the state. The release-test accounts always exist.
    state.rng.setstate(rng_state)
    builtin = {appid: a for appid, a in state.authorizers.items() if a.test_account}
    state.authorizers = {**{k: v for k, v in builtin.items() if k not in authorizers}, **authorizers}
    state.authorized_order = order
    state.component_tokens = component_tokens
    state.current_component_token = data["current_component_token"]
    state.authorizer_tokens = authorizer_tokens
    state.pre_auth_codes = pre_auth_codes
    state.auth_codes = auth_codes
    state.tickets = tickets
    state.current_ticket = data["current_ticket"]
    state.component_quota = component_quota
    state.rids.clear()
    for record in rids:
        state.record_rid(record)


class StateFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")

    def read(self) -> dict[str, Any] | None:
        """The saved state, or None (logged) when there is none or it cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.info("no sandbox state file at %s: starting afresh", self.path)
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.set_aside(f"cannot be read ({type(exc).__name__}: {exc})")
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.set_aside(f"is not JSON ({exc})")
            return None
        if not isinstance(data, dict):
            self.set_aside("is not a JSON object")
            return None
        return data

    def set_aside(self, why: str) -> None:
        corrupt = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, corrupt)
            kept = f"kept as {corrupt}"
        except OSError:
            kept = "left in place"
        logger.warning("sandbox state file %s %s: starting afresh (%s)", self.path, why, kept)

    def write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)


class Saver:
    """Keeps the state file in step with the components: loads it at start, writes changes in the background."""

    def __init__(self, components: Components, path: str | os.PathLike[str], interval: float) -> None:
        self.components = components
        self.file = StateFile(path)
        self.interval = interval
        self._saved_version = components.version
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Seconds the last dump held the event loop (0.3 s at 10,000 accounts).
        self._last_dump = 0.0

    def load(self) -> bool:
        """Restore the saved state (before serving); False, logged, when starting afresh."""
        data = self.file.read()
        if data is None:
            return False
        try:
            restore_all(self.components, data)
        except (KeyError, TypeError, ValueError, AttributeError, ControlError) as exc:
            self.components.reset_states()
            self.file.set_aside(f"does not hold a sandbox state ({type(exc).__name__}: {exc})")
            return False
        self._saved_version = self.components.version
        states = [c.state for c in self.components]
        logger.info(
            "sandbox state restored from %s: %d components, %d accounts, %d authorized",
            self.file.path,
            len(states),
            sum(not a.test_account for state in states for a in state.authorizers.values()),
            sum(len(state.authorized_order) for state in states),
        )
        return True

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            # A dump blocks the event loop; with many accounts and steady traffic, write less often, so that
            # saving never takes more than a tenth of the sandbox's time.
            await asyncio.sleep(max(self.interval, 10 * self._last_dump))
            try:
                await self.save()
            except OSError:
                logger.exception("could not write the sandbox state file %s", self.file.path)

    async def save(self) -> None:
        async with self._lock:
            version = self.components.version
            if version == self._saved_version:
                return
            started = time.monotonic()
            text = dump(self.components)
            self._last_dump = time.monotonic() - started
            # Only the write leaves the event loop; the JSON text was made from one consistent moment.
            await asyncio.to_thread(self.file.write, text)
            self._saved_version = version

    async def reset(self) -> None:
        """After a state reset: the file goes too, so that a restart also starts fresh."""
        async with self._lock:
            await asyncio.to_thread(self.file.remove)
            self._saved_version = self.components.version

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await self.save()
        except OSError:
            logger.exception("could not write the sandbox state file %s on shutdown", self.file.path)
