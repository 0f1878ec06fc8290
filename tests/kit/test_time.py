"""kit.time: exact microsecond timestamps from RFC 3339 text and epoch numbers.

Every expectation is computed independently of the module: RFC 3339 instants with datetime
arithmetic, epoch numbers with exact rational arithmetic (Fraction) on the decimal text.
"""

from __future__ import annotations

import decimal
import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingbucket.kit.time import (
    Precision,
    TimestampError,
    datetime_to_us,
    epoch_to_us,
    parse_rfc3339,
    parse_timestamp,
    rfc3339,
    us_to_datetime,
    us_to_epoch,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
FACTOR: dict[Precision, int] = {"s": 1_000_000, "ms": 1_000, "us": 1}


def us_of(dt: datetime) -> int:
    """Microseconds since the epoch by datetime arithmetic (the independent expectation)."""
    return (dt - EPOCH) // ONE_US


def floor_us(text: str, precision: Precision) -> int:
    """The exact value of a decimal text in ``precision`` units, floored to the microsecond."""
    return math.floor(Fraction(text) * FACTOR[precision])


def format_offset(offset: timedelta) -> str:
    minutes = offset // timedelta(minutes=1)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware_datetimes = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
utc_datetimes_from_1000 = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
precisions = st.sampled_from(["s", "ms", "us"])


# --- RFC 3339 -------------------------------------------------------------------------------------


@given(aware_datetimes)
def test_rfc3339_text_with_any_offset_parses_to_the_exact_microsecond(dt: datetime) -> None:
    offset = dt.utcoffset()
    assert offset is not None
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}{format_offset(offset)}"
    )
    assert parse_rfc3339(text) == us_of(dt)


