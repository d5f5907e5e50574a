"""The server's half of SecAgg+ (Bell et al. 2020), on the message API.

Flower 1.42 ships SecAgg+ as a legacy workflow (LegacyContext, ClientProxy,
`Strategy.configure_fit`); this drives the same four stages against Flower's client
mod from our own round loop, with one simulated SuperNode per sampled client:

0. setup: send the plan, collect two public keys per client;
1. share keys: send each client its neighbours' keys, forward the encrypted shares;
2. collect masked vectors: each client trains, then uploads its quantised update
   plus a private mask and pairwise masks that cancel in the sum;
3. unmask: survivors return shares: mask seeds of survivors, keys of the dropped,
   so the server can remove exactly the masks left in the sum.

The server learns the weighted mean of the survivors' updates and nothing else.
Neighbourhoods are drawn from (seed, round), so a rerun builds the same rings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_extract,
    get_parameters_shape,
    parameters_addition,
    parameters_mod,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.serverapp import Grid
from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

from learning.secagg_plan import MODULUS_BITS, SecAggPlan


@dataclass
class SecAggOutcome:
    mean: list[np.ndarray] | None  # weighted mean of the survivors' updates
    replies: list[Message] = field(default_factory=list)  # stage-2 replies: metrics only
    dropped: int = 0
    failures: int = 0
    reason: str = ""
    bytes_received: int = 0


def neighbourhoods(node_ids: list[int], shares: int, rng: np.random.Generator) -> dict[int, set]:
    """Each node's ring neighbourhood of `shares` nodes (itself included)."""
    order = [node_ids[i] for i in rng.permutation(len(node_ids))]
    half = shares // 2
    n = len(order)
    return {
        nid: {order[(i + k) % n] for k in range(-half, half + 1)} for i, nid in enumerate(order)
    }


def _message(nid: int, record: ConfigRecord, content: RecordDict | None, rnd: int) -> Message:
    body = content if content is not None else RecordDict()
    body[RECORD_KEY_CONFIGS] = record
    return Message(content=body, dst_node_id=nid, message_type=MessageType.TRAIN, group_id=str(rnd))


def _exchange(grid: Grid, messages: list[Message], timeout: float) -> dict[int, Message]:
    """Replies without error, by sending node."""
    replies = grid.send_and_receive(messages, timeout=timeout)
    return {m.metadata.src_node_id: m for m in replies if not m.has_error()}


