"""DP-FedAvg at user level (McMahan et al. 2018), adaptive clipping (Andrew et al. 2021).

Clients clip their update to L2 norm C (Flower's `fixedclipping_mod` or
`adaptiveclipping_mod`, added by `privacy.client_mods`). The server clips again (a client
that skipped it gains nothing), sums, adds Gaussian noise of std z*C to the sum and
divides by the *expected* number of clients q*N. With Poisson sampling that fixed
denominator keeps the mean's sensitivity at C/(qN) whatever the round's draw, which
is what the accountant assumes. The noisy mean is handed to the wrapped strategy as
one reply, so FedAvgM/FedAdam/... apply their server step to it: post-processing,
no further privacy cost.

Adaptive clipping follows the paper, not Flower 1.42's server wrapper: Flower's
client mod reports a bit that is 1 when the update *was clipped*, and its wrapper
shrinks C when more than the target share was clipped, which drives C towards zero.
Here the bit is turned into "unclipped" and C moves towards the target quantile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

from learning.streams import Tag, fresh_generator, generator
from strategies.pooling import PoolSum

Arrays = list[np.ndarray]


def l2_norm(arrays: Arrays) -> float:
    return float(math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)))


def clip_update(delta: Arrays, clipping_norm: float) -> tuple[Arrays, bool]:
    """`delta` scaled to norm <= C, and whether it was left unclipped."""
    norm = l2_norm(delta)
    if norm <= clipping_norm:
        return [np.asarray(d, dtype=np.float64) for d in delta], True
    scale = clipping_norm / norm
    return [np.asarray(d, dtype=np.float64) * scale for d in delta], False


def noisy_mean(
    delta_sum: Arrays, denominator: float, std: float, rng: np.random.Generator
) -> Arrays:
    """(sum + N(0, std^2 I)) / denominator."""
    return [(s + rng.normal(0.0, std, size=np.shape(s))) / denominator for s in delta_sum]


def update_noise_multiplier(noise_multiplier: float, count_std: float) -> float:
    """Noise multiplier left for the update when the clipped count also gets noise.

    Andrew et al. (2021), Thm 1: releasing the sum with z_delta and the count of
    unclipped updates with std count_std costs as much as one Gaussian release with
    z = (z_delta^-2 + (2 count_std)^-2)^(-1/2). The factor 2 holds because each client
    contributes its bit centred, b - 1/2, so the count's sensitivity is 1/2 (see
    `noisy_unclipped`). Solving for z_delta keeps the accountant's z honest.
    """
    if noise_multiplier == 0:
        return 0.0
    if count_std <= noise_multiplier / 2:
        raise ValueError(
            f"clipped-count-stddev ({count_std:g}) must exceed noise-multiplier / 2 "
            f"({noise_multiplier / 2:g}); raise it or lower noise-multiplier"
        )
    return (noise_multiplier**-2 - (2 * count_std) ** -2) ** -0.5


def noisy_unclipped(
    unclipped: int, replies: int, expected: float, std: float, rng: np.random.Generator
) -> float:
    """The noisy count of unclipped updates that the clipping step uses.

    Only the centred sum sum(b_i - 1/2) is released, with noise: its sensitivity is 1/2.
    The 1/2 per client is added back for the *expected* number of clients, a public
    number; the actual number of replies is private (it says who took part).
    """
    return (unclipped - 0.5 * replies) + rng.normal(0.0, std) + 0.5 * expected


def next_clipping_norm(
    clipping_norm: float,
    unclipped: float,
    expected_clients: float,
    target_quantile: float,
    learning_rate: float,
) -> float:
    """Geometric step of C towards the target quantile of update norms:
    C * exp(-lr * (unclipped share - target)). Too many unclipped -> C shrinks."""
    share = unclipped / expected_clients
    return float(clipping_norm * math.exp(-learning_rate * (share - target_quantile)))


def pool_client(
    pool: PoolSum,
    x: Arrays,
    y: Arrays,
    num_examples: int,
    clipping_norm: float,
    clipped_by_client: bool | None = None,
) -> None:
    """Central DP in a worker: one client's delta y - x clipped to C (as the server's
    `aggregate_train` clips every reply) enters the pool's sum. `clipped_by_client` is
    the client mod's norm bit (adaptive clipping), which decides the unclipped count
    as it does on the server."""
    delta = [np.asarray(w, np.float64) - g for w, g in zip(y, x, strict=True)]
    clipped, kept = clip_update(delta, clipping_norm)
    if clipped_by_client is not None:
        kept = not clipped_by_client
    pool.add_client(x, clipped, num_examples, unclipped=kept)


def single_reply(arrays: Arrays, dtypes: list[np.dtype]) -> Message:
    """A reply standing for the whole round (the noisy or securely summed mean), so the
    wrapped strategy's own server step runs on it unchanged."""
    record = ArrayRecord([np.asarray(a).astype(d) for a, d in zip(arrays, dtypes, strict=True)])
    content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": 1})})
    return Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)


