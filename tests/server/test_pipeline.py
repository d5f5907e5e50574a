"""The round pipeline's stages on the fake grid, in milliseconds (no Ray, no training)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_grid import FakeClients
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from learning.config import ExperimentConfig
from server.pipeline.aggregate import Aggregator, collude, ordered
from server.pipeline.collect import Cohort, collect
from server.pipeline.dispatch import stamp
from server.pipeline.evaluate import RoundEvaluator
from server.pipeline.sampling_policy import PoissonSampling, SeededSampling, sampling_policy
from server.pipeline.scheduler import SyncScheduler
from server.pipeline.setup import build_stages
from server.pipeline.updates import ClientUpdate, validity
from server.sampling import sample_clients

SHAPES = [(2, 2), (3,)]


def _reply(pid: int, node: int = 1, arrays=None, examples: int = 5, extra: bool = False):
    ask = Message(
        RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type=MessageType.TRAIN
    )
    arrays = arrays or [np.full(s, float(pid), np.float32) for s in SHAPES]
    content = RecordDict(
        {
            "arrays": ArrayRecord(arrays),
            "metrics": MetricRecord({"num-examples": examples, "partition-id": pid}),
        }
    )
    if extra:
        content["scaffold-dc"] = ArrayRecord([np.ones(3, np.float32)])
    return Message(content, reply_to=ask)  # from node `node`


def _cfg(**extra) -> ExperimentConfig:
    flat = {"model": "small-cnn", "num-clients": 20, "clients-per-round": 5, "seed": 3}
    return ExperimentConfig.from_flat({**flat, **extra})


def test_an_update_is_read_once_frozen_and_rebuilt_into_fresh_messages():
    msg = _reply(4, extra=True)
    u = ClientUpdate.from_reply(msg)
    assert (u.partition_id, u.node_id, u.num_examples) == (4, 1, 5)
    assert all(not a.flags.writeable for a in u.arrays) and set(u.extras) == {"scaffold-dc"}
    assert u.nbytes == 4 * (4 + 3 + 3)
    with pytest.raises(AttributeError):
        u.partition_id = 5  # type: ignore[misc]
    a, b = u.to_message(), u.to_message()
    a.content.pop("arrays")  # what FedMedian does to the replies it aggregates
    assert "arrays" in b.content and "arrays" in msg.content
    assert list(b.content.keys()) == list(msg.content.keys())
    assert list(b.content["arrays"].keys()) == list(msg.content["arrays"].keys())
    np.testing.assert_array_equal(b.content["arrays"].to_numpy_ndarrays()[0], u.arrays[0])
    assert b.content["metrics"] is not msg.content["metrics"]


def test_validity_refuses_missing_misshaped_and_nonfinite_updates():
    assert validity(ClientUpdate.from_reply(_reply(1)), SHAPES) is None
    bad_shape = _reply(1, arrays=[np.zeros((2, 2), np.float32)])
    assert "shapes" in validity(ClientUpdate.from_reply(bad_shape), SHAPES)
    nan = _reply(1, arrays=[np.full(s, np.nan, np.float32) for s in SHAPES])
    assert validity(ClientUpdate.from_reply(nan), SHAPES) == "not finite"
    ask = _reply(1)
    metrics_only = Message(RecordDict({"metrics": MetricRecord({"x": 1})}), reply_to=ask)
    assert validity(ClientUpdate.from_reply(metrics_only), SHAPES) == "no arrays or metrics"


def test_updates_are_ordered_by_partition_then_node_stably():
    us = [ClientUpdate.from_reply(_reply(p, n)) for p, n in [(3, 1), (1, 2), (1, 1), (3, 1)]]
    got = ordered(us)
    assert [u.order for u in got] == [(1, 1), (1, 2), (3, 1), (3, 1)]
    assert got[2] is us[0] and got[3] is us[3]


def test_sampling_policies():
    seeded = SeededSampling(3, 20, 5)
    assert seeded.draw(2) == sample_clients(3, 2, 20, 5)
    tried = set(seeded.draw(2))
    more = seeded.top_up(2, 1, tried, 3)
    assert len(more) == 3 and not tried & set(more)
    assert more == seeded.top_up(2, 1, tried, 3)
    poisson = PoissonSampling(key=123, num_clients=200, rate=0.1)
    assert not poisson.tops_up and poisson.top_up(1, 1, set(), 5) == []
    assert poisson.draw(1) == poisson.draw(1) and "123" not in repr(poisson)
    assert isinstance(sampling_policy(_cfg().federation, False, None), SeededSampling)


def test_stamp_deals_clients_over_slots_without_touching_the_strategy_messages():
    cfg = ConfigRecord({"lr": 0.1})
    slots = [
        Message(RecordDict({"config": cfg}), dst_node_id=n, message_type=MessageType.TRAIN)
        for n in (2, 1)
    ]
    out = stamp(slots, [7, 8, 9], 4)
    assert [m.metadata.dst_node_id for m in out] == [1, 2, 1]
    assert [int(m.content["config"]["partition-id"]) for m in out] == [7, 8, 9]
    assert dict(cfg) == {"lr": 0.1}  # the strategy's record is not mutated


def _scheduler(cfg, grid, slots=4):
    stages = build_stages(grid, cfg, slots, None)
    evaluator = RoundEvaluator(lambda w: (0.0, 0.0), 1, cfg.federation.rounds)
    return SyncScheduler(grid, stages, evaluator, observers=None), stages


def test_a_short_round_tops_up_only_the_missing_clients():
    cfg = _cfg(**{"min-clients": 5, "max-retries": 3})
    first = sample_clients(3, 1, 20, 5)
    grid = FakeClients(4, crash={(first[0], 1), (first[1], 1)})
    sched, stages = _scheduler(cfg, grid)
    cohort = sched.gather(1, ArrayRecord(stages.weights))
    assert cohort.retries == 1 and cohort.failures == 2 and len(cohort.valid) == 5
    assert len(cohort.tried) == 7 and set(first) <= cohort.tried
    asked = [int(m.content["config"]["partition-id"]) for m in grid.seen]
    assert asked[:5] == first and len(asked) == 7 and not set(asked[5:]) & set(first)


def test_skip_and_retry_limits():
    first = sample_clients(3, 1, 20, 5)
    crash = {(p, 1) for p in first[:3]}
    skip = _cfg(**{"min-clients": 5, "too-few": "skip"})
    sched, stages = _scheduler(skip, FakeClients(4, crash=crash))
    cohort = sched.gather(1, ArrayRecord(stages.weights))
    assert cohort.retries == 0 and not cohort.enough and len(cohort.valid) == 2
    everyone = {(p, 1) for p in range(20)}
    capped = _cfg(**{"min-clients": 5, "max-retries": 2})
    sched, stages = _scheduler(capped, FakeClients(4, crash=everyone))
    cohort = sched.gather(1, ArrayRecord(stages.weights))
    assert cohort.retries == 2 and cohort.valid == [] and cohort.failures == len(cohort.tried)
    outcome = stages.aggregate(1, [], cohort, stages.weights)
    assert outcome.arrays is None and "too few" in outcome.skip_reason


def test_refused_updates_are_counted_and_kept_apart():
    cfg = _cfg()
    grid = FakeClients(4, nan={(p, 0) for p in range(20) if p % 2}, drop={(0, 0), (2, 0)})
    stages = build_stages(grid, cfg, 4, None)
    messages = stages.dispatch(1, ArrayRecord(stages.weights), [0, 1, 2, 3, 4])
    cohort = Cohort()
    cohort.add(collect(grid, messages, 10.0), stages.shapes)
    assert cohort.failures == 2 and cohort.rejected == 2
    assert [u.partition_id for u in cohort.valid] == [4]
    assert {u.refused for u in cohort.answered if u.refused} == {"not finite"}


def test_collusion_rewrites_only_the_colluders_and_leaves_the_updates_alone():
    from clients.attacks import is_malicious

    cfg = _cfg(attack="alie", **{"malicious-fraction": 0.3})
    x = [np.zeros(s, np.float32) for s in SHAPES]
    us = [
        ClientUpdate.from_reply(_reply(p, arrays=[np.full(s, p, np.float32) for s in SHAPES]))
        for p in range(10)
    ]
    out = collude(cfg, us, x)
    bad = [is_malicious(cfg, p) for p in range(10)]
    assert any(bad) and not all(bad)
    for p, (u, v) in enumerate(zip(us, out, strict=True)):
        assert (v is u) != bad[p]
        assert float(u.arrays[0][0, 0]) == p  # the received update is unchanged
    assert len({float(v.arrays[0][0, 0]) for p, v in enumerate(out) if bad[p]}) == 1


def test_a_round_below_the_defence_bound_is_skipped():
    cfg = _cfg(strategy="krum", **{"num-malicious": 1})
    grid = FakeClients(4)
    stages = build_stages(grid, cfg, 4, None)
    us = [ClientUpdate.from_reply(_reply(p, arrays=list(stages.weights))) for p in range(4)]
    cohort = Cohort(valid=us, enough=True)
    agg = stages.aggregate
    assert isinstance(agg, Aggregator)
    outcome = agg(2, us, cohort, stages.weights)
    assert outcome.arrays is None and "krum" in outcome.skip_reason


def test_evaluation_is_due_every_n_rounds_at_the_end_and_at_task_boundaries():
    class Tasks:
        def must_evaluate(self, r):
            return r == 3

        def __call__(self, r, w):
            return {"task": 1}

    ev = RoundEvaluator(lambda w: (0.5, 0.25), 2, 5, Tasks())
    assert [r for r in range(1, 6) if ev.due(r)] == [2, 3, 4, 5]
    assert ev(1, []) == {"accuracy": None, "loss": None}
    assert ev(3, []) == {"accuracy": 0.25, "loss": 0.5, "task": 1}


def test_message_bytes_come_from_shapes_and_dtypes_as_numpy_counts_them():
    """nbytes sizes a message without deserialising its arrays (the clock charges
    these bytes to the links, so they must equal the arrays' own nbytes)."""
    from flwr.app import ArrayRecord, RecordDict

    from server.pipeline.dispatch import nbytes

    arrays = [
        np.zeros((3, 4), np.float32),
        np.ones(5, np.int64),
        np.array(2.5),
        np.zeros((0, 7), np.float16),
        np.zeros((2, 3, 4), np.uint8),
        np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]),  # structured: sized by unpacking
    ]
    content = RecordDict({"a": ArrayRecord(arrays[:2]), "b": ArrayRecord(arrays[2:])})
    assert nbytes(content) == sum(a.nbytes for a in arrays)
