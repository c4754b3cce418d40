"""Several third-party platforms ("components") behind one base URL, as WeChat serves them all from
api.weixin.qq.com (docs/wechat/platforms.md#several-platforms).

Each component is a `SandboxState` of its own, with its own pusher (its event URL and message URL, its token,
EncodingAESKey and appid for the crypto) and its own release-test lock. A request finds its component by what it
carries, as WeChat's would: a token in the query (tokens are random, so the state that issued one is the only
one that knows it), else the body's or the page's component_appid, else the first (default) component, whose
state then answers as it always did (40001 for an unknown token, 61011 for an unknown component appid). A token
of one component sent with another's component_appid reaches the token's state, which answers 61011: WeChat's
answer is not documented (docs/wechat/platforms.md#a-token-of-another-platform).

Faults, latency and counters belong to each component's state like everything else; reset and the state file
cover them all. An account authorized to two components is two accounts, with separate draft counts and quotas.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from wxplatform.wechat.crypto import CryptoError, MessageCrypto
from wxsandbox.config import SandboxConfig
from wxsandbox.pushes import Pusher
from wxsandbox.state import Clock, ControlError, SandboxState, check_appid, check_config_changes

REQUIRED_FIELDS = ("appid", "appsecret", "token", "aes_key")
OPTIONAL_FIELDS = ("event_url", "message_url", "platform_func_ids")


@dataclass
class Component:
    state: SandboxState
    pusher: Pusher
    # The component's definition when it was added at run time (kept in the state file, dropped by reset);
    # None for the ones the configuration declares.
    added: dict[str, Any] | None = None
    release_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def appid(self) -> str:
        return self.state.config.component_appid

    def view(self, *, default: bool) -> dict[str, Any]:
        """What GET /sandbox/components lists: no secret, token or key (GET /sandbox/config?component= has them)."""
        config = self.state.config
        return {
            "component_appid": config.component_appid,
            "default": default,
            "added_at_run_time": self.added is not None,
            "event_url": config.event_url,
            "message_url": config.message_url,
            "platform_func_ids": list(config.platform_func_ids),
        }


def check_definition(spec: Any) -> dict[str, Any]:
    """A component's definition ({appid, appsecret, token, aes_key, event_url?, message_url?,
    platform_func_ids?}), validated; ControlError(400) says what is wrong."""
    if not isinstance(spec, dict):
        raise ControlError(400, "a component must be an object")
    unknown = set(spec) - {*REQUIRED_FIELDS, *OPTIONAL_FIELDS}
    if unknown:
        raise ControlError(400, f"unknown fields {sorted(unknown)}; allowed: {[*REQUIRED_FIELDS, *OPTIONAL_FIELDS]}")
    for name in REQUIRED_FIELDS:
        value = spec.get(name)
        if not isinstance(value, str) or not value:
            raise ControlError(400, f"{name} is required: a non-empty string")
    check_appid(spec["appid"])
    try:
        MessageCrypto(spec["token"], spec["aes_key"], spec["appid"])
    except CryptoError as exc:
        raise ControlError(400, f"aes_key: {exc}") from None
    checked = {name: spec[name] for name in REQUIRED_FIELDS}
    checked.update(check_config_changes({name: spec[name] for name in OPTIONAL_FIELDS if name in spec}))
    return checked


def _seed(seed: int | None, appid: str) -> int | None:
    # Each component draws its own tokens: two states seeded alike would issue the same ones, and a token must
    # name the one state that issued it.
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}:{appid}".encode()).digest()[:8], "big")


class Components:
    """Every component of the sandbox, by appid; the first one is the default."""

    def __init__(self, config: SandboxConfig, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._by_appid: dict[str, Component] = {}
        self.default = self._register(SandboxState(config, clock=clock), added=None)
        for spec in config.components:
            try:
                self.add(spec, at_run_time=False)
            except ControlError as exc:
                raise ValueError(f"sandbox component {spec.get('appid')!r}: {exc.message}") from None

    def _register(self, state: SandboxState, *, added: dict[str, Any] | None) -> Component:
        component = Component(state=state, pusher=Pusher(state), added=added)
        self._by_appid[component.appid] = component
        return component

    def add(self, spec: Any, *, at_run_time: bool = True) -> Component:
        """A further component with the default's settings and its own credentials and URLs. Its pusher is
        not started: the caller starts it when the server already runs."""
        checked = check_definition(spec)
        appid = checked["appid"]
        if appid in self._by_appid:
            raise ControlError(409, f"component {appid} already exists")
        config = replace(
            self.config,
            component_appid=appid,
            component_appsecret=checked["appsecret"],
            component_token=checked["token"],
            component_aes_key=checked["aes_key"],
            event_url=checked.get("event_url"),
            message_url=checked.get("message_url"),
            platform_func_ids=list(checked.get("platform_func_ids", self.config.platform_func_ids)),
            endpoint_latency=dict(self.config.endpoint_latency),
            seed=_seed(self.config.seed, appid),
            components=[],
            state_file=None,
        )
        return self._register(SandboxState(config, clock=self.clock), added=checked if at_run_time else None)

    def __iter__(self) -> Iterator[Component]:
        return iter(list(self._by_appid.values()))

    def get(self, appid: str | None) -> Component | None:
        return self._by_appid.get(appid) if appid else None

    def addressed(self, appid: str | None) -> Component:
        """The component a control call names with ?component= (the default without one)."""
        if appid is None:
            return self.default
        component = self._by_appid.get(appid)
        if component is None:
            raise ControlError(404, f"no sandbox component {appid!r}")
        return component

    def issuer_of(self, token: str | None) -> Component | None:
        """The component whose state issued this token (a component's or an authorizer's), if any."""
        if not token:
            return None
        for component in self._by_appid.values():
            state = component.state
            if token in state.component_tokens or token in state.authorizer_tokens:
                return component
        return None

    def route(self, token: str | None, component_appid: str | None) -> Component:
        """Where a WeChat request goes: the token's issuer, else the named component, else the default."""
        return self.issuer_of(token) or self.get(component_appid) or self.default

    @property
    def version(self) -> tuple[tuple[str, int], ...]:
        """Moves whenever any component's state changed or a component came or went (for the state file)."""
        return tuple((c.appid, c.state.version) for c in self._by_appid.values())

    def views(self) -> list[dict[str, Any]]:
        return [c.view(default=c is self.default) for c in self._by_appid.values()]

    def drop_added(self) -> list[Component]:
        """Forget the components added at run time; returns them (their pushers are the caller's to close)."""
        dropped = [c for c in self._by_appid.values() if c.added is not None]
        for component in dropped:
            del self._by_appid[component.appid]
        return dropped

    def reset_states(self) -> None:
        """Every component back to a fresh state and only the configured ones left (no pusher involved:
        also usable before the server runs)."""
        self.drop_added()
        for component in self._by_appid.values():
            component.state.reset()

    async def start(self) -> None:
        for component in self:
            await component.pusher.start()

    async def close(self) -> None:
        for component in self:
            await component.pusher.close()

    async def reset(self) -> None:
        """A fresh sandbox: every state reset, pending pushes dropped, run-time components gone."""
        for component in self.drop_added():
            await component.pusher.close()
        for component in self:
            component.state.reset()
            component.pusher.reset()
