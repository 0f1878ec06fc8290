"""Opaque list cursors: base64url of a small JSON array, never trusted beyond its shape."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from thingbucket.errors import Invalid


class InvalidCursor(Invalid):
    code = "INVALID_CURSOR"
    message = "The cursor is not valid."


class InvalidLimit(Invalid):
    code = "INVALID_LIMIT"
    message = "The limit is out of range."


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).rstrip(b"=").decode()


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """Decode a cursor made by encode_cursor whose parts have exactly these types."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidCursor() from None
    if (
        not isinstance(parts, list)
        or len(parts) != len(types)
        or not all(
            isinstance(p, t) and not isinstance(p, bool) for p, t in zip(parts, types, strict=True)
        )
    ):
        raise InvalidCursor()
    return parts


def check_limit(limit: int, maximum: int) -> int:
    if limit < 1 or limit > maximum:
        raise InvalidLimit(f"limit must be between 1 and {maximum}.")
    return limit
