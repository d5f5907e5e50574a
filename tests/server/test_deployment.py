"""Deployment mode of the loop: seeded node sampling and per-node messages."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from clients.app import node_local_config, worker_node
from learning.config import ExperimentConfig
from learning.errors import ConfigError
from server.deployment import NodeDealer
from server.sampling import sample_clients


class _Grid:
    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


def _train_messages(nodes: list[int], arrays: ArrayRecord) -> list[Message]:
    return [
        Message(
            content=RecordDict({"arrays": arrays, "config": ConfigRecord({"lr": 0.1})}),
            dst_node_id=n,
            message_type=MessageType.TRAIN,
        )
        for n in nodes
    ]


def test_clients_are_connected_nodes_in_node_id_order():
    nodes = [9_000_000_000_000_000_001, 17, 5, 123456]
    dealer = NodeDealer(_Grid(nodes))
    assert dealer.node_ids == sorted(nodes)
    assert NodeDealer(_Grid(list(reversed(nodes)))).node_ids == dealer.node_ids
    fed = ExperimentConfig().federation  # num-clients 100, clients-per-round 10
    assert dealer.federation(fed).num_clients == 4
    assert dealer.federation(fed).clients_per_round == 10  # sampling caps it at 4


def test_dealer_addresses_sampled_nodes_without_partition_id():
    nodes = [30, 10, 20]
    dealer = NodeDealer(_Grid(nodes))
    chosen = sample_clients(0, 1, len(nodes), 2)
    arrays = ArrayRecord([])
    template = _train_messages(nodes, arrays)
    out = dealer.address(template, chosen, 1)
    assert [m.metadata.dst_node_id for m in out] == [sorted(nodes)[k] for k in chosen]
    for m in out:
        assert dict(m.content["config"]) == {"lr": 0.1, "server-round": 1}
        assert m.content["arrays"] is arrays  # reused, not copied
    assert dict(template[0].content["config"]) == {"lr": 0.1}  # never mutated


def test_deployment_without_supernodes_is_a_config_error():
    try:
        NodeDealer(_Grid([]))
    except ConfigError as exc:
        assert "no SuperNode is connected" in str(exc)
    else:
        raise AssertionError("an empty federation was accepted")


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
