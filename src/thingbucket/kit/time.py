"""Timestamps: integer microseconds since the epoch, UTC, parsed exactly (no float rounding)."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

Precision = Literal["s", "ms", "us"]

US_PER: dict[str, int] = {"s": 1_000_000, "ms": 1_000, "us": 1}
TS_MIN_US = -(2**63) + 1
TS_MAX_US = 2**63 - 1
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_NUMERIC_STRING = 64

# [0-9], not \d: RFC 3339 digits are ASCII, \d also matches other scripts' digits.
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,12}))?)?)?"
    r"(?:(Z|z)|([+-])([0-9]{2}):?([0-9]{2}))?$"
)


class TimestampError(ValueError):
    """A timestamp that cannot be parsed or lies outside the int64 microsecond range."""


class TimestampOutOfRange(TimestampError):
    """A well-formed timestamp outside the int64 microsecond range."""


def now_us() -> int:
    return time.time_ns() // 1_000


def _check_range(us: int) -> int:
    if not TS_MIN_US <= us <= TS_MAX_US:
        raise TimestampOutOfRange("timestamp outside the int64 microsecond range")
    return us


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 date-time (or a bare date) to microseconds; no offset means UTC."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise TimestampError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hour = int(m[4] or 0)
    minute = int(m[5] or 0)
    second = int(m[6] or 0)
    try:
        d = date(year, month, day)
    except ValueError as exc:
        raise TimestampError(f"invalid date: {exc}") from None
    if hour > 23 or minute > 59 or second > 59:
        raise TimestampError("invalid time of day")
    frac = m[7] or ""
    micros = int((frac + "000000")[:6]) if frac else 0
    offset_s = 0
    if m[9]:
        oh, om = int(m[10]), int(m[11])
        if oh > 23 or om > 59:
            raise TimestampError("invalid UTC offset")
        offset_s = (oh * 3600 + om * 60) * (1 if m[9] == "+" else -1)
    days = d.toordinal() - _EPOCH_ORDINAL
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s
    return _check_range(seconds * 1_000_000 + micros)


def epoch_to_us(value: int | float | str | Decimal, precision: Precision = "ms") -> int:
    """An epoch number in ``precision`` units to microseconds, floored to the microsecond."""
    factor = US_PER[precision]
    if isinstance(value, bool):
        raise TimestampError("a boolean is not a timestamp")
    if isinstance(value, int):
        return _check_range(value * factor)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TimestampError("timestamp is not finite")
        if value.is_integer() and abs(value) < 2**53:
            return _check_range(int(value) * factor)
        value = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > _MAX_NUMERIC_STRING:
            raise TimestampError("numeric timestamp string longer than 64 characters")
        text = value.strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise TimestampError(f"not a number: {text[:40]!r}") from None
    if not value.is_finite():
        raise TimestampError("timestamp is not finite")
    # Checked before multiplying: a huge exponent would overflow the decimal context instead.
    if value and value.adjusted() > 25:
        raise TimestampOutOfRange("timestamp outside the int64 microsecond range")
    scaled = value * factor
    if abs(scaled) > TS_MAX_US + 1:
        raise TimestampOutOfRange("timestamp outside the int64 microsecond range")
    return _check_range(int(scaled.to_integral_value(rounding="ROUND_FLOOR")))


_NUMERIC = re.compile(r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$")


def parse_timestamp(value: object, precision: Precision = "ms") -> int:
    """Epoch number (int, float, numeric string) in ``precision`` units, or an RFC 3339 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_us(value, precision)
    if isinstance(value, str):
        if _NUMERIC.match(value):
            return epoch_to_us(value, precision)
        return parse_rfc3339(value)
    raise TimestampError("a timestamp is an epoch number or an RFC 3339 string")


def us_to_epoch(us: int, precision: Precision = "ms") -> int | float:
    """Microseconds to an epoch number in ``precision`` units: an int when exact."""
    factor = US_PER[precision]
    whole, rest = divmod(us, factor)
    if rest == 0:
        return whole
    return us / factor


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def datetime_to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def rfc3339(dt: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and microseconds only when present."""
    dt = dt.astimezone(UTC)
    # Not strftime("%Y"): glibc does not zero-pad years before 1000.
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt:%H:%M:%S}"
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"
