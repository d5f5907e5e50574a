"""Seeded client sampling: reproducible, distinct, in range, varies by round."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.sampling import sample_clients, top_up_clients


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rnd=st.integers(1, 10_000),
    n=st.integers(1, 100_000),
    k=st.integers(1, 200),
)
def test_sample_properties(seed, rnd, n, k):
    got = sample_clients(seed, rnd, n, k)
    assert got == sample_clients(seed, rnd, n, k)
    assert len(got) == min(k, n) == len(set(got))
    assert all(0 <= c < n for c in got)
    assert got == sorted(got)


def test_rounds_draw_different_clients():
    draws = {tuple(sample_clients(0, r, 100, 10)) for r in range(1, 21)}
    assert len(draws) > 15


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rnd=st.integers(1, 1000),
    n=st.integers(1, 300),
    k=st.integers(0, 20),
    data=st.data(),
)
def test_top_up_never_repeats_a_tried_client(seed, rnd, n, k, data):
    tried = set(data.draw(st.lists(st.integers(0, n - 1), max_size=n)))
    got = top_up_clients(seed, rnd, 1, n, tried, k)
    assert got == top_up_clients(seed, rnd, 1, n, tried, k)
    assert not set(got) & tried and len(set(got)) == len(got)
    assert len(got) <= min(k, n - len(tried))
    if k <= (n - len(tried)) // 4:  # plenty left: rejection sampling finds them all
        assert len(got) == k
