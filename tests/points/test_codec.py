"""Cold chunks' encoding: every timestamp and value bit comes back, and regular data is small."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingbucket.points.codec import ChunkError, decode, encode

DAY_US = 86_400_000_000
T0 = 1_767_225_600_000_000  # 2026-01-01


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@st.composite
def chunks(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    start = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1 - DAY_US))
    offsets = draw(st.lists(st.integers(0, DAY_US - 1), min_size=1, max_size=300, unique=True))
    stamps = sorted(start + o for o in offsets)
    decimal = st.integers(-(10**9), 10**9).flatmap(
        lambda n: st.integers(0, 6).map(lambda k: n / 10**k)
    )
    anything = st.floats(allow_nan=False, allow_infinity=False)
    values = draw(
        st.lists(
            st.one_of(decimal, anything, st.just(-0.0), st.just(0.0)),
            min_size=len(stamps),
            max_size=len(stamps),
        )
    )
    return stamps, values


@settings(max_examples=400, deadline=None)
@given(chunks())
def test_a_chunk_gives_back_every_timestamp_and_value_bit_for_bit(
    chunk: tuple[list[int], list[float]],
) -> None:
    stamps, values = chunk
    got_stamps, got_values = decode(encode(stamps, values))
    assert got_stamps == stamps
    assert _bits(got_values) == _bits(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**6), 10**6), min_size=2, max_size=200), st.integers(0, 6))
def test_decimals_and_their_negative_zeros_come_back(numbers: list[int], k: int) -> None:
    values = [n / 10**k for n in numbers]
    values[0] = -0.0
    stamps = [T0 + i * 1_000_000 for i in range(len(values))]
    assert _bits(decode(encode(stamps, values))[1]) == _bits(values)


def test_a_day_of_regular_two_decimal_readings_takes_under_two_bytes_a_sample() -> None:
    rng = random.Random(7)
    stamps = [T0 + i * 1_000_000 for i in range(86_400)]
    walk, level = [], 20.0
    for _ in stamps:
        level += rng.gauss(0, 0.05)
        walk.append(round(level, 2))
    noise = [round(rng.uniform(-40, 60), 2) for _ in stamps]
    assert len(encode(stamps, walk)) / len(stamps) < 1.0
    assert len(encode(stamps, noise)) / len(stamps) < 2.5  # 10,000 values at random: ~14 bits


def test_timestamps_must_ascend_within_a_span_and_blocks_are_checked() -> None:
    with pytest.raises(ValueError, match="ascend"):
        encode([T0 + 5, T0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        encode([], [])
    block = encode([T0, T0 + 1], [1.5, math.pi])
    with pytest.raises(ChunkError):
        decode(block[:-3])
    with pytest.raises(ChunkError):
        decode(b"\x09" + block[1:])
