"""`perennial deploy ...` subcommands (argument parsing only; the work is in deploy.py).

perennial deploy certs DIR --nodes 3 [--host NAME ...]
perennial deploy superlink DIR [--host 127.0.0.1] [--port P] | DIR --restart
perennial deploy supernodes DIR [--superlink HOST:PORT] [--index I ...] [--data-path P ...]
                           [--client-folders DATA] | DIR --index I --restart
perennial deploy run DIR [CONFIG] [--set KEY=VALUE ...] [--out RUN_DIR] | DIR --resume RUN_DIR
perennial deploy down DIR
perennial deploy local [CONFIG] --nodes 3 [--set ...] [--out RUN_DIR] [--dir DIR]
perennial deploy bench-faults [CONFIG] [--set ...] [--out DIR] [--nodes 3] [--node 1]
                              [--kill-round 2] [--restart-round 4] [--link-round 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from learning.errors import ConfigError
from simulations.run_output import preflight, print_summary, write_run_report


def _out(args: argparse.Namespace) -> Path:
    return Path(args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-deploy")


def _report(summary: dict, out: Path) -> None:
    write_run_report([out], out / "report.html")
    per_node = summary.get("updates_per_node", {})
    print(f"perennial: run {summary.get('run_id')} trained on {len(per_node)} SuperNodes")
    print_summary(summary, out)


def cmd_certs(args: argparse.Namespace) -> int:
    from simulations.deployment import certs

    files = certs(Path(args.dir), args.nodes, args.host)
    print(f"perennial: CA {files.ca}, SuperLink certificate {files.server_cert}")
    print(f"perennial: {args.nodes} SuperNode key pairs in {files.root / 'keys'}")
    return 0


def cmd_superlink(args: argparse.Namespace) -> int:
    from simulations.deployment import superlink
    from simulations.deployment.superlink import restart_superlink

    if args.restart:
        entry = restart_superlink(Path(args.dir), args.timeout)
        print(f"perennial: SuperLink restarted on {entry['address']} (pid {entry['pid']})")
        return 0
    entry = superlink(Path(args.dir), args.host, args.port, args.timeout)
    print(f"perennial: SuperLink on {entry['address']} (pid {entry['pid']}, log {entry['log']})")
    print(f"perennial: registered SuperNodes {entry['node_ids']}")
    return 0


def cmd_supernodes(args: argparse.Namespace) -> int:
    from simulations.deployment import supernodes
    from simulations.deployment.supernodes import restart_supernode

    if args.restart:
        if not args.index:
            raise ConfigError("--restart needs --index I (the SuperNode to start again)")
        for i in args.index:
            e = restart_supernode(Path(args.dir), i, args.timeout)
            print(f"perennial: SuperNode {i} restarted (pid {e['pid']}), log {e['log']}")
        return 0
    entries = supernodes(
        Path(args.dir),
        args.superlink,
        args.data_path,
        args.timeout,
        args.index,
        args.client_folders,
    )
    for e in entries:
        print(f"perennial: SuperNode pid {e['pid']} ({e['node_config']}), log {e['log']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from simulations.deployment import DeployFiles, deployment_config, read_state, run
    from simulations.deployment.run import resume_config

    state = read_state(DeployFiles(Path(args.dir).resolve()))
    nodes = int(state.get("nodes") or 0)
    if nodes < 1:
        raise ConfigError(f"{args.dir} has no deployment; run `perennial deploy superlink` first")
    if args.resume:
        if args.config or args.set or args.out:
            raise ConfigError("--resume takes the run's own config; drop CONFIG/--set/--out")
        cfg, out = resume_config(Path(args.resume)), Path(args.resume)
        print(f"perennial: resuming {out}", flush=True)
    else:
        out = _out(args)
        cfg = deployment_config(args.config, args.set, nodes, out)
        print(f"perennial: run directory {out}", flush=True)
    preflight(cfg)
    summary = run(Path(args.dir), cfg, timeout=args.timeout)
    _report(summary, out)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from simulations.deployment import down

    stopped = down(Path(args.dir))
    print(f"perennial: stopped {len(stopped)} processes {stopped}")
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from simulations.deployment import default_nodes, deployment_config, local

    out = _out(args)
    nodes = default_nodes(args.config, args.set) if args.nodes is None else args.nodes
    if nodes < 1:
        raise ConfigError(f"--nodes must be >= 1, got {nodes}")
    cfg = deployment_config(args.config, args.set, nodes, out)
    preflight(cfg)
    root = Path(args.dir or Path("deploy") / time.strftime("%Y%m%d-%H%M%S"))
    print(f"perennial: deployment directory {root}, run directory {out}", flush=True)
    summary = local(root, nodes, cfg, timeout=args.timeout)
    _report(summary, out)
    return 0


def cmd_bench_faults(args: argparse.Namespace) -> int:
    import signal
    import sys

    from simulations.deployment.bench_faults import Schedule, bench_faults

    # SIGTERM unwinds like Ctrl-C, so the namespaces and processes it made are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    schedule = Schedule(args.node, args.kill_round, args.restart_round, args.link_round)
    out = Path(args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-faults")
    print(f"perennial: bench-faults writing {out}", flush=True)
    result = bench_faults(args.config, args.set, out, args.nodes, schedule)
    print((out / "bench-faults.md").read_text(), end="")
    ok = result["resumed_rounds_identical"] and all(result["events_match"].values())
    return 0 if ok else 1


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="experiment TOML file (defaults built in)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="run directory to create (default runs/<time>-deploy)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")


def add_deploy_parser(sub: argparse._SubParsersAction, parser_class: type) -> None:
    """Register `perennial deploy` and its subcommands on the CLI's subparsers."""
    deploy = sub.add_parser("deploy", help="run on a real Flower deployment (TLS, node auth)")
    steps = deploy.add_subparsers(dest="step", required=True, parser_class=parser_class)

    p = steps.add_parser("certs", help="CA, SuperLink certificate, SuperNode key pairs")
    p.add_argument("dir", help="deployment directory")
    p.add_argument("--nodes", type=int, default=3, help="SuperNode key pairs to make")
    p.add_argument(
        "--host", action="append", default=[], help="extra SuperLink host name or IP (repeat)"
    )
    p.set_defaults(func=cmd_certs)

    p = steps.add_parser("superlink", help="start the SuperLink and register the SuperNodes")
    p.add_argument("dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for it")
    p.add_argument(
        "--restart", action="store_true", help="start DIR's SuperLink again (same port, state)"
    )
    p.set_defaults(func=cmd_superlink)

    p = steps.add_parser("supernodes", help="start one SuperNode per registered key")
    p.add_argument("dir")
    p.add_argument("--superlink", help="HOST:PORT (default: the one `deploy superlink` started)")
    p.add_argument(
        "--data-path",
        action="append",
        help="node i trains on all of this data (repeat once per node) instead of partition i",
    )
    p.add_argument(
        "--client-folders",
        metavar="DATA",
        help="a client-folders tree: node i trains on client folder i (one node per folder)",
    )
    p.add_argument(
        "--index", type=int, action="append", help="start only SuperNode I (repeat; default all)"
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for them")
    p.add_argument(
        "--restart", action="store_true", help="start SuperNode --index I again (same key)"
    )
    p.set_defaults(func=cmd_supernodes)

    p = steps.add_parser("run", help="run an experiment on the deployment (flwr run)")
    p.add_argument("dir")
    _experiment_args(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted deployment run")
    p.set_defaults(func=cmd_run)

    p = steps.add_parser("down", help="stop every process started for DIR")
    p.add_argument("dir")
    p.set_defaults(func=cmd_down)

    p = steps.add_parser("local", help="certs, SuperLink, SuperNodes, run, down on this machine")
    _experiment_args(p)
    p.add_argument(
        "--nodes",
        type=int,
        help="SuperNodes to start (default 3; client-folders: one per client folder)",
    )
    p.add_argument("--dir", help="deployment directory (default deploy/<time>)")
    p.set_defaults(func=cmd_local)

    p = steps.add_parser(
        "bench-faults", help="separate hosts (netns, root): clean vs node and SuperLink faults"
    )
    _experiment_args(p)
    p.add_argument("--nodes", type=int, default=3, help="SuperNodes, one namespace each")
    p.add_argument("--node", type=int, default=1, help="the SuperNode that is killed")
    p.add_argument("--kill-round", type=int, default=2, help="killed while training this round")
    p.add_argument("--restart-round", type=int, default=4, help="back for this round")
    p.add_argument("--link-round", type=int, default=5, help="SuperLink killed in it (0: never)")
    p.set_defaults(func=cmd_bench_faults)
