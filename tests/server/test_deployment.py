"""Deployment mode of the loop: seeded node sampling and per-node messages."""

from __future__ import annotations

import numpy as np
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


def test_central_dp_over_too_few_supernodes_is_refused_before_round_one():
    from server.deployment import dp_population_error

    assert dp_population_error(10, 1e-5, 10) is None
    assert "exceeds the 3 connected SuperNodes" in dp_population_error(10, 1e-5, 3)
    assert "delta" in dp_population_error(2, 0.5, 3)
    cfg = ExperimentConfig.from_flat({"dp": "central", "clients-per-round": 10, "num-clients": 100})
    dealer = NodeDealer(_Grid([5, 6, 7]))
    try:
        dealer.private_config(cfg)
    except ConfigError as exc:
        assert "clients-per-round (10) exceeds the 3 connected SuperNodes" in str(exc)
    else:
        raise AssertionError("should refuse")
    ok = ExperimentConfig.from_flat({"dp": "central", "clients-per-round": 2, "delta": 1e-3})
    assert dealer.private_config(ok).federation.num_clients == 3


def test_a_poisson_round_larger_than_the_secagg_nodes_releases_noise_only():
    from privacy.secagg.round import SecureSender, oversized_round

    assert oversized_round(4, 5, 5) is None
    assert "sampled 6 clients but only 5" in oversized_round(4, 6, 5)
    cfg = ExperimentConfig.from_flat(
        {"dp": "central", "secure-aggregation": True, "clients-per-round": 3, "num-clients": 50}
    )
    arrays = ArrayRecord([np.zeros(2, np.float32)])
    outcome = SecureSender(cfg, 2).run(_Grid([1, 2]), _train_messages([1, 2, 3], arrays), 4)
    assert outcome.mean is None and "SecAgg+ needs one node per client" in outcome.reason
