"""Cursor pagination whose cursors cannot carry anything the database would choke on.

DRF decodes the cursor and checks its offset, but not its position: a forged position would reach the query
as it is (a datetime column compared with text, an integer with 20 digits) and fail there, a 500. Each list
says what a position must look like (`position`); anything else is `400 invalid_parameter` on `cursor`.
"""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from wxplatform.api.errors import InvalidParameter
from wxplatform.api.serializers import MAX_PAGE_SIZE


class CheckedCursorPagination(CursorPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def position(self, raw: str) -> str | None:
        """The position as the ordering field stores it, or None when it cannot be one."""
        raise NotImplementedError

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor: Cursor | None = super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise InvalidParameter("cursor", _("cursor: invalid cursor.")) from exc
        if cursor is None or cursor.position is None:
            return cursor
        position = self.position(str(cursor.position))
        if position is None:
            raise InvalidParameter("cursor", _("cursor: invalid cursor."))
        # (The DRF stubs type the position as int; DRF itself stores the ordering field's value as text.)
        return Cursor(offset=cursor.offset, reverse=cursor.reverse, position=position)  # type: ignore[arg-type]


class DatetimeCursorPagination(CheckedCursorPagination):
    """Positions are datetimes (an ordering on a timestamp)."""

    def position(self, raw: str) -> str | None:
        try:
            parsed = parse_datetime(raw)
        except ValueError:
            return None
        return parsed.isoformat() if parsed is not None else None


class IdCursorPagination(CheckedCursorPagination):
    """Positions are positive integers that fit a bigint (an ordering on an id)."""

    def position(self, raw: str) -> str | None:
        return raw if raw.isdigit() and len(raw) <= 19 else None
