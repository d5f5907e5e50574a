"""The server's secret: the key that central DP's client sampling and noise come from.

Amplification by sampling assumes the sample is secret, and noise protects only if no
client can predict it. Anything derived from values a client receives (the `seed`
travels in every training message) is neither. So under `dp = "central"` the server
holds a key no message carries:

- by default 128 bits of OS entropy, fresh for every run and written to
  `RUN_DIR/server-key` (owner-only permissions), so `--resume` continues the same
  draws and the operator can reproduce the run;
- or `privacy-seed` pinned by the operator (simulation only: in a deployment Flower
  hands the run config to every SuperNode, so a pinned key would reach the clients).

Streams are keyed by a *run key* = SHA-256(server key, the experiment's config): two
runs that differ in anything (the noise multiplier of a privacy grid, say) draw
independent noise even with the same pinned key; the same config and key reproduce.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig
from learning.config_deploy import DEPLOY_KEYS
from learning.config_schema import without_default_clock_keys
from learning.errors import ConfigError
from learning.plugin_settings import is_setting
from learning.plugins import FORMS, is_plugin

KEY_FILE = "server-key"
# Keys the server uses and no client may see; stripped from every message.
SERVER_ONLY_KEYS = frozenset({"privacy-seed"})
# Keys that do not change what a run computes (where it writes, how many workers, how
# many clients share a message: pooling gives the same aggregate to float tolerance, so
# a pinned privacy-seed draws the same noise either way).
_NOT_RESULTS = frozenset(
    {
        "out-dir",
        "num-workers",
        "cpus-per-client",
        "gpus-per-client",
        "clients-per-message",
        "checkpoint-every",
        *DEPLOY_KEYS,  # how a deployment waits and resumes, not what it computes
    }
)


# Keys no client reads: how the server packs clients into messages (a pooled message
# names its clients in `partition-ids`), and the warm-start file (the server sends the
# weights; a SuperNode need not hold the file), and how often the server checkpoints.
# Not sent, so a client's config is the same whether or not its round was pooled.
SERVER_SIDE_KEYS = frozenset(
    {"clients-per-message", "init-weights", "checkpoint-every", *DEPLOY_KEYS}
)


def _unused(flat: dict[str, Any]) -> set[str]:
    """Keys that change nothing in this config: `examples-per-client` outside the
    sampled partition (neither sent nor hashed, so adding the key moved no run), and
    `[plugin]` settings when no key names a plug-in (nothing reads them: a built-in
    baseline in a grid whose base holds them is the run it is without them)."""
    unused = set() if flat.get("partition") == "sampled" else {"examples-per-client"}
    if not any(is_plugin(str(flat.get(key, ""))) for key in FORMS):
        unused |= {k for k in flat if is_setting(k)}
    return unused


def client_config(flat: dict[str, Any]) -> dict[str, Any]:
    """The config a client may receive: every key but the server-only ones (and those
    no client reads or this config does not use)."""
    drop = SERVER_ONLY_KEYS | SERVER_SIDE_KEYS | _unused(flat)
    return {k: v for k, v in without_default_clock_keys(flat).items() if k not in drop}


def result_keys(cfg: ExperimentConfig) -> dict[str, Any]:
    """The keys that decide a run's results (not where it writes), with their values."""
    every = without_default_clock_keys(cfg.to_flat())
    drop = _NOT_RESULTS | SERVER_ONLY_KEYS | _unused(every)
    return {k: v for k, v in every.items() if k not in drop}


def config_digest(cfg: ExperimentConfig) -> bytes:
    """SHA-256 of the keys that decide a run's results (not where it writes)."""
    return hashlib.sha256(json.dumps(result_keys(cfg), sort_keys=True).encode()).digest()


def run_key(server_key: int, cfg: ExperimentConfig) -> int:
    """The 128-bit key of this run's secret streams."""
    h = hashlib.sha256(b"perennial-run-key\0" + server_key.to_bytes(32, "big"))
    h.update(config_digest(cfg))
    return int.from_bytes(h.digest()[:16], "big")


def server_key(cfg: ExperimentConfig, run_dir: Path | None) -> int | None:
    """The run's secret key (None when no secret is needed: no central DP).

    Pinned by `privacy-seed`, else read from `run_dir/server-key` (a resumed run),
    else fresh OS entropy. Either way the key is kept only in `run_dir/server-key`
    (owner-only): `config.toml` and the report never hold `privacy-seed`, so a resumed
    run (whose config comes from `config.toml`) reads it back from there.
    """
    if cfg.privacy.dp != "central":
        return None
    path = Path(run_dir) / KEY_FILE if run_dir is not None else None
    if cfg.privacy.privacy_seed >= 0:
        base = cfg.privacy.privacy_seed
    elif path is not None and path.is_file():
        return run_key(_read_key(path), cfg)
    else:
        base = secrets.randbits(128)
    if path is not None and not path.is_file():
        _write_key(path, base)
    return run_key(base, cfg)


def _read_key(path: Path) -> int:
    text = path.read_text(encoding="ascii").strip()
    try:
        return int(text, 16)
    except ValueError:
        raise ConfigError(
            f"{str(path)!r} is not a server key (expected 32 hex digits); restore it from "
            "a backup or start the run afresh"
        ) from None


def _write_key(path: Path, key: int) -> None:
    """Owner-only from creation (no window where others could read it), then fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(f"{key:032x}\n")
        fh.flush()
        os.fsync(fh.fileno())
