"""The personalised methods' client halves with real Keras training on a toy task: what
is sent, what is kept on disk, what is tested; and the layer roles of models."""

from __future__ import annotations

import numpy as np
import pytest

import strategies  # noqa: F401  (registers the strategy names)
from clients.personal import _load, evaluation_model, local_step, roles_of, train_round
from learning.config import ExperimentConfig
from learning.errors import ConfigError
from learning.personal_layers import layer_roles
from learning.training import LocalTrainConfig, get_trainer
from learning.warm_start import initial_weights
from strategies.personalised import apfl_mix

pytestmark = pytest.mark.tf
SHAPE, K = (8, 8, 1), 3
LTC = LocalTrainConfig(epochs=1, batch_size=10, lr=0.1)


def _toy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).astype(np.int64)
    x = rng.normal(0, 0.1, (n, *SHAPE)).astype(np.float32)
    x[np.arange(n), y, y, 0] += 3.0
    return x, y


def _cfg(tmp_path, method: str, **extra) -> ExperimentConfig:
    flat = {"strategy": method, "local-eval": True, "out-dir": str(tmp_path), **extra}
    return ExperimentConfig.from_flat(flat)


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_layer_roles_head_by_name_or_last_layer_and_batch_norm():
    import keras

    mlp = get_trainer("mlp", SHAPE, K)
    roles = roles_of(mlp)
    assert roles.head == (False,) * 4 + (True, True)  # no layer named head*: the last one
    assert roles.bn == (False,) * 6 and roles.trainable == tuple(range(6))
    bn = layer_roles(get_trainer("cnn-bn", SHAPE, K).model)
    assert sum(bn.bn) == 12  # three BN layers: gamma, beta, moving mean and variance
    assert len(bn.trainable) == len(bn.bn) - 6  # moving statistics are not trained
    inp = keras.Input(SHAPE)
    inner = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4, name="head_a")])
    out = keras.layers.Dense(K, activation="softmax", name="classifier")(inner(inp))
    user = layer_roles(keras.Model(inp, out))
    assert user.head == (True, True, False, False)  # named head, inside a nested model


def test_frozen_variables_do_not_move():
    trainer = get_trainer("mlp", SHAPE, K)
    w0 = initial_weights("mlp", SHAPE, K, seed=1)
    x, y = _toy(60, 0)
    frozen = [True, True, False, False, True, True]
    r = trainer.train(
        w0,
        x,
        y,
        LocalTrainConfig(epochs=2, lr=0.1, momentum=0.9),
        np.random.default_rng(0),
        frozen=frozen,
    )
    for f, a, b in zip(frozen, r.weights, w0, strict=True):
        assert np.array_equal(a, b) == f


@pytest.mark.parametrize("method", ["fedper", "fedrep"])
def test_head_methods_keep_the_head_and_send_the_body(tmp_path, method):
    cfg = _cfg(tmp_path, method, **{"fedrep-head-epochs": 2})
    trainer = get_trainer("mlp", SHAPE, K)
    w0 = initial_weights("mlp", SHAPE, K, seed=2)
    x, y = _toy(80, 1)
    sent, res = train_round(cfg, 4, 1, w0, trainer, x, y, LTC, np.random.default_rng(0))
    assert _same(sent[4:], w0[4:])  # the head goes back as received
    assert not np.array_equal(sent[0], w0[0])  # the body trained
    head = _load(cfg, 4, before_round=2)
    assert len(head) == 2 and not np.array_equal(head[0], w0[4])
    if method == "fedrep":  # head epochs, then the body epoch
        assert res.num_steps == 3 * 8
    tested = evaluation_model(cfg, 4, 1, w0, trainer, x, y, LTC)
    assert _same(tested, [*w0[:4], *head])  # the global body with its own head


def test_fedbn_keeps_batch_norm_local(tmp_path):
    cfg = _cfg(tmp_path, "fedbn")
    trainer = get_trainer("cnn-bn", SHAPE, K)
    roles = roles_of(trainer)
    w0 = initial_weights("cnn-bn", SHAPE, K, seed=3)
    x, y = _toy(40, 2)
    sent, _ = train_round(cfg, 0, 1, w0, trainer, x, y, LTC, np.random.default_rng(0))
    for is_bn, a, b in zip(roles.bn, sent, w0, strict=True):
        assert np.array_equal(a, b) == is_bn  # BN back as received, the rest trained
    kept = _load(cfg, 0, before_round=2)
    assert len(kept) == 12 and np.any(kept[2] != 0)  # the moving mean moved


