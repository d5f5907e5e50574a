"""Local evaluation on the fake grid: its own schedule, its fields in the row, held-out
clients never asked to train, and central DP withholding what clients' data decided."""

from __future__ import annotations

import pytest
from fake_grid import FakeClients, eval_metrics
from flwr.app import MessageType

import strategies  # noqa: F401  (registers the strategy names)
from learning.config import ExperimentConfig
from learning.config_personal import holdout_count
from learning.errors import ConfigError
from learning.local_split import holdout_set
from server.pipeline.local_eval import FIELDS, local_metrics

BASE = {"model": "small-cnn", "num-clients": 20, "clients-per-round": 5, "rounds": 4, "seed": 3}


def _evaluate(weights):
    return 0.5, 0.25


def _run(tmp_path, **extra):
    from server.loop import run_rounds

    crash = extra.pop("crash", ())
    cfg = ExperimentConfig.from_flat({**BASE, **extra})
    grid = FakeClients(4, crash=list(crash))
    result = run_rounds(grid, cfg, _evaluate, 4, run_dir=tmp_path)
    return cfg, grid, result


def _kind(grid, kind):
    return [m for m in grid.seen if m.metadata.message_type == kind]


def test_held_out_clients_never_train_and_are_evaluated_as_new(tmp_path):
    cfg, grid, result = _run(
        tmp_path,
        **{"local-eval": True, "holdout-clients": 0.25, "local-eval-every": 2, "max-retries": 2},
    )
    held = holdout_set(3, 20, holdout_count(20, 0.25))
    assert len(held) == 5
    trained = {int(m.content["config"]["partition-id"]) for m in _kind(grid, MessageType.TRAIN)}
    assert trained and not trained & held  # no held-out client was ever sent a train message
    evaluated = _kind(grid, MessageType.EVALUATE)
    # rounds 2 and 4 (every 2, and the last): every client, training and held out
    assert sorted({int(m.content["config"]["server-round"]) for m in evaluated}) == [2, 4]
    assert len(evaluated) == 2 * 20
    assert all("local-eval" in m.content["config"] for m in evaluated)  # not a default
    rows = result.rows
    assert rows[0]["personalised_accuracy"] is None and rows[0]["accuracy"] == 0.25
    want = local_metrics(
        [(float(eval_metrics(p, 4)["eval-accuracy"]), 20 + p) for p in range(20) if p not in held],
        [(float(eval_metrics(p, 4)["eval-accuracy"]), 20 + p) for p in sorted(held)],
    )
    assert {k: rows[3][k] for k in FIELDS} == want
    keys = list(rows[3])  # right after the central evaluation's fields
    assert keys[: 3 + len(FIELDS)] == ["round", "accuracy", "loss", *FIELDS]


def test_top_ups_never_draw_a_held_out_client(tmp_path):
    # half the clients crash every round, so every round tops up (max-retries 3)
    crash = [(p, r) for p in range(0, 20, 2) for r in range(1, 5)]
    _, grid, result = _run(
        tmp_path,
        **{"local-eval": True, "holdout-clients": 0.25, "max-retries": 3, "min-clients": 5},
        crash=crash,
    )
    held = holdout_set(3, 20, holdout_count(20, 0.25))
    trained = [int(m.content["config"]["partition-id"]) for m in _kind(grid, MessageType.TRAIN)]
    assert len(trained) > 4 * 5  # the top-ups happened
    assert not set(trained) & held


def test_a_sample_of_training_clients_is_evaluated(tmp_path):
    _, grid, result = _run(tmp_path, **{"local-eval": True, "local-eval-clients": 6})
    per_round = {}
    for m in _kind(grid, MessageType.EVALUATE):
        rnd = int(m.content["config"]["server-round"])
        per_round.setdefault(rnd, []).append(int(m.content["config"]["partition-id"]))
    assert sorted(per_round) == [1, 2, 3, 4] and all(len(v) == 6 for v in per_round.values())
    assert len({tuple(v) for v in per_round.values()}) > 1  # seeded per round
    assert result.rows[-1]["local_eval_clients"] == 6


