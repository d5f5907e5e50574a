"""Who is asked in a round: a sampling policy over the federation's logical clients.

Today's two policies wrap the pure draws of server/sampling.py: a seeded sample of
`clients-per-round` with top-ups on retry, and central DP's Poisson draw keyed by the
server's secret (never topped up: the accountant assumes independent inclusion). A
policy that knows availability (issue 15) implements the same two methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from learning.config import FederationConfig
from learning.streams import Tag, generator
from server.sampling import poisson_clients, sample_clients, top_up_clients


class SamplingPolicy(Protocol):
    # Whether a round short of min-clients may ask more clients.
    tops_up: bool

    def draw(self, server_round: int) -> list[int]:
        """The round's first sample of partition ids (client indices), sorted."""
        ...

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        """`k` more clients for retry `attempt` (>= 1), none of `tried`."""
        ...


@dataclass(frozen=True)
class SeededSampling:
    """`k` of `num_clients` from the (seed, round) stream; top-ups from (seed, round,
    attempt), so a rerun or a resumed run asks the same clients."""

    seed: int
    num_clients: int
    k: int
    tops_up: bool = True

    def draw(self, server_round: int) -> list[int]:
        return sample_clients(self.seed, server_round, self.num_clients, self.k)

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        return top_up_clients(self.seed, server_round, attempt, self.num_clients, tried, k)


@dataclass(frozen=True, repr=False)
class PoissonSampling:
    """Each client independently at `rate`, from the server's secret `key` (never
    printed: repr is off). Rounds are never topped up."""

    key: int
    num_clients: int
    rate: float
    tops_up: bool = False

    def draw(self, server_round: int) -> list[int]:
        return poisson_clients(self.key, server_round, self.num_clients, self.rate)

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        return []


@dataclass(frozen=True)
class AvailableSampling:
    """`k` clients among those online now (`online(pid)`), from the (seed, round,
    attempt) stream: candidates are drawn in seeded batches and kept when online and
    new, so a draw costs O(k / share online), never a scan of the population (unless
    almost nobody is online: then one scan, seeded the same way)."""

    seed: int
    num_clients: int
    k: int
    online: Callable[[int], bool]
    tops_up: bool = True

    def draw(self, server_round: int) -> list[int]:
        return self._pick(server_round, 0, set(), self.k)

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        return self._pick(server_round, attempt, tried, k)

    def _pick(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        rng = generator(self.seed, Tag.AVAILABLE_SAMPLE, server_round, attempt)
        return pick_online(rng, self.num_clients, k, tried, self.online)


def pick_online(
    rng: np.random.Generator,
    num_clients: int,
    k: int,
    exclude: set[int],
    online: Callable[[int], bool],
) -> list[int]:
    """Up to `k` distinct online clients outside `exclude`, sorted: seeded candidates in
    batches (O(k / share online)); after 32 batches one seeded scan of the rest."""
    picked: list[int] = []
    seen = set(exclude)
    if k <= 0:
        return picked
    for _ in range(32):
        for p in rng.integers(0, num_clients, size=max(16, 4 * k)).tolist():
            if p not in seen:
                seen.add(p)
                if online(p):
                    picked.append(p)
                    if len(picked) == k:
                        return sorted(picked)
    rest = [p for p in rng.permutation(num_clients).tolist() if p not in seen]
    picked += [p for p in rest if online(p)][: k - len(picked)]
    return sorted(picked)


@dataclass(frozen=True)
class TrainingClients:
    """A policy over the clients that train: `inner` draws positions in `pids` (the
    clients not held out by holdout-clients), so a held-out client is never asked to
    train, in a draw or a top-up."""

    inner: SamplingPolicy
    pids: tuple[int, ...]

    @property
    def tops_up(self) -> bool:
        return self.inner.tops_up

    def draw(self, server_round: int) -> list[int]:
        return sorted(self.pids[i] for i in self.inner.draw(server_round))

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        where = {p: i for i, p in enumerate(self.pids)}
        done = {where[p] for p in tried if p in where}
        return sorted(self.pids[i] for i in self.inner.top_up(server_round, attempt, done, k))


def sampling_policy(
    fed: FederationConfig,
    poisson: bool,
    key: int | None,
    k: int | None = None,
    online: Callable[[int], bool] | None = None,
) -> SamplingPolicy:
    """The policy for a run over `fed` (deployment: num-clients = connected SuperNodes).

    `k` (over-selection) replaces clients-per-round; `online` (availability that is not
    `always`) makes the seeded draw pick among online clients. Central DP's Poisson draw
    ignores both: it stays over the whole population (the accountant's q), and the
    scheduler drops the drawn clients that are offline after the draw."""
    if poisson:
        assert key is not None, "central DP samples with the server's key"
        return PoissonSampling(key, fed.num_clients, fed.clients_per_round / fed.num_clients)
    k = fed.clients_per_round if k is None else k
    if online is not None:
        return AvailableSampling(fed.seed, fed.num_clients, k, online)
    return SeededSampling(fed.seed, fed.num_clients, k)
