"""Client side of continual learning: this round's task data, and what the method keeps.

Each client keeps its continual state in the on-disk client store under the run
directory (`continual-state/`), versioned per round like SCAFFOLD's, so nothing of it
is held in memory between rounds and none of it is ever put in a reply:

- `task`: the last task the client trained on;
- `held*`: the global model it received in its last round (EWC, LwF);
- `prev*`: the global model it held at the end of its previous task (EWC anchor, LwF
  teacher), taken from `held*` when the client moves to a new task;
- `fisher*`: EWC's diagonal Fisher, summed over past tasks, computed at the move;
- `buf_x`, `buf_y`, `buf_seen`: the replay reservoir (raw examples stay on the client).

FOT and TARGET keep nothing on the client: what they need comes from the server in the
train message (FOT's bases, TARGET's synthetic set), and FOT's end-of-task report goes
back with the reply (clients/fot.py).

A client that skips rounds still held the data of the tasks it passed, so on its next
round those tasks are streamed into its reservoir (and used for its Fisher) as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from clients.fot import ends_task, gram_report, projectors_from
from clients.replay import reservoir_add
from clients.state_store import ClientStore
from clients.stateful import store_for
from learning.config import ExperimentConfig
from learning.federated_data import task_shard
from learning.generator import TARGET_SYNTHETIC
from learning.personal_layers import layer_roles
from learning.projection import FOT_BASIS, FOT_GRAM
from learning.scenarios import client_task
from learning.streams import Tag, generator
from learning.training import ContinualInputs, Trainer, to_float_images

FISHER_EXAMPLES = 200  # examples of the finished task(s) the Fisher is averaged over
STATE_DIR = "continual-state"


@dataclass
class ContinualStep:
    """One client's data and method inputs for one round; `save` after training."""

    task: int
    x: np.ndarray  # uint8 images of the current task
    y: np.ndarray
    inputs: ContinualInputs | None
    save: Callable[[], None] = field(repr=False)
    # extra records for the reply, from the trained weights (FOT's end-of-task report)
    report: Callable[[list[np.ndarray]], dict[str, dict[str, np.ndarray]]] = field(
        default=lambda weights: {}, repr=False
    )


def _list(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray] | None:
    if f"{prefix}0" not in state:
        return None
    out, i = [], 0
    while f"{prefix}{i}" in state:
        out.append(state[f"{prefix}{i}"])
        i += 1
    return out


def _put(state: dict[str, np.ndarray], prefix: str, arrays: list[np.ndarray]) -> None:
    for i, a in enumerate(arrays):
        state[f"{prefix}{i}"] = np.asarray(a)


def _store(cfg: ExperimentConfig) -> ClientStore:
    return store_for(cfg, STATE_DIR, f"cl-method {cfg.continual.cl_method!r}")


def continual_step(
    cfg: ExperimentConfig,
    pid: int,
    server_round: int,
    weights: list[np.ndarray],
    trainer: Trainer,
    virtual_time: float | None = None,
    received: Mapping[str, list[np.ndarray]] | None = None,
) -> ContinualStep:
    """The task client `pid` is on in `server_round` (on the clock, `task-seconds` > 0:
    at the message's `virtual_time`), its data and its method's inputs; `received`: the
    extra records of the server's message (FOT's bases, TARGET's synthetic set)."""
    cl = cfg.continual
    task = client_task(cfg, pid, server_round, virtual_time)
    x, y = task_shard(cfg, pid, task)
    method = cl.cl_method
    received = received or {}
    if method == "finetune":
        return ContinualStep(task, x, y, None, lambda: None)
    if method == "fot":
        proj = projectors_from(received.get(FOT_BASIS))
        inputs = None if proj is None else ContinualInputs(projectors=proj)

        def report(w: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
            if not ends_task(cfg, pid, server_round, task):
                return {}
            return {FOT_GRAM: gram_report(cfg, trainer, pid, task, w)}

        return ContinualStep(task, x, y, inputs, lambda: None, report)
    if method == "target":
        synth = received.get(TARGET_SYNTHETIC)  # [images, the teacher's soft targets]
        inputs = None if not synth else ContinualInputs(synth_x=synth[0], synth_soft=synth[1])
        return ContinualStep(task, x, y, inputs, lambda: None)
    store = _store(cfg)
    old = store.load(pid, before_round=server_round)
    state = dict(old)
    last = int(old["task"]) if "task" in old else None
    passed = range(0 if last is None else last, task)  # tasks finished since last round
    seed = cfg.federation.seed
    if method == "replay" and len(passed):
        bx = state.get("buf_x", np.zeros((0, *x.shape[1:]), np.uint8))
        by = state.get("buf_y", np.zeros((0,), np.int64))
        seen = int(state.get("buf_seen", 0))
        for t in passed:
            tx, ty = task_shard(cfg, pid, t)
            rng = generator(seed, Tag.REPLAY, t, pid)
            bx, by, seen = reservoir_add(bx, by, seen, tx, ty, cl.buffer_size, rng)
        state.update(buf_x=bx, buf_y=by, buf_seen=np.int64(seen))
    # The model that ends the finished task is the global model received now, when the
    # client moves on: it carries every round of that task (the model the client held at
    # its own last round there could have missed most of them).
    if method in ("ewc", "lwf") and len(passed) and last is not None:
        held = [np.asarray(w) for w in weights]
        _put(state, "prev", held)
        if method == "ewc":
            fx = np.concatenate([task_shard(cfg, pid, t)[0] for t in passed])
            fy = np.concatenate([task_shard(cfg, pid, t)[1] for t in passed])
            rng = generator(seed, Tag.FISHER_PICK, task, pid)
            pick = np.sort(rng.permutation(len(fy))[:FISHER_EXAMPLES])
            f_new = trainer.fisher_diagonal(held, to_float_images(fx[pick]), fy[pick])
            f_old = _list(old, "fisher")
            if f_old is not None:  # one summed penalty over all finished tasks
                f_new = [a + b for a, b in zip(f_old, f_new, strict=True)]
            _put(state, "fisher", f_new)
    inputs = None
    prev = _list(state, "prev")
    if method == "replay" and "buf_y" in state and len(state["buf_y"]):
        inputs = ContinualInputs(
            buffer_x=to_float_images(state["buf_x"]), buffer_y=state["buf_y"].astype(np.int64)
        )
    elif method == "ewc" and prev is not None:
        # the penalty is over the trainable variables (the Fisher's): a batch-norm
        # model's moving statistics are in the weights list but not among them
        anchor = [prev[i] for i in layer_roles(trainer.model).trainable]
        inputs = ContinualInputs(fisher=_list(state, "fisher"), anchor=anchor)
    elif method == "lwf" and prev is not None:
        soft = trainer.soft_targets(prev, to_float_images(x), cl.lwf_temperature)
        inputs = ContinualInputs(soft_targets=soft)
    state["task"] = np.int64(task)

    def save() -> None:
        store.save(pid, state, server_round=server_round)

    return ContinualStep(task, x, y, inputs, save)
