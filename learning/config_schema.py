"""The experiment's sections: one frozen dataclass per concern, and each key's rules.

A key's type, range and fixed choices are written once, on its field, and checked by
`check_value`, which the loaders (partition.py, datasets.py) also call for their own
arguments, so one rule holds everywhere. Names that come from a registry (dataset,
partition, model, strategy) are marked `registry=...` and checked in config_checks.py,
which may import the registries; this module imports none, so any module may import it.
A registry-backed key also takes a plug-in by import path (learning/plugins.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from learning.config_deploy import DEPLOY_KEYS, DeployConfig
from learning.config_devices import (
    DevicesConfig,
)
from learning.config_field import key_field as _k
from learning.config_personal import PERSONAL_KEYS, PersonalConfig

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
SCENARIO_NAMES = ("none", "class-incremental", "domain-incremental", "task-incremental")
# Scenarios whose tasks are class groups (task-incremental adds the task id at test time).
SPLIT_SCENARIOS = ("class-incremental", "task-incremental")
CL_METHOD_NAMES = ("finetune", "ewc", "lwf", "replay", "fot", "target")
DRIFT_NAMES = ("rotation", "blur", "noise", "contrast", "mixed", "permutation")
# Kinds drift groups cycle through (permutation came later and is not in the cycle, so
# a run with drift-groups > 1 keeps the kinds it had).
DRIFT_CYCLE = DRIFT_NAMES[:5]
COLOR_NAMES = ("grey", "rgb")
STALENESS_NAMES = ("constant", "polynomial", "hinge")
# Strategies run by the asynchronous scheduler (server/pipeline/async_scheduler.py).
ASYNC_STRATEGIES = ("fedasync", "fedbuff")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _k(
        "fashion-mnist",
        'fashion-mnist idx npz cifar10 image-folder client-folders, or "pkg.mod:load"',
        registry="dataset",
    )
    data_path: str = _k("", "file or folder of the dataset (client-folders: DATA/<client>/)")
    image_size: int = _k(32, "side image-folder/client-folders images are resized to", min=4)
    color: str = _k("grey", "image-folder/client-folders colour mode", choices=COLOR_NAMES)
    train_subset: int = _k(0, "use only this many training examples (0 = all)", min=0)
    test_subset: int = _k(0, "evaluate on this many test examples (0 = all)", min=0)
    partition: str = _k(
        "dirichlet",
        'how data is split, or "pkg.mod:split"; client-folders: "natural"',
        registry="partition",
    )
    alpha: float = _k(0.5, "Dirichlet concentration (smaller = more skew)", gt=0.0)
    min_shard_size: int = _k(10, "Dirichlet/quantity minimum examples per client", min=0)
    shards_per_client: int = _k(2, "shards partition: label-sorted shards per client", min=1)
    classes_per_client: int = _k(2, "classes and pathological partitions: labels per client", min=1)
    quantity_sigma: float = _k(1.0, "quantity partition: lognormal sigma of sizes", min=0.0)
    examples_per_client: int = _k(
        20, "sampled partition: examples each client draws with replacement", min=1
    )


@dataclass(frozen=True)
class TrainConfig:
    model: str = _k(
        "cnn", 'model name, a builder "pkg.mod:build", or a .keras file', registry="model"
    )
    local_epochs: int = _k(1, "local epochs per round", min=1)
    batch_size: int = _k(32, "local batch size", min=1)
    lr: float = _k(0.1, "client learning rate", gt=0.0)
    lr_decay: float = _k(0.98, "client lr multiplied by this every round", gt=0.0, max=1.0)
    optimizer: str = _k("sgd", "client optimiser", choices=OPTIMIZER_NAMES)
    momentum: float = _k(0.0, "SGD momentum (reset for every client update)", min=0.0, lt=1.0)
    weight_decay: float = _k(0.0, "L2 weight decay", min=0.0)
    max_local_steps: int = _k(0, "cap on local batches per round (0 = none)", min=0)
    init_weights: str = _k(
        "",
        "warm start: initial weights from a .keras model, a weights .npz or a run "
        "directory's checkpoint.npz (shape-checked; beats a .keras model's own weights)",
    )


@dataclass(frozen=True)
class FederationConfig:
    rounds: int = _k(60, "federated rounds", min=1)
    num_clients: int = _k(100, "registered clients (client-folders: the folder count)", min=1)
    clients_per_round: int = _k(10, "clients sampled each round", min=1)
    seed: int = _k(
        0,
        "seed for data split, initial model, sampling and shuffling",
        min=0,
        max=2**32 - 1,
    )
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
    clients_per_message: int = _k(
        1,
        "simulation: clients one worker message trains, one after another from the same "
        "weights, pooled into one partial aggregate where the strategy declares it "
        "(1 = one message per client)",
        min=1,
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
    strategy: str = _k(
        "fedavg", 'strategy or personalised method, or "pkg.mod:MyStrategy"', registry="strategy"
    )
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
    fedasync_alpha: float = _k(
        0.6, "FedAsync: mixing weight alpha (x <- (1-a_s) x + a_s y)", gt=0.0, max=1.0
    )
    staleness: str = _k(
        "polynomial",
        "FedAsync staleness function s(t): constant 1, polynomial (t+1)^-a, hinge",
        choices=STALENESS_NAMES,
    )
    staleness_exponent: float = _k(
        0.5, "FedAsync polynomial a; hinge slope a: 1/(a(t-b)+1) past b", min=0.0
    )
    staleness_hinge: int = _k(
        4, "FedAsync hinge: staleness b (server steps) still weighted 1", min=0
    )
    fedbuff_k: int = _k(10, "FedBuff: client updates buffered per server step", min=1)


@dataclass(frozen=True)
class RuntimeConfig:
    cpus_per_client: float = _k(1.0, "CPUs given to each simulation worker", gt=0.0)
    gpus_per_client: float = _k(0.0, "GPU fraction given to each worker", min=0.0)
    num_workers: int = _k(0, "simulation workers (0 = CPUs / cpus-per-client)", min=0)
    out_dir: str = _k("", "run directory (used by `flwr run`; the CLI sets it)")
    weights_only: bool = _k(True, "refuse client replies holding anything but weights")
    checkpoint_every: int = _k(
        1, "checkpoint every N rounds (async: server steps) and the last; resume loses < N", min=1
    )


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
        max=2**63 - 1,
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
    lwf_alpha: float = _k(1.0, "distillation weight (LwF, TARGET)", min=0.0)
    lwf_temperature: float = _k(2.0, "distillation temperature (LwF, TARGET)", gt=0.0)
    buffer_size: int = _k(200, "replay: examples kept per client (reservoir)", min=0)
    task_seconds: float = _k(
        0.0, "virtual seconds each task lasts (0 = tasks change by rounds-per-task)", min=0.0
    )
    fot_energy: float = _k(
        0.95, "FOT: share of each old task's input energy the basis keeps", gt=0.0, lt=1.0
    )
    fot_examples: int = _k(200, "FOT: examples a client's activation statistics use", min=1)
    target_samples: int = _k(256, "TARGET: synthetic images the server ships each round", min=1)
    target_steps: int = _k(200, "TARGET: server generator training steps per task", min=1)


SECTIONS = {
    "data": DataConfig,
    "train": TrainConfig,
    "federation": FederationConfig,
    "strategy": StrategyConfig,
    "attack": AttackConfig,
    "runtime": RuntimeConfig,
    "privacy": PrivacyConfig,
    "continual": ContinualConfig,
    "devices": DevicesConfig,
    "personal": PersonalConfig,
    "deploy": DeployConfig,
}


# Keys added with the virtual clock (issue 15), and warm start (issue 18). At their
# defaults they are left out of client messages and of the config digest
# (privacy/server_key.py), so a run that does not use them sends the same messages and
# derives the same server key as before they existed (the golden loop scenarios check
# this bit for bit).
CLOCK_KEYS = frozenset(
    [f.name.replace("_", "-") for f in dataclasses.fields(DevicesConfig)]
    + ["fedasync-alpha", "staleness", "staleness-exponent", "staleness-hinge", "fedbuff-k"]
    + ["task-seconds", "init-weights", *PERSONAL_KEYS]  # and issue 17's [personal]
    + list(DEPLOY_KEYS)  # and issue 20's [deploy]
    + ["fot-energy", "fot-examples", "target-samples", "target-steps"]  # issue 19
)


_CLOCK_DEFAULTS = {
    f.name.replace("_", "-"): f.default
    for section in SECTIONS.values()
    for f in dataclasses.fields(section)
    if f.name.replace("_", "-") in CLOCK_KEYS
}


def without_default_clock_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """`flat` minus the clock's keys that hold their default value."""
    return {k: v for k, v in flat.items() if k not in CLOCK_KEYS or v != _CLOCK_DEFAULTS[k]}


class Sections(Protocol):
    """What checks need of an experiment: its sections (ExperimentConfig in config.py is
    one). Typed here so config_checks.py needs no import of config.py, which imports it."""

    data: DataConfig
    train: TrainConfig
    federation: FederationConfig
    strategy: StrategyConfig
    attack: AttackConfig
    runtime: RuntimeConfig
    privacy: PrivacyConfig
    continual: ContinualConfig
    devices: DevicesConfig
    personal: PersonalConfig
    deploy: DeployConfig
