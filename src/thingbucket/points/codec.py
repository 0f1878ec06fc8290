"""The encoding of a cold chunk: the samples of one number series over a stretch of time.

Timestamps are stored as delta-of-delta (regular sampling makes them all zero), values either as
deltas of integers when every value is a decimal with at most ``MAX_DECIMALS`` places (``v ==
n / 10**k`` exactly, which sensors' readings mostly are) or as the XOR of each value's IEEE bits
with the previous one's. Both int64 columns are byte-shuffled (the first bytes of every number,
then the second bytes, ...), which leaves long runs of equal bytes, and compressed with zstd.

A decoded chunk gives back every timestamp and every value bit for bit (including -0.0). The
work per sample is done by C code (``map``, ``accumulate``, ``array``, slicing, zstd) wherever
it can be, so that reading cold data costs no more than reading the sample table.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Sequence
from itertools import accumulate, islice, repeat
from operator import mul, sub, truediv, xor

import zstandard

MAX_DECIMALS = 6
_VERSION = 1
# version, decimal places (-1: XOR of the IEEE bits), samples, negative zeros among the values
_HEADER = struct.Struct("<BbII")
_LEVEL = 19  # packing is a background job: the smallest blocks for reads and disk
_PROBE = 64  # values that choose the decimal places before all are checked
_MAX_SCALED = 2**62  # |n| below this: no delta of two can overflow int64


class ChunkError(ValueError):
    """A block that is not a chunk of this format."""


def _shuffle(numbers: Sequence[int]) -> bytes:
    raw = array("q", numbers).tobytes()
    return b"".join(raw[i::8] for i in range(8))


def _unshuffle(planes: bytes, n: int) -> list[int]:
    raw = bytearray(8 * n)
    for i in range(8):
        raw[i::8] = planes[i * n : (i + 1) * n]
    out = array("q")
    out.frombytes(raw)
    return out.tolist()


def _deltas(numbers: Sequence[int]) -> list[int]:
    return [numbers[0], *map(sub, islice(numbers, 1, None), numbers)]


def _negative_zeros(values: Sequence[float]) -> list[int]:
    """Where the values hold -0.0, which an integer gives back as 0.0 (a sensor rounding a small
    negative reading makes them)."""
    if not values.count(0.0):  # counts both zeros, in C
        return []
    return [i for i, v in enumerate(values) if v == 0.0 and math.copysign(1.0, v) < 0]


def _decimals(values: Sequence[float]) -> int:
    """The fewest decimal places that give every value back exactly from an integer (-0.0 as
    0.0), or -1."""
    probe = list(values[:_PROBE])
    for k in range(MAX_DECIMALS + 1):
        scale = 10**k
        if max(map(abs, probe)) * scale >= _MAX_SCALED:
            return -1
        if list(map(truediv, map(round, map(mul, probe, repeat(scale))), repeat(scale))) == probe:
            break
    else:
        return -1
    if max(map(abs, values)) * scale >= _MAX_SCALED:
        return -1
    scaled = list(map(round, map(mul, values, repeat(scale))))
    if list(map(truediv, scaled, repeat(scale))) != list(values):
        return -1
    return k


def encode(stamps: Sequence[int], values: Sequence[float]) -> bytes:
    """A block of samples in ascending time order (at least one, spanning less than 2**62 us:
    a chunk holds a day at most); values are finite floats."""
    n = len(stamps)
    if n == 0 or len(values) != n:
        raise ValueError("a chunk holds one value per timestamp, at least one")
    # The first timestamp, then the first gap, then each gap's change (a chunk spans far less
    # than int64's range, so no difference overflows).
    gaps = list(map(sub, islice(stamps, 1, None), stamps))
    if gaps and (min(gaps) < 0 or max(gaps) >= _MAX_SCALED):
        raise ValueError("a chunk's timestamps ascend and span less than 2**62 microseconds")
    times = [stamps[0], *(_deltas(gaps) if gaps else ())]
    k = _decimals(values)
    zeros: list[int] = []
    if k >= 0:
        scale = 10**k
        numbers = _deltas(list(map(round, map(mul, values, repeat(scale)))))
        zeros = _negative_zeros(values)
    else:
        bits = array("q")
        bits.frombytes(array("d", values).tobytes())
        numbers = [bits[0], *map(xor, islice(bits, 1, None), bits)]
    body = _shuffle(times) + _shuffle(numbers) + array("q", zeros).tobytes()
    head = _HEADER.pack(_VERSION, k, n, len(zeros))
    return head + zstandard.ZstdCompressor(level=_LEVEL).compress(body)


def decode(block: bytes) -> tuple[list[int], list[float]]:
    """The timestamps and values of a block, as ``encode`` was given them."""
    try:
        version, k, n, z = _HEADER.unpack_from(block)
        body = zstandard.ZstdDecompressor().decompress(block[_HEADER.size :])
    except (struct.error, zstandard.ZstdError) as exc:
        raise ChunkError(f"not a chunk: {exc}") from None
    if version != _VERSION or len(body) != 16 * n + 8 * z:
        raise ChunkError(f"not a chunk of format {_VERSION} holding {n} samples")
    times = _unshuffle(body[: 8 * n], n)
    stamps = list(accumulate(accumulate(islice(times, 1, None)), initial=times[0]))
    numbers = _unshuffle(body[8 * n :], n)
    if k >= 0:
        values = list(map(truediv, accumulate(numbers), repeat(10**k)))
        zeros = array("q")
        zeros.frombytes(body[16 * n :])
        for i in zeros:
            values[i] = -0.0
    else:
        bits = array("q", accumulate(numbers, xor))
        floats = array("d")
        floats.frombytes(bits.tobytes())
        values = floats.tolist()
    return stamps, values
