"""`make run`: the whole service on one machine, in the foreground, for a demo or for development.

Migrates, then starts the WeChat sandbox, the web server (gunicorn), a Celery worker and beat as child
processes, onboards a few sandbox merchants through the real authorization flow (authorization page →
sandbox consent → encrypted `authorized` push + callback), and prints where to go. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from tenants.services import api_key_issue
from wxplatform.component.services import component_request_ticket_push
from wxplatform.sandbox.control import SandboxControl

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
# Fixed appids, so that a restart re-authorizes the same demo merchants instead of adding new ones.
DEMO_MERCHANTS: list[dict[str, Any]] = [
    {
        "appid": "wxdemo0000000001",
        "nickname": "示例服务号",
        "kind": "service",
        "func_ids": [1, 2, 11],
        "draft_count": 12,
    },
    {
        "appid": "wxdemo0000000002",
        "nickname": "示例订阅号",
        "kind": "subscription",
        "func_ids": [1, 100],
        "draft_count": 3,
    },
    {
        "appid": "wxdemo0000000003",
        "nickname": "未授权素材的订阅号",
        "kind": "subscription",
        "func_ids": [1, 7],
        "draft_count": 8,
    },
    {
        "appid": "wxdemo0000000004",
        "nickname": "示例小程序",
        "kind": "mini_program",
        "func_ids": [17, 18],
        "draft_count": 0,
    },
]


class Command(BaseCommand):
    help = "Run the sandbox, web server, Celery worker and beat in the foreground (development and demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--no-demo", action="store_true", help="Do not onboard demo merchants.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("run_stack is for development and demos (DEBUG=true); use docker-compose in production.")
        self.children: list[subprocess.Popen[bytes]] = []
        web = f"http://{options['host']}:{options['port']}"
        sandbox = f"http://127.0.0.1:{options['sandbox_port']}"
        if settings.WECHAT_API_BASE != sandbox:
            self.stdout.write(self.style.WARNING(f"WECHAT_API_BASE is {settings.WECHAT_API_BASE}, not the sandbox."))
        self._step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_demo_user()
        signal.signal(signal.SIGTERM, lambda *_: self._stop_and_exit(0))
        try:
            self._start_children(options, web)
            self._wait_ready(f"{web}/readyz", "web server")
            self._wait_ready(f"{sandbox}/sandbox/health", "WeChat sandbox")
            api_key = None if options["no_demo"] else self._onboard_demo(web, sandbox)
            self._print_summary(web, sandbox, api_key)
            while all(child.poll() is None for child in self.children):
                time.sleep(0.5)
            failed = [c for c in self.children if c.poll() is not None]
            raise CommandError(f"a child process exited with status {failed[0].returncode}")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self._stop_children()

    # --- processes -------------------------------------------------------------------------------------

    def _start_children(self, options: dict[str, Any], web: str) -> None:
        # Prometheus' multiprocess files describe processes of a previous run: start the counters afresh.
        for stale in Path(settings.PROMETHEUS_MULTIPROC_DIR).glob("*.db"):
            stale.unlink(missing_ok=True)
        env = dict(os.environ, PUBLIC_BASE_URL=web, PYTHONUNBUFFERED="1")
        py, manage = sys.executable, str(Path(settings.BASE_DIR) / "manage.py")
        bind = f"{options['host']}:{options['port']}"
        commands = {
            "sandbox": [py, manage, "run_wechat_sandbox", "--port", str(options["sandbox_port"]),
                        "--event-url", f"{web}/wechat/component/events",
                        "--message-url", f"{web}/wechat/authorizers/$APPID$/events", "--ticket-interval", "600"],
            "web": [py, "-m", "gunicorn", "wxplatform.wsgi:application", "--bind", bind,
                    "--workers", "2", "--threads", "4", "--access-logfile", "-"],
            "worker": [py, "-m", "celery", "-A", "wxplatform", "worker", "-l", "INFO", "-c", "2"],
            "beat": [py, "-m", "celery", "-A", "wxplatform", "beat", "-l", "INFO"],
        }  # fmt: skip
        for name, command in commands.items():
            self._step(f"Starting {name}")
            # Each child gets its own process group, so that Ctrl-C is handled once, here, in order.
            self.children.append(subprocess.Popen(command, env=env, start_new_session=True))

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    def _stop_and_exit(self, code: int) -> None:
        self._stop_children()
        sys.exit(code)

    def _wait_ready(self, url: str, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if any(child.poll() is not None for child in self.children):
                raise CommandError(f"a process exited while waiting for the {what}")
            time.sleep(0.5)
        raise CommandError(f"the {what} did not become ready at {url}")

    # --- demo ------------------------------------------------------------------------------------------

    def _ensure_demo_user(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@example.com", DEMO_PASSWORD)

    def _onboard_demo(self, web: str, sandbox: str) -> str | None:
        self._step("Onboarding demo merchants through the authorization flow")
        control = SandboxControl(sandbox)
        self._wait_for_ticket(web)
        browser = requests.Session()
        for merchant in DEMO_MERCHANTS:
            if control.get_authorizer(merchant["appid"]) is None:
                control.create_authorizer(**merchant)
            page = browser.get(f"{web}/wechat/authorize", timeout=15)
            if page.status_code != 200:
                raise CommandError(f"authorization page answered {page.status_code}")
            link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
            query = parse_qs(urlsplit(link).query)
            consent = control.consent(
                query["pre_auth_code"][0], merchant["appid"], redirect_uri=query["redirect_uri"][0], push=True
            )
            done = browser.get(consent["redirect_url"], timeout=30)
            if done.status_code != 200:
                raise CommandError(f"authorization callback answered {done.status_code} for {merchant['appid']}")
            self.stdout.write(f"  ✓ {merchant['nickname']} ({merchant['appid']})")
        self._step("Syncing their draft counts (python manage.py sync_drafts --tenant …)")
        call_command("sync_drafts", "--tenant", *[m["appid"] for m in DEMO_MERCHANTS], "--no-progress")
        tenant = Tenant.objects.get(authorizer_appid=DEMO_MERCHANTS[0]["appid"])
        _key, raw = api_key_issue(tenant=tenant, name="make run demo")
        return raw

    def _wait_for_ticket(self, web: str, timeout: float = 60) -> None:
        # Like WeChat, the sandbox pushes a ticket every few minutes; ask for one now rather than wait.
        component_request_ticket_push()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conditions = requests.get(f"{web}/readyz", timeout=5).json().get("conditions", {})
            if conditions.get("component") == "ok":
                return
            time.sleep(1)
        raise CommandError("no component_verify_ticket arrived from the sandbox")

    def _print_summary(self, web: str, sandbox: str, api_key: str | None) -> None:
        lines = [
            "",
            self.style.SUCCESS("The service is running. Press Ctrl-C to stop everything."),
            f"  Admin:              {web}/admin/   (login {DEMO_USER} / {DEMO_PASSWORD})",
            f"  API docs:           {web}/api/docs/",
            f"  Authorization page: {web}/wechat/authorize",
            f"  Readiness:          {web}/readyz",
            f"  WeChat sandbox:     {sandbox}/sandbox/",
            "  Full-release test:  python manage.py release_check",
        ]
        if api_key:
            tenant = DEMO_MERCHANTS[0]
            lines += [
                f"  Demo API key ({tenant['nickname']}): {api_key}",
                f'  Try: curl -H "Authorization: Api-Key {api_key}" {web}/api/v1/draft-count',
            ]
        self.stdout.write("\n".join(lines) + "\n")

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"» {text}"))
