"""ingest.decoders: the three body forms, and rows validated against a property's dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingbucket.ingest.decoders import (
    Dim,
    Limits,
    RowErrors,
    decode_rows,
    decode_value,
    points_of,
)
from thingbucket.kit.time import Precision
from thingbucket.points.batch import SampleBatch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_US = (NOW - EPOCH) // timedelta(microseconds=1)
NOW_MS = NOW_US // 1000
T0_MS = NOW_MS - 60_000  # a minute ago
T0_US = T0_MS * 1000
SKEW_US = 600 * 1_000_000


def us_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def make_dims(*kinds: str) -> list[Dim]:
    """One dimension per kind: series ids 101, 102, ... and ids d0, d1, ..."""
    return [Dim(series_id=101 + i, id=f"d{i}", kind=kind) for i, kind in enumerate(kinds)]


def decode(
    rows: Sequence[Any],
    dims: Sequence[Dim],
    *,
    precision: Precision = "ms",
    limits: Limits | None = None,
    write: int = 0,
) -> SampleBatch:
    return decode_rows(
        rows, dims, now_us=NOW_US, precision=precision, limits=limits or Limits(), write=write
    )


def refusal(
    rows: Sequence[Any],
    dims: Sequence[Dim],
    *,
    precision: Precision = "ms",
    limits: Limits | None = None,
    write: int = 0,
) -> RowErrors:
    with pytest.raises(RowErrors) as info:
        decode(rows, dims, precision=precision, limits=limits, write=write)
    return info.value


# --- points_of: the three body forms ----------------------------------------------------------


def test_the_row_form_gives_its_rows() -> None:
    rows = [[T0_MS, 1, 2], [T0_MS + 1, 3, 4]]
    assert points_of({"points": rows}) == rows


def test_the_object_form_gives_its_objects() -> None:
    rows = [{"ts": T0_MS, "values": [1, 2]}, {"values": [3]}]
    assert points_of({"points": rows}) == rows


def test_the_column_form_becomes_rows() -> None:
    body = {"ts": [1, 2, 3], "values": [[10, 20, 30], ["a", "b", "c"]]}
    assert points_of(body) == [[1, 10, "a"], [2, 20, "b"], [3, 30, "c"]]


def test_the_column_form_without_columns_gives_timestamp_only_rows() -> None:
    assert points_of({"ts": [1, 2], "values": []}) == [[1], [2]]


def test_empty_forms_give_no_rows() -> None:
    assert points_of({"points": []}) == []
    assert points_of({"ts": [], "values": [[], []]}) == []


def test_points_wins_over_columns_when_both_are_present() -> None:
    assert points_of({"points": [[1, 2]], "ts": [5], "values": [[6]]}) == [[1, 2]]


@pytest.mark.parametrize(
    "body",
    [
        [[1, 2]],
        "points",
        None,
        42,
        {},
        {"point": [[1, 2]]},
        {"points": {"ts": 1}},
        {"points": "1,2"},
        {"points": None},
        {"ts": [1, 2]},
        {"values": [[1, 2]]},
        {"ts": 1, "values": [[1]]},
        {"ts": [1, 2], "values": [1, 2]},
        {"ts": [1, 2], "values": [[1, 2], [3]]},
        {"ts": [1, 2], "values": [[1, 2, 3]]},
        {"ts": [1, 2], "values": {"d0": [1, 2]}},
    ],
)
def test_malformed_bodies_are_refused_as_a_whole(body: Any) -> None:
    with pytest.raises(RowErrors) as info:
        points_of(body, write=4)
    error = info.value
    assert error.error_code == "VALIDATION_FAILED"
    assert len(error.details) == 1
    detail = error.details[0]
    assert detail["write"] == 4
    assert detail["index"] is None
    assert detail["dimension"] is None
    assert detail["code"] == "VALIDATION_FAILED"


# --- numbers ----------------------------------------------------------------------------------


def test_ints_in_number_dimensions_become_floats() -> None:
    batch = decode([[T0_MS, 1, 2.5, -7]], make_dims("number", "number", "number"))
    assert batch.num == [(101, T0_US, 1.0), (102, T0_US, 2.5), (103, T0_US, -7.0)]
    assert all(type(value) is float for _, _, value in batch.num)
    assert batch.text == []


def test_the_largest_64_bit_integers_are_accepted() -> None:
    top = 2**63 - 1
    batch = decode([[T0_MS, top, -top]], make_dims("number", "number"))
    assert batch.num == [(101, T0_US, float(top)), (102, T0_US, float(-top))]


@pytest.mark.parametrize("value", [2**63, -(2**63), 2**64, 10**30])
def test_integers_beyond_64_bits_are_an_invalid_value(value: int) -> None:
    error = refusal([[T0_MS, value]], make_dims("number"))
    assert error.error_code == "INVALID_VALUE"
    assert error.details[0]["dimension"] == "d0"


def test_a_string_in_a_number_dimension_fails_the_whole_batch() -> None:
    rows = [[T0_MS, 1], [T0_MS + 1, "21.5"], [T0_MS + 2, 3]]
    error = refusal(rows, make_dims("number"), write=2)
    assert error.error_code == "VALIDATION_FAILED"
    assert len(error.details) == 1
    detail = error.details[0]
    assert detail["write"] == 2
    assert detail["index"] == 1
    assert detail["dimension"] == "d0"
    assert detail["code"] == "VALIDATION_FAILED"
    assert "number" in detail["reason"]
    assert "Row 1 of write 2" in str(error)


@pytest.mark.parametrize("value", [True, False, [1], {"v": 1}, "1"])
def test_non_numbers_in_a_number_dimension_are_refused(value: Any) -> None:
    error = refusal([[T0_MS, value]], make_dims("number"))
    assert error.error_code == "VALIDATION_FAILED"
    assert error.details[0]["index"] == 0
    assert error.details[0]["dimension"] == "d0"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_an_invalid_value(value: float) -> None:
    error = refusal([[T0_MS, value]], make_dims("number"))
    assert error.error_code == "INVALID_VALUE"


# --- nulls, missing values, too many values ------------------------------------------------------


def test_nulls_and_missing_trailing_values_are_left_out() -> None:
    dims = make_dims("number", "number", "text")
    rows = [
        [T0_MS, None, 2, None],
        [T0_MS + 1, 1],
        [T0_MS + 2],
        {"ts": T0_MS + 3, "values": [None, None, "x"]},
        {"ts": T0_MS + 4},
    ]
    batch = decode(rows, dims)
    assert batch.num == [(102, T0_US, 2.0), (101, T0_US + 1000, 1.0)]
    assert batch.text == [(103, T0_US + 3000, "x")]


def test_more_values_than_dimensions_fails() -> None:
    error = refusal([[T0_MS, 1, 2], [T0_MS + 1, 1, 2, 3]], make_dims("number", "number"))
    assert error.error_code == "VALIDATION_FAILED"
    assert [d["index"] for d in error.details] == [1]
    assert "3 values for 2 dimensions" in error.details[0]["reason"]


def test_a_row_of_values_for_a_property_without_dimensions_fails() -> None:
    error = refusal([[T0_MS, 1]], [])
    assert error.details[0]["index"] == 0


def test_no_rows_give_an_empty_batch() -> None:
    batch = decode([], make_dims("number"))
    assert batch.num == []
    assert batch.text == []


# --- the other kinds --------------------------------------------------------------------------


def test_booleans_are_stored_as_true_and_false_text() -> None:
    batch = decode([[T0_MS, True], [T0_MS + 1, False]], make_dims("bool"))
    assert batch.text == [(101, T0_US, "true"), (101, T0_US + 1000, "false")]
    assert batch.num == []


@pytest.mark.parametrize("value", [1, 0, "true", 1.0, [True]])
def test_non_booleans_in_a_bool_dimension_are_refused(value: Any) -> None:
    error = refusal([[T0_MS, value]], make_dims("bool"))
    assert error.error_code == "VALIDATION_FAILED"
    assert "boolean" in error.details[0]["reason"]


@pytest.mark.parametrize("kind", ["text", "media"])
def test_strings_are_stored_as_given(kind: str) -> None:
    batch = decode([[T0_MS, "photo 1.jpg ✓"]], make_dims(kind))
    assert batch.text == [(101, T0_US, "photo 1.jpg ✓")]


@pytest.mark.parametrize("kind", ["text", "media"])
@pytest.mark.parametrize("value", [1, 2.5, True, ["a"], {"a": 1}])
def test_non_strings_in_a_text_or_media_dimension_are_refused(kind: str, value: Any) -> None:
    error = refusal([[T0_MS, value]], make_dims(kind))
    assert error.error_code == "VALIDATION_FAILED"
    assert "string" in error.details[0]["reason"]


@pytest.mark.parametrize(
    ("char", "width"),
    [("a", 1), ("é", 2), ("€", 3), ("🌡", 4)],
)
def test_text_up_to_the_byte_limit_is_kept_and_one_more_byte_is_too_long(
    char: str, width: int
) -> None:
    limit = 1024
    fits = char * (limit // width)
    assert len(fits.encode()) <= limit
    batch = decode([[T0_MS, fits]], make_dims("text"))
    assert batch.text == [(101, T0_US, fits)]

    too_long = fits + char * (1 + (limit - len(fits.encode())) // width)
    assert len(too_long.encode()) > limit
    error = refusal([[T0_MS, too_long]], make_dims("text"))
    assert error.error_code == "VALUE_TOO_LONG"
    assert error.details[0]["dimension"] == "d0"


def test_the_text_limit_is_configurable() -> None:
    limits = Limits(text_value_bytes=10)
    assert decode([[T0_MS, "x" * 10]], make_dims("text"), limits=limits).text
    error = refusal([[T0_MS, "x" * 11]], make_dims("text"), limits=limits)
    assert error.error_code == "VALUE_TOO_LONG"


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None]}, [1, "two", False], "just text", 42, 1.5, True, {}],
)
def test_json_values_are_stored_as_json_text(value: Any) -> None:
    batch = decode([[T0_MS, value]], make_dims("json"))
    assert len(batch.text) == 1
    series_id, ts, stored = batch.text[0]
    assert (series_id, ts) == (101, T0_US)
    assert orjson.loads(stored) == value


def test_json_nested_deeper_than_the_limit_is_refused() -> None:
    limits = Limits(json_depth=3)
    assert decode([[T0_MS, {"a": [{"b": 1}]}]], make_dims("json"), limits=limits).text
    error = refusal([[T0_MS, {"a": [{"b": [1]}]}]], make_dims("json"), limits=limits)
    assert error.error_code == "VALIDATION_FAILED"
    assert "deep" in error.details[0]["reason"]


def test_json_longer_than_the_limit_is_too_long() -> None:
    limits = Limits(text_value_bytes=20)
    fits = {"k": "x" * 10}  # {"k":"xxxxxxxxxx"} is 18 bytes
    assert decode([[T0_MS, fits]], make_dims("json"), limits=limits).text
    error = refusal([[T0_MS, {"k": "x" * 20}]], make_dims("json"), limits=limits)
    assert error.error_code == "VALUE_TOO_LONG"


def test_mixed_kinds_go_to_their_tables_in_request_order() -> None:
    dims = make_dims("number", "text", "bool", "json")
    rows = [[T0_MS, 1, "a", True, {"x": 1}], [T0_MS + 5, 2.5, None, False, None]]
    batch = decode(rows, dims)
    assert batch.num == [(101, T0_US, 1.0), (101, T0_US + 5000, 2.5)]
    assert [(s, t) for s, t, _ in batch.text] == [
        (102, T0_US),
        (103, T0_US),
        (104, T0_US),
        (103, T0_US + 5000),
    ]
    assert [v for _, _, v in batch.text[:3]] == ["a", "true", '{"x":1}']


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "precision", "expected"),
    [
        (1_700_000_000, "s", us_of(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))),
        (1_700_000_000_000, "ms", us_of(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))),
        (1_700_000_000_000_123, "us", us_of(datetime(2023, 11, 14, 22, 13, 20, 123, tzinfo=UTC))),
        (1_700_000_000.5, "s", us_of(datetime(2023, 11, 14, 22, 13, 20, 500_000, tzinfo=UTC))),
        ("1700000000000.0019", "ms", us_of(datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC))),
        (
            "2023-11-14T22:13:20.123456789Z",
            "s",
            us_of(datetime(2023, 11, 14, 22, 13, 20, 123_456, tzinfo=UTC)),
        ),
        (
            "2023-11-14T23:13:20+01:00",
            "ms",
            us_of(datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1)))),
        ),
    ],
)
def test_timestamps_are_read_in_the_given_precision_or_as_rfc3339(
    raw: Any, precision: Precision, expected: int
) -> None:
    dims = make_dims("number")
    assert decode([[raw, 1]], dims, precision=precision).num == [(101, expected, 1.0)]
    assert decode([{"ts": raw, "values": [1]}], dims, precision=precision).num == [
        (101, expected, 1.0)
    ]


def test_the_latest_accepted_time_is_now_plus_the_future_skew() -> None:
    dims = make_dims("number")
    latest = NOW_US + SKEW_US
    assert decode([[latest, 1]], dims, precision="us").num == [(101, latest, 1.0)]
    error = refusal([[latest + 1, 1]], dims, precision="us")
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"
    assert error.details[0]["dimension"] == "ts"
    assert "ahead of the server's clock" in error.details[0]["reason"]


def test_the_future_skew_is_configurable() -> None:
    limits = Limits(future_skew_us=0)
    dims = make_dims("number")
    assert decode([[NOW_US, 1]], dims, precision="us", limits=limits).num
    error = refusal([[NOW_US + 1, 1]], dims, precision="us", limits=limits)
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"


def test_a_timestamp_older_than_the_minimum_is_out_of_range() -> None:
    oldest = us_of(datetime(2026, 2, 1, tzinfo=UTC))
    limits = Limits(min_ts_us=oldest)
    dims = make_dims("number")
    assert decode([[oldest, 1]], dims, precision="us", limits=limits).num == [(101, oldest, 1.0)]
    error = refusal([[oldest - 1, 1]], dims, precision="us", limits=limits)
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"
    assert "older than the retention period" in error.details[0]["reason"]
    error = refusal([["2026-01-31T23:59:59.999999Z", 1]], dims, limits=limits)
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"


def test_timestamps_before_year_one_are_out_of_range() -> None:
    year_one = us_of(datetime(1, 1, 1, tzinfo=UTC))
    dims = make_dims("number")
    assert decode([[year_one, 1]], dims, precision="us").num == [(101, year_one, 1.0)]
    assert decode([["0001-01-01T00:00:00Z", 1]], dims).num == [(101, year_one, 1.0)]
    error = refusal([[year_one - 1, 1]], dims, precision="us")
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"
    assert error.details[0]["reason"] == "timestamp outside the accepted range"


def test_one_row_without_a_timestamp_takes_the_server_time() -> None:
    dims = make_dims("number")
    assert decode([[None, 1]], dims).num == [(101, NOW_US, 1.0)]
    assert decode([{"values": [2]}], dims).num == [(101, NOW_US, 2.0)]
    assert decode([{"ts": None, "values": [3]}, [T0_MS, 4]], dims).num == [
        (101, NOW_US, 3.0),
        (101, T0_US, 4.0),
    ]


def test_more_than_one_row_without_a_timestamp_is_refused() -> None:
    error = refusal([[None, 1], [T0_MS, 2], {"values": [3]}], make_dims("number"))
    assert error.error_code == "VALIDATION_FAILED"
    assert [(d["index"], d["dimension"]) for d in error.details] == [(2, "ts")]


@pytest.mark.parametrize(
    "raw",
    ["yesterday", "2026-02-30T00:00:00Z", True, [T0_MS], {"ms": T0_MS}, math.nan, "1" * 65],
)
def test_an_unreadable_timestamp_is_refused(raw: Any) -> None:
    error = refusal([[raw, 1]], make_dims("number"))
    assert error.error_code == "VALIDATION_FAILED"
    assert error.details[0]["dimension"] == "ts"
    assert error.details[0]["index"] == 0


def test_a_huge_integer_timestamp_is_out_of_range() -> None:
    error = refusal([[2**80, 1]], make_dims("number"))
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"


@pytest.mark.parametrize("raw", [1e20, "1e20", "100000000000000000000"])
def test_a_float_or_string_timestamp_beyond_int64_is_out_of_range(raw: Any) -> None:
    error = refusal([[raw, 1]], make_dims("number"))
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"


def test_a_timestamp_with_a_huge_exponent_is_refused_as_a_row_error() -> None:
    error = refusal([["1e1000000", 1]], make_dims("number"))
    assert error.details[0]["dimension"] == "ts"


# --- row shapes and error reporting ---------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [[], "1700000000000,1", 5, None, {"ts": T0_MS, "values": "1"}, {"ts": T0_MS, "values": 1}],
)
def test_a_row_of_the_wrong_shape_is_refused(row: Any) -> None:
    error = refusal([[T0_MS, 1], row], make_dims("number"))
    assert error.error_code == "VALIDATION_FAILED"
    assert [(d["index"], d["dimension"]) for d in error.details] == [(1, "ts")]


def test_every_bad_row_is_reported_up_to_twenty() -> None:
    rows: list[Any] = [[T0_MS + i, "bad"] for i in range(30)]
    error = refusal(rows, make_dims("number"))
    assert [d["index"] for d in error.details] == list(range(20))


def test_the_first_error_gives_the_code_and_every_error_its_own() -> None:
    dims = make_dims("number", "text")
    rows = [[T0_MS, 1, "ok"], [NOW_MS + 3_600_000, 1], [T0_MS, "x", "y" * 2000]]
    error = refusal(rows, dims, write=1)
    assert error.error_code == "TIMESTAMP_OUT_OF_RANGE"
    assert [(d["write"], d["index"], d["dimension"], d["code"]) for d in error.details] == [
        (1, 1, "ts", "TIMESTAMP_OUT_OF_RANGE"),
        (1, 2, "d0", "VALIDATION_FAILED"),
        (1, 2, "d1", "VALUE_TOO_LONG"),
    ]


def test_the_object_and_column_forms_decode_like_the_row_form() -> None:
    dims = make_dims("number", "text")
    row_form = {"points": [[T0_MS, 1, "a"], [T0_MS + 1, 2, "b"]]}
    object_form = {
        "points": [{"ts": T0_MS, "values": [1, "a"]}, {"ts": T0_MS + 1, "values": [2, "b"]}]
    }
    column_form = {"ts": [T0_MS, T0_MS + 1], "values": [[1, 2], ["a", "b"]]}
    expected_num = [(101, T0_US, 1.0), (101, T0_US + 1000, 2.0)]
    expected_text = [(102, T0_US, "a"), (102, T0_US + 1000, "b")]
    for body in (row_form, object_form, column_form):
        batch = decode(points_of(body), dims)
        assert batch.num == expected_num
        assert batch.text == expected_text


def test_rows_parsed_by_orjson_decode_as_expected() -> None:
    body = orjson.dumps({"points": [[T0_MS, 21, "on", True], [T0_MS + 1000, 21.25, None, False]]})
    batch = decode(points_of(orjson.loads(body)), make_dims("number", "text", "bool"))
    assert batch.num == [(101, T0_US, 21.0), (101, T0_US + 1_000_000, 21.25)]
    assert batch.text == [
        (102, T0_US, "on"),
        (103, T0_US, "true"),
        (103, T0_US + 1_000_000, "false"),
    ]


# --- decode_value -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=15,
).filter(lambda v: v is not None)


def stored_value(kind: str, value: Any) -> Any:
    batch = decode([[T0_MS, value]], make_dims(kind), limits=Limits(text_value_bytes=1 << 20))
    rows = batch.num if kind == "number" else batch.text
    assert len(rows) == 1
    return rows[0][2]


@given(json_values)
def test_a_json_value_round_trips_through_storage(value: Any) -> None:
    assert decode_value("json", stored_value("json", value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_round_trips_through_storage(value: float) -> None:
    assert decode_value("number", stored_value("number", value)) == value


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_an_int_comes_back_as_an_equal_float(value: int) -> None:
    back = decode_value("number", stored_value("number", value))
    assert back == value
    assert type(back) is float


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_round_trips_through_storage(value: bool) -> None:
    assert decode_value("bool", stored_value("bool", value)) is value


# Any text but NUL, which no text column of PostgreSQL holds (refused below).
@given(
    st.sampled_from(["text", "media"]),
    st.text(st.characters(exclude_characters="\x00"), max_size=200),
)
def test_text_round_trips_through_storage(kind: str, value: str) -> None:
    assert decode_value(kind, stored_value(kind, value)) == value


@pytest.mark.parametrize("kind", ["text", "media"])
def test_text_holding_nul_is_a_row_error(kind: str) -> None:
    with pytest.raises(RowErrors) as info:
        stored_value(kind, "a\x00b")
    assert info.value.details[0]["code"] == "INVALID_VALUE"


# --- the column-at-a-time path for plain numbers agrees with the row-by-row loop ----------------

_odd_cells = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, None, True, "1", [1], 2**63, -(2**63), 2**63 - 1]
)


def _outcome(rows: Any, dims: Sequence[Dim], limits: Limits) -> Any:
    try:
        batch = decode_rows(rows, dims, now_us=NOW_US, limits=limits)
    except RowErrors as exc:
        return ("refused", exc.details)
    return ("ok", sorted(map(repr, batch.num)), batch.text)  # repr: 1.0 and 1 differ


@settings(max_examples=400)
@given(
    ndims=st.integers(1, 3),
    data=st.data(),
    oldest=st.one_of(st.none(), st.integers(NOW_US - 10**12, NOW_US - 10**9)),
)
def test_plain_number_rows_decode_as_the_row_by_row_loop_does(
    ndims: int, data: st.DataObject, oldest: int | None
) -> None:
    low = (oldest if oldest is not None else NOW_US - 10**12) // 1000
    high = (NOW_US + SKEW_US) // 1000
    stamps = st.one_of(st.integers(low, high), st.sampled_from([low - 1, low, high, high + 1]))
    cells = st.one_of(st.floats(-1e9, 1e9), st.integers(-(10**6), 10**6))
    rows: list[list[Any]] = data.draw(
        st.lists(
            st.tuples(stamps, st.lists(cells, min_size=ndims, max_size=ndims)).map(
                lambda r: [r[0], *r[1]]
            ),
            min_size=1,
            max_size=20,
        )
    )
    # A few cells, timestamps or row shapes spoiled, or none.
    for _ in range(data.draw(st.integers(0, 2))):
        row = rows[data.draw(st.integers(0, len(rows) - 1))]
        spoil = data.draw(st.sampled_from(["cell", "ts", "short", "long"]))
        if spoil == "cell" and len(row) > 1:
            row[data.draw(st.integers(1, len(row) - 1))] = data.draw(_odd_cells)
        elif spoil == "ts":
            row[0] = data.draw(st.sampled_from([2**70, True, 1.5, "2026-01-01T00:00:00Z", None]))
        elif spoil == "short" and row:
            row.pop()
        elif spoil == "long":
            row.append(1.0)
    dims = make_dims(*["number"] * ndims)
    limits = Limits(min_ts_us=oldest)
    # A generator never takes the column path: it is the row-by-row reference.
    assert _outcome(rows, dims, limits) == _outcome(iter(rows), dims, limits)


@pytest.mark.parametrize(
    "cell",
    [math.nan, math.inf, -math.inf, 1e308, None, True, "1", [1], 2**63, -(2**63), 2**63 - 1, 7],
)
def test_each_odd_number_cell_decodes_as_the_row_by_row_loop_does(cell: Any) -> None:
    rows = [[NOW_MS - 1, 1.5, 2.5], [NOW_MS, cell, 1e308]]
    dims = make_dims("number", "number")
    assert _outcome(rows, dims, Limits()) == _outcome(iter(rows), dims, Limits())
