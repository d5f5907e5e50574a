"""Hostile and failing clients, as pure functions of (seed, round, client).

Which clients are malicious is fixed by the seed; whether a client crashes, straggles
or returns NaN in a round is drawn from `default_rng([seed, round, client, salt])`, so a
resumed or repeated run sees the same behaviour. Update-level attacks act on the
trained weights y given the received global weights x:

- `label-flip`   train on labels c -> C-1-c (data poisoning);
- `sign-flip`    send x - s (y - x): the update reversed and scaled by `attack-scale`;
- `gaussian`     send x + N(0, attack-sigma^2): a random update;
- `scaling`      send x + s (y - x): model replacement (Bagdasaryan et al. 2020);
- `alie`         "A Little Is Enough" (Baruch et al. 2019): colluders send
                 mean - z * std of their honest updates (coordinate-wise, z = attack-scale);
                 collusion needs every colluder's update, so it is applied where the
                 simulation sees them together, as the replies arrive at the server;
- `free-ride`    send the received weights back unchanged.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message

from learning.config import ExperimentConfig

Arrays = list[np.ndarray]
_SALT = {"malicious": 7001, "crash": 7002, "straggler": 7003, "nan": 7004, "noise": 7005}


def malicious_clients(seed: int, num_clients: int, fraction: float) -> frozenset[int]:
    """The attacking partition ids: round(fraction * num_clients) of them, fixed by seed."""
    k = int(round(fraction * num_clients))
    if k == 0:
        return frozenset()
    rng = np.random.default_rng([seed, _SALT["malicious"]])
    return frozenset(int(c) for c in rng.choice(num_clients, size=k, replace=False))


def is_malicious(cfg: ExperimentConfig, pid: int) -> bool:
    a = cfg.attack
    if a.attack == "none" or a.malicious_fraction == 0:
        return False
    return pid in malicious_clients(
        cfg.federation.seed, cfg.federation.num_clients, a.malicious_fraction
    )


def fault_draw(seed: int, rnd: int, pid: int, kind: str) -> float:
    """A uniform [0, 1) number for one client, round and kind of fault."""
    return float(np.random.default_rng([seed, rnd, pid, _SALT[kind]]).random())


def flip_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    return (num_classes - 1 - y).astype(y.dtype)


def poison_update(
    attack: str, x: Arrays, y: Arrays, scale: float, sigma: float, rng: np.random.Generator
) -> Arrays:
    """The weights a malicious client sends instead of its honest result `y`."""
    if attack == "sign-flip":
        return [xi - scale * (yi - xi) for xi, yi in zip(x, y, strict=True)]
    if attack == "scaling":
        return [xi + scale * (yi - xi) for xi, yi in zip(x, y, strict=True)]
    if attack == "gaussian":
        return [xi + rng.normal(0.0, sigma, xi.shape).astype(xi.dtype) for xi in x]
    if attack == "free-ride":
        return [np.array(xi, copy=True) for xi in x]
    return y  # label-flip poisons the data, not the update; alie acts at the server


def alie(honest: list[Arrays], z: float) -> Arrays:
    """Mean minus z coordinate-wise standard deviations of the colluders' updates."""
    out = []
    for layer in zip(*honest, strict=True):
        stack = np.stack(layer)
        out.append((stack.mean(axis=0) - z * stack.std(axis=0)).astype(stack.dtype))
    return out


def apply_collusion(cfg: ExperimentConfig, replies: list[Message]) -> list[Message]:
    """ALIE: replace the colluders' replies with the shared malicious model."""
    if cfg.attack.attack != "alie" or not replies:
        return replies
    bad = [
        i
        for i, m in enumerate(replies)
        if is_malicious(cfg, int(m.content["metrics"]["partition-id"]))
    ]
    if not bad:
        return replies
    honest = [replies[i].content["arrays"].to_numpy_ndarrays() for i in bad]
    poisoned = ArrayRecord(alie(honest, cfg.attack.attack_scale))
    for i in bad:  # the colluders' own replies, rewritten as they arrive
        replies[i].content["arrays"] = poisoned
    return replies