@given(aware_datetimes)
def test_rfc3339_text_without_colon_in_the_offset_parses_the_same(dt: datetime) -> None:
    offset = dt.utcoffset()
    assert offset is not None
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}{format_offset(offset).replace(':', '')}"
    )
    assert parse_rfc3339(text) == us_of(dt.replace(microsecond=0))


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.text(alphabet="0123456789", min_size=1, max_size=12),
)
def test_fractional_seconds_are_floored_to_the_microsecond(dt: datetime, digits: str) -> None:
    whole = dt.replace(microsecond=0)
    text = f"{whole.isoformat()}.{digits}Z"
    expected = us_of(whole.replace(tzinfo=UTC)) + math.floor(Fraction(f"0.{digits}") * 10**6)
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2026-03-01T12:30:45Z", datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2026-03-01t12:30:45z", datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2026-03-01 12:30:45Z", datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2026-03-01T12:30:45", datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2026-03-01T12:30Z", datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T12:30:45,5Z", datetime(2026, 3, 1, 12, 30, 45, 500_000, tzinfo=UTC)),
        ("2026-03-01T12:30:45.000001Z", datetime(2026, 3, 1, 12, 30, 45, 1, tzinfo=UTC)),
        ("2026-03-01T00:30:00+01:00", datetime(2026, 2, 28, 23, 30, tzinfo=UTC)),
        ("2026-02-28T23:30:00-05:30", datetime(2026, 3, 1, 5, 0, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("1969-12-31T23:59:59.5Z", datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("  2026-03-01T12:30:45Z \n", datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)),
    ],
)
def test_rfc3339_forms_parse_to_the_instant_they_name(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == us_of(expected)


def test_a_timestamp_before_the_epoch_is_negative() -> None:
    assert parse_rfc3339("1969-12-31T23:59:59.999999Z") == -1
    assert parse_rfc3339("1969-12-31T23:59:59Z") == -1_000_000


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",  # no such day
        "2025-02-29",  # not a leap year
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "0000-01-01T00:00:00Z",  # year zero does not exist
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-01-01T23:59:61Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+05:60",
        "2026-01-01T00:00:00+05",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567890123Z",  # more than 12 fractional digits
        "2026-01-01T12",
        "2026-01-01T",
        "2026-1-1",
        "26-01-01",
        "20260101T000000Z",
        "2026-01-01T00:00:00ZZ",
        "2026-01-01T00:00:00Z garbage",
        "yesterday",
        "",
        "   ",
    ],
)
def test_invalid_rfc3339_text_is_refused(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_rfc3339(text)


def test_non_ascii_digits_are_not_an_rfc3339_timestamp() -> None:
    arabic_indic = "٢٠٢٦-٠١-٠١T٠٠:٠٠:٠٠Z"
    with pytest.raises(TimestampError):
        parse_rfc3339(arabic_indic)


# --- epoch numbers ----------------------------------------------------------------------------


@given(st.integers(min_value=INT64_MIN // 1000 + 1, max_value=INT64_MAX // 1000))
def test_epoch_milliseconds_as_int_scale_exactly(ms: int) -> None:
    assert epoch_to_us(ms) == ms * 1000
    assert parse_timestamp(ms) == ms * 1000


@given(
    st.booleans(),
    st.integers(min_value=0, max_value=10**12 - 1),
    st.text(alphabet="0123456789", min_size=0, max_size=3),
)
def test_epoch_milliseconds_as_float_floor_to_the_microsecond_of_their_decimal_text(
    negative: bool, whole: int, frac: str
) -> None:
    # At most 15 significant digits, so the float's shortest repr is numerically the same text.
    text = ("-" if negative else "") + str(whole) + (f".{frac}" if frac else "")
    value = float(text)
    assert epoch_to_us(value) == floor_us(text, "ms")
    assert parse_timestamp(value) == floor_us(text, "ms")


@given(
    st.sampled_from(["", "-", "+"]),
    st.integers(min_value=0, max_value=10**15),
    st.text(alphabet="0123456789", min_size=0, max_size=20),
    st.sampled_from(["", "e0", "e-3", "E2", "e+1"]),
    precisions,
)
def test_numeric_strings_floor_to_the_microsecond_exactly(
    sign: str, whole: int, frac: str, exponent: str, precision: Precision
) -> None:
    text = f"{sign}{whole}" + (f".{frac}" if frac else "") + exponent
    expected = floor_us(text, precision)
    if not INT64_MIN < expected <= INT64_MAX:
        with pytest.raises(TimestampError):
            epoch_to_us(text, precision)
        return
    assert epoch_to_us(text, precision) == expected
    assert parse_timestamp(text, precision) == expected
    assert parse_timestamp(f"  {text} ", precision) == expected


@given(st.integers(min_value=-(10**12), max_value=10**12), precisions)
def test_precision_sets_the_unit_of_an_epoch_int(value: int, precision: Precision) -> None:
    expected = {"s": value * 1_000_000, "ms": value * 1_000, "us": value}[precision]
    assert epoch_to_us(value, precision) == expected
    assert parse_timestamp(value, precision) == expected


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (1.001, "ms", 1001),  # binary 1.00099999... must not floor to 1000
        (0.1, "ms", 100),
        (1.0005, "ms", 1000),  # 1000.5 us
        (-1.0005, "ms", -1001),  # -1000.5 us floors down
        (1.5, "s", 1_500_000),
        (1.5, "us", 1),
        (-1.5, "us", -2),
        (1_700_000_000.123456, "s", 1_700_000_000_123_456),
        (1_700_000_000_000.0, "ms", 1_700_000_000_000_000),
        ("1700000000000.0009", "ms", 1_700_000_000_000_000),
        ("-0.0001", "ms", -1),
        ("1e3", "ms", 1_000_000),
        (".5", "ms", 500),
        ("0" * 63 + "1", "ms", 1000),  # exactly 64 characters
    ],
)
def test_hand_worked_epoch_values(value: float | str, precision: Precision, expected: int) -> None:
    assert epoch_to_us(value, precision) == expected


def test_decimal_values_are_floored_exactly() -> None:
    assert epoch_to_us(decimal.Decimal("12.3456789"), "ms") == 12_345
    assert epoch_to_us(decimal.Decimal("-12.3456789"), "ms") == -12_346


def test_the_int64_microsecond_range_is_inclusive_of_its_ends() -> None:
    assert epoch_to_us(INT64_MAX, "us") == INT64_MAX
    assert epoch_to_us(INT64_MIN + 1, "us") == INT64_MIN + 1
    assert epoch_to_us(str(INT64_MAX), "us") == INT64_MAX
    assert epoch_to_us(INT64_MAX // 1000, "ms") == INT64_MAX // 1000 * 1000


@pytest.mark.parametrize(
    ("value", "precision"),
    [
        (INT64_MAX + 1, "us"),
        (INT64_MIN, "us"),
        (INT64_MAX // 1000 + 1, "ms"),
        (INT64_MIN // 1_000_000 - 1, "s"),
        (str(INT64_MAX + 1), "us"),
        ("-9223372036854775808", "us"),
        ("9223372036854775.808", "ms"),
        ("1e30", "ms"),
        ("-1e30", "ms"),
        (1e30, "ms"),
        (-1e19, "us"),
        (9.3e15, "ms"),
    ],
)
def test_values_outside_the_int64_microsecond_range_are_refused(
    value: int | float | str, precision: Precision
) -> None:
    with pytest.raises(TimestampError):
        epoch_to_us(value, precision)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        math.nan,
        math.inf,
        -math.inf,
        "NaN",
        "Infinity",
        "-inf",
        "abc",
        "",
        "12abc",
        "1" * 65,
        " " * 30 + "1" * 35,  # 65 characters before stripping
        decimal.Decimal("NaN"),
        decimal.Decimal("Infinity"),
    ],
)
def test_non_numbers_and_non_finite_epochs_are_refused(value: Any) -> None:
    with pytest.raises(TimestampError):
        epoch_to_us(value)


@pytest.mark.parametrize(
    "value",
    [True, False, None, math.nan, math.inf, [1], {"ts": 1}, b"1700000000000", "garbage", "1" * 65],
)
def test_parse_timestamp_refuses_what_is_not_a_timestamp(value: object) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(value)


@pytest.mark.parametrize("text", ["1e1000000", "1e999999999"])
def test_a_huge_exponent_is_a_timestamp_error(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(text)


def test_parse_timestamp_reads_numeric_strings_as_epochs_and_other_strings_as_rfc3339() -> None:
    instant = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    ms = (instant - EPOCH) // timedelta(milliseconds=1)
    assert parse_timestamp(str(ms)) == us_of(instant)
    assert parse_timestamp("2023-11-14T22:13:20Z") == us_of(instant)
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == us_of(instant)
    # An RFC 3339 string ignores the epoch precision.
    assert parse_timestamp("2023-11-14T22:13:20Z", "s") == us_of(instant)
    assert parse_timestamp(str(ms // 1000), "s") == us_of(instant)


# --- back to numbers and datetimes ----------------------------------------------------------------


@given(st.integers(min_value=-(10**12), max_value=10**12), precisions)
def test_us_to_epoch_inverts_epoch_to_us_for_whole_units(value: int, precision: Precision) -> None:
    back = us_to_epoch(epoch_to_us(value, precision), precision)
    assert back == value
    assert type(back) is int


@pytest.mark.parametrize(
    ("us", "precision", "expected"),
    [
        (1_500, "ms", 1.5),
        (-1_500, "ms", -1.5),
        (2_000, "ms", 2),
        (1_250_000, "s", 1.25),
        (3_000_000, "s", 3),
        (7, "us", 7),
        (0, "ms", 0),
    ],
)
def test_us_to_epoch_is_an_int_only_when_exact(
    us: int, precision: Precision, expected: float
) -> None:
    result = us_to_epoch(us, precision)
    assert result == expected
    assert type(result) is (int if float(expected).is_integer() else float)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    )
)
def test_datetimes_and_microseconds_round_trip(dt: datetime) -> None:
    us = datetime_to_us(dt)
    assert us == us_of(dt)
    back = us_to_datetime(us)
    assert back == dt
    assert back.utcoffset() == timedelta(0)


@given(aware_datetimes)
def test_datetime_to_us_honours_the_offset(dt: datetime) -> None:
    assert datetime_to_us(dt) == us_of(dt)


def test_a_naive_datetime_is_taken_as_utc() -> None:
    assert datetime_to_us(datetime(2026, 1, 1)) == us_of(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("us", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-1, datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        (1_700_000_000_000_001, datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)),
    ],
)
def test_us_to_datetime_gives_the_utc_instant(us: int, expected: datetime) -> None:
    assert us_to_datetime(us) == expected


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2026-01-02T03:04:05.000007Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC), "2026-01-02T03:04:05.120000Z"),
        (
            datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            "2025-12-31T23:00:00Z",
        ),
        (
            datetime(2026, 1, 1, 22, 30, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
            "2026-01-02T02:00:00Z",
        ),
    ],
)
def test_rfc3339_writes_utc_with_z_and_microseconds_only_when_present(
    dt: datetime, expected: str
) -> None:
    assert rfc3339(dt) == expected


@given(utc_datetimes_from_1000)
def test_rfc3339_output_parses_back_to_the_same_instant(dt: datetime) -> None:
    assert parse_rfc3339(rfc3339(dt)) == us_of(dt)


def test_rfc3339_pads_years_before_1000_to_four_digits() -> None:
    dt = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rfc3339(dt) == "0999-01-02T03:04:05Z"
    assert parse_rfc3339(rfc3339(dt)) == us_of(dt)
