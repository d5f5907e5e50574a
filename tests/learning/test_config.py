"""Config: defaults, TOML + --set layering, and one-line errors for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig, build_config, key_spec, parse_override
from learning.errors import ConfigError


def test_defaults_are_the_documented_experiment():
    cfg = ExperimentConfig()
    assert cfg.data.dataset == "fashion-mnist"
    assert cfg.federation.num_clients == 100
    assert cfg.federation.clients_per_round == 10
    assert cfg.data.partition == "dirichlet" and cfg.data.alpha == 0.5
    assert cfg.train.model == "cnn" and cfg.strategy.strategy == "fedavg"


def test_toml_then_overrides(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('rounds = 7\nmodel = "mlp"\nlr = 1\n')
    cfg = build_config(f, ["rounds=3", "alpha=0.1"])
    assert cfg.federation.rounds == 3
    assert cfg.train.model == "mlp"
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.data.alpha == 0.1


def test_round_trip_through_flat_keys():
    cfg = build_config(None, ["rounds=4", "strategy=fedprox", "proximal-mu=0.5"])
    assert ExperimentConfig.from_flat(cfg.to_flat()) == cfg
    assert set(cfg.to_flat()) == set(key_spec())


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("rounds=abc", "'rounds' must be an integer"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("rounds=0", "'rounds' must be >= 1"),
        ("alpha=-1", "'alpha' must be > 0"),
        ("model=resnet", "unknown model 'resnet'"),
        ("dataset=mnist", "unknown dataset 'mnist'"),
        ("partition=pathologic", "unknown partition"),
        ("clients-per-round=1000", "exceeds num-clients"),
        ("lr=nan", "must be finite"),
        ("seed=true", "must be an integer"),
        ("dataset=npz", "needs data-path"),
        ("rounds", "expects KEY=VALUE"),
        ("checkpoint-every=0", "'checkpoint-every' must be >= 1"),
        ("checkpoint-every=3;strategy=scaffold", "clients keep state on disk"),
        ("checkpoint-every=2;scenario=class-incremental;cl-method=replay", "'replay'"),
        ("checkpoint-every=2;strategy=fedper;local-eval=true", "clients keep state on disk"),
        ("local-eval=true;holdout-clients=0.004", "holds out none"),
    ],
)
def test_bad_values_give_one_line_errors(override, fragment):
    with pytest.raises(ConfigError) as info:
        build_config(None, override.split(";"))
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_typo_suggests_the_key():
    with pytest.raises(ConfigError, match="did you mean 'num-clients'"):
        build_config(None, ["num-client=5"])


def test_bad_toml_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("rounds = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(f)
    with pytest.raises(ConfigError, match="not found"):
        build_config(tmp_path / "missing.toml")


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(key_spec())), raw=st.text(max_size=20))
def test_any_override_is_accepted_or_rejected_cleanly(key, raw):
    try:
        k, v = parse_override(f"{key}={raw}")
        ExperimentConfig.from_flat({k: v})
    except ConfigError as exc:
        assert "\n" not in str(exc)
