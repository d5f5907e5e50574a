"""Hostile and failing clients, as pure functions of (seed, round, client).

Which clients are malicious is fixed by the seed; whether a client crashes, straggles
or returns NaN in a round is drawn from the (seed, round, client, kind) stream, so a
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
- `ipm`          inner-product manipulation (Xie, Koyejo, Gupta 2020, "Fall of Empires"):
                 colluders send x - epsilon * mean of their honest updates
                 (epsilon = `ipm-epsilon`, default 0.1: the paper's small-epsilon setting
                 that breaks median and Krum; epsilon > 1 targets mean-based rules);
- `min-max`      Shejwalkar & Houmansadr (NDSS 2021), AGR-agnostic Min-Max: colluders send
                 x + mean + gamma * p with p = -std of their honest updates (the paper's
                 default; `minmax-perturbation` = "unit-vec" or "sign" for the others) and
                 gamma the largest (binary search from `minmax-gamma-init`, to
                 `minmax-tol`, as in the authors' code) keeping the malicious update within
                 the largest pairwise distance between honest updates of every honest one;
- `free-ride`    send the received weights back unchanged.

ALIE, IPM and Min-Max collude, so they are applied where the simulation sees the
colluders' replies together (server ingress), with only the colluders' own honest
updates as knowledge. ALIE works on weights: mean - z std of the weights y_i equals
x + mean - z std of the updates y_i - x, the rule of Baruch et al.
"""

from __future__ import annotations

import copy

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from learning.config import ExperimentConfig
from learning.streams import Tag, generator
from learning.streams import fault_draw as fault_draw  # re-exported (the draw is pure)

Arrays = list[np.ndarray]


def malicious_clients(seed: int, num_clients: int, fraction: float) -> frozenset[int]:
    """The attacking partition ids: round(fraction * num_clients) of them, fixed by seed."""
    k = int(round(fraction * num_clients))
    if k == 0:
        return frozenset()
    rng = generator(seed, Tag.MALICIOUS)
    return frozenset(int(c) for c in rng.choice(num_clients, size=k, replace=False))


def is_malicious(cfg: ExperimentConfig, pid: int) -> bool:
    a = cfg.attack
    if a.attack == "none" or a.malicious_fraction == 0:
        return False
    return pid in malicious_clients(
        cfg.federation.seed, cfg.federation.num_clients, a.malicious_fraction
    )


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
    return y  # label-flip poisons the data; alie/ipm/min-max act at the server


def alie(honest: list[Arrays], z: float) -> Arrays:
    """Mean minus z coordinate-wise standard deviations of the colluders' updates."""
    out = []
    for layer in zip(*honest, strict=True):
        stack = np.stack(layer)
        out.append((stack.mean(axis=0) - z * stack.std(axis=0)).astype(stack.dtype))
    return out


def ipm(updates: list[Arrays], epsilon: float) -> Arrays:
    """IPM's malicious update: -epsilon times the mean of the colluders' honest updates,
    so its inner product with the true mean is negative (Xie et al. 2020, eq. 3)."""
    return [
        (-epsilon * np.stack(layer).mean(axis=0)).astype(layer[0].dtype)
        for layer in zip(*updates, strict=True)
    ]


def min_max(
    updates: list[Arrays], perturbation: str = "std", gamma_init: float = 10.0, tol: float = 1e-5
) -> Arrays:
    """Min-Max's malicious update mean + gamma * p (Shejwalkar & Houmansadr 2021, eq. 6).

    gamma is the largest value (binary search, as in the authors' `our_attack_dist`) with
    max_i ||m - u_i|| <= max_{i,j} ||u_i - u_j|| over the colluders' honest updates u_i;
    p = -std (default), -mean/||mean|| ("unit-vec") or -sign(mean) ("sign").
    """
    flat = np.stack([np.concatenate([a.ravel() for a in u]).astype(np.float64) for u in updates])
    mean = flat.mean(axis=0)
    gamma = _min_max_gamma(flat, _perturbation(flat, perturbation), gamma_init, tol)
    return _unflatten(mean + gamma * _perturbation(flat, perturbation), updates[0])


def _perturbation(flat: np.ndarray, kind: str) -> np.ndarray:
    mean = flat.mean(axis=0)
    if kind == "unit-vec":
        norm = np.linalg.norm(mean)
        return -mean / norm if norm > 0 else np.zeros_like(mean)
    if kind == "sign":
        return -np.sign(mean)
    return -flat.std(axis=0)


def _min_max_gamma(flat: np.ndarray, p: np.ndarray, gamma_init: float, tol: float) -> float:
    """The binary search of the authors' code: step halves each time; keep the last
    gamma that met the distance bound (0 if none did)."""
    mean = flat.mean(axis=0)
    diffs = flat[:, None, :] - flat[None, :, :]
    bound = float(np.sqrt((diffs**2).sum(axis=2)).max())

    def ok(g: float) -> bool:
        return float(np.linalg.norm(flat - (mean + g * p), axis=1).max()) <= bound

    gamma, step, good = gamma_init, gamma_init / 2, 0.0
    while abs(good - gamma) > tol:
        if ok(gamma):
            good, gamma = gamma, gamma + step
        else:
            gamma = gamma - step
        step /= 2
    return good


def _unflatten(vec: np.ndarray, like: Arrays) -> Arrays:
    out, start = [], 0
    for a in like:
        out.append(vec[start : start + a.size].reshape(a.shape).astype(a.dtype))
        start += a.size
    return out


COLLUDING = ("alie", "ipm", "min-max")


def collusion_weights(cfg: ExperimentConfig, honest: list[Arrays], x: Arrays) -> Arrays:
    """The one model every colluder sends, from their honest weights and the global x."""
    a = cfg.attack
    if a.attack == "alie":
        return alie(honest, a.attack_scale)
    updates = [[yi - xi for xi, yi in zip(x, y, strict=True)] for y in honest]
    if a.attack == "ipm":
        delta = ipm(updates, a.ipm_epsilon)
    else:
        delta = min_max(updates, a.minmax_perturbation, a.minmax_gamma_init, a.minmax_tol)
    return [(xi + di).astype(xi.dtype) for xi, di in zip(x, delta, strict=True)]


def _with_arrays(msg: Message, arrays: Arrays) -> Message:
    """A new reply like `msg` (same metadata, copied records) carrying `arrays`: Flower's
    FedMedian/FedTrimmedAvg pop arrays out of each reply, so no record may be shared,
    and the reply we were given is not ours to change."""
    content = RecordDict()
    for key, record in msg.content.items():
        if key == "arrays":
            record = ArrayRecord(arrays)
        elif isinstance(record, MetricRecord):
            record = MetricRecord(dict(record))
        content[key] = record
    return Message(metadata=copy.copy(msg.metadata), content=content)


def apply_collusion(cfg: ExperimentConfig, replies: list[Message], x: Arrays) -> list[Message]:
    """ALIE/IPM/Min-Max: the colluders' replies replaced by new ones, each with its own
    copy of the shared malicious model; `x` is the global model the server sent."""
    if cfg.attack.attack not in COLLUDING or not replies:
        return replies
    bad = [
        i
        for i, m in enumerate(replies)
        if is_malicious(cfg, int(m.content["metrics"]["partition-id"]))
    ]
    if not bad:
        return replies
    honest = [replies[i].content["arrays"].to_numpy_ndarrays() for i in bad]
    poisoned = collusion_weights(cfg, honest, x)
    out = list(replies)
    for i in bad:
        out[i] = _with_arrays(replies[i], [np.array(a, copy=True) for a in poisoned])
    return out
