"""Progress bars of management commands (tqdm) written to the command's own stderr."""

from __future__ import annotations

from django.core.management.base import OutputWrapper


class CommandStream:
    """The command's stderr as tqdm needs it: no newline added to each write, no error colouring. Through the
    command's wrapper (not sys.stderr), so that call_command(stderr=...) captures the bar too."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, style_func=lambda s: s, ending="")

    def flush(self) -> None:
        self.wrapper.flush()
