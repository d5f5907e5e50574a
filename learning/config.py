"""The experiment config: frozen dataclasses per concern, validated in one place.

Keys are kebab-case and flat (`num-clients`, `local-epochs`), as in Flower's run
config, so the same dict travels as a TOML file, as `--set` overrides, as
`[tool.flwr.app.config]` under `flwr run`, and inside each training message.
It lives in the bottom layer because both the ServerApp and the ClientApp build it.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learning.defence_bounds import strategy_error
from learning.errors import ConfigError
from learning.secagg_plan import max_round_size, secagg_plan

PARTITION_NAMES = ("iid", "dirichlet", "shards", "classes", "quantity")
DATASET_NAMES = ("fashion-mnist", "idx", "npz", "cifar10", "image-folder")
MODEL_NAMES = ("cnn", "lenet", "mlp", "small-cnn")
OPTIMIZER_NAMES = ("sgd", "adam")
ATTACK_NAMES = (
    "none",
    "label-flip",
    "sign-flip",
    "gaussian",
    "scaling",
    "alie",
    "ipm",
    "min-max",
    "free-ride",
)
SCENARIO_NAMES = ("none", "class-incremental", "domain-incremental")
CL_METHOD_NAMES = ("finetune", "ewc", "lwf", "replay")
DRIFT_NAMES = ("rotation", "blur", "noise", "contrast", "mixed")


def _k(default: Any, help: str, **rules: Any) -> Any:
    return field(default=default, metadata={"help": help, **rules})


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _k("fashion-mnist", "dataset name", choices=DATASET_NAMES)
    data_path: str = _k("", "file or folder for idx/npz/cifar10/image-folder")
    image_size: int = _k(32, "side length image-folder images are resized to", min=4)
    color: str = _k("grey", "image-folder colour mode", choices=("grey", "rgb"))
    train_subset: int = _k(0, "use only this many training examples (0 = all)", min=0)
    test_subset: int = _k(0, "evaluate on this many test examples (0 = all)", min=0)
    partition: str = _k("dirichlet", "how data is split over clients", choices=PARTITION_NAMES)
    alpha: float = _k(0.5, "Dirichlet concentration (smaller = more skew)", gt=0.0)
    min_shard_size: int = _k(10, "Dirichlet/quantity minimum examples per client", min=0)
    shards_per_client: int = _k(2, "shards partition: label-sorted shards per client", min=1)
    classes_per_client: int = _k(2, "classes partition: labels per client", min=1)
    quantity_sigma: float = _k(1.0, "quantity partition: lognormal sigma of sizes", gt=0.0)


@dataclass(frozen=True)
class TrainConfig:
    model: str = _k("cnn", "model name", choices=MODEL_NAMES)
    local_epochs: int = _k(1, "local epochs per round", min=1)
    batch_size: int = _k(32, "local batch size", min=1)
    lr: float = _k(0.1, "client learning rate", gt=0.0)
    lr_decay: float = _k(0.98, "client lr multiplied by this every round", gt=0.0, max=1.0)
    optimizer: str = _k("sgd", "client optimiser", choices=OPTIMIZER_NAMES)
    momentum: float = _k(0.0, "SGD momentum (reset for every client update)", min=0.0, lt=1.0)
    weight_decay: float = _k(0.0, "L2 weight decay", min=0.0)
    max_local_steps: int = _k(0, "cap on local batches per round (0 = none)", min=0)


@dataclass(frozen=True)
class FederationConfig:
    rounds: int = _k(60, "federated rounds", min=1)
    num_clients: int = _k(100, "registered clients (data partitions)", min=1)
    clients_per_round: int = _k(10, "clients sampled each round", min=1)
    seed: int = _k(0, "seed for data split, initial model, sampling and shuffling", min=0)
    eval_every: int = _k(1, "evaluate the global model every N rounds", min=1)
    timeout: float = _k(3600.0, "seconds to wait for a round's replies", gt=0.0)
    min_clients: int = _k(1, "good replies a round needs to aggregate", min=1)
    too_few: str = _k("retry", "a round short of min-clients", choices=("retry", "skip"))
    max_retries: int = _k(2, "redraws of a round short of min-clients", min=0)
    federation_mode: str = _k(
        "simulation",
        "simulation: the server names a partition per message; deployment: it samples "
        "connected SuperNodes, each training on its own node-config data",
        choices=("simulation", "deployment"),
    )


@dataclass(frozen=True)
class AttackConfig:
    malicious_fraction: float = _k(0.0, "share of clients that attack", min=0.0, max=1.0)
    attack: str = _k("none", "what malicious clients do", choices=ATTACK_NAMES)
    attack_scale: float = _k(4.0, "sign-flip/scaling factor; ALIE z", gt=0.0)
    attack_sigma: float = _k(1.0, "gaussian attack: std of the noise update", gt=0.0)
    ipm_epsilon: float = _k(0.1, "IPM: colluders send -epsilon x their mean update", gt=0.0)
    minmax_perturbation: str = _k(
        "std", "Min-Max: p = -std, -unit-vec or -sign", choices=("std", "unit-vec", "sign")
    )
    minmax_gamma_init: float = _k(10.0, "Min-Max: first gamma of the binary search", gt=0.0)
    minmax_tol: float = _k(1e-5, "Min-Max: binary-search tolerance on gamma", gt=0.0)
    fault_crash_prob: float = _k(0.0, "chance a client raises", min=0.0, max=1.0)
    fault_straggler_prob: float = _k(0.0, "chance a client answers late", min=0.0, max=1.0)
    fault_straggler_delay: float = _k(2.0, "seconds a straggler waits", min=0.0)
    fault_nan_prob: float = _k(0.0, "chance a client returns NaN weights", min=0.0, max=1.0)


@dataclass(frozen=True)
class StrategyConfig:
    strategy: str = _k("fedavg", "aggregation strategy name")
    proximal_mu: float = _k(0.01, "FedProx proximal term weight", min=0.0)
    server_lr: float = _k(1.0, "server learning rate (FedAvgM, FedOpt family, SCAFFOLD)", gt=0.0)
    server_momentum: float = _k(0.9, "FedAvgM server momentum", min=0.0, lt=1.0)
    tau: float = _k(1e-3, "FedOpt adaptivity (epsilon)", gt=0.0)
    beta1: float = _k(0.9, "FedOpt first-moment decay", min=0.0, lt=1.0)
    beta2: float = _k(0.99, "FedOpt second-moment decay", min=0.0, lt=1.0)
    q: float = _k(0.1, "q-FedAvg fairness exponent", min=0.0)
    trim_beta: float = _k(0.2, "FedTrimmedAvg fraction cut from each end", min=0.0, lt=0.5)
    num_malicious: int = _k(0, "Krum/MultiKrum/Bulyan: assumed Byzantine clients", min=0)
    num_to_keep: int = _k(
        0, "MultiKrum: updates kept (0 = clients-per-round - num-malicious)", min=0
    )
    feddyn_alpha: float = _k(0.01, "FedDyn regularisation strength", gt=0.0)
    rfa_iterations: int = _k(10, "RFA: smoothed Weiszfeld iterations", min=1)
    rfa_eps: float = _k(1e-6, "RFA: Weiszfeld smoothing (smallest distance used)", gt=0.0)
    clip_tau: float = _k(10.0, "centred clipping radius (L2 norm of an update)", gt=0.0)
    clip_iterations: int = _k(1, "centred clipping iterations per round", min=1)


@dataclass(frozen=True)
class RuntimeConfig:
    cpus_per_client: float = _k(1.0, "CPUs given to each simulation worker", gt=0.0)
    gpus_per_client: float = _k(0.0, "GPU fraction given to each worker", min=0.0)
    num_workers: int = _k(0, "simulation workers (0 = CPUs / cpus-per-client)", min=0)
    out_dir: str = _k("", "run directory (used by `flwr run`; the CLI sets it)")
    weights_only: bool = _k(True, "refuse client replies holding anything but weights")


# Strategies whose server step needs only the (weighted) mean of the updates: the only
# ones central DP's sensitivity analysis and SecAgg+'s sum-only view can serve.
SUM_ONLY_STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad")


@dataclass(frozen=True)
class PrivacyConfig:
    dp: str = _k("none", "differential privacy", choices=("none", "central", "local"))
    noise_multiplier: float = _k(1.0, "central DP: noise std / clipping norm", min=0.0)
    clipping_norm: float = _k(1.0, "DP: L2 bound on a client update (initial if adaptive)", gt=0.0)
    delta: float = _k(1e-5, "DP: target delta (must be < 1/num-clients)", gt=0.0, lt=1.0)
    target_epsilon: float = _k(
        0.0, "central DP: derive noise-multiplier for this epsilon (0 = off)", min=0.0
    )
    dp_clipping: str = _k("fixed", "central DP clipping", choices=("fixed", "adaptive"))
    target_quantile: float = _k(
        0.5, "adaptive clipping: share of updates left unclipped", gt=0.0, lt=1.0
    )
    clip_learning_rate: float = _k(0.2, "adaptive clipping: geometric step size", gt=0.0)
    clipped_count_stddev: float = _k(
        0.0,
        "adaptive clipping: noise std of the unclipped count (0 = clients-per-round/20)",
        min=0.0,
    )
    local_epsilon: float = _k(10.0, "local DP: epsilon of each released update", gt=0.0)
    local_delta: float = _k(1e-5, "local DP: delta of each released update", gt=0.0, lt=1.0)
    secure_noise: bool = _k(
        False, "draw DP noise from OS entropy (not reproducible; for deployments)"
    )
    privacy_seed: int = _k(
        -1,
        "central DP: pin the server's secret key (never sent to clients; -1 = fresh OS "
        "entropy per run, kept in RUN_DIR/server-key)",
        min=-1,
    )
    operator_diagnostics: bool = _k(
        False, "central DP: also record per-client fields epsilon does not cover (marked)"
    )
    secure_aggregation: bool = _k(False, "SecAgg+: the server sees only the sum")
    num_shares: int = _k(0, "SecAgg+: key shares per client (0 = all sampled clients)", min=0)
    reconstruction_threshold: int = _k(
        0, "SecAgg+: shares needed to rebuild a key (0 = largest the tolerance allows)", min=0
    )
    dropout_tolerance: float = _k(
        0.2, "SecAgg+: share of sampled clients that may drop mid-round", min=0.0, lt=1.0
    )
    secagg_clipping_range: float = _k(8.0, "SecAgg+: |value| bound before quantisation", gt=0.0)
    secagg_quantization_bits: int = _k(22, "SecAgg+: quantisation levels = 2**bits", min=8, max=28)


@dataclass(frozen=True)
class ContinualConfig:
    scenario: str = _k(
        "none", "continual scenario (none = one static task)", choices=SCENARIO_NAMES
    )
    num_tasks: int = _k(5, "tasks in the scenario (class-incremental: class groups)", min=1)
    rounds_per_task: int = _k(0, "rounds spent on each task (0 = rounds // num-tasks)", min=0)
    arrival_spread: int = _k(0, "clients reach each next task up to this many rounds late", min=0)
    drift: str = _k("rotation", "domain-incremental drift kind", choices=DRIFT_NAMES)
    drift_strength: float = _k(1.0, "drift of the last task (1 = full, e.g. 180 deg)", gt=0.0)
    drift_groups: int = _k(1, "client groups with different drift kinds (pid % groups)", min=1)
    cl_method: str = _k("finetune", "client continual-learning method", choices=CL_METHOD_NAMES)
    ewc_lambda: float = _k(1000.0, "EWC penalty weight", min=0.0)
    lwf_alpha: float = _k(1.0, "LwF distillation weight", min=0.0)
    lwf_temperature: float = _k(2.0, "LwF distillation temperature", gt=0.0)
    buffer_size: int = _k(200, "replay: examples kept per client (reservoir)", min=0)


SECTIONS = {
    "data": DataConfig,
    "train": TrainConfig,
    "federation": FederationConfig,
    "strategy": StrategyConfig,
    "attack": AttackConfig,
    "runtime": RuntimeConfig,
    "privacy": PrivacyConfig,
    "continual": ContinualConfig,
}


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build and validate from kebab-case keys; unknown keys are an error."""
        spec = key_spec()
        unknown = sorted(set(values) - set(spec))
        if unknown:
            key = unknown[0]
            close = [k for k in spec if _similar(k, key)]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown config key {key!r}{hint}; run `perennial keys` to list valid keys"
            )
        parts: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in values.items():
            section, f = spec[key]
            parts[section][f.name] = _coerce(key, f, value)
        cfg = cls(**{name: SECTIONS[name](**kw) for name, kw in parts.items()})
        _check_combinations(cfg)
        return cfg

    def to_flat(self) -> dict[str, Any]:
        """All keys with their resolved values (what `config.toml` records)."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                out[f.name.replace("_", "-")] = getattr(section, f.name)
        return out

    def replace(self, **flat: Any) -> ExperimentConfig:
        """A copy with some kebab-or-snake keys changed (validated again)."""
        merged = self.to_flat()
        merged.update({k.replace("_", "-"): v for k, v in flat.items()})
        return ExperimentConfig.from_flat(merged)


def key_spec() -> dict[str, tuple[str, dataclasses.Field]]:
    """kebab-case key -> (section name, dataclass field)."""
    spec = {}
    for name, section in SECTIONS.items():
        for f in dataclasses.fields(section):
            spec[f.name.replace("_", "-")] = (name, f)
    return spec


def _similar(a: str, b: str) -> bool:
    if a in b or b in a:
        return True
    common = sum(1 for x, y in zip(a, b, strict=False) if x == y)
    return common >= max(3, int(0.7 * max(len(a), len(b))))


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[t]


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    want = type(f.default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
        example = f"{key}={f.default!r}" if want is not str else f'{key}="{f.default}"'
        raise ConfigError(
            f"config key {key!r} must be {_type_name(want)}, got {value!r}; e.g. --set {example}"
        )
    if want is float and not math.isfinite(value):
        raise ConfigError(f"config key {key!r} must be finite, got {value!r}")
    m = f.metadata
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"unknown {key} {value!r}; expected one of {sorted(m['choices'])}")
    for rule, ok, text in (
        ("min", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
        ("max", lambda v, b: v <= b, "<="),
    ):
        if rule in m and not ok(value, m[rule]):
            raise ConfigError(f"config key {key!r} must be {text} {m[rule]}, got {value!r}")
    return value


def _check_combinations(cfg: ExperimentConfig) -> None:
    fed = cfg.federation
    if fed.clients_per_round > fed.num_clients:
        raise ConfigError(
            f"clients-per-round ({fed.clients_per_round}) exceeds num-clients "
            f"({fed.num_clients}); lower clients-per-round or raise num-clients"
        )
    _check_privacy(cfg)
    s, t = cfg.strategy, cfg.train  # robust-aggregation bounds; optimiser assumptions
    if bad := strategy_error(
        s.strategy, fed.clients_per_round, s.num_malicious, s.trim_beta, t.optimizer, t.momentum
    ):
        raise ConfigError(bad)
    if cfg.data.dataset != "fashion-mnist" and not cfg.data.data_path:
        raise ConfigError(
            f"dataset {cfg.data.dataset!r} needs data-path; add --set data-path=/path/to/data"
        )
    _check_continual(cfg)


def _check_continual(cfg: ExperimentConfig) -> None:
    cl = cfg.continual
    if cl.scenario == "none":
        if cl.cl_method != "finetune":
            raise ConfigError(
                f"cl-method {cl.cl_method!r} needs a continual scenario; add --set "
                'scenario="class-incremental" (or "domain-incremental")'
            )
        return
    rounds = cfg.federation.rounds
    per_task = rounds_per_task(cfg)
    if per_task * cl.num_tasks > rounds:
        raise ConfigError(
            f"rounds ({rounds}) is fewer than num-tasks ({cl.num_tasks}) x rounds-per-task "
            f"({cl.rounds_per_task or 'auto'}); raise rounds or lower rounds-per-task"
        )
    if cl.cl_method == "replay" and cl.buffer_size < 1:
        raise ConfigError("cl-method 'replay' needs buffer-size >= 1; e.g. --set buffer-size=200")
    if cl.scenario == "class-incremental" and cl.num_tasks < 2:
        raise ConfigError("class-incremental needs num-tasks >= 2; e.g. --set num-tasks=5")
    if (
        cl.scenario == "class-incremental"
        and cl.num_tasks > 10
        and cfg.data.dataset
        in (
            "fashion-mnist",
            "cifar10",
        )
    ):
        raise ConfigError(
            f"num-tasks ({cl.num_tasks}) exceeds the 10 classes; a task needs a class"
        )
    latest = rounds - (cl.num_tasks - 1) * per_task - 1  # still reaches the last task
    if cl.arrival_spread > latest:
        raise ConfigError(
            f"arrival-spread ({cl.arrival_spread}) must be <= {latest}: a client that late "
            "would never train the last task; raise rounds or lower arrival-spread"
        )


def rounds_per_task(cfg: ExperimentConfig) -> int:
    """Rounds each task lasts on the schedule's clock (the `rounds-per-task` key or auto)."""
    cl = cfg.continual
    return cl.rounds_per_task or max(1, cfg.federation.rounds // cl.num_tasks)


def _check_privacy(cfg: ExperimentConfig) -> None:
    """Refuse privacy settings that would not mean what they say."""
    p, fed, name = cfg.privacy, cfg.federation, cfg.strategy.strategy
    if p.dp == "central":
        if p.delta >= 1.0 / fed.num_clients:
            raise ConfigError(
                f"delta ({p.delta:g}) must be < 1/num-clients ({1.0 / fed.num_clients:g}): a "
                "larger delta lets the mechanism leak one client outright; lower delta"
            )
        if p.noise_multiplier == 0 and p.target_epsilon == 0 and p.dp_clipping == "adaptive":
            raise ConfigError("adaptive clipping needs noise-multiplier > 0 or target-epsilon")
        if fed.federation_mode == "deployment" and p.privacy_seed >= 0:
            raise ConfigError(
                "privacy-seed cannot be pinned in a deployment: Flower hands the run config "
                "to every SuperNode, so the clients would hold the server's key; leave it "
                "unset (a fresh key is kept in RUN_DIR/server-key)"
            )
    if p.dp != "none" and name not in SUM_ONLY_STRATEGIES:
        raise ConfigError(
            f"dp={p.dp!r} cannot be combined with strategy {name!r}: its privacy bound holds "
            f"only for mean-based strategies {list(SUM_ONLY_STRATEGIES)}"
        )
    if p.secure_aggregation:
        if name not in SUM_ONLY_STRATEGIES:
            raise ConfigError(
                f"secure-aggregation cannot be combined with strategy {name!r}: the server "
                f"sees only the sum; use one of {list(SUM_ONLY_STRATEGIES)}"
            )
        if p.dp == "central" and p.dp_clipping == "adaptive":
            raise ConfigError(
                "secure-aggregation cannot be combined with adaptive clipping (each client's "
                'clipped bit would be visible); use dp-clipping="fixed"'
            )
        biggest = max_round_size(fed.clients_per_round, fed.num_clients, p.dp == "central")
        if biggest * 2**p.secagg_quantization_bits >= 2**32:
            raise ConfigError(
                f"rounds of up to {biggest} clients x 2**{p.secagg_quantization_bits} "
                "quantisation levels overflow SecAgg+'s 2**32 modulus; lower "
                "secagg-quantization-bits or clients-per-round"
            )
        if p.dp == "central" and p.clipping_norm > p.secagg_clipping_range:
            raise ConfigError(
                f"clipping-norm ({p.clipping_norm:g}) exceeds secagg-clipping-range "
                f"({p.secagg_clipping_range:g}): SecAgg+ would clip clipped updates again and "
                "the DP bound would not hold; raise secagg-clipping-range"
            )
        secagg_plan(
            fed.clients_per_round,
            p.num_shares,
            p.reconstruction_threshold,
            p.dropout_tolerance,
            p.secagg_quantization_bits,
        )
        if cfg.attack.attack != "none":
            raise ConfigError(
                "secure-aggregation hides individual updates, so attacks and the defences "
                'against them cannot be simulated with it; set attack="none"'
            )


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}; e.g. --set rounds=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a one-line ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} not found; pass an existing TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{what} {str(p)!r} is not valid TOML: {msg}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Flat keys from a TOML file (a top-level `[experiment]` table is also accepted)."""
    p = Path(path)
    data = read_toml(p)
    if "experiment" in data and isinstance(data["experiment"], dict):
        rest = {k: v for k, v in data.items() if k != "experiment"}
        data = {**data["experiment"], **rest}
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(
            f"config file {str(p)!r} has a table [{nested[0]}]; experiment keys are flat "
            "(write `rounds = 10` at the top level)"
        )
    return data


def build_config(
    toml_path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Defaults <- TOML file <- `--set` overrides, validated once."""
    return ExperimentConfig.from_flat(config_values(toml_path, overrides))


def config_values(
    toml_path: str | Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The user's own keys: the TOML file's, then the `--set` overrides (not validated)."""
    values: dict[str, Any] = {}
    if toml_path:
        values.update(load_toml(toml_path))
    for text in overrides or []:
        key, value = parse_override(text)
        values[key] = value
    return values


def to_toml(flat: dict[str, Any]) -> str:
    """Render flat keys as TOML (strings quoted, numbers and booleans as such)."""
    import tomli_w

    return tomli_w.dumps(flat)
