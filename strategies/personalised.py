"""The personalised methods' update rules, pure NumPy (docs/personalised.md).

Which arrays a method keeps on the client (`PERSONAL`), how a client's model is put
together from the global one and its personal state, what it sends back, and the
formulas of the papers:

- FedPer (Arivazhagan et al. 2019) and FedRep (Collins et al. 2021): the head stays on
  the client; FedRep trains it first with the body frozen, then the body with the head
  frozen (`fedrep_phases`, a schedule as data);
- FedBN (Li et al. 2021): batch-norm layers (scale, shift and moving statistics) stay;
- Ditto (Li et al. 2021): a personal model v, v <- v - eta (grad F_k(v) + lambda (v - w));
- APFL (Deng et al. 2020): the personal model is v_bar = alpha v + (1 - alpha) w and v
  moves by v <- v - eta alpha grad F_k(v_bar) (`apfl_mix`, `apfl_unmix`, `apfl_lr`);
- `local`: the whole model stays; `fedavg-ft`: nothing stays, the global model is
  fine-tuned before each test.

A personal part is sent back exactly as received (`shared_reply`), so the server's
mean leaves it unchanged and no personal array ever leaves a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Arrays = list[np.ndarray]

# What each method keeps per client: "head", "bn" and "all" are arrays of the model
# (LayerRoles.mask), "model" a whole second model beside the global one; None: nothing.
PERSONAL = {
    "fedavg": None,
    "fedavg-ft": None,
    "local": "all",
    "fedper": "head",
    "fedrep": "head",
    "fedbn": "bn",
    "ditto": "model",
    "apfl": "model",
}


def merge(global_w: Sequence[np.ndarray], personal: Sequence[np.ndarray] | None, mask) -> Arrays:
    """The client's model: the global arrays with the masked ones replaced by its own
    (`personal` lists only the masked arrays, in order; None: a client without state)."""
    if personal is None:
        return [np.array(w) for w in global_w]
    it = iter(personal)
    out = [np.array(next(it)) if m else np.array(w) for w, m in zip(global_w, mask, strict=True)]
    if next(it, None) is not None:
        raise ValueError("more personal arrays than the mask names")
    return out


def personal_part(weights: Sequence[np.ndarray], mask) -> Arrays:
    """The masked arrays of `weights`, in order (what a client stores)."""
    return [np.array(w) for w, m in zip(weights, mask, strict=True) if m]


def shared_reply(trained: Sequence[np.ndarray], received: Sequence[np.ndarray], mask) -> Arrays:
    """What a client sends: its trained shared arrays, and the personal ones exactly as
    it received them (their change is zero, so the mean leaves them be)."""
    return [
        np.array(r) if m else np.array(t) for t, r, m in zip(trained, received, mask, strict=True)
    ]


def ditto_step(
    v: Sequence[np.ndarray],
    grad: Sequence[np.ndarray],
    w: Sequence[np.ndarray],
    lr: float,
    lam: float,
) -> Arrays:
    """One Ditto personal step (Li et al. 2021, Alg. 1): v - lr (grad + lam (v - w)).

    The trainer runs it as its proximal pull towards an anchor (the EWC term with unit
    Fisher and anchor w, capped at 1/lr: a step then never overshoots w)."""
    pull = min(lam, 1.0 / lr)
    return [vi - lr * (g + pull * (vi - wi)) for vi, g, wi in zip(v, grad, w, strict=True)]


def apfl_mix(v: Sequence[np.ndarray], w: Sequence[np.ndarray], alpha: float) -> Arrays:
    """APFL's personalised model v_bar = alpha v + (1 - alpha) w."""
    return [alpha * vi + (1.0 - alpha) * wi for vi, wi in zip(v, w, strict=True)]


def apfl_unmix(u: Sequence[np.ndarray], w: Sequence[np.ndarray], alpha: float) -> Arrays:
    """v from v_bar = alpha v + (1 - alpha) w, w fixed: (v_bar - (1 - alpha) w) / alpha."""
    return [(ui - (1.0 - alpha) * wi) / alpha for ui, wi in zip(u, w, strict=True)]


def apfl_lr(lr: float, alpha: float) -> float:
    """The step size on v_bar that makes APFL's step on v: with w fixed, v <- v - eta alpha
    g(v_bar) moves v_bar = alpha v + ... by -eta alpha^2 g(v_bar), plain SGD on v_bar."""
    return lr * alpha * alpha


@dataclass(frozen=True)
class Phase:
    """One part of a local update: which arrays train ("head", "body" or "all") and
    for how many epochs."""

    train: str
    epochs: int


def fedrep_phases(head_epochs: int, body_epochs: int) -> tuple[Phase, ...]:
    """FedRep's local update (Collins et al. 2021, Alg. 1): the head for many epochs with
    the body fixed, then the body for a few with the new head fixed."""
    return (Phase("head", head_epochs), Phase("body", body_epochs))


def frozen_for(phase: Phase, head: Sequence[bool]) -> list[bool]:
    """Per array: True where `phase` keeps it fixed."""
    if phase.train == "all":
        return [False] * len(head)
    return [not h if phase.train == "head" else bool(h) for h in head]


def state_bytes(kind: str | None, shapes: Sequence[tuple[int, ...]], itemsize, mask) -> int:
    """Bytes one client's personal state holds (per stored version; two are kept)."""
    if kind is None:
        return 0
    sizes = [int(np.prod(s)) * int(b) for s, b in zip(shapes, itemsize, strict=True)]
    if kind == "model":
        return sum(sizes)
    return sum(n for n, m in zip(sizes, mask, strict=True) if m)
