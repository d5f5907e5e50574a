"""`perennial` command line: run, bench, report, perf, keys, and deploy (a real Flower
deployment; see simulations/deployment/cli.py).

Every user mistake surfaces as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import learning  # noqa: F401  (privacy defaults: telemetry off)
from learning.config import ExperimentConfig, key_spec
from learning.errors import ConfigError, PerennialError
from simulations.run_output import print_summary


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for config errors
        sys.stderr.write(f"perennial: error: {message} (see `perennial --help`)\n")
        sys.exit(2)


def cmd_run(args: argparse.Namespace) -> int:
    from learning.config import canonical_key, parse_override
    from simulations.api import run

    overrides = {}
    for text in args.set:  # in order: a later --set of the same key wins
        key, value = parse_override(text)
        overrides[canonical_key(key)] = value
    result = run(
        args.config,
        overrides,
        out=args.out,
        resume=args.resume,
        ray_address=args.ray_address,
        quiet=args.quiet,
        verbose=args.verbose,
        announce=lambda text: print(text, flush=True),
        trust_pickled=args.trust_pickled_plugins,
    )
    print_summary(result.summary, result.run_dir)
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    import tempfile

    from simulations.perf import print_table, run_perf

    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    if args.time:
        from simulations.perf_time import print_time_table, run_time_perf

        with tempfile.TemporaryDirectory(prefix="perennial-perf-") as tmp:
            result = run_time_perf(args.set, args.repeats, Path(tmp))
        print_time_table(result)
    else:
        with tempfile.TemporaryDirectory(prefix="perennial-perf-") as tmp:
            result = run_perf(args.set, args.repeats, Path(tmp), cohort=args.cohort)
        print_table(result)
    if args.json:
        from simulations.perf import write_json

        write_json(result, Path(args.json))
        print(f"wrote {args.json}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from simulations.api import bench

    result = bench(
        args.grid,
        out=args.out,
        ray_address=args.ray_address,
        quiet=args.quiet,
        announce=lambda text: print(text, flush=True),
    )
    print(result.results_md)
    print(f"results: {result.out}/results.md, results.csv, accuracy.png, report.html")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from simulations.report import write_report

    out = Path(args.out)
    write_report([Path(d) for d in args.run_dirs], out)
    print(f"report: {out}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    defaults = ExperimentConfig().to_flat()
    for key, (section, f) in key_spec().items():
        print(f"{key:<22} {section:<11} {defaults[key]!r:<16} {f.metadata.get('help', '')}")
    text = "your plug-ins' own settings (scalars), e.g. [plugin] width = 64; docs/extending.md"
    print(f"{'plugin.<name>':<22} {'plugin':<11} {'(none)':<16} {text}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from server.export import export_round

    print(f"perennial: wrote {export_round(args.run_dir, args.round, args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="perennial", description="Federated (continual) learning simulations.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("config", nargs="?", help="experiment TOML file (defaults built in)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable)",
    )
    run.add_argument("--out", help="run directory to create (default runs/<time>-<strategy>)")
    run.add_argument("--ray-address", help="existing Ray cluster (else RAY_ADDRESS or local)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    run.add_argument(
        "--trust-pickled-plugins",
        action="store_true",
        help="with --resume: load plug-ins the Python API stored by value (runs their code)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--verbose", action="store_true", help="show Flower's own logs")
    run.set_defaults(func=cmd_run)
    perf = sub.add_parser("perf", help="time the engine against a bare loop and a quickstart")
    perf.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the perf workload",
    )
    perf.add_argument("--repeats", type=int, default=1, help="repeat and report medians")
    perf.add_argument(
        "--cohort",
        action="store_true",
        help="cross-device preset: 200 clients/round x 20 examples, lenet, pooled 25 per message",
    )
    perf.add_argument(
        "--time",
        action="store_true",
        help="wall time per client update: sync vs the virtual clock, deadline, FedBuff, FedAsync",
    )
    perf.add_argument("--json", help="also write the figures to this JSON file")
    perf.set_defaults(func=cmd_perf)
    bench = sub.add_parser("bench", help="run a grid of experiments and compare them")
    bench.add_argument("grid", help="grid TOML file (see simulations/experiments/)")
    bench.add_argument("--out", help="bench directory (default bench-out/<grid name>)")
    bench.add_argument("--ray-address", help="existing Ray cluster (else RAY_ADDRESS or local)")
    bench.add_argument("--quiet", action="store_true", help="no per-cell lines")
    bench.set_defaults(func=cmd_bench)
    report = sub.add_parser("report", help="one HTML page comparing run directories")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", default="report.html", help="HTML file to write")
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="write a checkpointed round's model as .keras")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--round", type=int, help="round to export (default: the last)")
    export.add_argument("--out", help="file to write (default RUN_DIR/model-roundN.keras)")
    export.set_defaults(func=cmd_export)
    keys = sub.add_parser("keys", help="list config keys with defaults")
    keys.set_defaults(func=cmd_keys)
    from simulations.deployment.cli import add_deploy_parser

    add_deploy_parser(sub, _Parser)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PerennialError as exc:
        sys.stderr.write(f"perennial: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("perennial: interrupted\n")
        return 130


def main_entry() -> None:
    """Console-script entry point.

    Exits with `os._exit` so that a Flower server thread still blocked on a crashed
    runtime cannot keep the process alive after the error has been reported.
    """
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # a bug, not a user error: show it, then still exit
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main_entry()