def run_secagg_round(
    grid: Grid,
    train_messages: list[Message],
    plan: SecAggPlan,
    clipping_range: float,
    quantization_bits: int,
    max_weight: float,
    rng: np.random.Generator,
    rnd: int,
    timeout: float,
) -> SecAggOutcome:
    """One round of SecAgg+ over `train_messages` (one per distinct node)."""
    contents = {m.metadata.dst_node_id: m.content for m in train_messages}
    sampled = sorted(contents)
    if len(sampled) != len(train_messages):
        raise ValueError("SecAgg+ needs one node per sampled client")
    target, modulus = 2**quantization_bits, 2**MODULUS_BITS
    rings = neighbourhoods(sampled, plan.shares, rng)
    out = SecAggOutcome(mean=None)

    def enough(active: set[int]) -> bool:
        return all(len(rings[n] & active) >= plan.threshold for n in active)

    # Stage 0: setup.
    setup = {
        Key.STAGE: Stage.SETUP,
        Key.SAMPLE_NUMBER: len(sampled),
        Key.SHARE_NUMBER: plan.shares,
        Key.THRESHOLD: plan.threshold,
        Key.CLIPPING_RANGE: float(clipping_range),
        Key.TARGET_RANGE: target,
        Key.MOD_RANGE: modulus,
        Key.MAX_WEIGHT: float(max_weight),
    }
    got = _exchange(grid, [_message(n, ConfigRecord(setup), None, rnd) for n in sampled], timeout)
    keys = {
        n: [
            m.content[RECORD_KEY_CONFIGS][Key.PUBLIC_KEY_1],
            m.content[RECORD_KEY_CONFIGS][Key.PUBLIC_KEY_2],
        ]
        for n, m in got.items()
    }
    active0 = set(keys)
    if not enough(active0):
        return _halt(out, sampled, active0, "too few clients finished setup")

    # Stage 1: share keys.
    msgs = []
    for n in sorted(active0):
        record = ConfigRecord({str(k): keys[k] for k in rings[n] & active0})
        record[Key.STAGE] = Stage.SHARE_KEYS
        msgs.append(_message(n, record, None, rnd))
    got = _exchange(grid, msgs, timeout)
    active1 = set(got)
    forward: dict[int, tuple[list[int], list[bytes]]] = {n: ([], []) for n in active1}
    for src in sorted(active1):
        res = got[src].content[RECORD_KEY_CONFIGS]
        for dst, ctxt in zip(res[Key.DESTINATION_LIST], res[Key.CIPHERTEXT_LIST], strict=True):
            if dst in forward:
                forward[dst][0].append(src)
                forward[dst][1].append(ctxt)
    if not enough(active1):
        return _halt(out, sampled, active1, "too few clients shared keys")

    # Stage 2: train and collect masked vectors.
    msgs = []
    for n in sorted(active1):
        record = ConfigRecord(
            {
                Key.STAGE: Stage.COLLECT_MASKED_VECTORS,
                Key.CIPHERTEXT_LIST: forward[n][1],
                Key.SOURCE_LIST: forward[n][0],
            }
        )
        content = RecordDict(dict(contents[n].items()))
        msgs.append(_message(n, record, content, rnd))
    got = _exchange(grid, msgs, timeout)
    active2 = set(got)
    out.replies = [got[n] for n in sorted(active2)]
    masked = None
    for n in sorted(active2):
        blobs = got[n].content[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
        vec = [bytes_to_ndarray(b) for b in blobs]
        masked = vec if masked is None else parameters_addition(masked, vec)
    if masked is None or not enough(active2):
        return _halt(out, sampled, active2, "too few clients sent masked updates")
    masked = parameters_mod(masked, modulus)
    dead = active1 - active2  # their pairwise masks are in the survivors' vectors

    # Stage 3: unmask.
    msgs = []
    for n in sorted(active2):
        record = ConfigRecord(
            {
                Key.STAGE: Stage.UNMASK,
                Key.ACTIVE_NODE_ID_LIST: sorted(rings[n] & active2),
                Key.DEAD_NODE_ID_LIST: sorted(rings[n] & dead),
            }
        )
        msgs.append(_message(n, record, None, rnd))
    got = _exchange(grid, msgs, timeout)
    shares: dict[int, list[bytes]] = {n: [] for n in active2 | dead}
    for n in sorted(got):
        res = got[n].content[RECORD_KEY_CONFIGS]
        for owner, share in zip(res[Key.NODE_ID_LIST], res[Key.SHARE_LIST], strict=True):
            if owner in shares:
                shares[owner].append(share)
    short = [n for n, s in shares.items() if len(s) < plan.threshold]
    if short:
        return _halt(out, sampled, set(got), f"too few shares to unmask {len(short)} client(s)")
    dims = get_parameters_shape(masked)
    for n in sorted(active2):  # remove each survivor's private mask
        masked = parameters_subtraction(
            masked, pseudo_rand_gen(combine_shares(shares[n]), modulus, dims)
        )
    for d in sorted(dead):  # remove the pairwise masks survivors shared with the dropped
        secret = bytes_to_private_key(combine_shares(shares[d]))
        for v in sorted((rings[d] - {d}) & active2):
            pair = generate_shared_key(secret, bytes_to_public_key(keys[v][0]))
            mask = pseudo_rand_gen(pair, modulus, dims)
            masked = (
                parameters_addition(masked, mask) if d > v else parameters_subtraction(masked, mask)
            )
    total = parameters_mod(masked, modulus)
    q_ratio_sum, total = factor_extract(total)
    values = dequantize(total, clipping_range, target)
    offset = -(len(active2) - 1) * clipping_range
    scale = target / float(q_ratio_sum)
    out.mean = [(v + offset) * scale for v in values]
    out.dropped = len(set(sampled) - active2)
    return out


def _halt(out: SecAggOutcome, sampled: list[int], alive: set[int], reason: str) -> SecAggOutcome:
    out.dropped = len(set(sampled) - alive)
    out.reason = reason
    return out
