"""SampleBatch.ranges: per series, the first and last timestamp a batch touches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from thingbucket.points.batch import SampleBatch

_rows = st.lists(
    st.tuples(st.sampled_from([1, 2, 3]), st.integers(-(2**62), 2**62), st.floats()), max_size=30
)


@given(num=_rows, text=st.lists(st.tuples(st.just(9), st.integers(0, 99), st.just("x"))))
def test_ranges_are_each_series_min_and_max(
    num: list[tuple[int, int, float]], text: list[tuple[int, int, str]]
) -> None:
    want: dict[int, tuple[int, int]] = {}
    for sid, ts, _ in [*num, *text]:
        lo, hi = want.get(sid, (ts, ts))
        want[sid] = (min(lo, ts), max(hi, ts))
    assert SampleBatch(num=num, text=text).ranges() == want


def test_one_series_gives_its_span() -> None:
    batch = SampleBatch(num=[(5, 30, 1.0), (5, 10, 2.0), (5, 20, 3.0)])
    assert batch.ranges() == {5: (10, 30)}
