"""Strict JSON for control-plane bodies, token requests and JWT parts (security.md §5.2).

Refuses duplicate keys, NaN/Infinity, integers beyond 64 bits, nesting deeper than the limit,
invalid UTF-8, trailing data, and strings holding NUL or an unpaired surrogate escape (no
database can store them as text, and PostgreSQL refuses them outright). Sample bodies use orjson
instead (fast; the last duplicate wins).
"""

from __future__ import annotations

import json
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class StrictJsonError(ValueError):
    pass


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise StrictJsonError("a string holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJsonError("a string holds an unpaired surrogate") from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJsonError(f"duplicate key {key[:40]!r}")
        _check_text(key)
        if isinstance(value, str):
            _check_text(value)
        obj[key] = value
    return obj


def _constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not valid JSON")


def _int(text: str) -> int:
    if len(text) > 20:
        raise StrictJsonError("integer outside 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise StrictJsonError("integer outside 64 bits")
    return value


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJsonError("number out of range")
    return value


def depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed value, stopping as soon as it passes ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(data: bytes | str, *, max_depth: int = 32) -> Any:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise StrictJsonError("body is not valid UTF-8") from None
    else:
        text = data
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_int=_int,
            parse_float=_float,
        )
    except StrictJsonError:
        raise
    except RecursionError:
        raise StrictJsonError("JSON nested too deeply") from None
    except ValueError as exc:
        raise StrictJsonError(str(exc).split(":")[0]) from None
    if depth(value, max_depth) > max_depth:
        raise StrictJsonError(f"JSON nested deeper than {max_depth} levels")
    _check_lists(value)
    return value


def _check_lists(value: Any) -> None:
    """Strings in lists (object members are checked as they are parsed)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for item in node:
                if isinstance(item, str):
                    _check_text(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
        elif isinstance(node, dict):
            stack.extend(v for v in node.values() if isinstance(v, list | dict))
        elif isinstance(node, str):
            _check_text(node)
