"""`make run`: the whole service on one machine, in the foreground, for a demo or for development.

Migrates, then starts the WeChat sandbox, the web server (gunicorn), a Celery worker and beat as child
processes, onboards a few sandbox merchants through the real authorization flow (authorization page →
sandbox consent → encrypted `authorized` push + callback), and prints where to go. Ctrl-C stops them all.

- One per VAR_DIR: a second `make run` in the same checkout stops at once, before touching anything (a lock
  file the first one holds while it lives; the operating system releases it however the first one ends).
- A port in use is named in one line before anything starts.
- The sandbox keeps its accounts in VAR_DIR/sandbox-state.json, so that a restart finds the merchants it
  onboarded before (the database keeps them too). Deleting VAR_DIR starts afresh.
- Quiet unless `--verbose` (`make run VERBOSE=1`): the children log warnings and errors only (LOG_LEVEL=WARNING,
  Celery's `-l WARNING` without its banners, no access log), and the summary with the demo key is printed once
  the worker is ready, so that it is the last thing on the screen of an idle stack.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from tenants.models import Tenant
from tenants.services import api_key_replace
from wxplatform.component.models import Platform
from wxplatform.component.services import (
    active_components,
    component_readiness,
    component_request_ticket_push,
    is_default,
)
from wxsandbox.control import SandboxControl, SandboxControlError

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
# What a command in a second terminal needs to act on this stack (wxplatform/settings.py reads VAR_DIR/dev.env):
# the sandbox's URLs, the database and broker, DEBUG, and the secrets when the environment sets them.
DEV_ENV_NAMES = (
    "DEBUG", "WECHAT_API_BASE", "WECHAT_MP_BASE", "WECHAT_OPEN_BASE", "DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX",
    "PUBLIC_BASE_URL", "WEBHOOK_ALLOW_PRIVATE_TARGETS", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS",
    "WECHAT_COMPONENT_APPID", "WECHAT_COMPONENT_APPSECRET", "WECHAT_COMPONENT_TOKEN", "WECHAT_COMPONENT_AES_KEY",
)  # fmt: skip
DEMO_KEY_NAME = "make run demo"
# Children get this long to stop after SIGTERM before they are killed.
STOP_GRACE_SECONDS = 10
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


# prctl(2) option: the signal the kernel sends this process when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn for a child: SIGTERM from the kernel when run_stack dies, however it dies (SIGKILL included),
    so that no sandbox, gunicorn, worker or beat outlives it holding the ports. Linux only; elsewhere None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: the kernel will not tell
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


class Command(BaseCommand):
    help = "Run the sandbox, web server, Celery worker and beat in the foreground (development and demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--no-demo", action="store_true", help="Do not onboard demo merchants.")
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="Show every log line of the children (INFO, Celery's banners, the web server's access log).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                _("run_stack is for development and demos (DEBUG=true); use docker-compose in production.")
            )
        # Before anything else: a second instance must not migrate, onboard, delete metrics or start children.
        self._lock = self._take_lock()
        self._check_ports(options)
        self.children: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        web = f"http://{options['host']}:{options['port']}"
        sandbox = f"http://127.0.0.1:{options['sandbox_port']}"
        if settings.WECHAT_API_BASE != sandbox:
            self.stdout.write(
                self.style.WARNING(
                    _("WECHAT_API_BASE is %(base)s, not the sandbox.") % {"base": settings.WECHAT_API_BASE}
                )
            )
        self._step(_("Migrating the database"))
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_demo_user()
        # A closed terminal (SIGHUP) or a kill (SIGTERM) stops the children in order, as Ctrl-C does; a SIGKILL
        # cannot be caught, so each child also asks the kernel to stop it when this process dies (_die_with_parent).
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda number, _frame: self._stop_and_exit(128 + number))
        # Ctrl-C stops it however it was started: a shell without job control starts a background command with
        # SIGINT ignored, and Python then leaves it ignored (no KeyboardInterrupt at all).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            started = time.time()
            self._start_children(options, web)
            self._wait_ready(f"{web}/readyz", _("web server"))
            self._wait_ready(f"{sandbox}/sandbox/health", _("WeChat sandbox"))
            platforms = self._serve_platforms(web, sandbox)
            api_key = None if options["no_demo"] else self._onboard_demo(web, sandbox, platforms)
            # Whatever the worker says while it starts (its warnings) comes before the summary, not after it.
            self._wait_worker_ready(since=started)
            self._print_summary(web, sandbox, api_key)
            while all(child.poll() is None for child in self.children):
                time.sleep(0.5)
            failed = [c for c in self.children if c.poll() is not None]
            raise CommandError(_("a child process exited with status %(code)s") % {"code": failed[0].returncode})
        except KeyboardInterrupt:
            self.stdout.write("\n" + _("Stopping…"))
        finally:
            self._stop_children()

    def _take_lock(self) -> int:
        path = Path(settings.VAR_DIR) / "run_stack.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CommandError(
                _(
                    "make run is already running in this checkout (process %(pid)s). Stop it first (Ctrl-C in its "
                    "terminal), or give this one its own VAR_DIR, PORT and SANDBOX_PORT."
                )
                % {"pid": holder}
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd  # held open, and so locked, for the life of this process

    def _check_ports(self, options: dict[str, Any]) -> None:
        for what, host, port in (
            (_("web server"), options["host"], options["port"]),
            (_("WeChat sandbox"), "127.0.0.1", options["sandbox_port"]),
        ):
            probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            # As the servers bind: a port left in TIME_WAIT by a previous run is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    _(
                        "Port %(port)s (%(what)s) cannot be used: %(reason)s. Stop what uses it, or choose other "
                        "ports: make run PORT=… SANDBOX_PORT=…"
                    )
                    % {"port": port, "what": what, "reason": exc.strerror}
                ) from None
            finally:
                probe.close()

    # --- processes -------------------------------------------------------------------------------------

    def _start_children(self, options: dict[str, Any], web: str) -> None:
        # Prometheus' multiprocess files describe processes of a previous run: start the counters afresh.
        for stale in Path(settings.PROMETHEUS_MULTIPROC_DIR).glob("*.db"):
            stale.unlink(missing_ok=True)
        # Loopback and plain-HTTP webhook receivers are what a developer tries first; production stays strict
        # (the setting's default), as only run_stack sets this.
        env = dict(os.environ, PUBLIC_BASE_URL=web, PYTHONUNBUFFERED="1", WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
        self._write_dev_env(env)
        verbose = options["verbose"]
        if not verbose:
            # An idle stack prints nothing: beat's ticks, the tasks they send and the start-up chatter are INFO;
            # warnings and errors still show. A LOG_LEVEL set in the environment wins (not written to dev.env:
            # a command in a second terminal keeps its usual level).
            env["LOG_LEVEL"] = os.environ.get("LOG_LEVEL") or "WARNING"
        # Celery's -q (before the subcommand): no banner, no task list.
        celery, celery_level = ([], ["-l", "INFO"]) if verbose else (["-q"], ["-l", "WARNING"])
        access_log = ["--access-logfile", "-"] if verbose else ["--log-level", "warning"]
        py, manage = sys.executable, str(Path(settings.BASE_DIR) / "manage.py")
        bind = f"{options['host']}:{options['port']}"
        commands = {
            "sandbox": [py, manage, "run_wechat_sandbox", "--port", str(options["sandbox_port"]),
                        "--event-url", f"{web}/wechat/component/events",
                        "--message-url", f"{web}/wechat/authorizers/$APPID$/events", "--ticket-interval", "600",
                        "--state-file", str(Path(settings.VAR_DIR) / "sandbox-state.json")],
            "web": [py, "-m", "gunicorn", "wxplatform.wsgi:application", "--bind", bind,
                    "--workers", "2", "--threads", "4", *access_log],
            "worker": [py, "-m", "celery", "-A", "wxplatform", *celery, "worker", *celery_level, "-c", "2"],
            "beat": [py, "-m", "celery", "-A", "wxplatform", *celery, "beat", *celery_level],
        }  # fmt: skip
        for name, command in commands.items():
            self._step(_("Starting %(name)s") % {"name": name})
            # Each child gets its own process group, so that Ctrl-C is handled once, here, in order.
            child = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
            self.children.append(child)
            self.names[child.pid] = name

    def _write_dev_env(self, env: dict[str, str]) -> None:
        """VAR_DIR/dev.env: this stack's development environment, for commands typed in a second terminal. It
        stays when the stack stops, so that they keep addressing the sandbox (and say it is unreachable) rather
        than the real WeChat with the sandbox's tokens. Private (0600): it may hold the secrets."""
        path = Path(settings.VAR_DIR) / "dev.env"
        lines = [
            "# Written by make run (run_stack): the environment of its processes, read by manage.py in this",
            "# checkout (wxplatform/settings.py). The real environment wins over it.",
            *(f"{name}={env[name]}" for name in DEV_ENV_NAMES if env.get(name)),
        ]
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        temporary.replace(path)

    def _stop_children(self) -> None:
        # SIGTERM to each main process only: gunicorn's master and Celery's worker stop their own children
        # (a signal to the whole group killed the worker's pool under it, which it logged as errors and then
        # waited for). Only what outlives the grace period is killed, group and all.
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                self.stderr.write(
                    _("%(name)s did not stop within %(seconds)s s and was killed.")
                    % {"name": self.names.get(child.pid, "?"), "seconds": STOP_GRACE_SECONDS}
                )

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
                raise CommandError(_("a process exited while waiting for the %(what)s") % {"what": what})
            time.sleep(0.5)
        raise CommandError(_("the %(what)s did not become ready at %(url)s") % {"what": what, "url": url})

    def _wait_worker_ready(self, *, since: float, timeout: float = 90) -> None:
        """Until the Celery worker started by this run is ready: it touches its liveness marker then
        (wxplatform/core/liveness.py), in VAR_DIR/liveness/<nodename>."""
        folder = Path(settings.VAR_DIR) / "liveness"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(marker.stat().st_mtime >= since for marker in folder.glob("*")):
                return
            if any(child.poll() is not None for child in self.children):
                raise CommandError(_("a process exited while waiting for the %(what)s") % {"what": _("worker")})
            time.sleep(0.5)
        raise CommandError(_("the Celery worker did not become ready within %(seconds)s s") % {"seconds": timeout})

    def _ensure_demo_user(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@example.com", DEMO_PASSWORD)

    # --- platforms -------------------------------------------------------------------------------------

    def _serve_platforms(self, web: str, sandbox: str) -> list[Platform]:
        """The active platforms this run waits for: the default one, and each platform added with add_component
        that the sandbox serves (registered with it here, from the secrets in the database, so that it pushes the
        platform's tickets to the platform's own event URL). A platform the sandbox cannot serve is named with the
        remedy and left out: the stack still comes up, and the console that can switch it off is there."""
        platforms = list(active_components())
        if settings.WECHAT_API_BASE.rstrip("/") != sandbox:
            return platforms  # the real WeChat (or another emulator) knows every platform itself
        control = SandboxControl(sandbox)
        known = {c["component_appid"] for c in control.components()}
        served: list[Platform] = []
        for platform in platforms:
            if is_default(platform):
                served.append(platform)
                continue
            problem = self._register_platform(control, platform, web, known=platform.component_appid in known)
            if problem is None:
                served.append(platform)
                served_text = _("Platform %(platform)s is served by the sandbox.") % {"platform": platform}
                self.stdout.write(f"  ✓ {served_text}")
                continue
            self.stdout.write(
                self.style.WARNING(
                    _(
                        "Platform %(platform)s is skipped: the sandbox cannot serve it (%(problem)s). Switch it off "
                        "in the console (%(url)s), or delete %(state)s to let the sandbox start afresh."
                    )
                    % {
                        "platform": platform,
                        "problem": problem,
                        "url": f"{web}/admin/component/platform/{platform.pk}/change/",
                        "state": Path(settings.VAR_DIR) / "sandbox-state.json",
                    }
                )
            )
        return served

    def _register_platform(self, control: SandboxControl, platform: Platform, web: str, *, known: bool) -> str | None:
        """Registers the platform with the sandbox, or checks the sandbox's copy (kept in its state file) still has
        the platform's secrets. Returns why the sandbox cannot serve it, or None."""
        appid = platform.component_appid
        urls = {
            "event_url": f"{web}/wechat/components/{appid}/events",
            "message_url": f"{web}/wechat/components/{appid}/authorizers/$APPID$/events",
        }
        try:
            if not known:
                control.add_component(
                    appid,
                    appsecret=platform.appsecret,
                    token=platform.token,
                    aes_key=platform.aes_key,
                    event_url=urls["event_url"],
                    message_url=urls["message_url"],
                )
                return None
            bound = control.for_component(appid)
            config = bound.get_config()
            secrets = (config["component_appsecret"], config["component_token"], config["component_aes_key"])
            if secrets != (platform.appsecret, platform.token, platform.aes_key):
                return _("its secrets changed since the sandbox registered it")
            # The web server's port may differ from the last run's.
            bound.update_config(**urls)
        except SandboxControlError as exc:
            return exc.message
        return None

    def _wait_for_tickets(self, platforms: list[Platform], timeout: float = 60) -> None:
        # Like WeChat, the sandbox pushes a ticket every few minutes; ask for one now rather than wait.
        for platform in platforms:
            component_request_ticket_push(platform)
        deadline = time.monotonic() + timeout
        waiting = platforms
        while waiting and time.monotonic() < deadline:
            time.sleep(1)
            waiting = [p for p in Platform.objects.filter(pk__in=[p.pk for p in waiting]) if component_readiness(p)]
        if waiting:
            raise CommandError(
                _("no component_verify_ticket arrived from the sandbox for %(platforms)s")
                % {"platforms": ", ".join(str(p) for p in waiting)}
            )

    # --- demo ------------------------------------------------------------------------------------------

    def _onboard_demo(self, web: str, sandbox: str, platforms: list[Platform]) -> str | None:
        self._step(_("Onboarding demo merchants through the authorization flow"))
        control = SandboxControl(sandbox)
        self._wait_for_tickets(platforms)
        browser = requests.Session()
        for merchant in DEMO_MERCHANTS:
            if control.get_authorizer(merchant["appid"]) is None:
                control.create_authorizer(**merchant)
            page = browser.get(f"{web}/wechat/authorize", timeout=15)
            if page.status_code != 200:
                raise CommandError(_("the authorization page answered %(status)s") % {"status": page.status_code})
            link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
            query = parse_qs(urlsplit(link).query)
            consent = control.consent(
                query["pre_auth_code"][0], merchant["appid"], redirect_uri=query["redirect_uri"][0], push=True
            )
            done = browser.get(consent["redirect_url"], timeout=30)
            if done.status_code != 200:
                raise CommandError(
                    _("the authorization callback answered %(status)s for %(appid)s")
                    % {"status": done.status_code, "appid": merchant["appid"]}
                )
            self.stdout.write(f"  ✓ {merchant['nickname']} ({merchant['appid']})")
        self._step(_("Syncing their draft counts (python manage.py sync_drafts --tenant …)"))
        call_command("sync_drafts", "--tenant", *[m["appid"] for m in DEMO_MERCHANTS], "--no-progress")
        self.stdout.write(
            _(
                "Two demo accounts are ineligible on purpose, to show how the console explains it: one did not grant "
                "permission set 11 or 100, one is a Mini Program. Their syncs are skipped."
            )
        )
        tenant = Tenant.objects.get(authorizer_appid=DEMO_MERCHANTS[0]["appid"])
        # A key is stored hashed, so the banner can show only a key issued now: each start deletes the previous
        # demo key's row and issues a new one, leaving one demo key row (not one revoked row more per start).
        _key, raw = api_key_replace(tenant=tenant, name=DEMO_KEY_NAME)
        return raw

    def _print_summary(self, web: str, sandbox: str, api_key: str | None) -> None:
        lines = [
            "",
            self.style.SUCCESS(_("The service is running. Press Ctrl-C to stop everything.")),
            "  "
            + _("Admin: %(url)s (login %(user)s / %(password)s)")
            % {"url": f"{web}/admin/", "user": DEMO_USER, "password": DEMO_PASSWORD},
            "  " + _("API docs: %(url)s") % {"url": f"{web}/api/docs/"},
            "  " + _("Authorization page: %(url)s") % {"url": f"{web}/wechat/authorize"},
            "  " + _("Readiness: %(url)s") % {"url": f"{web}/readyz"},
            "  " + _("WeChat sandbox: %(url)s") % {"url": f"{sandbox}/sandbox/"},
            "  "
            + _("Sandbox state: %(path)s (delete %(var)s to start afresh)")
            % {"path": Path(settings.VAR_DIR) / "sandbox-state.json", "var": settings.VAR_DIR},
            "  " + _("Full-release test: %(command)s") % {"command": "python manage.py release_check"},
        ]
        if api_key:
            tenant = DEMO_MERCHANTS[0]
            lines += [
                "  " + _("Demo API key (%(name)s): %(key)s") % {"name": tenant["nickname"], "key": api_key},
                "  "
                + _("Try: %(command)s")
                % {"command": f'curl -H "Authorization: Api-Key {api_key}" {web}/api/v1/draft-count'},
            ]
        self.stdout.write("\n".join(lines) + "\n")

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"» {text}"))
