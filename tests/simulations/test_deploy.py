"""A real Flower deployment on this machine: a SuperLink and three SuperNodes as
separate OS processes over TLS with SuperNode authentication, a 2-round experiment
submitted with `flwr run`, and two SuperNodes that must be refused (an unregistered
key; a CA that did not sign the SuperLink's certificate).

Every process started here is stopped by pid (with its children), even on failure.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from flwr.common.config import flatten_dict
from helpers import ROOT, free_port, run_cli

from learning.config import key_spec
from learning.errors import ConfigError
from simulations import deployment as deploy
from simulations.deployment.certs import DeployFiles, make_node_key, make_tls

SMALL = [
    "rounds=2",
    "train-subset=1500",
    "test-subset=500",
    'model="mlp"',
    "max-local-steps=20",
    "lr=0.05",
    'partition="iid"',
]


def _exited(entry: dict, timeout: float) -> bool:
    """Whether the process ended within `timeout` s (it may already be reaped)."""
    deadline = time.monotonic() + timeout
    while deploy.alive(entry) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_flower_app_declares_every_config_key():
    """`flwr run --run-config` refuses keys the app does not declare."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = flatten_dict(pyproject["tool"]["flwr"]["app"]["config"])
    spec = key_spec()
    assert sorted(declared) == sorted(f"{spec[k][0]}.{k}" for k in spec)


@pytest.mark.slow
@pytest.mark.tf
def test_tls_deployment_trains_and_refuses_strangers(tmp_path):
    files = deploy.certs(tmp_path / "dep", 3, [])
    wrong = DeployFiles(tmp_path / "other-ca")
    make_tls(wrong, [])
    stranger_key = tmp_path / "stranger" / "supernode"
    make_node_key(stranger_key)
    out = tmp_path / "run"
    cfg = deploy.deployment_config(None, SMALL, 3, out)
    refused: list[dict] = []
    started: list[dict] = []
    try:
        link = deploy.superlink(files.root, port=free_port(), timeout=240)
        started.append(link)
        assert len(link["node_ids"]) == 3
        nodes = deploy.supernodes(files.root, timeout=240)
        started += nodes
        assert len(nodes) == 3
        address = link["address"]
        # An unregistered key, and a registered key trusting the wrong CA.
        for name, key, ca in (
            ("stranger", stranger_key, None),
            ("wrong-ca", files.node_key(0), wrong.ca),
        ):
            cmd = deploy.supernode_command(
                files, address, key, "partition-id=0 num-partitions=3", free_port(), ca, 60
            )
            refused.append(deploy.start_supernode(files, name, cmd))

        summary = deploy.run(files.root, cfg, timeout=600)

        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in rows] == [1, 2]
        assert rows[1]["accuracy"] > rows[0]["accuracy"], rows
        assert all(r["replies"] == 3 and r["failures"] == 0 for r in rows)
        assert summary["rounds_completed"] == 2
        # Three SuperNodes trained (worker-node = their ids), one update each per round.
        assert sorted(summary["updates_per_node"].values()) == [2, 2, 2]
        expected = {f"{n & (2**48 - 1):012x}" for n in link["node_ids"]}
        assert set(summary["updates_per_node"]) == expected
        assert (out / "summary.json").is_file()

        stranger, wrong_ca = refused
        # Both gave up with Flower's "cannot connect" exit (code 305), never trained.
        assert _exited(stranger, 120) and _exited(wrong_ca, 120)
        log = Path(stranger["log"]).read_text()
        assert "Exit Code: 305" in log and "Failed to activate SuperNode" in log
        log = Path(wrong_ca["log"]).read_text()
        assert "Exit Code: 305" in log and "CERTIFICATE_VERIFY_FAILED" in log
    finally:
        deploy.stop_entries(refused)
        if files.state.is_file():
            deploy.down(files.root)
    state = deploy.read_state(files)
    assert not state.get("supernodes") and not state.get("superlink")
    assert all(deploy.alive(e) is None for e in [*started, *refused])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["certs", "{tmp}/d", "--nodes", "0"], "--nodes must be >= 1"),
        (["superlink", "{tmp}/d"], "run `perennial deploy certs"),
        (["run", "{tmp}/d"], "run `perennial deploy superlink` first"),
        (["down", "{tmp}/d"], "nothing was started there"),
        (["local", "--set", "rounds=abc", "--dir", "{tmp}/d"], "'rounds' must be an integer"),
        (["superlink", "{tmp}/d", "--restart"], "no SuperLink to restart"),
        (["supernodes", "{tmp}/d", "--restart"], "--restart needs --index"),
        (["supernodes", "{tmp}/d", "--index", "0", "--restart"], "never started here"),
    ],
)
def test_deploy_bad_input_is_one_line(tmp_path, args, fragment):
    proc = run_cli("deploy", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- client-folders


def test_each_supernode_trains_on_its_own_client_folder(tmp_path):
    """What `deploy local` / `deploy supernodes --client-folders` hands SuperNode i, read
    the way flower-supernode and the ClientApp read it, is client folder i's images."""
    from client_tree import stack, write_tree
    from flwr.app import Context, RecordDict
    from flwr.common.config import parse_config_args

    from clients.app import node_local_config, partition_id_for
    from learning.federated_data import client_shard

    tree = tmp_path / "tree"
    written = write_tree(
        tree, {"x": {"a": 2}, "y": {"a": 1, "b": 2}, "z": {"b": 3}}, {"x": {"b": 1}}
    )
    sets = ['dataset="client-folders"', f'data-path="{tree}"', "image-size=8"]
    cfg = deploy.deployment_config(None, sets, 3, tmp_path / "run")
    assert (cfg.federation.num_clients, cfg.federation.clients_per_round) == (3, 3)
    assert deploy.default_nodes(None, sets) == 3
    for i, node_config in enumerate(deploy.node_configs(3, client_folders=str(tree))):
        node = Context(
            run_id=1,
            node_id=i,
            node_config=parse_config_args([node_config]),
            state=RecordDict(),
            run_config={},
        )
        x, y = client_shard(node_local_config(cfg, {}, node), partition_id_for({}, node))
        want_x, want_y = stack(written[f"{'xyz'[i]}/train"])
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)


