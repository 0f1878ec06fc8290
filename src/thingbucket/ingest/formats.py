"""Pure decoders for the line formats of point bodies: NDJSON and CSV.

NDJSON: one point per line, in either row form of the JSON body (``[ts, v1, ...]`` or
``{"ts", "values"}``). CSV: a header ``ts,<dimension id>,...`` (any order, any subset of the
dimensions), then one point per line; an empty cell is "no value". Both end up as the same rows
that ``decode_rows`` validates, so every surface shares one set of rules.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from thingbucket.ingest.decoders import Dim, body_error, raise_row_errors

CSV_TYPES = ("text/csv", "application/csv")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def ndjson_rows(lines: Iterable[bytes | str], *, write: int = 0, first_line: int = 1) -> list[Any]:
    """One point per non-blank line; a line that is no JSON is refused with its number."""
    rows: list[Any] = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise body_error(
                f"line {number} is not valid JSON: {exc.msg}", write=write, code="INVALID_JSON"
            ) from None
    return rows


def csv_records(lines: Iterable[str]) -> Iterator[list[str]]:
    """Records of CSV text; malformed quoting is refused with its line number."""
    reader = csv.reader(lines, strict=True)
    try:
        yield from reader
    except csv.Error as exc:
        raise body_error(f"CSV line {reader.line_num}: {exc}") from None


def csv_header(cells: Sequence[str], dims: Sequence[Dim], *, write: int = 0) -> list[int]:
    """Check a header row; the answer maps each value column to its dimension position."""
    if not cells or cells[0].strip() != "ts":
        raise body_error("a CSV body starts with a header row 'ts,<dimension id>,...'", write=write)
    position = {d.id: i for i, d in enumerate(dims)}
    out: list[int] = []
    for name in cells[1:]:
        name = name.strip()
        if name not in position:
            raise body_error(f"the CSV header names no dimension {name[:64]!r}", write=write)
        if position[name] in out:
            raise body_error(f"the CSV header names {name[:64]!r} twice", write=write)
        out.append(position[name])
    return out


def _cell(kind: str, text: str) -> Any:
    """A CSV cell as the JSON value it stands for; what cannot be read stays a string, so that
    ``decode_rows`` refuses it with the row and dimension like any other wrong value."""
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "bool":
        lowered = text.strip().lower()
        return {"true": True, "false": False}.get(lowered, text)
    if kind == "json":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return _Unreadable(text)
    return text


class _Unreadable(str):
    """Marks a cell of a JSON dimension that is no JSON (a JSON string cell is quoted)."""


def csv_rows(
    records: Iterable[Sequence[str]],
    columns: Sequence[int],
    dims: Sequence[Dim],
    *,
    write: int = 0,
    first_index: int = 0,
) -> list[list[Any]]:
    """Data rows of a CSV body as ``[ts, v1, ...]`` in dimension order."""
    width = len(dims)
    kinds = [dims[c].kind for c in columns]
    rows: list[list[Any]] = []
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records, start=first_index):
        if not record:
            continue
        if len(record) != len(columns) + 1:
            if len(errors) < 20:
                errors.append(
                    {
                        "write": write,
                        "index": index,
                        "dimension": "ts",
                        "reason": f"{len(record)} cells for a header of {len(columns) + 1}",
                        "code": "VALIDATION_FAILED",
                    }
                )
            continue
        stamp: Any = record[0].strip() or None
        if stamp and stamp.isascii() and stamp.isdigit():
            stamp = int(stamp)  # the decoder's fast path; other forms parse as timestamps
        row: list[Any] = [stamp] + [None] * width
        for cell, column, kind in zip(record[1:], columns, kinds, strict=True):
            if cell != "":
                value = _cell(kind, cell)
                if isinstance(value, _Unreadable):
                    if len(errors) < 20:
                        errors.append(
                            {
                                "write": write,
                                "index": index,
                                "dimension": dims[column].id,
                                "reason": "the cell is not valid JSON",
                                "code": "VALIDATION_FAILED",
                            }
                        )
                    continue
                row[column + 1] = value
        rows.append(row)
    if errors:
        raise_row_errors(errors)
    return rows
