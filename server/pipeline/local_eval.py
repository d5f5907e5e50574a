"""Local (federated) evaluation: the clients test their personalised model on their own
local test split, on its own schedule (`local-eval-every`, and the last round), apart
from the central evaluation `eval-every` drives (docs/personalised.md).

Asked each time: the clients that train (all, or a seeded sample of
`local-eval-clients`) and every held-out client (`holdout-clients`, which never train:
their number is the new-client accuracy). Each gets one Flower evaluate message with
the global model; its reply is scalars only (num-examples, eval-loss, eval-accuracy,
partition-id), read once. The row's fields are `local_metrics` of those replies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from learning.config import ExperimentConfig
from learning.streams import Tag, generator

FIELDS = (
    "personalised_accuracy",
    "personalised_accuracy_weighted",
    "personalised_accuracy_std",
    "worst10_accuracy",
    "new_client_accuracy",
    "new_client_accuracy_weighted",
    "local_eval_clients",
    "local_eval_failures",
)


def _spread(acc: np.ndarray, n: np.ndarray) -> tuple[Any, Any]:
    if not len(acc):
        return None, None
    return float(acc.mean()), float(np.dot(acc, n) / n.sum())


def local_metrics(
    trained: Sequence[tuple[float, int]], new: Sequence[tuple[float, int]], failures: int = 0
) -> dict[str, Any]:
    """The row's fields from (accuracy, test examples) per answering client: the mean and
    example-weighted mean over clients, the std, the 10th percentile (the worst-off
    tenth: numpy's linear interpolation) of the clients that train, and the mean and
    weighted mean of the held-out ones. A client with no test example is left out."""
    t = [(a, n) for a, n in trained if n > 0]
    h = [(a, n) for a, n in new if n > 0]
    acc, n = np.array([a for a, _ in t], float), np.array([n for _, n in t], float)
    mean, weighted = _spread(acc, n)
    new_mean, new_weighted = _spread(
        np.array([a for a, _ in h], float), np.array([n for _, n in h], float)
    )
    return {
        "personalised_accuracy": mean,
        "personalised_accuracy_weighted": weighted,
        "personalised_accuracy_std": float(acc.std()) if len(acc) else None,
        "worst10_accuracy": float(np.percentile(acc, 10)) if len(acc) else None,
        "new_client_accuracy": new_mean,
        "new_client_accuracy_weighted": new_weighted,
        "local_eval_clients": len(t) + len(h),
        "local_eval_failures": failures,
    }


def _read(reply: Message) -> tuple[int, float, int] | None:
    """(partition id, accuracy, test examples) of an evaluate reply; None if unusable."""
    if reply.has_error() or "metrics" not in reply.content:
        return None
    m = reply.content["metrics"]  # never mutated
    try:
        acc, n = float(m["eval-accuracy"]), int(m["num-examples"])
        pid = int(m["partition-id"])
    except (KeyError, TypeError, ValueError):
        return None
    return (pid, acc, n) if 0.0 <= acc <= 1.0 and n >= 0 else None


class LocalEvaluator:
    def __init__(
        self,
        cfg: ExperimentConfig,
        grid: Grid,
        base: Mapping[str, Any],
        holdout: frozenset[int],
    ) -> None:
        self.grid, self.base, self.holdout = grid, dict(base), holdout
        fed, p = cfg.federation, cfg.personal
        self.seed, self.rounds, self.timeout = fed.seed, fed.rounds, fed.timeout
        self.every, self.k = p.local_eval_every, p.local_eval_clients
        self.num_clients = fed.num_clients

    def due(self, rnd: int) -> bool:
        return rnd % self.every == 0 or rnd == self.rounds

    def clients(self, rnd: int) -> tuple[list[int], list[int]]:
        """(training clients asked, held-out clients asked) at round `rnd`, sorted."""
        train = [c for c in range(self.num_clients) if c not in self.holdout]
        if 0 < self.k < len(train):
            pick = generator(self.seed, Tag.LOCAL_EVAL_SAMPLE, rnd).choice(
                len(train), size=self.k, replace=False
            )
            train = sorted(train[int(i)] for i in pick)
        return train, sorted(self.holdout)

    def messages(self, rnd: int, arrays: ArrayRecord, pids: Sequence[int]) -> list[Message]:
        """One evaluate message per client, dealt round-robin over the Grid's nodes; the
        global model's record is shared, never mutated."""
        nodes = sorted(self.grid.get_node_ids())
        out = []
        for i, pid in enumerate(pids):
            config = ConfigRecord({**self.base, "partition-id": pid, "server-round": rnd})
            content = RecordDict({"arrays": arrays, "config": config})
            node = nodes[i % len(nodes)]
            out.append(
                Message(content=content, dst_node_id=node, message_type=MessageType.EVALUATE)
            )
        return out

    def __call__(self, rnd: int, arrays: ArrayRecord) -> dict[str, Any]:
        """The row's local-evaluation fields (all None when not due)."""
        if not self.due(rnd):
            return dict.fromkeys(FIELDS)
        train, new = self.clients(rnd)
        sent = self.messages(rnd, arrays, train + new)
        asked = set(train) | set(new)
        got: dict[int, tuple[float, int]] = {}
        for reply in self.grid.send_and_receive(sent, timeout=self.timeout):
            read = _read(reply)  # once; a malformed or unasked answer counts as failed
            if read is not None and read[0] in asked:
                got[read[0]] = read[1:]
        failures = len(sent) - len(got)
        held = set(new)
        trained = [got[p] for p in sorted(got) if p not in held]
        fresh = [got[p] for p in sorted(got) if p in held]
        return local_metrics(trained, fresh, failures)
