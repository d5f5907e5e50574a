"""Every random generator in perennial, made in one place so no two purposes share one.

NumPy's `SeedSequence` drops trailing zeros of a seed list and splits big integers into
32-bit words, so ad-hoc lists collide: `[s, r, 217]` equals `[s, r, 217, 0]`, and a
sampler seeded `[s, r]` draws what partition 0's `[s, r, 0]` draws. Here a stream is
`SeedSequence(entropy=key, spawn_key=(tag, *fields))` where

- `key` is the run's seed (public: data splits, init, shuffling, faults) or the
  server's secret key (client sampling and DP noise under central DP, see
  privacy/server_key.py), below 2**128 so NumPy pads it to exactly four words;
- `tag` names the purpose (unique, first);
- `fields` has the tag's fixed length and each field is in [0, 2**32), one word each.

Two different (tag, fields) therefore never assemble the same entropy.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

MAX_KEY = 2**128
MAX_FIELD = 2**32


class Tag(IntEnum):
    """One purpose per tag. Never renumber: it would change every seeded result."""

    # public streams (key = the run's seed)
    DATA_SPLIT = 1  # train/test split of a dataset without one (fields: none)
    SUBSET = 2  # train-/test-subset draw (fields: which 0 = train, 1 = test)
    PARTITION = 3  # partitioner draw (fields: none)
    # 4 was MODEL_INIT: Keras's initialisers are seeded by keras.utils.set_random_seed
    # (learning/warm_start.py), the one generator made outside this module
    LOCAL_TRAIN = 5  # a client's shuffling in a round (fields: round, client)
    MALICIOUS = 6  # which clients attack (fields: none)
    FAULT = 7  # crash / straggler / nan draws (fields: round, client, kind)
    ATTACK_NOISE = 8  # gaussian attack noise (fields: round, client)
    ARRIVAL = 9  # a client's continual arrival offset (fields: client)
    TASK_ORDER = 10  # class order of a class-incremental scenario (fields: none)
    TASK_SHARD = 11  # a client's task shard (fields: task, client)
    TASK_GROUP = 12  # a drift group's transform draw (fields: task, group)
    REPLAY = 13  # a client's reservoir draws for a finished task (fields: task, client)
    FISHER_PICK = 14  # the examples EWC's Fisher is estimated on (fields: task, client)
    LOCAL_DP = 15  # local DP noise, simulation only (fields: round, client)
    SECAGG_GRAPH = 16  # SecAgg+ neighbourhoods of a round (fields: round)
    SAMPLE = 17  # the round's cohort without DP (fields: round)
    TOP_UP = 18  # a retry's replacement clients (fields: round, attempt)
    SECAGG_ROUNDING = 19  # SecAgg+ stochastic rounding, simulation only (round, client)
    # secret streams (key = the server key; nothing a client receives)
    POISSON = 32  # central DP's Poisson draw (fields: round)
    CENTRAL_NOISE = 33  # central DP noise (fields: round, stream)
    SERVER_KEY = 34  # the public stand-in key of a run without DP (fields: none)
    # public streams added later (key = the run's seed); appended, never renumbered
    DEVICE = 35  # a client's device: speed, links, slow draw (fields: client)
    AVAILABILITY = 36  # a client's diurnal phase (fields: client)
    AVAILABLE_SAMPLE = 37  # a round's draw among online clients (fields: round, attempt)
    ASYNC_PICK = 38  # an asynchronous dispatch's clients (fields: dispatch batch)
    SAMPLED_SHARD = 39  # a client's shard of the `sampled` partition (fields: client)
    LOCAL_SPLIT = 40  # a client's local train/test split, local-eval (fields: client)
    HOLDOUT = 41  # which clients never train, holdout-clients (fields: none)
    LOCAL_EVAL_SAMPLE = 42  # the training clients a local evaluation asks (fields: round)
    PERSONAL_TRAIN = 43  # a personal model's or head's shuffling (fields: round, client)
    NEW_CLIENT_TRAIN = 44  # personalising at evaluation, no state kept (fields: round, client)
    PIXEL_PERMUTATION = 45  # permuted stream: task's pixel order (fields: task)
    GENERATOR_TRAIN = 46  # TARGET: server's generator latents and labels (fields: task)
    FOT_PICK = 47  # FOT: examples a client's activation statistics use (fields: task, client)


ARITY = {
    Tag.DATA_SPLIT: 0,
    Tag.SUBSET: 1,
    Tag.PARTITION: 0,
    Tag.LOCAL_TRAIN: 2,
    Tag.MALICIOUS: 0,
    Tag.FAULT: 3,
    Tag.ATTACK_NOISE: 2,
    Tag.ARRIVAL: 1,
    Tag.TASK_ORDER: 0,
    Tag.TASK_SHARD: 2,
    Tag.TASK_GROUP: 2,
    Tag.REPLAY: 2,
    Tag.FISHER_PICK: 2,
    Tag.LOCAL_DP: 2,
    Tag.SECAGG_GRAPH: 1,
    Tag.SAMPLE: 1,
    Tag.TOP_UP: 2,
    Tag.SECAGG_ROUNDING: 2,
    Tag.POISSON: 1,
    Tag.CENTRAL_NOISE: 2,
    Tag.SERVER_KEY: 0,
    Tag.DEVICE: 1,
    Tag.AVAILABILITY: 1,
    Tag.AVAILABLE_SAMPLE: 2,
    Tag.ASYNC_PICK: 1,
    Tag.SAMPLED_SHARD: 1,
    Tag.LOCAL_SPLIT: 1,
    Tag.HOLDOUT: 0,
    Tag.LOCAL_EVAL_SAMPLE: 1,
    Tag.PERSONAL_TRAIN: 2,
    Tag.NEW_CLIENT_TRAIN: 2,
    Tag.PIXEL_PERMUTATION: 1,
    Tag.GENERATOR_TRAIN: 1,
    Tag.FOT_PICK: 2,
}


def seed_sequence(key: int, tag: Tag, *fields: int) -> np.random.SeedSequence:
    """The SeedSequence of one purpose; raises ValueError on a malformed request."""
    tag = Tag(tag)
    if len(fields) != ARITY[tag]:
        raise ValueError(f"stream {tag.name} takes {ARITY[tag]} fields, got {len(fields)}")
    if not 0 <= int(key) < MAX_KEY:
        raise ValueError(f"stream key must be in [0, 2**128), got {key}")
    for f in fields:
        if not 0 <= int(f) < MAX_FIELD:
            raise ValueError(f"stream {tag.name} field {f} is outside [0, 2**32)")
    return np.random.SeedSequence(int(key), spawn_key=(int(tag), *(int(f) for f in fields)))


def generator(key: int, tag: Tag, *fields: int) -> np.random.Generator:
    """A NumPy Generator for one purpose (see `seed_sequence`)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(key, tag, *fields)))


def fresh_generator() -> np.random.Generator:
    """A Generator from OS entropy: for draws that must not be reproducible."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence()))


def fault_kind(kind: str) -> int:
    """The FAULT stream's `kind` field for a named fault."""
    return {"crash": 1, "straggler": 2, "nan": 3}[kind]


def fault_draw(seed: int, rnd: int, pid: int, kind: str) -> float:
    """A uniform [0, 1) number for one client, round and kind of fault (pure: the
    client draws it to decide, the server's virtual clock to charge a straggler)."""
    return float(generator(seed, Tag.FAULT, rnd, pid, fault_kind(kind)).random())
