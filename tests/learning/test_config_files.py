"""Config in sections: `[train] lr = 0.05`, `train.lr`, and the flat keys, all one config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from flwr.common.config import flatten_dict, get_fused_config_from_dir, parse_config_args

import strategies  # noqa: F401  (registers the strategy names with the validator)
from learning.config import ExperimentConfig, build_config, key_spec
from learning.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

NESTED = """
[data]
partition = "iid"
train-subset = 600

[train]
lr = 0.05
model = "mlp"

[federation]
rounds = 2
num-clients = 6
clients-per-round = 3

[privacy]
dp = "central"
"""

FLAT = """
partition = "iid"
train-subset = 600
lr = 0.05
model = "mlp"
rounds = 2
num-clients = 6
clients-per-round = 3
dp = "central"
"""


def test_nested_tables_and_flat_keys_build_the_same_config(tmp_path):
    nested, flat = tmp_path / "nested.toml", tmp_path / "flat.toml"
    nested.write_text(NESTED)
    flat.write_text(FLAT)
    a, b = build_config(nested), build_config(flat)
    assert a == b
    assert a.train.lr == 0.05 and a.privacy.dp == "central" and a.federation.rounds == 2
    assert a.to_flat() == b.to_flat()


def test_dotted_overrides_override_either_form(tmp_path):
    nested = tmp_path / "nested.toml"
    nested.write_text(NESTED)
    cfg = build_config(nested, ["lr=0.2", "federation.rounds=1"])
    assert cfg.train.lr == 0.2 and cfg.federation.rounds == 1
    assert build_config(None, ["train.lr=0.05"]) == build_config(None, ["lr=0.05"])


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.lrr=0.1", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ("federation.lr=0.1", "'lr' belongs in section [train], not [federation]"),
        ("trian.lr=0.1", "unknown config key 'trian.lr' (did you mean 'train.lr'?)"),
        ("num-client=5", "did you mean 'num-clients'"),
    ],
)
def test_nested_typos_get_the_flat_one_line_error(override, fragment):
    with pytest.raises(ConfigError) as info:
        build_config(None, [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_typo_inside_a_table_is_caught(tmp_path):
    f = tmp_path / "typo.toml"
    f.write_text("[train]\nlrr = 0.1\n")
    with pytest.raises(ConfigError, match=r"did you mean 'train.lr'"):
        build_config(f)
    f.write_text("[trainer]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match=r"\[trainer\], which is not a section"):
        build_config(f)


def test_a_key_given_twice_with_two_values_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        ExperimentConfig.from_flat({"lr": 0.1, "train.lr": 0.2})


def test_pyproject_defaults_match_the_dataclasses_value_by_value():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    nested = declared["config"]
    defaults = ExperimentConfig().to_nested()
    assert sorted(nested) == sorted(defaults)
    for section, values in defaults.items():
        for key, value in values.items():
            got = nested[section][key]
            assert got == value and type(got) is type(value), f"{section}.{key}"


def test_flwr_run_config_reaches_the_server_config():
    """What `flwr run . --run-config "train.lr=0.05 federation.rounds=3"` hands the
    ServerApp: Flower's own parsing and fusing with pyproject's tables."""
    overrides = parse_config_args(["train.lr=0.05 federation.rounds=3"])
    run_config = get_fused_config_from_dir(ROOT, overrides)
    cfg = ExperimentConfig.from_flat(dict(run_config))
    assert cfg == build_config(None, ["lr=0.05", "rounds=3"])
    assert set(flatten_dict(cfg.to_nested())) == set(run_config)
    assert len(run_config) == len(key_spec())


def test_strategy_names_come_from_the_registry():
    from learning.config import registry_names
    from strategies.registry import STRATEGIES

    assert registry_names("strategy") == sorted(STRATEGIES)
    with pytest.raises(ConfigError, match="unknown strategy 'fedavgg'"):
        build_config(None, ["strategy.strategy=fedavgg"])
