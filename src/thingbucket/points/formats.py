"""Encoders of point answers as CSV and NDJSON lines, the inverse of ``ingest.formats``.

Numbers are written as orjson writes them (the shortest text that reads back to the same float),
so an export imported and exported again is byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

_NEEDS_QUOTES = frozenset(',"\r\n')


def _csv_text(text: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(text) and text == text.strip():
        return text
    return '"' + text.replace('"', '""') + '"'


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float | int):
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        return _csv_text(value)
    return _csv_text(orjson.dumps(value).decode())


def csv_line(columns: Sequence[str]) -> bytes:
    return (",".join(_csv_text(c) for c in columns) + "\n").encode()


def csv_lines(rows: Sequence[Sequence[Any]], numeric: bool = False) -> bytes:
    """Rows ``[ts, v1, ...]`` as CSV, one line each. ``numeric``: every cell is a number or None,
    so orjson can write the whole chunk as one JSON array that becomes CSV by replacing its
    brackets (several times faster than formatting cell by cell)."""
    if not rows:
        return b""
    if numeric:
        text = orjson.dumps(rows)[2:-2].replace(b"],[", b"\n").replace(b"null", b"")
        return text + b"\n"
    return "".join(",".join(map(_csv_cell, row)) + "\n" for row in rows).encode()


def ndjson_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows ``[ts, v1, ...]`` as ``{"ts", "values"}`` objects, one per line (the write form)."""
    return b"".join(orjson.dumps({"ts": row[0], "values": row[1:]}) + b"\n" for row in rows)
