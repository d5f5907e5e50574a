"""Plug-ins by import path: accepted where a registry name is, and every bad one refused
in one line naming the key and the expected form (no Ray, no training)."""

from __future__ import annotations

import numpy as np
import pytest
from byo_package import write_package

from learning.config import ExperimentConfig
from learning.datasets import load_dataset
from learning.errors import ConfigError
from learning.partition import partition

BASE = {"num-clients": 4, "clients-per-round": 2}


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "user")))
    return "byo_pkg"


def _refused(match: str, **flat) -> str:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_flat({**BASE, **flat})
    text = str(info.value)
    assert "\n" not in text and match in text, text
    return text


def test_plugin_names_pass_the_config_check(pkg):
    cfg = ExperimentConfig.from_flat(
        {
            **BASE,
            "model": f"{pkg}.models:build",
            "dataset": f"{pkg}.data:load",
            "partition": f"{pkg}.split:split",
        }
    )
    assert cfg.data.dataset == f"{pkg}.data:load"  # no data-path needed


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("model", "no_such_pkg.models:build", "cannot import module 'no_such_pkg.models'"),
        ("model", "byo_pkg.models:nope", "has no attribute 'nope'"),
        ("model", "byo_pkg.models:one_arg", "cannot be called with 2 positional"),
        ("dataset", "byo_pkg.split:split", "cannot be called with 0 positional"),
        ("partition", "byo_pkg.models:", "not of the form module:attribute"),
        ("model", "/nonexistent/model.keras", "no such file"),
        ("dataset", "x.keras", "for model only"),
    ],
)
def test_bad_plugins_are_one_line(pkg, key, value, fragment):
    text = _refused(fragment, **{key: value})
    assert text.startswith(f"{key} {value!r}") and "expected" in text


def test_plugin_dataset_is_checked_and_cached(pkg):
    ds = load_dataset(f"{pkg}.data:load")
    assert ds.x_train.shape == (240, 8, 8, 1) and ds.x_train.dtype == np.uint8
    assert ds.num_classes == 3 and load_dataset(f"{pkg}.data:load") is ds
    floats = load_dataset(f"{pkg}.data:floats")  # floats in [0, 1] round back to uint8
    assert np.array_equal(floats.x_train, ds.x_train)
    with pytest.raises(ConfigError, match=r"dataset 'byo_pkg.data:flat_images': .*shape"):
        load_dataset(f"{pkg}.data:flat_images")


def test_plugin_partition_is_seeded_and_checked(pkg):
    labels = np.arange(40) % 3
    parts = partition(f"{pkg}.split:split", labels, 4, seed=3)
    again = partition(f"{pkg}.split:split", labels, 4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
    with pytest.raises(ConfigError, match="repeats an index: parts must be disjoint") as info:
        partition(f"{pkg}.split:overlapping", labels, 4, seed=3)
    assert "\n" not in str(info.value)


def test_a_model_emitting_logits_is_refused(pkg):
    from learning.models import build_model

    model = build_model(f"{pkg}.models:build", (8, 8, 1), 3)
    assert model.output_shape == (None, 3)
    with pytest.raises(ConfigError, match="not probabilities") as info:
        build_model(f"{pkg}.models:logits", (8, 8, 1), 3)
    assert "\n" not in str(info.value)


def test_plugins_that_ask_get_the_plugin_table(pkg):
    """A builder, loader and partitioner declaring `settings` get the [plugin] table
    (through the config, as every process builds them); each cache keys on it."""
    from learning.federated_data import dataset_for, partitions_for
    from learning.training import get_trainer
    from learning.warm_start import initial_weights

    def cfg(**settings):
        flat = {
            **BASE,
            "model": f"{pkg}.models:wide",
            "dataset": f"{pkg}.data:sized",
            "partition": f"{pkg}.split:keep",
        }
        return ExperimentConfig.from_flat(
            {**flat, **{f"plugin.{k}": v for k, v in settings.items()}}
        )

    small = cfg(width=3, examples=90, keep=40)
    big = cfg(width=5, examples=120, keep=80)
    assert len(dataset_for(small).y_train) == 90 and len(dataset_for(big).y_train) == 120
    assert sum(len(p) for p in partitions_for(small)) == 40
    assert sum(len(p) for p in partitions_for(big)) == 80
    shapes = [
        w.shape
        for w in initial_weights(f"{pkg}.models:wide", (8, 8, 1), 3, 0, settings={"width": 3})
    ]
    assert shapes[0] == (64, 3)
    a = get_trainer(f"{pkg}.models:wide", (8, 8, 1), 3, small.plugin)
    b = get_trainer(f"{pkg}.models:wide", (8, 8, 1), 3, big.plugin)
    assert a.model.get_weights()[0].shape == (64, 3) and b.model.get_weights()[0].shape == (64, 5)
    defaults = cfg()  # the plug-in's own defaults when the table is empty
    assert len(dataset_for(defaults).y_train) == 240
