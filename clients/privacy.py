"""The client's half of differential privacy, as one Flower mod driven by the config.

- `dp = "central"`: Flower's `fixedclipping_mod` (or `adaptiveclipping_mod`) clips the
  update to the norm the server sent; the server adds the noise.
- `dp = "local"`: Flower's `LocalDpMod` clips and adds Gaussian noise before anything
  leaves the client. The sensitivity is 2C: two clipped updates of one client can
  differ by up to twice the clipping norm.

Flower's mods draw noise and nothing else from NumPy's global generator; seeding it
from (seed, round, client) keeps runs reproducible. `secure-noise = true` leaves it
to OS entropy, as a deployment must.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.mod import LocalDpMod, adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from learning.config import key_spec


def _privacy_settings(msg: Message) -> dict:
    if "config" not in msg.content.config_records:
        return {}
    spec = key_spec()
    return {k: v for k, v in msg.content["config"].items() if k in spec or k == "partition-id"}


def privacy_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Clip (and for local DP, noise) a training reply as the config asks."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    cfg = _privacy_settings(msg)
    dp = cfg.get("dp", "none")
    if dp == "none":
        return call_next(msg, ctxt)
    # Seeded only where the server names the client (simulation); a deployment's nodes
    # carry no partition id and draw from OS entropy, never from a shared seed.
    if not cfg.get("secure-noise", False) and "partition-id" in cfg:
        round_ = int(msg.content["config"].get("server-round", 0))
        pid = int(cfg.get("partition-id", 0))
        seq = np.random.SeedSequence([int(cfg.get("seed", 0)), round_, pid, 0x1D9])
        np.random.seed(seq.generate_state(1)[0])
    if dp == "central":
        mod = adaptiveclipping_mod if cfg.get("dp-clipping") == "adaptive" else fixedclipping_mod
        return mod(msg, ctxt, call_next)
    clip = float(cfg.get("clipping-norm", 1.0))
    local = LocalDpMod(
        clipping_norm=clip,
        sensitivity=2 * clip,
        epsilon=float(cfg.get("local-epsilon", 10.0)),
        delta=float(cfg.get("local-delta", 1e-5)),
    )
    return local(msg, ctxt, call_next)


def local_noise_std(clipping_norm: float, epsilon: float, delta: float) -> float:
    """The std `LocalDpMod` adds: the classic Gaussian mechanism for sensitivity 2C."""
    return 2 * clipping_norm * float(np.sqrt(2 * np.log(1.25 / delta))) / epsilon
