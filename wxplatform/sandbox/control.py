"""A small client for the sandbox's control API (/sandbox/...), for tests, the demo and benchmarks.

Every method is one HTTP call and returns the decoded JSON. A refused call raises `SandboxControlError`
with the HTTP status and the sandbox's message. Tokens are returned in the clear: this is a test harness.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import requests

from wxplatform.sandbox.state import DRAFT_COUNT_PATH


class SandboxControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"sandbox control call failed ({status}): {message}")


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = 60.0, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/sandbox{path}", json=body, timeout=self.timeout, allow_redirects=False
        )
        try:
            data = response.json()
        except ValueError:
            raise SandboxControlError(response.status_code, response.text[:200]) from None
        if response.status_code >= 400:
            message = data.get("error", str(data)) if isinstance(data, dict) else str(data)
            raise SandboxControlError(response.status_code, message)
        return data

    # --- whole sandbox ------------------------------------------------------------------------------

    def health(self) -> bool:
        return bool(self._call("GET", "/health")["ok"])

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        """For a sandbox started as a separate process: poll until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except (requests.ConnectionError, SandboxControlError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def reset(self) -> None:
        """Back to a fresh sandbox: state, counters, faults, latency, pushes and config changes."""
        self._call("POST", "/reset")

    def get_config(self) -> dict[str, Any]:
        return dict(self._call("GET", "/config"))

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change run-time settings (see config.MUTABLE_FIELDS), e.g. auth_code_single_use=True."""
        return dict(self._call("PATCH", "/config", changes))

    def set_event_url(self, url: str | None) -> dict[str, Any]:
        return self.update_config(event_url=url)

    def set_ticket_interval(self, seconds: float) -> dict[str, Any]:
        """0 stops automatic pushes; a positive interval pushes a ticket now and then every `seconds`."""
        return self.update_config(ticket_interval=seconds)

    def set_latency(self, seconds: float, *, endpoint: str | None = None) -> dict[str, Any]:
        """Added to every WeChat endpoint, or only to `endpoint` (a path such as "/cgi-bin/draft/count")."""
        body: dict[str, Any] = {"seconds": seconds}
        if endpoint is not None:
            body["endpoint"] = endpoint
        return dict(self._call("PUT", "/latency", body))

    # --- faults and counters ------------------------------------------------------------------------

    def set_faults(
        self,
        *,
        rate: float,
        kinds: Iterable[int | str],
        endpoints: Iterable[str] | None = None,
        seed: int | None = None,
        max_faults: int | None = None,
        timeout_seconds: float = 30.0,
    ) -> dict[str, Any]:
        """Fail each matching WeChat call with probability `rate`, with one of `kinds` picked at random.

        kinds: errcodes (-1, 45011, 45009, ...; 61004 names the caller's address, "requestIP: 127.0.0.1", as
        WeChat does) and "timeout" (hold `timeout_seconds`, then answer),
        "http_500", "http_502", "http_503", "malformed" (a body that is not JSON)."""
        body: dict[str, Any] = {
            "rate": rate,
            "kinds": list(kinds),
            "endpoints": list(endpoints) if endpoints is not None else None,
            "seed": seed,
            "max_faults": max_faults,
            "timeout_seconds": timeout_seconds,
        }
        return dict(self._call("PUT", "/faults", body)["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def counters(self) -> dict[str, Any]:
        """{"endpoints": {path: {"calls", "ok", "errors": {errcode: n}}}, "faults_injected": {kind: n},
        "draft_count_calls": {appid: n}, "authorizer_token_calls": {appid: n}}; unknown paths count as "*"."""
        return dict(self._call("GET", "/counters"))

    def reset_counters(self) -> None:
        self._call("DELETE", "/counters")

    # --- pushes and the component -------------------------------------------------------------------

    def pushes(self) -> list[dict[str, Any]]:
        """Every push attempt: info_type, authorizer_appid, fields (inner XML), url, status, body, error, ok."""
        return list(self._call("GET", "/pushes")["pushes"])

    def wait_for_pushes(self, count: int, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Pushes sent in the background (consent page, api_start_push_ticket) land a little later."""
        deadline = time.monotonic() + timeout
        while True:
            pushes = self.pushes()
            if len(pushes) >= count or time.monotonic() > deadline:
                return pushes
            time.sleep(0.02)

    def push_ticket(self) -> dict[str, Any]:
        """Issue a component_verify_ticket and push it now: {"ticket": ..., "push": attempt}."""
        return dict(self._call("POST", "/ticket/push"))

    def ticket(self) -> str | None:
        ticket: str | None = self._call("GET", "/ticket")["ticket"]
        return ticket

    def expire_component_token(self) -> int:
        """Every component_access_token answers 42001 from now on."""
        return int(self._call("POST", "/component_token/expire")["expired"])

    # --- accounts -----------------------------------------------------------------------------------

    def create_authorizer(
        self,
        *,
        appid: str | None = None,
        nickname: str | None = None,
        kind: str = "service",
        verify_type: int = 0,
        func_ids: Iterable[int] = (1, 11),
        draft_count: int = 0,
        principal_name: str | None = None,
        account_status: int = 1,
        authorized: bool = False,
        omit_refresh_token_in_list: bool = False,
    ) -> dict[str, Any]:
        """A new account (kind: subscription | service | mini_program), by default not yet authorized: consent
        (page or `consent()`) authorizes it. With authorized=True it comes with authorizer_access_token,
        expires_in and authorizer_refresh_token already issued, as if onboarded earlier."""
        body: dict[str, Any] = {
            "kind": kind,
            "verify_type": verify_type,
            "func_ids": list(func_ids),
            "draft_count": draft_count,
            "account_status": account_status,
            "authorized": authorized,
            "omit_refresh_token_in_list": omit_refresh_token_in_list,
        }
        for name, value in (("appid", appid), ("nickname", nickname), ("principal_name", principal_name)):
            if value is not None:
                body[name] = value
        return dict(self._call("POST", "/authorizers", body))

    def bulk_create_authorizers(
        self,
        count: int,
        *,
        prefix: str = "bench",
        kind: str = "service",
        func_ids: Iterable[int] = (1, 11),
        draft_count: int | tuple[int, int] = 0,
        authorized: bool = True,
    ) -> list[dict[str, Any]]:
        """`count` accounts named prefix00000...; draft_count is a number or an inclusive (low, high) range.
        Each item: appid, authorizer_access_token, expires_in, authorizer_refresh_token, draft_count, kind,
        func_ids."""
        body: dict[str, Any] = {
            "count": count,
            "prefix": prefix,
            "kind": kind,
            "func_ids": list(func_ids),
            "draft_count": list(draft_count) if isinstance(draft_count, tuple) else draft_count,
            "authorized": authorized,
        }
        return list(self._call("POST", "/authorizers/bulk", body)["authorizers"])

    def get_authorizer(self, appid: str) -> dict[str, Any] | None:
        """The account with its tokens and today's quota use, or None if the sandbox has no such account."""
        try:
            return dict(self._call("GET", f"/authorizers/{appid}"))
        except SandboxControlError as exc:
            if exc.status == 404:
                return None
            raise

    def list_authorizers(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/authorizers")["authorizers"])

    def update_authorizer(self, appid: str, **changes: Any) -> dict[str, Any]:
        """Change draft_count, func_ids, kind, verify_type, account_status, nickname, principal_name or
        omit_refresh_token_in_list."""
        return dict(self._call("PATCH", f"/authorizers/{appid}", changes))

    def revoke(self, appid: str, *, push: bool = False) -> dict[str, Any]:
        """The merchant cancels the authorization; push=True also sends `unauthorized` and returns the attempt."""
        return dict(self._call("POST", f"/authorizers/{appid}/revoke", {"push": push}))

    def push_updateauthorized(
        self,
        appid: str,
        *,
        func_ids: Iterable[int] | None = None,
        rotate_refresh_token: bool = True,
        push: bool = True,
    ) -> dict[str, Any]:
        """Re-authorization with (optionally) new permission sets: a new auth code, a new refresh token unless
        rotate_refresh_token=False, and an `updateauthorized` push. Returns auth_code, expires_in,
        authorizer_refresh_token, push."""
        body: dict[str, Any] = {"rotate_refresh_token": rotate_refresh_token, "push": push}
        if func_ids is not None:
            body["func_ids"] = list(func_ids)
        return dict(self._call("POST", f"/authorizers/{appid}/updateauthorized", body))

    def consent(
        self,
        pre_auth_code: str,
        authorizer_appid: str,
        *,
        func_ids: Iterable[int] | None = None,
        redirect_uri: str | None = None,
        auth_type: int | None = None,
        push: bool = True,
    ) -> dict[str, Any]:
        """What the consent page does, without a browser: consumes the pre_auth_code, (re-)authorizes the
        account and pushes `authorized`/`updateauthorized` (awaited). Returns appid, auth_code, expires_in,
        info_type, redirect_url (when redirect_uri is given) and push."""
        body: dict[str, Any] = {"pre_auth_code": pre_auth_code, "authorizer_appid": authorizer_appid, "push": push}
        if func_ids is not None:
            body["func_ids"] = list(func_ids)
        if redirect_uri is not None:
            body["redirect_uri"] = redirect_uri
        if auth_type is not None:
            body["auth_type"] = auth_type
        return dict(self._call("POST", "/consent", body))

    def issue_auth_code(self, appid: str) -> dict[str, Any]:
        """An authorization code for api_query_auth, without pre_auth_code or push: {auth_code, expires_in}.
        An account that is not authorized becomes authorized."""
        return dict(self._call("POST", f"/authorizers/{appid}/auth_code"))

    def expire_authorizer_tokens(self, appid: str) -> int:
        """The account's access tokens answer 42001 from now on."""
        return int(self._call("POST", f"/authorizers/{appid}/expire_tokens")["expired"])

    def invalidate_authorizer_tokens(self, appid: str) -> int:
        """The account's access tokens answer 40001 from now on."""
        return int(self._call("POST", f"/authorizers/{appid}/invalidate_tokens")["invalidated"])

    def set_quota_used(self, appid: str, used: int, *, cgi_path: str = DRAFT_COUNT_PATH) -> dict[str, Any]:
        """Today's used calls of `cgi_path` for the account (daily_quota or more: 45009)."""
        return dict(self._call("PUT", f"/authorizers/{appid}/quota", {"used": used, "cgi_path": cgi_path}))

    def reset_quotas(self) -> None:
        """A new quota day for every account."""
        self._call("POST", "/quota/reset")
