"""gunicorn's access log, one line per request whatever the request holds (gunicorn.conf.py's logger_class).

gunicorn writes the decoded path (`%(U)s`), so `%0a` in a URL would start a forged line of its own and `%00` would
put a NUL byte in the file. Every value a client can choose (path, query, request line, headers, user name) is
escaped as Apache escapes its logs: printable ASCII stays, `"` and `\\` and every other byte become `\\xNN`; and
credential-looking query parameters are masked as in every other log (wxplatform.core.observability.redact).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from wxplatform.core.observability import redact

# Not printable ASCII, or the two characters that delimit or escape fields.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match[0])
    # WSGI strings hold one byte per character (latin-1), so \xNN spells the byte the client sent.
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: str) -> str:
    return _UNSAFE.sub(_escape_char, value)


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {name: escape(redact(value)) if isinstance(value, str) else value for name, value in atoms.items()}