class CentralDP(Strategy):
    """Wraps a mean-based strategy with clipping, noise and the release count."""

    def __init__(
        self,
        inner: Strategy,
        *,
        noise_multiplier: float,
        clipping_norm: float,
        expected_clients: float,
        adaptive: bool = False,
        target_quantile: float = 0.5,
        clip_learning_rate: float = 0.2,
        count_std: float = 0.0,
        key: int = 0,
        secure_noise: bool = False,
        quantisation_step: float = 0.0,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.noise_multiplier = noise_multiplier
        self.expected_clients = expected_clients
        self.adaptive = adaptive
        self.target_quantile = target_quantile
        self.clip_learning_rate = clip_learning_rate
        self.count_std = count_std or expected_clients / 20
        self.update_multiplier = (
            update_noise_multiplier(noise_multiplier, self.count_std)
            if adaptive
            else noise_multiplier
        )
        self.key = key  # the server's secret run key (privacy/server_key.py)
        self.secure_noise = secure_noise
        # SecAgg+ rounds each coordinate stochastically to a grid of this step, which can
        # move a clipped update by up to sqrt(d) steps: clients clip that much tighter.
        self.quantisation_step = quantisation_step
        # Arrays, so that checkpoints carry them (see server.checkpoint).
        self._clip = np.array([clipping_norm], dtype=np.float64)
        self._releases = np.array([0], dtype=np.int64)
        self.last_noise_std = 0.0
        self._global: Arrays = []

    @property
    def clipping_norm(self) -> float:
        return float(self._clip[0])

    @property
    def releases(self) -> int:
        return int(self._releases[0])

    def _rng(self, server_round: int, stream: int) -> np.random.Generator:
        if self.secure_noise:
            return fresh_generator()
        return generator(self.key, Tag.CENTRAL_NOISE, server_round, stream)

    def client_clipping_norm(self, num_params: int) -> float:
        """The norm clients clip to: C, less SecAgg+'s worst quantisation error."""
        return self.clipping_norm - math.sqrt(num_params) * self.quantisation_step

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global = arrays.to_numpy_ndarrays()
        config[KEY_CLIPPING_NORM] = self.client_clipping_norm(sum(g.size for g in self._global))
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Clip each reply's update again, sum, and release the noisy mean."""
        total: Arrays | None = None
        unclipped = count = 0
        for msg in replies:
            count += 1
            weights = msg.content["arrays"].to_numpy_ndarrays()
            delta = [w.astype(np.float64) - g for w, g in zip(weights, self._global, strict=True)]
            clipped, kept = clip_update(delta, self.clipping_norm)
            metrics = msg.content["metrics"]
            if KEY_NORM_BIT in metrics:  # the client's own verdict (1 = it clipped)
                kept = not bool(metrics[KEY_NORM_BIT])
            unclipped += int(kept)
            total = (
                clipped if total is None else [t + c for t, c in zip(total, clipped, strict=True)]
            )
        if total is None:  # nobody answered: the release still happens, noise only
            total = [np.zeros(g.shape, dtype=np.float64) for g in self._global]
        return self.aggregate_sum(server_round, total, unclipped, count)

    def aggregate_pooled(
        self, server_round: int, pool: PoolSum
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The release from pooled sums: workers clipped every client's delta to C and
        summed them (`pool_client`); the unclipped bits arrive as a count."""
        return self.aggregate_sum(server_round, pool.arrays, pool.unclipped, pool.clients)

    def aggregate_sum(
        self,
        server_round: int,
        delta_sum: Arrays,
        unclipped: int | None = None,
        replies: int = 0,
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The release: noisy mean of clipped updates -> the wrapped strategy's step.
        Also the entry point for SecAgg+, where the server only ever holds the sum."""
        std = self.update_multiplier * self.clipping_norm
        mean = noisy_mean(delta_sum, self.expected_clients, std, self._rng(server_round, 0))
        self.last_noise_std = std / self.expected_clients
        self._releases[0] += 1  # without noise each release costs infinite epsilon
        new = [g + m for g, m in zip(self._global, mean, strict=True)]
        dtypes = [g.dtype for g in self._global]
        result = self.inner.aggregate_train(server_round, [single_reply(new, dtypes)])
        if self.adaptive and unclipped is not None:
            noisy = noisy_unclipped(
                unclipped,
                replies,
                self.expected_clients,
                self.count_std,
                self._rng(server_round, 1),
            )
            self._clip[0] = next_clipping_norm(
                self.clipping_norm,
                noisy,
                self.expected_clients,
                self.target_quantile,
                self.clip_learning_rate,
            )
        return result

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]):
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()
