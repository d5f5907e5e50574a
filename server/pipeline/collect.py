"""Collect: send a batch through the Grid and read every answer once into a ClientUpdate.

A `Cohort` gathers one round's updates over all its attempts (first sample and
top-ups): who was tried, what answered (valid or refused), and the counts a metrics row
reports. Under SecAgg+ the four-stage exchange of `privacy.secagg.round.SecureSender`
replaces the plain send: only metrics come back, and the securely computed mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message
from flwr.serverapp import Grid

from privacy.secagg.round import SecureSender
from server.pipeline.dispatch import nbytes
from server.pipeline.updates import ClientUpdate, validity


@dataclass(frozen=True)
class Attempt:
    """One send and receive: the answers in arrival order and how many failed."""

    updates: tuple[ClientUpdate, ...]  # answered (error replies are failures)
    failures: int  # sent but not answered: error reply or no reply within the timeout
    bytes_sent: int


def collect(grid: Grid, messages: list[Message], timeout: float) -> Attempt:
    """Send `messages`, wait for the replies, deserialise each answered one once."""
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    answered = tuple(ClientUpdate.from_reply(m) for m in replies if not m.has_error())
    sent = sum(nbytes(m.content) for m in messages)
    return Attempt(answered, len(messages) - len(answered), sent)


@dataclass
class Cohort:
    """What one round gathered, over all its attempts."""

    tried: set[int] = field(default_factory=set)
    answered: list[ClientUpdate] = field(default_factory=list)  # valid and refused
    valid: list[ClientUpdate] = field(default_factory=list)
    failures: int = 0
    rejected: int = 0
    retries: int = 0
    bytes_sent: int = 0
    bytes_received: int | None = None  # None: the sum of what answered
    enough: bool = False  # the last attempt had min-clients useful updates
    secure_mean: list[np.ndarray] | None = None  # SecAgg+: the survivors' mean update

    def add(self, attempt: Attempt, shapes: list[tuple[int, ...]]) -> None:
        """Count an attempt in; refused updates are kept (with why) apart from valid."""
        self.failures += attempt.failures
        self.bytes_sent += attempt.bytes_sent
        for u in attempt.updates:
            why = validity(u, shapes)
            u = u if why is None else u.refuse(why)
            self.answered.append(u)
            if why is None:
                self.valid.append(u)
            else:
                self.rejected += 1

    def useful(self) -> list[ClientUpdate]:
        """Valid updates that trained on at least one example."""
        return [u for u in self.valid if u.num_examples > 0]

    def received(self) -> int:
        if self.bytes_received is not None:
            return self.bytes_received
        return sum(u.nbytes for u in self.answered)


def collect_secure(
    sender: SecureSender, grid: Grid, messages: list[Message], server_round: int
) -> Cohort:
    """A SecAgg+ round's cohort: the protocol's replies (metrics only) and mean."""
    sent = sum(nbytes(m.content) for m in messages)
    outcome = sender.run(grid, messages, server_round)
    updates = [ClientUpdate.from_reply(m) for m in outcome.replies]
    return Cohort(
        answered=list(updates),
        valid=list(updates),
        failures=outcome.dropped,
        bytes_sent=sent,
        bytes_received=outcome.bytes_received,
        secure_mean=outcome.mean,
    )