def test_off_by_default_no_field_and_no_evaluate_message(tmp_path):
    _, grid, result = _run(tmp_path)
    assert not _kind(grid, MessageType.EVALUATE)
    assert not set(FIELDS) & set(result.rows[-1])


def test_central_dp_withholds_the_clients_numbers(tmp_path):
    dp = {
        "dp": "central",
        "num-clients": 200,
        "clients-per-round": 20,
        "rounds": 2,
        "delta": 1e-3,
        "privacy-seed": 11,
        "local-eval": True,
        "local-eval-clients": 10,
    }
    _, _, result = _run(tmp_path / "a", **dp)
    assert not set(FIELDS) & set(result.rows[-1])  # not on release.py's allowlist
    _, _, diag = _run(tmp_path / "b", **dp, **{"operator-diagnostics": True})
    assert diag.rows[-1]["personalised_accuracy"] is not None
    assert set(FIELDS) <= set(diag.rows[-1]["outside_epsilon"])


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"strategy": "fedper"}, "set local-eval = true"),
        ({"holdout-clients": 0.2}, "holdout-clients needs local-eval"),
        ({"strategy": "fedper", "local-eval": True, "dp": "central"}, "cannot be combined"),
        ({"strategy": "ditto", "local-eval": True, "secure-aggregation": True}, "cannot be"),
        (
            {"local-eval": True, "holdout-clients": 0.2, "dp": "central", "delta": 1e-3},
            "central DP with holdout-clients",
        ),
        (
            {"local-eval": True, "scenario": "class-incremental", "num-tasks": 2},
            "continual scenarios",
        ),
        ({"local-eval": True, "strategy": "fedasync"}, "asynchronous"),
        ({"local-eval": True, "secure-aggregation": True}, "SecAgg"),
        ({"local-eval": True, "holdout-clients": 0.9}, "clients that train"),
    ],
)
def test_combinations_refused_in_one_line(extra, says):
    with pytest.raises(ConfigError, match=says) as err:
        ExperimentConfig.from_flat({**BASE, **extra})
    assert "\n" not in str(err.value)


def test_malformed_or_unasked_answers_count_as_failures():
    from flwr.app import Message, MetricRecord, RecordDict

    from server.pipeline.local_eval import LocalEvaluator

    class Odd(FakeClients):
        def send_and_receive(self, messages, timeout=None):
            out = []
            for i, msg in enumerate(messages):
                pid = int(msg.content["config"]["partition-id"])
                metrics = {
                    0: eval_metrics(pid, 1),
                    1: MetricRecord({"num-examples": 5, "partition-id": pid}),  # no accuracy
                    2: eval_metrics(pid + 100, 1),  # a client nobody asked
                    3: MetricRecord({**eval_metrics(pid, 1), "eval-accuracy": 7.0}),
                }[i % 4]
                out.append(Message(RecordDict({"metrics": metrics}), reply_to=msg))
            return out

    cfg = ExperimentConfig.from_flat({**BASE, "num-clients": 8, "local-eval": True})
    ev = LocalEvaluator(cfg, Odd(2), {}, frozenset())
    from flwr.app import ArrayRecord

    row = ev(1, ArrayRecord([]))
    assert row["local_eval_clients"] == 2 and row["local_eval_failures"] == 6
    assert row["personalised_accuracy"] == pytest.approx((0.01 + 0.41) / 2)


def test_personalised_methods_train_one_message_per_client_and_say_why(caplog):
    from server.pipeline.setup import pooling_for

    cfg = ExperimentConfig.from_flat(
        {**BASE, "strategy": "fedper", "local-eval": True, "clients-per-message": 4}
    )
    assert pooling_for(cfg) is None
    plain = ExperimentConfig.from_flat({**BASE, "local-eval": True, "clients-per-message": 4})
    assert pooling_for(plain) is not None  # fedavg with local-eval still pools its training
