"""The per-process trainer: traced once, reused across clients, actually learns."""

from __future__ import annotations

import numpy as np
import pytest

from learning.training import LocalTrainConfig, get_trainer
from learning.warm_start import initial_weights

pytestmark = pytest.mark.tf


def _toy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int64)
    x = rng.normal(0, 0.1, (n, 8, 8, 1)).astype(np.float32)
    x[np.arange(n), y, y, 0] += 3.0  # a pixel that gives the label away
    return x, y


def test_trainer_is_reused_and_traced_once():
    trainer = get_trainer("mlp", (8, 8, 1), 3)
    assert get_trainer("mlp", (8, 8, 1), 3) is trainer
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=1)
    cfg = LocalTrainConfig(epochs=1, batch_size=16, lr=0.1)
    before = trainer.trace_count
    model_id = id(trainer.model)
    for client, n in enumerate([40, 57, 33]):  # different shard sizes and last-batch sizes
        x, y = _toy(n, client)
        trainer.train(w0, x, y, cfg, np.random.default_rng(client))
    assert trainer.trace_count - before <= 1
    assert id(trainer.model) == model_id


def test_training_reduces_loss_and_is_deterministic():
    trainer = get_trainer("mlp", (8, 8, 1), 3)
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=2)
    x, y = _toy(200, 7)
    cfg = LocalTrainConfig(epochs=3, batch_size=20, lr=0.1, momentum=0.5)
    loss0, _ = trainer.evaluate(w0, x, y)
    r1 = trainer.train(w0, x, y, cfg, np.random.default_rng(0))
    r2 = trainer.train(w0, x, y, cfg, np.random.default_rng(0))
    loss1, acc1 = trainer.evaluate(r1.weights, x, y)
    assert loss1 < loss0 and acc1 > 0.9
    assert r1.num_examples == 200 and r1.num_steps == 30
    for a, b in zip(r1.weights, r2.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_proximal_term_keeps_weights_closer_to_global():
    trainer = get_trainer("mlp", (8, 8, 1), 3)
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=3)
    x, y = _toy(100, 1)

    def dist(mu: float) -> float:
        cfg = LocalTrainConfig(epochs=2, batch_size=10, lr=0.1, proximal_mu=mu)
        r = trainer.train(w0, x, y, cfg, np.random.default_rng(0))
        return float(sum(np.sum((a - b) ** 2) for a, b in zip(r.weights, w0, strict=True)))

    assert dist(10.0) < dist(0.0)


def test_initial_weights_are_seeded():
    a = initial_weights("lenet", (28, 28, 1), 10, seed=5)
    b = initial_weights("lenet", (28, 28, 1), 10, seed=5)
    c = initial_weights("lenet", (28, 28, 1), 10, seed=6)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_continual_terms_trace_once_per_mode_and_act():
    from learning.training import ContinualInputs

    trainer = get_trainer("mlp", (8, 8, 1), 3)
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=4)
    anchor = initial_weights("mlp", (8, 8, 1), 3, seed=9)

    def dist(a, b) -> float:
        return float(sum(np.sum((p - q) ** 2) for p, q in zip(a, b, strict=True)))

    x, y = _toy(120, 3)
    fisher = trainer.fisher_diagonal(anchor, x[:50], y[:50])
    assert all((f >= 0).all() for f in fisher) and sum(float(f.sum()) for f in fisher) > 0
    soft = trainer.soft_targets(anchor, x, 2.0)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    modes = {
        "ewc": lambda k: ContinualInputs(fisher=[f * k for f in fisher], anchor=anchor),
        "lwf": lambda k: ContinualInputs(soft_targets=np.roll(soft, k, axis=0)),
        "replay": lambda k: ContinualInputs(buffer_x=x[: 20 + k], buffer_y=y[: 20 + k]),
    }
    results = {}
    for name, make in modes.items():
        cfg = LocalTrainConfig(epochs=1, batch_size=16, lr=0.1, ewc_lambda=1e4, lwf_alpha=1.0)
        before = trainer.trace_count
        for k in (1, 2, 3):  # new values each client: no retrace after the first
            xc, yc = _toy(40 + 7 * k, k)
            r = trainer.train(w0, xc, yc, cfg, np.random.default_rng(k), continual=make(k))
        assert trainer.trace_count - before <= 1, name
        results[name] = r.weights
    plain = trainer.train(
        w0,
        *_toy(61, 3),
        LocalTrainConfig(epochs=1, batch_size=16, lr=0.1),
        np.random.default_rng(3),
    ).weights
    # EWC's pull (huge lambda) keeps the update nearer to the anchor than plain training
    assert dist(results["ewc"], anchor) < dist(plain, anchor)


def test_lwf_pulls_towards_the_teacher_and_replay_fits_the_buffer():
    """Each term does its job, measured against plain training on the same data and seed:
    LwF's outputs stay nearer the teacher's, replay fits the buffer's (conflicting) labels."""
    from learning.training import ContinualInputs

    trainer = get_trainer("mlp", (8, 8, 1), 3)
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=4)
    teacher = initial_weights("mlp", (8, 8, 1), 3, seed=9)
    x, y = _toy(80, 5)
    cfg = LocalTrainConfig(epochs=2, batch_size=16, lr=0.1, lwf_alpha=5.0)

    def run(continual=None):
        return trainer.train(w0, x, y, cfg, np.random.default_rng(1), continual=continual).weights

    plain = run()
    soft = trainer.soft_targets(teacher, x, cfg.lwf_temperature)

    def to_teacher(weights) -> float:  # cross-entropy of tempered outputs to the teacher's
        return float(-(soft * np.log(trainer.soft_targets(weights, x, cfg.lwf_temperature))).sum())

    assert to_teacher(run(ContinualInputs(soft_targets=soft))) < 0.95 * to_teacher(plain)
    bx, by = _toy(40, 50)
    by = (by + 1) % 3  # labels the shard contradicts: only replay learns them
    replayed = run(ContinualInputs(buffer_x=bx, buffer_y=by))
    assert trainer.evaluate(replayed, bx, by)[0] < 0.8 * trainer.evaluate(plain, bx, by)[0]
