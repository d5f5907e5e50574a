"""Continual-learning scenarios as pure schedules: which data a client holds at which round.

The schedule's clock moves to task t at round t * rounds_per_task + 1. A client with
arrival offset d (0..arrival-spread, drawn from (seed, client)) reaches each task d rounds
later than the clock, which models clients that move on asynchronously.

On the virtual clock (`task-seconds` T > 0) task k covers virtual time [k T, (k+1) T)
instead: a round's (or async dispatch's) task is the one in force at its virtual start
time, which the server stamps into every message (`virtual-time`). The arrival offset is
then d nominal rounds of T / rounds-per-task virtual seconds each. The round during
which the clock crosses a boundary k T ends task k - 1 (`boundaries_crossed`).

- class-incremental (Split-Fashion-MNIST): task t holds the examples of class group t
  (5 tasks of 2 classes: {0,1}, {2,3}, ...); one shared output head, no task id at test time.
- domain-incremental: all classes in every task; the training examples are cut into
  `num_tasks` disjoint chunks, and task t is shown under drift of level
  drift_strength * t / (num_tasks - 1) (task 0 undrifted). Client group `pid % drift-groups`
  picks the drift kind, so groups may drift differently.

Each task's examples are split across clients with the configured partitioner, seeded by
(seed, task). Everything here is NumPy; the per-process caches are in federated_data.py.
"""

from __future__ import annotations

import numpy as np

from learning.config import ExperimentConfig, rounds_per_task
from learning.config_schema import DRIFT_CYCLE, SPLIT_SCENARIOS
from learning.partition import partition_as_configured
from learning.streams import Tag, generator

TASK_SEED = 6151  # mixes the task into partition and drift seeds


def arrival_offset(seed: int, pid: int, spread: int) -> int:
    """Rounds client `pid` lags behind the schedule's clock (0..spread), fixed per seed."""
    if spread <= 0:
        return 0
    return int(generator(seed, Tag.ARRIVAL, pid).integers(0, spread + 1))


def task_at(server_round: int, per_task: int, num_tasks: int, offset: int = 0) -> int:
    """Task in force at `server_round` (1-based) for a client `offset` rounds late."""
    t = (int(server_round) - 1 - int(offset)) // int(per_task)
    return int(min(max(t, 0), num_tasks - 1))


