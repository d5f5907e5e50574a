"""The replay reservoir: bounded, and a uniform sample of everything streamed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.replay import reservoir_add


def _stream(buf, chunks, capacity, seed):
    bx, by, seen = buf
    rng = np.random.default_rng(seed)
    for chunk in chunks:
        x = np.asarray(chunk, np.int64).reshape(-1, 1)
        bx, by, seen = reservoir_add(bx, by, seen, x, np.asarray(chunk, np.int64), capacity, rng)
    return bx, by, seen


EMPTY = (np.zeros((0, 1), np.int64), np.zeros((0,), np.int64), 0)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), max_size=6),
    capacity=st.integers(0, 30),
    seed=st.integers(0, 2**16),
)
def test_buffer_never_exceeds_capacity_and_holds_only_streamed_examples(sizes, capacity, seed):
    start = 0
    chunks = []
    for n in sizes:
        chunks.append(list(range(start, start + n)))
        start += n
    bx, by, seen = _stream(EMPTY, chunks, capacity, seed)
    assert seen == start
    assert len(by) == min(capacity, start) == len(bx)
    assert len(set(by.tolist())) == len(by)  # no example twice
    assert set(by.tolist()) <= set(range(start))
    np.testing.assert_array_equal(bx[:, 0], by)  # images and labels stay paired


def test_inputs_are_not_modified():
    bx = np.arange(5).reshape(5, 1)
    by = np.arange(5)
    x_new = np.arange(5, 50).reshape(-1, 1)
    y_new = np.arange(5, 50)
    keep = (bx.copy(), by.copy(), x_new.copy())
    reservoir_add(bx, by, 5, x_new, y_new, 5, np.random.default_rng(0))
    for a, b in zip((bx, by, x_new), keep, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_streamed_example_is_kept_with_equal_probability():
    # 100 examples streamed in 4 chunks (like 4 tasks) into 10 slots: each should be kept
    # with probability 0.1 whichever chunk it came in.
    counts = np.zeros(100)
    trials = 2000
    chunks = [list(range(i, i + 25)) for i in range(0, 100, 25)]
    for seed in range(trials):
        _, by, _ = _stream(EMPTY, chunks, 10, seed)
        counts[by] += 1
    freq = counts / trials
    assert abs(freq.mean() - 0.1) < 1e-9
    per_chunk = freq.reshape(4, 25).mean(axis=1)
    np.testing.assert_allclose(per_chunk, 0.1, atol=0.01)  # old tasks are not crowded out
    assert freq.min() > 0.06 and freq.max() < 0.14
