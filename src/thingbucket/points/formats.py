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


def _json_cell(value: Any) -> str:
    """A cell of a JSON dimension: always its JSON text, so that a JSON string stays one."""
    return "" if value is None else _csv_text(orjson.dumps(value).decode())


def csv_line(columns: Sequence[str]) -> bytes:
    return (",".join(_csv_text(c) for c in columns) + "\n").encode()


def csv_lines(rows: Sequence[Sequence[Any]], kinds: Sequence[str]) -> bytes:
    """Rows ``[ts, v1, ...]`` as CSV, one line each; ``kinds`` are the value columns' kinds.

    When every column is a number, orjson writes the whole chunk as one JSON array that becomes
    CSV by replacing its brackets (several times faster than formatting cell by cell).
    """
    if not rows:
        return b""
    if all(k == "number" for k in kinds):
        text = orjson.dumps(rows)[2:-2].replace(b"],[", b"\n").replace(b"null", b"")
        return text + b"\n"
    cells = [_csv_cell, *(_json_cell if k == "json" else _csv_cell for k in kinds)]
    return "".join(
        ",".join([f(v) for f, v in zip(cells, row, strict=True)]) + "\n" for row in rows
    ).encode()


def ndjson_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows ``[ts, v1, ...]`` as ``{"ts", "values"}`` objects, one per line (the write form)."""
    return b"".join(orjson.dumps({"ts": row[0], "values": row[1:]}) + b"\n" for row in rows)
