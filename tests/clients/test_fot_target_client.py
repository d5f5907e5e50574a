"""FOT and TARGET on the client: what they take from the server's message, what they
send back (through the weights-only mod), and that they keep nothing on the client."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from helpers import context

from clients.app import app
from learning.config import build_config
from learning.errors import ConfigError
from learning.warm_start import initial_weights

pytestmark = pytest.mark.tf

CL = [
    "num-clients=4",
    "clients-per-round=2",
    "train-subset=2000",
    "test-subset=100",
    'partition="iid"',
    'scenario="domain-incremental"',
    "num-tasks=2",
    "rounds=4",
    "fot-examples=50",
    "local-epochs=1",
]


def _message(cfg, model: str, rnd: int, **records) -> Message:
    weights = initial_weights(model, (28, 28, 1), 10, seed=0)
    config = ConfigRecord({**cfg.to_flat(), "partition-id": 1, "server-round": rnd})
    content = RecordDict({"arrays": ArrayRecord(weights), "config": config, **records})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def test_fot_reports_grams_at_a_task_end_only_and_projects_with_the_basis(tmp_path):
    cfg = build_config(None, [*CL, 'model="mlp"', 'cl-method="fot"', f'out-dir="{tmp_path}"'])
    mid = app(_message(cfg, "mlp", rnd=1), context(7))  # task 0, not its last round
    assert not mid.has_error() and set(mid.content.keys()) == {"arrays", "metrics"}
    end = app(_message(cfg, "mlp", rnd=2), context(7))  # last round of task 0
    assert not end.has_error()
    gram = end.content["fot-gram"]
    assert list(gram.keys()) == ["0", "2", "4"]
    g0 = gram["0"].numpy()
    assert g0.shape == (785, 785) and np.allclose(g0, g0.T) and g0[-1, -1] == pytest.approx(1)
    # with a basis holding every input direction of the first layer, its update is zero
    w0 = initial_weights("mlp", (28, 28, 1), 10, seed=0)
    full = {"0": np.eye(785, dtype=np.float32), "2": np.zeros((201, 0), np.float32)}
    full["4"] = np.zeros((201, 0), np.float32)
    basis = ArrayRecord({k: Array(v) for k, v in full.items()})
    reply = app(_message(cfg, "mlp", rnd=3, **{"fot-basis": basis}), context(7))
    got = reply.content["arrays"].to_numpy_ndarrays()
    np.testing.assert_allclose(got[0], w0[0], atol=1e-6)
    np.testing.assert_allclose(got[1], w0[1], atol=1e-6)
    assert np.abs(got[2] - w0[2]).max() > 1e-4  # the next layer still learns
    assert not (tmp_path / "continual-state").exists()  # nothing kept on the client


def test_target_distils_the_synthetic_set_and_keeps_nothing(tmp_path):
    cfg = build_config(None, [*CL, 'model="mlp-bn"', 'cl-method="target"', f'out-dir="{tmp_path}"'])
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype(np.float32)
    soft = np.full((16, 10), 0.1, np.float32)
    synth = ArrayRecord({"x": Array(x), "soft": Array(soft)})
    plain = app(_message(cfg, "mlp-bn", rnd=3), context(7))
    kd = app(_message(cfg, "mlp-bn", rnd=3, **{"target-synthetic": synth}), context(7))
    assert set(kd.content.keys()) == {"arrays", "metrics"}
    a, b = (r.content["arrays"].to_numpy_ndarrays() for r in (plain, kd))
    assert any(np.abs(u - v).max() > 1e-5 for u, v in zip(a, b, strict=True))
    assert not (tmp_path / "continual-state").exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (['cl-method="fot"', 'dp="central"'], "no DP accounting covers them"),
        (['cl-method="fot"', 'dp="local"'], "no DP accounting covers them"),
        (
            ['cl-method="target"', 'strategy="fedbuff"', "concurrency=2", "fedbuff-k=2"],
            "needs synchronous",
        ),
        (['cl-method="fot"', "task-seconds=10"], "changes tasks by rounds only"),
        (['cl-method="target"', "secure-aggregation=true", "clients-per-round=3"], "not supported"),
    ],
)
def test_refused_combinations_are_one_line(extra, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        build_config(None, [*CL, *extra])
    assert "\n" not in str(info.value)


def test_models_the_methods_cannot_use_are_refused_in_one_line():
    from learning.continual_checks import check_continual_model
    from learning.models import build_model

    for method, model, fragment in [
        ("fot", "mlp-bn", "dense layers only"),
        ("fot", "small-cnn", "dense layers only"),
        ("target", "mlp", "no batch norm"),
    ]:
        with pytest.raises(ConfigError, match=fragment) as info:
            check_continual_model(method, build_model(model, (28, 28, 1), 10), model)
        assert "\n" not in str(info.value)
    check_continual_model("target", build_model("mlp-bn", (28, 28, 1), 10), "mlp-bn")
