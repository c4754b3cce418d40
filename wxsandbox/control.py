"""A small client for the sandbox's control API (/sandbox/...), for tests, the demo and benchmarks.

Every method is one HTTP call and returns the decoded JSON. A refused call raises `SandboxControlError`
with the HTTP status and the sandbox's message. Tokens are returned in the clear: this is a test harness.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import requests

from wxsandbox.state import DRAFT_COUNT_PATH


class SandboxControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"sandbox control call failed ({status}): {message}")


class SandboxControl:
    """The control API of one component: the default one, or `component` (an appid; `for_component()` gives a
    control bound to another). Calls about the whole sandbox (reset, components, counters_total) act on every
    component whichever one the control is bound to."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        component: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        # The component this control addresses (None: the default one).
        self.component_appid = component

    def for_component(self, appid: str | None) -> SandboxControl:
        """The same sandbox's control API for component `appid` (None: the default component)."""
        return SandboxControl(self.base_url, timeout=self.timeout, session=self.session, component=appid)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/sandbox{path}",
            params={"component": self.component_appid} if self.component_appid is not None else None,
            json=body,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=False,
            headers={"Accept": "application/json"},
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

    def index(self) -> dict[str, Any]:
        """{"calls": [{"method", "path", "summary"}], "wechat_endpoints": [...], "pages": [...]}."""
        return dict(self._call("GET", "/"))

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
        """Back to a fresh sandbox: state, counters, faults, latency, pushes and config changes of every
        component; the components added at run time are gone."""
        self._call("POST", "/reset")

    # --- components (third-party platforms) ---------------------------------------------------------

    def components(self) -> list[dict[str, Any]]:
        """Every component: {component_appid, default, added_at_run_time, event_url, message_url,
        platform_func_ids}, the default one first."""
        return list(self._call("GET", "/components")["components"])

    def add_component(
        self,
        appid: str,
        *,
        appsecret: str,
        token: str,
        aes_key: str,
        event_url: str | None = None,
        message_url: str | None = None,
        platform_func_ids: Iterable[int] | None = None,
    ) -> SandboxControl:
        """One more component on the same base URL (the default's settings, its own credentials, URLs and
        state); returns a control bound to it. reset() removes it again."""
        body: dict[str, Any] = {"appid": appid, "appsecret": appsecret, "token": token, "aes_key": aes_key}
        for name, value in (("event_url", event_url), ("message_url", message_url)):
            if value is not None:
                body[name] = value
        if platform_func_ids is not None:
            body["platform_func_ids"] = list(platform_func_ids)
        self._call("POST", "/components", body)
        return self.for_component(appid)

    def get_config(self) -> dict[str, Any]:
        return dict(self._call("GET", "/config"))

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change run-time settings (see config.MUTABLE_FIELDS), e.g. auth_code_single_use=True."""
        return dict(self._call("PATCH", "/config", changes))

    def set_event_url(self, url: str | None) -> dict[str, Any]:
        return self.update_config(event_url=url)

    def set_message_url(self, url: str | None) -> dict[str, Any]:
        """The platform's message-and-event URL; it must contain $APPID$ (e.g. .../authorizers/$APPID$/events)."""
        return self.update_config(message_url=url)

    def set_platform_func_ids(self, func_ids: Iterable[int]) -> dict[str, Any]:
        """The permission sets the platform selected; the release test skips its message cases without 1."""
        return self.update_config(platform_func_ids=list(func_ids))

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

    def counters_total(self) -> dict[str, Any]:
        """{"total": counters() summed over every component, "components": {appid: counters()}}."""
        return dict(self._call("GET", "/counters/total"))

    def reset_all_counters(self) -> None:
        """Zero the counters of every component."""
        self._call("DELETE", "/counters/total")

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

    def component(self) -> dict[str, Any]:
        """{component_appid, component_access_token, expires_in, ticket, quota_used, daily_limits, rate_limits,
        quota_clears}: the component's own token and quotas."""
        return dict(self._call("GET", "/component"))

    def set_component_quota(
        self,
        cgi_path: str,
        *,
        used: int | None = None,
        daily_limit: int | None = None,
        rate_limit: dict[str, int] | None = None,
        component_rate_limit: dict[str, int] | None = None,
        clears: int | None = None,
    ) -> dict[str, Any]:
        """The component's quota for one of its APIs (e.g. "/cgi-bin/component/api_authorizer_token"): today's
        use, its daily limit (45009 once reached), reported rate limits, this month's clear count (48006 at
        monthly_clear_limit). Returns component()."""
        body = _quota_body(cgi_path, used, daily_limit, rate_limit, component_rate_limit, clears)
        return dict(self._call("PUT", "/component/quota", body))

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
        **profile: Any,
    ) -> dict[str, Any]:
        """A new account (kind: subscription | service | mini_program | channels | store | talent | supplier),
        by default not yet authorized: consent (page or `consent()`) authorizes it. With authorized=True it comes
        with authorizer_access_token, expires_in and authorizer_refresh_token already issued, as if onboarded
        earlier. `profile`: alias, signature, head_img, qrcode_url, service_type, kind_info, basic_config."""
        body: dict[str, Any] = {
            "kind": kind,
            "verify_type": verify_type,
            "func_ids": list(func_ids),
            "draft_count": draft_count,
            "account_status": account_status,
            "authorized": authorized,
            "omit_refresh_token_in_list": omit_refresh_token_in_list,
            **profile,
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
        omit_refresh_token_every: int = 0,
    ) -> list[dict[str, Any]]:
        """`count` accounts named prefix00000...; draft_count is a number or an inclusive (low, high) range;
        with omit_refresh_token_every=N, every N-th account is listed by api_get_authorizer_list without its
        refresh_token. Each item: appid, authorizer_access_token, expires_in, authorizer_refresh_token,
        draft_count, kind, func_ids."""
        body: dict[str, Any] = {
            "count": count,
            "prefix": prefix,
            "kind": kind,
            "func_ids": list(func_ids),
            "draft_count": list(draft_count) if isinstance(draft_count, tuple) else draft_count,
            "authorized": authorized,
        }
        if omit_refresh_token_every:
            body["omit_refresh_token_every"] = omit_refresh_token_every
        return list(self._call("POST", "/authorizers/bulk", body)["authorizers"])

    def get_authorizer(self, appid: str) -> dict[str, Any] | None:
        """The account with its tokens and today's quota use, or None if the sandbox has no such account."""
        try:
            return dict(self._call("GET", f"/authorizers/{appid}"))
        except SandboxControlError as exc:
            if exc.status == 404:
                return None
            raise

    def list_authorizers(self, *, include_test_accounts: bool = False) -> list[dict[str, Any]]:
        """Every account; WeChat's release-test accounts only with include_test_accounts=True."""
        path = "/authorizers?test_accounts=1" if include_test_accounts else "/authorizers"
        return list(self._call("GET", path)["authorizers"])

    def update_authorizer(self, appid: str, **changes: Any) -> dict[str, Any]:
        """Change the account in WeChat without any push (WeChat sends none for these, docs/wechat/lifecycle.md):
        nickname,
        head_img, principal_name, alias, signature, qrcode_url, verify_type, service_type (any integer, or
        None to follow the kind), account_status (1, 14, 16, 18, 19), kind (subscription, service,
        mini_program, channels, store, talent, supplier), kind_info (the content of the kind's block:
        MiniProgramInfo, channels_info, ...), basic_config, func_ids (the granted sets: no updateauthorized),
        draft_count, omit_refresh_token_in_list."""
        return dict(self._call("PATCH", f"/authorizers/{appid}", changes))

    def revoke(self, appid: str, *, push: bool = False) -> dict[str, Any]:
        """The merchant cancels the authorization. With push=False (the default) nothing tells the platform:
        api_get_authorizer_info and api_authorizer_token answer 61003 and the account leaves
        api_get_authorizer_list. push=True also sends `unauthorized` and returns the attempt."""
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

    def set_quota(
        self,
        appid: str,
        *,
        cgi_path: str = DRAFT_COUNT_PATH,
        used: int | None = None,
        daily_limit: int | None = None,
        rate_limit: dict[str, int] | None = None,
        component_rate_limit: dict[str, int] | None = None,
        clears: int | None = None,
    ) -> dict[str, Any]:
        """The account's quota for `cgi_path`: today's use, its own daily_limit (default 1000 for draft/count),
        the rate_limit / component_rate_limit ({"call_count", "refresh_second"}) that openapi/quota/get
        reports, and this month's clear_quota count. Returns the account's view (daily_limits, rate_limits,
        quota_clears)."""
        body = _quota_body(cgi_path, used, daily_limit, rate_limit, component_rate_limit, clears)
        return dict(self._call("PUT", f"/authorizers/{appid}/quota", body))

    # --- fans, messages and customer-service messages (docs/wechat/message-url.md)
    # ----------------------------------------------

    def send_message(
        self,
        appid: str,
        *,
        msg_type: str = "text",
        content: str | None = None,
        event: str | None = None,
        from_openid: str | None = None,
        fields: dict[str, str | int] | None = None,
        msg_id: int | None = None,
        tries: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """A fan writes to the authorized account (msg_type text with content, image, or event with event, e.g.
        "LOCATION"): the sandbox POSTs it, encrypted, to the message URL and waits for the answer, retrying
        like WeChat when none comes within `timeout` (default message_timeout, 5 s), `tries` (3) in all.
        Returns {id, appid, url, message (inner fields), attempts [{try, status, elapsed_ms, error}], answered,
        status, elapsed_ms, body, reply_kind ("empty" | "success" | "encrypted" | "plain" | "invalid"),
        encrypted, signature_ok, reply (the decrypted reply's fields), error}."""
        body: dict[str, Any] = {"msg_type": msg_type}
        for name, value in (
            ("content", content), ("event", event), ("from_openid", from_openid), ("fields", fields),
            ("msg_id", msg_id), ("tries", tries), ("timeout", timeout),
        ):  # fmt: skip
            if value is not None:
                body[name] = value
        config_wait = (tries or 3) * (timeout or 5.0) + 10
        return dict(self._call("POST", f"/authorizers/{appid}/messages", body, timeout=max(self.timeout, config_wait)))

    # --- the draft box (docs/wechat/draft-events.md)
    # ---------------------------------------------------------------

    def publish(
        self, appid: str, *, media_id: str | None = None, delay: float | None = None, wait: bool = False
    ) -> dict[str, Any]:
        """The merchant publishes a draft (the oldest unless `media_id`): it leaves the box at once and
        PUBLISHJOBFINISH is pushed to the message URL after `delay` (default: config draft_event_delay).
        Returns {appid, kind, job_id, media_id, draft_count, event, push}; `push` is the push as messages() lists
        it when `wait`, else None."""
        return self._draft_job(appid, "publish", media_id=media_id, delay=delay, wait=wait)

    def mass_send(
        self, appid: str, *, media_id: str | None = None, delay: float | None = None, wait: bool = False
    ) -> dict[str, Any]:
        """As publish(), for a mass send of the draft: MASSSENDJOBFINISH follows."""
        return self._draft_job(appid, "mass_send", media_id=media_id, delay=delay, wait=wait)

    def _draft_job(
        self, appid: str, kind: str, *, media_id: str | None, delay: float | None, wait: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"wait": wait}
        if media_id is not None:
            body["media_id"] = media_id
        if delay is not None:
            body["delay"] = delay
        # A waited push may take the delay and up to three 5 s tries.
        timeout = max(self.timeout, (delay or 0) + 30) if wait else None
        return dict(self._call("POST", f"/authorizers/{appid}/{kind}", body, timeout=timeout))

    def add_drafts(self, appid: str, count: int = 1) -> dict[str, Any]:
        """Drafts saved in WeChat's web editor: the box grows by `count` and nothing is pushed.
        Returns {draft_count, draft_media_ids}."""
        return dict(self._call("POST", f"/authorizers/{appid}/drafts", {"count": count}))

    def messages(self) -> list[dict[str, Any]]:
        """Every message push to the message-and-event URL (as send_message returns them), oldest first."""
        return list(self._call("GET", "/messages")["messages"])

    def custom_messages(self, appid: str) -> list[dict[str, Any]]:
        """The message/custom/send calls the platform made for the account: {id, time, touser, msgtype,
        content (text only), body, auth_code (the code api_query_auth exchanged for the token used, if any)}."""
        return list(self._call("GET", f"/authorizers/{appid}/custom_messages")["messages"])

    # --- the full-release test (docs/wechat/message-url.md#full-release-test)
    # ---------------------------------------------------------------

    def release_test(self, *, group: int | None = None, window: float | None = None) -> dict[str, Any]:
        """Run WeChat's full-release test against the configured event_url and message_url, with test group
        `group` (0-4, random by default) and `window` seconds (default release_test_window) for the platform's
        own calls. Returns {passed, group, authorizer_appid, user_name, started_at, duration_ms,
        rows: [{step, name, result ("pass" | "fail" | "skipped"), detail}]}; steps: ticket, pre_auth_code,
        authorized, query_auth, text_message, api_text_message, event_message, unauthorized."""
        body: dict[str, Any] = {}
        if group is not None:
            body["group"] = group
        if window is not None:
            body["window"] = window
        # Three message cases of up to 3 x 5 s each and two waits of `window`.
        wait = 45 + 2 * (window if window is not None else 10.0) + 30
        return dict(self._call("POST", "/release_test", body, timeout=max(self.timeout, wait)))

    def release_test_results(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/release_test")["results"])

    # --- rids (docs/wechat/errors.md#rid)
    # ------------------------------------------------------------------------------------

    def rid(self, rid: str) -> dict[str, Any] | None:
        """The call behind an error's rid, without a token: {rid, owner (appid), path, invoke_time, cost_in_ms,
        request_url, request_body, response_body, client_ip}, or None when not remembered."""
        try:
            return dict(self._call("GET", f"/rids/{rid}"))
        except SandboxControlError as exc:
            if exc.status == 404:
                return None
            raise

    def rids(self) -> list[dict[str, Any]]:
        """The last 100 remembered error calls, oldest first."""
        return list(self._call("GET", "/rids")["rids"])

    def reset_quotas(self) -> None:
        """A new quota day for every account."""
        self._call("POST", "/quota/reset")


def _quota_body(
    cgi_path: str,
    used: int | None,
    daily_limit: int | None,
    rate_limit: dict[str, int] | None,
    component_rate_limit: dict[str, int] | None,
    clears: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"cgi_path": cgi_path}
    for name, value in (
        ("used", used), ("daily_limit", daily_limit), ("rate_limit", rate_limit),
        ("component_rate_limit", component_rate_limit), ("clears", clears),
    ):  # fmt: skip
        if value is not None:
            body[name] = value
    return body
