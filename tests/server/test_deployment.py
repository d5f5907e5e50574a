"""Deployment mode of the loop: seeded node sampling and per-node messages."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from clients.app import node_local_config, worker_node
from learning.config import ExperimentConfig
from learning.errors import ConfigError
from server.deployment import NodeDealer
from server.sampling import sample_nodes, top_up_nodes


class _Grid:
    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


def test_node_sample_is_seeded_and_independent_of_listing_order():
    nodes = [9_000_000_000_000_000_001, 17, 5, 123456]
    a = sample_nodes(3, 4, nodes, 2)
    assert a == sample_nodes(3, 4, list(reversed(nodes)), 2)
    assert len(set(a)) == 2 and set(a) <= set(nodes)
    assert sample_nodes(3, 4, nodes, 10) == sorted(nodes)
    assert sample_nodes(3, 4, [], 2) == []


def test_top_up_picks_untried_nodes():
    nodes = [1, 2, 3, 4, 5]
    more = top_up_nodes(0, 1, 1, nodes, {1, 2}, 2)
    assert len(more) == 2 and not set(more) & {1, 2}
    assert top_up_nodes(0, 1, 1, nodes, set(nodes), 2) == []


def test_dealer_addresses_sampled_nodes_without_partition_id():
    dealer = NodeDealer(_Grid([30, 10, 20]), seed=0)
    chosen = dealer.sample(1, 2)
    arrays = ArrayRecord([])
    template = [
        Message(
            content=RecordDict({"arrays": arrays, "config": ConfigRecord({"lr": 0.1})}),
            dst_node_id=n,
            message_type=MessageType.TRAIN,
        )
        for n in (30, 10, 20)
    ]
    out = dealer.address(template, chosen, 1)
    assert [m.metadata.dst_node_id for m in out] == chosen
    for m in out:
        assert dict(m.content["config"]) == {"lr": 0.1, "server-round": 1}
        assert m.content["arrays"] is arrays  # reused, not copied
    assert dict(template[0].content["config"]) == {"lr": 0.1}  # never mutated


def _context(node_config: dict) -> Context:
    return Context(
        run_id=1, node_id=2**63 + 5, node_config=node_config, state=RecordDict(), run_config={}
    )


def test_node_local_config_uses_the_nodes_own_split():
    cfg = ExperimentConfig().replace(
        federation_mode="deployment", num_clients=3, clients_per_round=3
    )
    local = node_local_config(cfg, {}, _context({"partition-id": 1, "num-partitions": 5}))
    assert local.federation.num_clients == 5
    own = node_local_config(cfg, {}, _context({"data-path": "/data/x.npz", "dataset": "npz"}))
    assert own.data.data_path == "/data/x.npz" and own.federation.num_clients == 1
    simulated = node_local_config(cfg, {"partition-id": 2}, _context({}))
    assert simulated is cfg
    try:
        node_local_config(cfg, {}, _context({"partition-id": 7, "num-partitions": 3}))
    except ConfigError as exc:
        assert "partition-id=7" in str(exc)
    else:
        raise AssertionError("partition-id outside num-partitions was accepted")


def test_worker_node_names_the_supernode_in_48_bits():
    assert worker_node(_context({})) == (2**63 + 5) & (2**48 - 1)
