"""Deployment mode of the round loop (`federation-mode = "deployment"`).

In a simulation the server owns the data split: it draws partition ids and names one
in every message, and any execution slot can train any partition. In a real Flower
deployment each SuperNode holds its own data, so the server cannot choose *what* a
node trains on, only *which* nodes train. The loop keeps drawing logical clients
with `server/sampling.py` (seeded by (seed, round), with the same top-ups), but over
the SuperNodes connected when the run starts: client k is the k-th node in node-id
order, so the same nodes and seed draw the same nodes every run. Each sampled node
gets one message without a partition id, and the ClientApp trains on its node
config (`partition-id`/`num-partitions` or `data-path`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from flwr.app import Message
from flwr.serverapp import Grid

from learning.config import ExperimentConfig, FederationConfig
from learning.errors import ConfigError
from server.messages import addressed_copy
from server.run_dir import write_atomic

NODES_FILE = "nodes.json"


class NodeDealer:
    """Maps the loop's logical clients onto connected SuperNodes and addresses them."""

    def __init__(self, grid: Grid, run_dir: Path | None = None) -> None:
        # Node ids are fixed per registered key (and kept by the SuperLink's database
        # across its restarts), so a node that reconnects keeps its place; one that is
        # gone simply fails its messages (and is topped up). The population is the
        # nodes online when the run starts, recorded in RUN_DIR/nodes.json: a resumed
        # run uses the same, whichever of them happen to be online when it resumes.
        record = Path(run_dir) / NODES_FILE if run_dir is not None else None
        if record is not None and record.is_file():
            self.node_ids = [int(n) for n in json.loads(record.read_text())["node_ids"]]
        else:
            self.node_ids = sorted(int(n) for n in grid.get_node_ids())
            if record is not None and self.node_ids:
                write_atomic(record, json.dumps({"node_ids": self.node_ids}).encode())
        if not self.node_ids:
            raise ConfigError(
                "federation-mode = deployment but no SuperNode is connected; "
                "start SuperNodes (perennial deploy supernodes) before the run"
            )

    def admit(self, grid: Grid, run_dir: Path | None = None) -> list[int]:
        """Late joiners (deploy-late-joiners): nodes online now that are not in the
        population join it at its end, in node-id order, so every earlier client keeps
        its index; the grown population is recorded. Returns the new node ids."""
        known = set(self.node_ids)
        new = sorted(int(n) for n in grid.get_node_ids() if int(n) not in known)
        if new:
            self.node_ids = [*self.node_ids, *new]
            if run_dir is not None:
                record = Path(run_dir) / NODES_FILE
                write_atomic(record, json.dumps({"node_ids": self.node_ids}).encode())
        return new

    def private_config(self, cfg: ExperimentConfig) -> ExperimentConfig:
        """`cfg` over the connected SuperNodes, the population central DP samples from
        and accounts over; refused in one line before round 1 if it cannot be."""
        bad = dp_population_error(
            cfg.federation.clients_per_round, cfg.privacy.delta, len(self.node_ids)
        )
        if bad:
            raise ConfigError(bad)
        return cfg.replace(num_clients=len(self.node_ids))

    def federation(self, fed: FederationConfig) -> FederationConfig:
        """`fed` with num-clients = the connected SuperNodes (what sampling draws from)."""
        return dataclasses.replace(fed, num_clients=len(self.node_ids))

    def address(
        self, messages: list[Message], clients: list[int], server_round: int, start: int = 0
    ) -> list[Message]:
        """One message per sampled client, sent to its SuperNode (`start` is unused: the
        client is the node), from the strategy's first message. As in simulation mode,
        the strategy's records are reused (never mutated) and only the config is copied,
        here with the round but no partition id.
        """
        if not messages:
            return []
        template = min(messages, key=lambda m: m.metadata.dst_node_id)
        return [
            addressed_copy(template, self.node_ids[k], **{"server-round": server_round})
            for k in clients
        ]


def dp_population_error(clients_per_round: int, delta: float, num_nodes: int) -> str | None:
    """Why central DP cannot run over `num_nodes` SuperNodes (None if it can): Poisson
    sampling at rate clients-per-round / nodes needs a rate <= 1, and delta < 1/nodes."""
    if clients_per_round > num_nodes:
        return (
            f"clients-per-round ({clients_per_round}) exceeds the {num_nodes} connected "
            "SuperNodes, the population central DP samples from in a deployment; lower "
            "clients-per-round or start more SuperNodes"
        )
    if delta >= 1.0 / num_nodes:
        return (
            f"delta ({delta:g}) must be < 1/connected SuperNodes ({1.0 / num_nodes:g}); "
            "lower delta or start more SuperNodes"
        )
    return None
