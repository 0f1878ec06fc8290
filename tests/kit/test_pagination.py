"""kit.pagination: opaque cursors round-trip and are refused when their shape is wrong."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingbucket.errors import Invalid
from thingbucket.kit.pagination import (
    InvalidCursor,
    InvalidLimit,
    check_limit,
    decode_cursor,
    encode_cursor,
)

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]*$")
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def raw_cursor(json_text: str) -> str:
    """A cursor forged from arbitrary JSON text, the way a client could build one."""
    return base64.urlsafe_b64encode(json_text.encode()).rstrip(b"=").decode()


@given(INT64, st.text())
def test_a_cursor_round_trips_its_parts(ts: int, key: str) -> None:
    cursor = encode_cursor(ts, key)
    assert decode_cursor(cursor, (int, str)) == [ts, key]


@given(st.floats(allow_nan=False, allow_infinity=False), INT64, st.text(max_size=5))
def test_a_cursor_round_trips_floats_ints_and_text(value: float, n: int, s: str) -> None:
    assert decode_cursor(encode_cursor(value, n, s), (float, int, str)) == [value, n, s]


@given(INT64, st.text())
def test_a_cursor_is_url_safe_without_padding(ts: int, key: str) -> None:
    cursor = encode_cursor(ts, key)
    assert URL_SAFE.match(cursor)
    assert "=" not in cursor


def test_a_cursor_with_no_parts_round_trips() -> None:
    assert decode_cursor(encode_cursor(), ()) == []


def test_a_cursor_is_base64url_of_a_json_array() -> None:
    cursor = encode_cursor(1_700_000_000_000, "abc")
    padded = cursor + "=" * (-len(cursor) % 4)
    assert base64.urlsafe_b64decode(padded) == b'[1700000000000,"abc"]'


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!!",
        "not a cursor",
        "é",
        "A",  # one base64 character cannot be decoded
        raw_cursor("not json"),
        raw_cursor('{"ts": 1, "id": "a"}'),  # an object, not an array
        raw_cursor("[1]"),  # too few parts
        raw_cursor('[1, "a", 2]'),  # too many parts
        raw_cursor('["1", "a"]'),  # a string where an int belongs
        raw_cursor('[1.5, "a"]'),  # a float where an int belongs
        raw_cursor('[true, "a"]'),  # a boolean is not an int
        raw_cursor('[null, "a"]'),
        raw_cursor("[1, 2]"),  # an int where a string belongs
        raw_cursor('[1, ["a"]]'),
        raw_cursor("1"),
        raw_cursor('"a"'),
        base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),  # not UTF-8
    ],
)
def test_garbage_and_forged_cursors_are_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, (int, str))


def test_a_truncated_or_shifted_cursor_is_invalid() -> None:
    cursor = encode_cursor(123, "abc")
    for tampered in (
        cursor[:-1],
        cursor[:-3],
        cursor[1:],
        cursor + "A",
        cursor[: len(cursor) // 2],
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(tampered, (int, str))


def test_a_cursor_decoded_with_other_types_is_invalid() -> None:
    cursor = encode_cursor(123, "abc")
    for types in ((str, int), (int,), (int, str, int), (float, str), (bool, str)):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, types)


def test_an_invalid_cursor_is_a_validation_error_with_a_stable_code() -> None:
    with pytest.raises(InvalidCursor) as info:
        decode_cursor("!!!!", (int,))
    error: Any = info.value
    assert isinstance(error, Invalid)
    assert error.error_code == "INVALID_CURSOR"
    assert error.kind == "invalid"


@pytest.mark.parametrize(("limit", "maximum"), [(1, 1), (1, 1000), (500, 1000), (1000, 1000)])
def test_a_limit_within_bounds_is_returned(limit: int, maximum: int) -> None:
    assert check_limit(limit, maximum) == limit


@pytest.mark.parametrize(("limit", "maximum"), [(0, 1000), (-1, 1000), (1001, 1000), (2, 1)])
def test_a_limit_outside_bounds_is_refused(limit: int, maximum: int) -> None:
    with pytest.raises(InvalidLimit) as info:
        check_limit(limit, maximum)
    assert info.value.error_code == "INVALID_LIMIT"
    assert str(maximum) in str(info.value)


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=-100, max_value=20_000))
def test_check_limit_accepts_exactly_one_to_maximum(maximum: int, limit: int) -> None:
    if 1 <= limit <= maximum:
        assert check_limit(limit, maximum) == limit
    else:
        with pytest.raises(InvalidLimit):
            check_limit(limit, maximum)