def task_at_time(seconds: float, task_seconds: float, num_tasks: int, offset: float = 0.0) -> int:
    """Task in force at virtual time `seconds` for a client `offset` seconds late: task k
    covers [k T, (k+1) T). Counted against the boundaries k * T themselves, so it agrees
    with `boundaries_crossed` whatever the float rounding of a division."""
    t, size = float(seconds) - float(offset), float(task_seconds)
    if t < size:
        return 0
    k = min(int(t // size), num_tasks - 1)
    while k + 1 < num_tasks and (k + 1) * size <= t:
        k += 1
    while k > 0 and k * size > t:
        k -= 1
    return k


def boundaries_crossed(cfg: ExperimentConfig, start: float, end: float) -> list[int]:
    """Tasks that end during virtual span (start, end]: k - 1 for each boundary k T in it."""
    size, n = cfg.continual.task_seconds, cfg.continual.num_tasks
    return [k - 1 for k in range(1, n) if start < k * size <= end]


def on_clock(cfg: ExperimentConfig) -> bool:
    """Whether tasks change at virtual times (`task-seconds` > 0) rather than rounds."""
    return cfg.continual.task_seconds > 0


def client_task(
    cfg: ExperimentConfig, pid: int, server_round: int, virtual_time: float | None = None
) -> int:
    """The task client `pid` trains on in `server_round` (on the clock: at the message's
    `virtual_time`, the round's or dispatch's virtual start)."""
    cl = cfg.continual
    offset = arrival_offset(cfg.federation.seed, pid, cl.arrival_spread)
    if on_clock(cfg):
        if virtual_time is None:
            raise ValueError("task-seconds > 0 needs the message's virtual-time")
        nominal = cl.task_seconds / rounds_per_task(cfg)  # one round's worth of seconds
        return task_at_time(virtual_time, cl.task_seconds, cl.num_tasks, offset * nominal)
    return task_at(server_round, rounds_per_task(cfg), cl.num_tasks, offset)


def server_task(cfg: ExperimentConfig, server_round: int, virtual_time: float | None = None) -> int:
    """The task on the schedule's clock (what the server evaluates up to)."""
    if on_clock(cfg):
        if virtual_time is None:
            raise ValueError("task-seconds > 0 needs the round's virtual start time")
        return task_at_time(virtual_time, cfg.continual.task_seconds, cfg.continual.num_tasks)
    return task_at(server_round, rounds_per_task(cfg), cfg.continual.num_tasks)


def task_end_rounds(cfg: ExperimentConfig) -> list[int]:
    """Last round of each task on the clock; the last task runs to the final round."""
    per = rounds_per_task(cfg)
    t = cfg.continual.num_tasks
    return [(i + 1) * per for i in range(t - 1)] + [cfg.federation.rounds]


def class_groups(num_classes: int, num_tasks: int) -> list[np.ndarray]:
    """Labels of each class-incremental task: consecutive, nearly equal groups."""
    return [g.astype(np.int64) for g in np.array_split(np.arange(num_classes), num_tasks)]


def drift_kind(cfg: ExperimentConfig, group: int) -> str:
    """Drift kind of client group `group`: the configured kind, then the next ones in turn."""
    cl = cfg.continual
    if cl.drift_groups <= 1:
        return cl.drift
    kinds = list(DRIFT_CYCLE)
    if cl.drift not in kinds:  # permutation: every group permutes
        return cl.drift
    return kinds[(kinds.index(cl.drift) + group) % len(kinds)]


def drift_level(cfg: ExperimentConfig, task: int) -> float:
    """Drift strength of `task`: 0 for the first task, growing linearly to drift-strength."""
    t = cfg.continual.num_tasks
    return 0.0 if t <= 1 else cfg.continual.drift_strength * task / (t - 1)


def task_examples(
    cfg: ExperimentConfig, labels: np.ndarray, task: int, num_classes: int
) -> np.ndarray:
    """Sorted training indices into `labels` that belong to `task`.

    `num_classes` is the dataset's class count (not the largest label seen: a subset may
    miss one); the caller passes it so the schedule stays pure (no dataset loading).

    Domain-incremental chunks come from one permutation seeded by `seed` (the same for
    every task), so the tasks' examples are disjoint.
    """
    cl = cfg.continual
    if cl.scenario in SPLIT_SCENARIOS:
        groups = class_groups(num_classes, cl.num_tasks)
        return np.flatnonzero(np.isin(labels, groups[task])).astype(np.int64)
    order = generator(cfg.federation.seed, Tag.TASK_ORDER).permutation(len(labels))
    return np.sort(np.array_split(order, cl.num_tasks)[task]).astype(np.int64)


def task_test_examples(
    cfg: ExperimentConfig, labels: np.ndarray, task: int, num_classes: int
) -> np.ndarray:
    """Test indices of `task`: its classes (class-/task-incremental) or all (domain-incremental)."""
    if cfg.continual.scenario in SPLIT_SCENARIOS:
        return task_examples(cfg, labels, task, num_classes)
    return np.arange(len(labels), dtype=np.int64)


def task_partition(
    cfg: ExperimentConfig,
    labels: np.ndarray,
    task: int,
    num_classes: int,
    owners: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Indices into `labels` of each client's share of `task` (the configured partitioner;
    under `natural`, each client's own examples of the task, `owners` naming the client)."""
    d = cfg.data
    idx = task_examples(cfg, labels, task, num_classes)
    seed = cfg.federation.seed * TASK_SEED + task + 1
    who = None if owners is None else owners[idx]
    parts = partition_as_configured(
        d, labels[idx], cfg.federation.num_clients, seed, owners=who, settings=cfg.plugin
    )
    return [idx[p] for p in parts]
