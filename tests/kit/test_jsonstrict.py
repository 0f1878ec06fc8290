"""kit.jsonstrict: the strict parser of control-plane bodies and JWT parts (security.md §5.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingbucket.kit.jsonstrict import StrictJsonError, depth, loads

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# Text a database can store: no NUL, no unpaired surrogates (those are refused, below).
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


def nested_lists(levels: int) -> str:
    return "[" * levels + "]" * levels


@given(json_values)
def test_valid_documents_parse_equal_to_the_standard_parser(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@given(json_values)
def test_non_ascii_text_parses_from_utf8_bytes(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert loads(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 1}',
        '{"a": 1, "b": 2, "a": 3}',
        '{"outer": {"x": 1, "x": 2}}',
        '[{"k": 1}, {"k": 2, "k": 3}]',
        '{"alg": "none", "alg": "RS256"}',
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(text: str) -> None:
    with pytest.raises(StrictJsonError, match="duplicate key"):
        loads(text)


def test_the_same_key_in_sibling_objects_is_not_a_duplicate() -> None:
    assert loads('[{"k": 1}, {"k": 2}, {"o": {"k": 3}}]') == [{"k": 1}, {"k": 2}, {"o": {"k": 3}}]


def test_keys_differing_only_in_case_are_distinct() -> None:
    assert loads('{"a": 1, "A": 2}') == {"a": 1, "A": 2}


@pytest.mark.parametrize(
    "text",
    ["NaN", "[NaN]", '{"x": Infinity}', "[-Infinity]", "1e400", "[-1e400]", '{"x": 2E999}'],
)
def test_nan_and_infinity_are_refused(text: str) -> None:
    with pytest.raises(StrictJsonError):
        loads(text)


def test_tiny_floats_that_underflow_to_zero_are_accepted() -> None:
    assert loads("[1e-400]") == [0.0]


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN, 0, -1, 1])
def test_integers_within_64_bits_are_accepted(value: int) -> None:
    assert loads(f"[{value}]") == [value]


@pytest.mark.parametrize(
    "text",
    [
        str(INT64_MAX + 1),
        str(INT64_MIN - 1),
        str(2**64),
        "1" + "0" * 30,
        "-" + "9" * 25,
        "7" * 5000,  # beyond Python's int-from-string digit limit too
        '{"n": 99999999999999999999}',
    ],
)
def test_integers_beyond_64_bits_are_refused(text: str) -> None:
    with pytest.raises(StrictJsonError):
        loads(text)


def test_nesting_exactly_at_the_default_limit_parses() -> None:
    assert depth(loads(nested_lists(32)), 100) == 32


def test_nesting_one_level_past_the_default_limit_is_refused() -> None:
    with pytest.raises(StrictJsonError, match="nested"):
        loads(nested_lists(33))


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_a_custom_nesting_limit_is_exact(limit: int) -> None:
    # Objects and lists alternate: {"a": [{"a": [...]}]}.
    def doc(levels: int) -> str:
        text = "1"
        for level in range(levels):
            text = f'{{"a": {text}}}' if level % 2 == 0 else f"[{text}]"
        return text

    assert depth(loads(doc(limit), max_depth=limit), 100) == limit
    with pytest.raises(StrictJsonError):
        loads(doc(limit + 1), max_depth=limit)


def test_nesting_deep_enough_to_exhaust_the_stack_is_a_strict_json_error() -> None:
    with pytest.raises(StrictJsonError):
        loads(nested_lists(200_000))


def test_scalars_have_no_depth() -> None:
    assert loads("5", max_depth=0) == 5
    assert loads('"text"', max_depth=0) == "text"
    with pytest.raises(StrictJsonError):
        loads("[]", max_depth=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 0),
        ("x", 0),
        ([], 1),
        ({}, 1),
        ([1, [2, [3]]], 3),
        ({"a": {"b": {"c": {}}}}, 4),
        ([[], [[[]]], []], 4),  # the deepest branch counts, not the first
    ],
)
def test_depth_counts_container_levels(value: Any, expected: int) -> None:
    assert depth(value, 100) == expected


def test_depth_stops_once_it_passes_the_limit() -> None:
    value: Any = []
    for _ in range(1000):
        value = [value]
    assert depth(value, 5) > 5
    assert depth(value, 5) <= 6


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\xff"}',
        b'{"a": "\xc3"}',  # truncated two-byte sequence
        b'["\xed\xa0\x80"]',  # an encoded surrogate is not UTF-8
        b"\xfe\xff{}",
    ],
)
def test_invalid_utf8_is_refused(data: bytes) -> None:
    with pytest.raises(StrictJsonError, match="UTF-8"):
        loads(data)


@pytest.mark.parametrize("text", ["{} {}", "[1]x", "1 2", '{"a": 1}}', "[1],", "null null"])
def test_trailing_data_is_refused(text: str) -> None:
    with pytest.raises(StrictJsonError):
        loads(text)


def test_surrounding_whitespace_is_not_trailing_data() -> None:
    assert loads(' \n\t{"a": [1, 2]}\r\n ') == {"a": [1, 2]}


@pytest.mark.parametrize(
    "text", ["", "{", '{"a": }', "[1, 2", "{'a': 1}", '{"a": 1,}', "tru", '"unterminated']
)
def test_syntax_errors_are_strict_json_errors(text: str) -> None:
    with pytest.raises(StrictJsonError):
        loads(text)


def test_the_error_message_is_short_and_does_not_echo_the_document() -> None:
    secret = "tb_k_" + "s" * 40
    with pytest.raises(StrictJsonError) as info:
        loads('{"key": "' + secret + '"} trailing')
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        '"a\\u0000b"',
        '{"k\\u0000": 1}',
        '{"k": "\\u0000"}',
        '[[["x", "\\u0000"]]]',
        '{"a": [{"b": "\\ud800"}]}',
        '"\\udc00 lone"',
    ],
)
def test_nul_and_unpaired_surrogates_are_refused_anywhere(text: str) -> None:
    with pytest.raises(StrictJsonError):
        loads(text)


def test_paired_surrogate_escapes_are_text() -> None:
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"
