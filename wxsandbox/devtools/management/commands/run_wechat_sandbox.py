"""`manage.py run_wechat_sandbox --port 8100`: the WeChat sandbox in the foreground, for the demo.

Point the platform at it with WECHAT_API_BASE, WECHAT_MP_BASE and WECHAT_OPEN_BASE = http://HOST:PORT.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from wxsandbox.server import add_arguments, serve_from_options


class Command(BaseCommand):
    help = "Run the WeChat sandbox (an emulator of the WeChat endpoints this product uses) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        serve_from_options(options)