def test_ditto_and_apfl_train_the_global_model_as_fedavg_and_keep_their_own(tmp_path):
    trainer = get_trainer("mlp", SHAPE, K)
    w0 = initial_weights("mlp", SHAPE, K, seed=4)
    x, y = _toy(80, 3)
    plain = trainer.train(w0, x, y, LTC, np.random.default_rng(0)).weights

    def dist(v):
        return sum(float(np.sum((a - b) ** 2)) for a, b in zip(v, w0, strict=True))

    far = {}
    for lam in (0.0, 5.0):
        cfg = _cfg(tmp_path / f"d{lam}", "ditto", **{"ditto-lambda": lam, "ditto-epochs": 2})
        sent, _ = train_round(cfg, 1, 1, w0, trainer, x, y, LTC, np.random.default_rng(0))
        assert _same(sent, plain)  # the shared update is FedAvg's
        v = _load(cfg, 1, before_round=2)
        far[lam] = dist(v)
        assert _same(evaluation_model(cfg, 1, 1, w0, trainer, x, y, LTC), v)
    assert far[5.0] < far[0.0]  # lambda pulls the personal model towards the global
    cfg = _cfg(tmp_path / "apfl", "apfl", **{"apfl-alpha": 0.25})
    sent, _ = train_round(cfg, 1, 1, w0, trainer, x, y, LTC, np.random.default_rng(0))
    assert _same(sent, plain)
    v = _load(cfg, 1, before_round=2)
    tested = evaluation_model(cfg, 1, 1, w0, trainer, x, y, LTC)
    for a, b in zip(tested, apfl_mix(v, w0, 0.25), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_local_sends_nothing_new_and_a_new_client_keeps_nothing(tmp_path):
    trainer = get_trainer("mlp", SHAPE, K)
    w0 = initial_weights("mlp", SHAPE, K, seed=5)
    x, y = _toy(60, 4)
    cfg = _cfg(tmp_path, "local")
    sent, _ = train_round(cfg, 2, 1, w0, trainer, x, y, LTC, np.random.default_rng(0))
    assert _same(sent, w0)
    # a client with no state (held out) is personalised as its first round would be,
    # and nothing is written for it
    tested = evaluation_model(cfg, 9, 3, w0, trainer, x, y, LTC)
    assert not _same(tested, w0) and _load(cfg, 9, before_round=99) is None
    ft = _cfg(tmp_path / "ft", "fedavg-ft", **{"finetune-epochs": 2})
    assert not _same(evaluation_model(ft, 9, 3, w0, trainer, x, y, LTC), w0)
    plain = _cfg(tmp_path / "avg", "fedavg")
    assert _same(evaluation_model(plain, 9, 3, w0, trainer, x, y, LTC), w0)
    rngs = (np.random.default_rng(0), np.random.default_rng(1))
    assert len(local_step(cfg, trainer, w0, None, x, y, LTC, rngs)[2]) == len(w0)


def test_the_client_app_trains_on_the_local_train_split_and_tests_on_its_test(tmp_path):
    """The real handlers, in-process: a FedPer client trains on 75% of its shard, keeps
    its head, and its evaluate reply is scalars about its 25%."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from helpers import context

    from clients.app import app
    from learning.federated_data import client_shard, client_split

    flat = {
        "num-clients": 4,
        "clients-per-round": 2,
        "train-subset": 400,
        "test-subset": 100,
        "model": "mlp",
        "partition": "iid",
        "strategy": "fedper",
        "local-eval": True,
        "out-dir": str(tmp_path),
    }
    cfg = ExperimentConfig.from_flat(flat)
    w0 = initial_weights("mlp", (28, 28, 1), 10, seed=0)

    def message(kind, rnd):
        config = ConfigRecord({**cfg.to_flat(), "partition-id": 1, "server-round": rnd})
        content = RecordDict({"arrays": ArrayRecord(w0), "config": config})
        return Message(content=content, dst_node_id=7, message_type=kind)

    reply = app(message(MessageType.TRAIN, 1), context(7))
    (_, ytr), (_, yte) = client_split(cfg, 1)
    assert reply.content["metrics"]["num-examples"] == len(ytr) == 75
    assert len(ytr) + len(yte) == len(client_shard(cfg, 1)[1])
    sent = reply.content["arrays"].to_numpy_ndarrays()
    assert _same(sent[-2:], w0[-2:]) and not np.array_equal(sent[0], w0[0])
    got = app(message(MessageType.EVALUATE, 1), context(7))
    assert set(got.content.keys()) == {"metrics"}
    m = got.content["metrics"]
    assert m["num-examples"] == len(yte) == 25 and 0.0 <= m["eval-accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("strategy", "model", "fragment"),
    [
        ("fedbn", "small-cnn", "has none"),
        ("fedrep", "cnn-bn", "would not stay frozen"),
        ("apfl", "cnn-bn", "mix as the method assumes"),
    ],
)
def test_a_method_the_model_cannot_serve_is_one_line_before_round_1(strategy, model, fragment):
    from simulations.run_output import preflight

    cfg = ExperimentConfig.from_flat(
        {"strategy": strategy, "model": model, "local-eval": True, "num-clients": 10}
    )
    with pytest.raises(ConfigError) as info:
        preflight(cfg)
    assert fragment in str(info.value) and "\n" not in str(info.value)
