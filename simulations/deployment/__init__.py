"""`perennial deploy`: the experiment on a real Flower deployment, scripted.

One module per job: certs.py (CA, TLS, SuperNode keys), processes.py (commands,
environment, pids), superlink.py, supernodes.py, run.py (`flwr run`, down, local),
cli.py (the `perennial deploy` sub-commands), netns.py (separate hosts on one
machine, for the fault tests and `deploy bench-faults`). The server side of a deployment, sampling
connected SuperNodes, is server/deployment.py: the round loop imports it, and server/
may not import simulations/.

A SuperLink (TLS, SuperNode authentication on) and SuperNodes run as separate OS
processes, as they would on separate machines; the experiment is submitted with
`flwr run` and its ServerApp writes the usual run directory. Everything lives under
one deployment directory DIR:

    certs/    CA, SuperLink certificate and key      (deploy certs)
    keys/     one OpenSSH ECDSA key pair per SuperNode (deploy certs)
    flwr-home/config.toml   the `flwr` CLI's SuperLink connection (deploy superlink)
    logs/     one log per process
    state.json  pid, start time and command of every process started, so that
              `deploy down` stops exactly those (and their children), nothing else.

Flower 1.42 serves the Fleet, Control and Runtime APIs of a SuperLink on one HTTPS
port (`--host/--port`); SuperNodes are registered through the Control API
(`flwr supernode register KEY.pub CONNECTION`) and refused unless registered.
"""

from simulations.deployment.certs import DeployFiles, make_node_key, make_tls
from simulations.deployment.processes import (
    CONNECTION,
    DeployError,
    alive,
    certs,
    free_port,
    process_env,
    read_state,
    stop_entries,
)
from simulations.deployment.run import default_nodes, deployment_config, down, local, run
from simulations.deployment.superlink import (
    register_node,
    restart_superlink,
    superlink,
    write_connection,
)
from simulations.deployment.supernodes import (
    node_configs,
    restart_supernode,
    start_supernode,
    supernode_command,
    supernodes,
    wait_connected,
)

__all__ = [
    "CONNECTION",
    "DeployError",
    "DeployFiles",
    "alive",
    "certs",
    "default_nodes",
    "deployment_config",
    "down",
    "free_port",
    "local",
    "make_node_key",
    "make_tls",
    "node_configs",
    "process_env",
    "read_state",
    "register_node",
    "restart_superlink",
    "restart_supernode",
    "run",
    "start_supernode",
    "stop_entries",
    "superlink",
    "supernode_command",
    "supernodes",
    "wait_connected",
    "write_connection",
]
