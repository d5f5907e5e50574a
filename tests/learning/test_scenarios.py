"""Continual scenario schedules: which task, classes and drift a client has at which round."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import build_config, rounds_per_task
from learning.errors import ConfigError
from learning.federated_data import task_shard, task_test_set
from learning.scenarios import (
    arrival_offset,
    boundaries_crossed,
    class_groups,
    client_task,
    drift_kind,
    drift_level,
    server_task,
    task_at,
    task_at_time,
    task_end_rounds,
    task_partition,
)

CI = ['scenario="class-incremental"', "rounds=10", "num-clients=6", "clients-per-round=3"]
DI = ['scenario="domain-incremental"', "rounds=10", "num-clients=6", "clients-per-round=3"]
SMALL_DATA = ["train-subset=3000", "test-subset=600", 'partition="iid"']


def test_rounds_map_to_tasks_on_the_clock():
    # 5 tasks of 2 rounds: rounds 1-2 -> 0, 3-4 -> 1, ..., 9-10 -> 4, later rounds stay on 4
    assert [task_at(r, 2, 5) for r in range(1, 13)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]
    # a client 3 rounds late reaches each task 3 rounds after the clock
    assert [task_at(r, 2, 5, offset=3) for r in range(1, 13)] == [
        0,
        0,
        0,
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
    ]


def test_virtual_times_map_to_tasks_on_the_clock():
    # task k covers [k T, (k+1) T); T = 0.25 s, 5 tasks; a boundary belongs to the next task
    times = [0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0, 1.1, 1.25, 70.0]
    assert [task_at_time(t, 0.25, 5) for t in times] == [0, 0, 1, 1, 2, 3, 4, 4, 4, 4]
    # the boundaries are the products k * T, whatever the rounding of t / T
    # (7 * 0.1 = 0.7000000000000001 but 0.7 / 0.1 = 6.999...)
    assert all(task_at_time(k * 0.1, 0.1, 50) == k for k in range(50))
    assert all(task_at_time(k * 0.1 - 1e-12, 0.1, 50) == k - 1 for k in range(1, 50))
    # a client 0.375 s late reaches each task 0.375 s after the clock
    assert [task_at_time(t, 0.25, 5, 0.375) for t in (0.25, 0.5, 0.625, 0.875)] == [0, 0, 1, 2]
    cfg = build_config(None, [*CI, "task-seconds=100"])
    assert boundaries_crossed(cfg, 0.0, 99.9) == []
    assert boundaries_crossed(cfg, 0.0, 100.0) == [0]  # (start, end]: ends exactly at 100
    assert boundaries_crossed(cfg, 100.0, 150.0) == []
    assert boundaries_crossed(cfg, 150.0, 420.0) == [1, 2, 3]  # one round, three ends
    assert boundaries_crossed(cfg, 420.0, 9e9) == []  # the last task never ends early
    assert server_task(cfg, 1, 250.0) == 2 and client_task(cfg, 0, 1, 99.0) == 0
    # arrival offsets convert at T / rounds-per-task (10 rounds / 5 tasks: 50 s a round)
    late = build_config(None, [*CI, "task-seconds=100", "arrival-spread=1", "seed=0"])
    for pid in range(6):
        d = arrival_offset(0, pid, 1)
        assert client_task(late, pid, 1, 230.0) == task_at_time(230.0 - 50.0 * d, 100, 5)
    with pytest.raises(ValueError, match="virtual-time"):
        client_task(cfg, 0, 1)


def test_class_incremental_schedule_and_boundaries():
    cfg = build_config(None, CI)
    assert [g.tolist() for g in class_groups(10, 5)] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert task_end_rounds(cfg) == [2, 4, 6, 8, 10]
    assert [server_task(cfg, r) for r in range(1, 11)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    cfg = build_config(None, [*CI, "rounds=13", "rounds-per-task=2"])
    assert task_end_rounds(cfg) == [2, 4, 6, 8, 13]  # the last task keeps the extra rounds


def test_each_client_holds_only_its_task_classes():
    cfg = build_config(None, [*CI, *SMALL_DATA])
    for task, classes in enumerate(class_groups(10, 5)):
        for pid in range(6):
            _, y = task_shard(cfg, pid, task)
            assert len(y) > 0 and set(np.unique(y)) <= set(classes.tolist())
        _, yt = task_test_set(cfg, task)
        assert set(np.unique(yt)) == set(classes.tolist())


def test_task_partitions_are_disjoint_and_cover_the_task():
    cfg = build_config(None, [*DI, *SMALL_DATA])
    labels = np.random.default_rng(0).integers(0, 10, 3000)
    seen = []
    for task in range(5):
        parts = task_partition(cfg, labels, task, num_classes=10)
        idx = np.concatenate(parts)
        assert len(np.unique(idx)) == len(idx)  # clients of a task do not share examples
        seen.append(idx)
    every = np.concatenate(seen)
    assert len(np.unique(every)) == len(every) == 3000  # tasks are disjoint chunks that cover


def test_arrival_spread_is_deterministic_per_seed_and_client():
    offsets = [arrival_offset(0, pid, 3) for pid in range(50)]
    assert offsets == [arrival_offset(0, pid, 3) for pid in range(50)]
    assert set(offsets) == {0, 1, 2, 3}  # clients really arrive at different rounds
    assert offsets != [arrival_offset(1, pid, 3) for pid in range(50)]
    assert all(arrival_offset(0, pid, 0) == 0 for pid in range(50))
    cfg = build_config(None, [*CI, "arrival-spread=3", "rounds=13", "rounds-per-task=2"])
    for pid in range(6):
        d = arrival_offset(0, pid, 3)
        tasks = [client_task(cfg, pid, r) for r in range(1, 11)]
        assert tasks == [task_at(r, 2, 5, d) for r in range(1, 11)]
        assert all(t <= server_task(cfg, r) for r, t in zip(range(1, 11), tasks, strict=True))
        assert tasks == sorted(tasks)  # never goes back to an older task


@settings(max_examples=50, deadline=None)
@given(
    per_task=st.integers(1, 6),
    tasks=st.integers(1, 6),
    offset=st.integers(0, 5),
    rnd=st.integers(1, 60),
)
def test_task_at_is_monotone_and_in_range(per_task, tasks, offset, rnd):
    t = task_at(rnd, per_task, tasks, offset)
    assert 0 <= t < tasks
    assert task_at(rnd + 1, per_task, tasks, offset) >= t
    assert task_at(rnd, per_task, tasks, offset + 1) <= t


def test_domain_drift_grows_task_by_task_and_differs_per_group():
    cfg = build_config(None, [*DI, "drift-strength=0.5"])
    assert [drift_level(cfg, t) for t in range(5)] == [0.0, 0.125, 0.25, 0.375, 0.5]
    assert drift_kind(cfg, 0) == "rotation" and drift_kind(cfg, 3) == "rotation"
    cfg = build_config(None, [*DI, "drift-groups=3", 'drift="blur"'])
    assert [drift_kind(cfg, g) for g in range(3)] == ["blur", "noise", "contrast"]


def test_domain_task_zero_is_undrifted_and_later_tasks_are_not():
    cfg = build_config(None, [*DI, *SMALL_DATA])
    from learning.federated_data import dataset_for

    ds = dataset_for(cfg)
    x0, _ = task_test_set(cfg, 0)
    np.testing.assert_array_equal(x0, ds.x_test)
    x4, y4 = task_test_set(cfg, 4)
    np.testing.assert_array_equal(y4, ds.y_test)
    # 180 degrees: a rotated image is the original turned upside down (up to interpolation)
    flipped = ds.x_test[:, ::-1, ::-1]
    assert np.abs(x4.astype(int) - flipped.astype(int)).mean() < 3.0


def test_continual_config_errors_are_one_line():
    for override, fragment in [
        (['cl-method="ewc"'], "needs a continual scenario"),
        ([*CI, "buffer-size=-1"], "'buffer-size' must be >= 0"),
        ([*CI, 'cl-method="replay"', "buffer-size=0"], "needs buffer-size >= 1"),
        ([*CI, "rounds=4"], "fewer than num-tasks"),
        ([*CI, "rounds-per-task=3"], "fewer than num-tasks"),
        ([*CI, 'scenario="task-il"'], "unknown scenario"),
        ([*CI, 'scenario="task-incremental"', "num-tasks=1", "rounds=10"], "needs num-tasks >= 2"),
        ([*CI, 'cl-method="gem"'], "unknown cl-method"),
        ([*CI, "lwf-temperature=0"], "'lwf-temperature' must be > 0"),
    ]:
        with pytest.raises(ConfigError) as info:
            build_config(None, override)
        assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_late_client_keeps_its_old_classes_for_its_offset():
    cfg = build_config(None, [*CI, *SMALL_DATA, "arrival-spread=2", "rounds=11"])
    assert rounds_per_task(cfg) == 2
    late = next(pid for pid in range(6) if arrival_offset(0, pid, 2) == 2)
    groups = class_groups(10, 5)
    # round 3 starts task 1 on the clock; this client still holds task 0's classes until
    # round 5, then moves on with a two-round lag
    expected = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 2, 10: 3}
    for rnd, task in expected.items():
        assert client_task(cfg, late, rnd) == task
        _, y = task_shard(cfg, late, client_task(cfg, late, rnd))
        assert set(np.unique(y)) <= set(groups[task].tolist())


def test_an_arrival_spread_that_never_reaches_the_last_task_is_refused():
    with pytest.raises(ConfigError, match="never train the last task"):
        build_config(None, [*CI, "arrival-spread=2"])  # 5 tasks x 2 rounds in 10 rounds
    with pytest.raises(ConfigError, match="exceeds the 10 classes"):
        build_config(None, [*CI, "num-tasks=11", "rounds=22"])


def test_task_incremental_holds_the_class_groups_of_split_fmnist():
    ti = build_config(None, [*CI, *SMALL_DATA, 'scenario="task-incremental"'])
    ci = build_config(None, [*CI, *SMALL_DATA])
    for task in (0, 3):
        np.testing.assert_array_equal(task_test_set(ti, task)[1], task_test_set(ci, task)[1])
        np.testing.assert_array_equal(task_shard(ti, 1, task)[0], task_shard(ci, 1, task)[0])
    assert set(np.unique(task_test_set(ti, 3)[1])) == {6, 7}


def test_permuted_stream_one_fixed_pixel_order_per_task():
    cfg = build_config(None, [*DI, *SMALL_DATA, 'drift="permutation"', "num-tasks=20", "rounds=20"])
    from learning.federated_data import dataset_for

    ds = dataset_for(cfg)
    np.testing.assert_array_equal(task_test_set(cfg, 0)[0], ds.x_test)
    x5 = task_test_set(cfg, 5)[0]
    assert not np.array_equal(x5, ds.x_test)
    # the same pixels, reordered the same way for every image (and for the clients)
    np.testing.assert_array_equal(
        np.sort(x5.reshape(len(x5), -1), 1), np.sort(ds.x_test.reshape(len(x5), -1), 1)
    )
    flat, orig = x5.reshape(len(x5), -1), ds.x_test.reshape(len(x5), -1).astype(int)
    perm = [int(np.argmax((orig == flat[:, [k]]).all(0))) for k in range(0, 784, 97)]
    assert len(set(perm)) == len(perm)
    assert not np.array_equal(task_test_set(cfg, 6)[0], x5)
    assert drift_kind(build_config(None, [*DI, 'drift="permutation"', "drift-groups=2"]), 1) == (
        "permutation"
    )