def test_client_folders_need_one_supernode_per_folder(tmp_path):
    from client_tree import write_tree

    tree = tmp_path / "tree"
    write_tree(tree, {"x": {"a": 1}, "y": {"a": 1}}, {"x": {"a": 1}})
    with pytest.raises(ConfigError, match="holds 2 client folders for 3 SuperNodes"):
        deploy.node_configs(3, client_folders=str(tree))
    with pytest.raises(ConfigError, match="not both"):
        deploy.node_configs(2, ["a", "b"], str(tree))
    sets = ['dataset="client-folders"', f'data-path="{tree}"']
    with pytest.raises(ConfigError, match=r"2 client folders for 3 SuperNodes.*--nodes 2"):
        deploy.deployment_config(None, sets, 3, tmp_path / "run")
    proc = run_cli("deploy", "local", *[a for s in sets for a in ("--set", s)], "--nodes", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 client folders for 1 SuperNodes" in lines[0], proc.stderr


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    """`deploy run --resume RUN_DIR`: one line for a folder that is not a run, a run that
    finished, a simulation, a run killed before its first checkpoint."""
    from simulations.deployment.run import resume_config

    with pytest.raises(ConfigError, match="not a run directory"):
        resume_config(tmp_path / "nothing")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('federation-mode = "simulation"\n')
    with pytest.raises(ConfigError, match="is a simulation"):
        resume_config(run)
    (run / "config.toml").write_text('federation-mode = "deployment"\n')
    with pytest.raises(ConfigError, match="before its first checkpoint"):
        resume_config(run)
    (run / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="already finished"):
        resume_config(run)
