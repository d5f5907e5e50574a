"""The client's half of differential privacy, as one Flower mod driven by the config.

- `dp = "central"`: Flower's `fixedclipping_mod` (or `adaptiveclipping_mod`) clips the
  update to the norm the server sent; the server adds the noise.
- `dp = "local"`: Flower's `LocalDpMod` clips and adds Gaussian noise before anything
  leaves the client. The sensitivity is 2C: two clipped updates of one client can
  differ by up to twice the clipping norm. The noise is calibrated with the analytic
  Gaussian mechanism (Balle & Wang 2018): the classic sqrt(2 ln(1.25/delta))/epsilon
  is proven only for epsilon < 1 and falls short above it (at epsilon 10 and delta 1e-5
  its true delta is 2.3e-5).

Flower's mods draw noise and nothing else from NumPy's global generator; seeding it
from (seed, round, client) keeps runs reproducible. `secure-noise = true` leaves it
to OS entropy, as a deployment must.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.mod import LocalDpMod, adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from learning.streams import Tag, seed_sequence


def seed_global_numpy(config, tag: Tag) -> None:
    """Seed NumPy's global generator (what Flower's mods draw from) from the (seed,
    round, client) stream of `tag`. Only where the server names the client
    (simulation): a deployment's nodes carry no partition id and keep OS entropy, never
    a seed shared across nodes; `secure-noise = true` keeps it everywhere."""
    if config.get("secure-noise", False) or "partition-id" not in config:
        return
    seq = seed_sequence(
        int(config.get("seed", 0)),
        tag,
        int(config.get("server-round", 0)),
        int(config["partition-id"]),
    )
    np.random.seed(seq.generate_state(1)[0])


def privacy_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Clip (and for local DP, noise) a training reply as the config asks."""
    if msg.metadata.message_type != MessageType.TRAIN or "config" not in msg.content:
        return call_next(msg, ctxt)
    cfg = msg.content["config"]
    if "partition-ids" in cfg:  # pooled: each client was clipped (and noised) on its own
        return call_next(msg, ctxt)
    dp = cfg.get("dp", "none")
    if dp == "none":
        return call_next(msg, ctxt)
    seed_global_numpy(cfg, Tag.LOCAL_DP)
    if dp == "central":
        mod = adaptiveclipping_mod if cfg.get("dp-clipping") == "adaptive" else fixedclipping_mod
        return mod(msg, ctxt, call_next)
    clip = float(cfg.get("clipping-norm", 1.0))
    eps, delta = float(cfg.get("local-epsilon", 10.0)), float(cfg.get("local-delta", 1e-5))
    # LocalDpMod draws std = sensitivity * sqrt(2 ln(1.25/delta)) / epsilon; handing it the
    # sensitivity that makes that std the analytic one keeps Flower's mod doing the work.
    classic = math.sqrt(2 * math.log(1.25 / delta)) / eps
    std = local_noise_std(clip, eps, delta)
    local = LocalDpMod(clipping_norm=clip, sensitivity=std / classic, epsilon=eps, delta=delta)
    return local(msg, ctxt, call_next)


def gaussian_delta(epsilon: float, sigma: float, sensitivity: float) -> float:
    """Exact delta of the Gaussian mechanism at `epsilon` (Balle & Wang 2018, Thm 8)."""

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    return phi(a - b) - math.exp(epsilon) * phi(-a - b)


@functools.lru_cache(maxsize=64)  # asked per client message; a bisection each time
def local_noise_std(clipping_norm: float, epsilon: float, delta: float) -> float:
    """Smallest noise std (to 0.01%) whose exact delta at `epsilon` is <= `delta`,
    for sensitivity 2C."""
    sens = 2 * clipping_norm
    lo, hi = 1e-6 * sens, sens
    while gaussian_delta(epsilon, hi, sens) > delta:
        hi *= 2
    while hi - lo > 1e-4 * hi:
        mid = (lo + hi) / 2
        if gaussian_delta(epsilon, mid, sens) > delta:
            lo = mid
        else:
            hi = mid
    return hi
