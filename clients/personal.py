"""Client halves of the personalised methods: a round's local update with the client's
personal state, and the personalised model a local evaluation tests.

The update rules are strategies/personalised.py (pure NumPy); which arrays are head
or batch norm is learning/personal_layers.py. Personal state (a head, BN layers, a
whole personal model) lives in the client store under the run directory
(`personal-state/`, versioned per round like SCAFFOLD's), so an idle client costs no
memory and a resumed round sees the state it saw the first time. A client without
state yet (a held-out client, or one not sampled so far) is personalised at evaluation
the way its first round would, from the global model, and nothing is saved.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from clients.stateful import store_for
from learning.config import ExperimentConfig
from learning.personal_layers import LayerRoles, layer_roles
from learning.streams import Tag, generator
from learning.train_types import ContinualInputs, LocalTrainConfig, TrainResult
from strategies.personalised import (
    PERSONAL,
    apfl_lr,
    apfl_mix,
    apfl_unmix,
    fedrep_phases,
    frozen_for,
    merge,
    personal_part,
    shared_reply,
)

Arrays = list[np.ndarray]
SUBDIR = "personal-state"
_ROLES: dict[int, tuple[object, LayerRoles]] = {}


def roles_of(trainer) -> LayerRoles:
    """The trainer's model's layer roles (computed once per trainer)."""
    got = _ROLES.get(id(trainer))
    if got is None or got[0] is not trainer:
        got = (trainer, layer_roles(trainer.model))
        _ROLES[id(trainer)] = got
    return got[1]


def keeps_state(cfg: ExperimentConfig) -> bool:
    """Whether the run's method keeps per-client state (all but fedavg and fedavg-ft)."""
    return PERSONAL.get(cfg.strategy.strategy) is not None


def _load(cfg: ExperimentConfig, pid: int, before_round: int) -> Arrays | None:
    state = store_for(cfg, SUBDIR).load(pid, before_round=before_round)
    return [state[f"p{i}"] for i in range(len(state))] if state else None


def _save(cfg: ExperimentConfig, pid: int, rnd: int, state: Arrays) -> None:
    store_for(cfg, SUBDIR).save(pid, {f"p{i}": a for i, a in enumerate(state)}, server_round=rnd)


def _sum(first: TrainResult, last: TrainResult) -> TrainResult:
    """Two phases as one update: steps added, the last phase's loss and accuracy."""
    return dataclasses.replace(last, num_steps=first.num_steps + last.num_steps)


def local_step(
    cfg: ExperimentConfig,
    trainer,
    received: Arrays,
    state: Arrays | None,
    x: np.ndarray,
    y: np.ndarray,
    ltc: LocalTrainConfig,
    rngs: tuple[np.random.Generator, np.random.Generator],
) -> tuple[Arrays, TrainResult, Arrays]:
    """One round of the method on (x, y): (what the client sends, the shared update's
    training result, its new personal state). `rngs`: shuffling of the shared update
    and of the personal one."""
    method, p = cfg.strategy.strategy, cfg.personal
    roles = roles_of(trainer)
    kind = PERSONAL[method]
    if kind in ("all", "head", "bn"):
        mask = roles.mask(kind)
        start = merge(received, state, mask)
        if method != "fedrep":
            res = trainer.train(start, x, y, ltc, rngs[0])
        else:
            head = [roles.head[i] for i in roles.trainable]
            res = None
            for phase in fedrep_phases(p.fedrep_head_epochs, ltc.epochs):
                run = dataclasses.replace(ltc, epochs=phase.epochs)
                frozen = frozen_for(phase, head)
                out = trainer.train(start, x, y, run, rngs[0], frozen=frozen)
                res = out if res is None else _sum(res, out)
                start = out.weights
        new_state = personal_part(res.weights, mask)
        sent = list(received) if kind == "all" else shared_reply(res.weights, received, mask)
        return sent, res, new_state
    # ditto, apfl: the global model trains as FedAvg's does, the personal one beside it
    res = trainer.train(received, x, y, ltc, rngs[0])
    v = state if state is not None else [np.array(w) for w in received]
    if method == "ditto":
        run = dataclasses.replace(ltc, epochs=p.ditto_epochs, ewc_lambda=p.ditto_lambda)
        t = roles.trainable
        pull = ContinualInputs(
            fisher=[np.ones_like(received[i]) for i in t], anchor=[received[i] for i in t]
        )
        new_v = trainer.train(v, x, y, run, rngs[1], continual=pull).weights
    else:  # apfl: plain SGD on v_bar with w fixed at the new local w is APFL's step on v
        a = p.apfl_alpha
        run = dataclasses.replace(ltc, lr=apfl_lr(ltc.lr, a))
        u = trainer.train(apfl_mix(v, res.weights, a), x, y, run, rngs[1]).weights
        new_v = apfl_unmix(u, res.weights, a)
    return res.weights, res, new_v


def train_round(
    cfg: ExperimentConfig,
    pid: int,
    rnd: int,
    received: Arrays,
    trainer,
    x: np.ndarray,
    y: np.ndarray,
    ltc: LocalTrainConfig,
    rng: np.random.Generator,
) -> tuple[Arrays, TrainResult]:
    """A training round of a stateful method: load, update, save; (sent, result)."""
    state = _load(cfg, pid, before_round=rnd)
    rngs = (rng, generator(cfg.federation.seed, Tag.PERSONAL_TRAIN, rnd, pid))
    sent, res, new_state = local_step(cfg, trainer, received, state, x, y, ltc, rngs)
    if res.num_steps > 0:
        _save(cfg, pid, rnd, new_state)
    return sent, res


def personal_model(
    cfg: ExperimentConfig, roles: LayerRoles, received: Arrays, state: Arrays
) -> Arrays:
    """The model a client with `state` is tested with, given the global `received`."""
    kind = PERSONAL[cfg.strategy.strategy]
    if kind in ("head", "bn"):
        return merge(received, state, roles.mask(kind))
    if cfg.strategy.strategy == "apfl":
        return apfl_mix(state, received, cfg.personal.apfl_alpha)
    return list(state)  # local, ditto: the personal model itself


def evaluation_model(
    cfg: ExperimentConfig,
    pid: int,
    rnd: int,
    received: Arrays,
    trainer,
    x: np.ndarray,
    y: np.ndarray,
    ltc: LocalTrainConfig,
) -> Arrays:
    """What client `pid` is tested with after round `rnd`: fedavg (and any strategy
    that is not personalised) the global model; fedavg-ft the global model fine-tuned
    for finetune-epochs on (x, y); the others their personal model, a client without
    state personalised from the global model as its first round would (not saved)."""
    method, seed = cfg.strategy.strategy, cfg.federation.seed
    rng = generator(seed, Tag.NEW_CLIENT_TRAIN, rnd, pid)
    if method == "fedavg-ft":
        run = dataclasses.replace(ltc, epochs=cfg.personal.finetune_epochs)
        return trainer.train(received, x, y, run, rng).weights
    if not keeps_state(cfg):
        return received
    state = _load(cfg, pid, before_round=rnd + 1)
    if state is None:
        rngs = (rng, generator(seed, Tag.PERSONAL_TRAIN, rnd, pid))
        _, _, state = local_step(cfg, trainer, received, None, x, y, ltc, rngs)
    return personal_model(cfg, roles_of(trainer), received, state)
