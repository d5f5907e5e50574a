"""Deployment mode of the round loop (`federation-mode = "deployment"`).

In a simulation the server owns the data split: it draws partition ids and names one
in every message, and any execution slot can train any partition. In a real Flower
deployment each SuperNode holds its own data, so the server cannot choose *what* a
node trains on, only *which* nodes train: it samples among the connected nodes
(seeded, over sorted node ids) and sends each one message without a partition id;
the ClientApp then uses its node config (`partition-id`/`num-partitions` or
`data-path`).
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from server.sampling import sample_nodes, top_up_nodes


class NodeDealer:
    """Samples connected SuperNodes and addresses one train message to each."""

    def __init__(self, grid: Grid, seed: int) -> None:
        self.grid = grid
        self.seed = seed

    def _nodes(self) -> list[int]:
        return sorted(int(n) for n in self.grid.get_node_ids())

    def sample(self, server_round: int, k: int) -> list[int]:
        """Up to `k` node ids for this round (fewer if fewer are connected)."""
        return sample_nodes(self.seed, server_round, self._nodes(), k)

    def top_up(self, server_round: int, attempt: int, tried: set[int], k: int) -> list[int]:
        """Up to `k` more node ids for a retried round, none already tried."""
        return top_up_nodes(self.seed, server_round, attempt, self._nodes(), tried, k)

    @staticmethod
    def address(messages: list[Message], node_ids: list[int], server_round: int) -> list[Message]:
        """One message per sampled node, built from the strategy's first message.

        As in simulation mode, the strategy's records are reused (never mutated) and
        only the config is copied, here adding the round but no partition id.
        """
        if not messages:
            return []
        template = min(messages, key=lambda m: m.metadata.dst_node_id)
        out = []
        for node in node_ids:
            content = RecordDict()
            for key, record in template.content.items():
                if isinstance(record, ConfigRecord):
                    record = ConfigRecord({**record, "server-round": server_round})
                content[key] = record
            out.append(
                Message(
                    content=content,
                    dst_node_id=node,
                    message_type=template.metadata.message_type,
                )
            )
        return out
