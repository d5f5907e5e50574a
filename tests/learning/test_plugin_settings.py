"""The [plugin] table: one place for a plug-in's own settings, scalars only, flat as
`plugin.<name>` in config.toml, messages and the digest; a run without it is the run it
was before the table existed (same digest, same client config)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from flwr.common.config import get_fused_config_from_dir, parse_config_args

import strategies  # noqa: F401  (registers the strategy names with the validator)
from learning.config import ExperimentConfig, PluginSettings, build_config
from learning.errors import ConfigError
from learning.plugins import settings_kwargs
from privacy.server_key import client_config, config_digest

ROOT = Path(__file__).resolve().parents[2]

TOML = """
[train]
lr = 0.05

[plugin]
width = 64
dropout = 0.2
name = "wide"
residual = true
"""
SETS = [
    "lr=0.05",
    "plugin.width=64",
    "plugin.dropout=0.2",
    'plugin.name="wide"',
    "plugin.residual=true",
]
WANT = {"width": 64, "dropout": 0.2, "name": "wide", "residual": True}


def test_the_table_and_set_give_one_config_flat_as_plugin_keys(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(TOML)
    a, b = build_config(path), build_config(None, SETS)
    assert a == b and dict(a.plugin) == WANT and a.train.lr == 0.05
    flat = a.to_flat()
    assert {k: v for k, v in flat.items() if k.startswith("plugin.")} == {
        f"plugin.{k}": v for k, v in WANT.items()
    }
    assert a.to_nested()["plugin"] == WANT
    assert ExperimentConfig.from_flat(flat) == a
    assert pickle.loads(pickle.dumps(a)) == a and hash(pickle.loads(pickle.dumps(a))) == hash(a)
    # a [plugin] table inside [experiment] and a later --set both work as for other keys
    nested = tmp_path / "wrapped.toml"
    nested.write_text("[experiment.plugin]\nwidth = 8\n")
    assert build_config(nested, ["plugin.width=64"]).plugin["width"] == 64


def test_no_table_means_nothing_new_anywhere():
    cfg = ExperimentConfig()
    assert not cfg.plugin and "plugin" not in cfg.to_nested()
    assert not any(k.startswith("plugin") for k in cfg.to_flat())


# Digests of three configs recorded before the [plugin] table existed: adding it must not
# move a published run (the central-DP run key hashes this digest).
DIGESTS = [
    ({}, "e348860ee01c8501a3ec9d387730e93b9a6dfb8960030fbcc76541031129277b"),
    (
        {
            "dp": "central",
            "num-clients": 10,
            "clients-per-round": 5,
            "noise-multiplier": 1.0,
            "delta": 1e-3,
        },
        "55cd707fa95885946ccf347988d4df6a088718c1dc2b14765100330916d0ba57",
    ),
    (
        {"model": "mlp", "partition": "sampled", "rounds": 3},
        "2c1f47a6ace3d308102b3fb30b65d934fea03aa7154366d5e788c858905ec3ff",
    ),
]


@pytest.mark.parametrize(("flat", "digest"), DIGESTS)
def test_digests_without_the_table_are_those_recorded_before_it(flat, digest):
    assert config_digest(ExperimentConfig.from_flat(flat)).hex() == digest


def test_settings_without_a_plugin_change_nothing_sent_or_hashed():
    plain = build_config(None, ["lr=0.05"])
    unread = build_config(None, ["lr=0.05", "plugin.width=64"])
    assert config_digest(unread) == config_digest(plain)
    assert client_config(unread.to_flat()) == client_config(plain.to_flat())


def test_settings_with_a_plugin_are_sent_and_hashed(tmp_path, monkeypatch):
    from byo_package import write_package

    monkeypatch.syspath_prepend(str(write_package(tmp_path / "user")))
    sets = ['strategy="byo_pkg.strategies:MeanPlus"']
    a = build_config(None, [*sets, "plugin.twist=0.5"])
    b = build_config(None, [*sets, "plugin.twist=0.25"])
    assert config_digest(a) != config_digest(b)
    assert client_config(a.to_flat())["plugin.twist"] == 0.5


def test_config_toml_keeps_the_settings_for_resume(tmp_path):
    from server.run_dir import RunRecorder

    cfg = build_config(None, SETS)
    RunRecorder(tmp_path).write_config(cfg)
    assert build_config(tmp_path / "config.toml") == cfg


def test_types_are_part_of_a_setting():
    one, true, real = (PluginSettings({"a": v}) for v in (1, True, 1.0))
    assert one != true and one != real and true != real
    assert len({one, true, real}) == 3
    assert build_config(None, ["plugin.a=1"]).plugin["a"] == 1


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["plugin.layers=[64, 32]"], "'plugin.layers' must be a string, an integer, a number"),
        (["plugin.table={a = 1}"], "'plugin.table' must be a string, an integer"),
        (["plugin.x=nan"], "'plugin.x' must be finite"),
        (["plugin.a.b=1"], "plug-in setting 'plugin.a.b': a name is letters"),
        (["plugin.=1"], "plug-in setting 'plugin.': a name"),
        (["plugin=3"], "'plugin' is the table of plug-in settings; write plugin.NAME=VALUE"),
        (["width=64"], "unknown config key 'width'"),
        (["train.lrr=0.1"], "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    ],
)
def test_bad_settings_and_unknown_keys_are_one_line(sets, fragment):
    with pytest.raises(ConfigError) as info:
        build_config(None, sets)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_table_inside_plugin_is_refused(tmp_path):
    path = tmp_path / "nested.toml"
    path.write_text("[plugin.model]\nwidth = 64\n")
    with pytest.raises(ConfigError, match=r"has a table \[plugin.model\]"):
        build_config(path)
    path.write_text("[plugins]\nwidth = 64\n")
    with pytest.raises(ConfigError, match=r"\[plugins\], which is not a section"):
        build_config(path)


def test_a_plugin_asks_for_settings_by_naming_the_parameter():
    def keyword_only(a, b, *, settings):
        pass

    def with_default(a, b, settings=None):
        pass

    def without(a, b):
        pass

    def catch_all(a, b, **kwargs):
        pass

    given = PluginSettings({"width": 64})
    assert settings_kwargs(keyword_only, given) == {"settings": {"width": 64}}
    assert settings_kwargs(with_default, given) == {"settings": {"width": 64}}
    assert settings_kwargs(without, given) == {} and settings_kwargs(catch_all, given) == {}
    assert type(settings_kwargs(keyword_only, given)["settings"]) is dict  # a copy to keep


def test_flwr_run_takes_settings_its_app_declares(tmp_path):
    """`flwr run` refuses run-config keys pyproject does not declare, so a user's app
    declares its settings under [tool.flwr.app.config.plugin]; they then reach the
    ServerApp's config like any key."""
    text = (ROOT / "pyproject.toml").read_text()
    overrides = parse_config_args(["plugin.width=64"])
    with pytest.raises(ValueError, match="plugin.width"):
        get_fused_config_from_dir(ROOT, overrides)
    app = tmp_path / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text(text + "\n[tool.flwr.app.config.plugin]\nwidth = 8\n")
    cfg = ExperimentConfig.from_flat(dict(get_fused_config_from_dir(app, overrides)))
    assert cfg.plugin == PluginSettings({"width": 64})


def test_deploy_refuses_settings_its_app_does_not_declare(tmp_path):
    from simulations.deployment.run import check_declared

    cfg = build_config(None, ["plugin.width=64"])
    with pytest.raises(ConfigError) as info:
        check_declared(ROOT, cfg)
    text = str(info.value)
    assert "plugin.width is not declared" in text and "`width = 64`" in text, text
    app = tmp_path / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text("[tool.flwr.app.config.plugin]\nwidth = 8\n")
    check_declared(app, cfg)


def test_keys_lists_the_table(capsys):
    from simulations.cli import main

    assert main(["keys"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("plugin.<name>") and "[plugin]" in last


def test_settings_without_a_plugin_get_a_note_not_an_error(capsys):
    from simulations.run_output import preflight

    small = ["num-clients=4", "clients-per-round=2", "train-subset=200", "model='mlp'"]
    preflight(build_config(None, [*small, "plugin.width=64"]))
    assert "[plugin] settings are given but no key names a plug-in" in capsys.readouterr().err
    preflight(build_config(None, small))
    assert capsys.readouterr().err == ""
