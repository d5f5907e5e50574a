"""The experiment config: what every layer imports, built and validated in one place.

Keys are kebab-case. They may be written flat (`lr`) or grouped by section (`[train]
lr = 0.05` in TOML, `train.lr` as Flower's run config flattens it, `--set train.lr=0.05`);
internally and in messages the canonical form is flat (`to_flat`). The sections and each
key's rules are in config_schema.py, the checks across keys and registries in
config_checks.py, file and `--set` parsing in config_files.py; the plug-ins' own
settings (`[plugin]`, flat `plugin.<name>`) in plugin_settings.py. It lives in the bottom
layer because both the ServerApp and the ClientApp build it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learning.config_checks import (
    check_combinations,
    check_name,
    implied_values,
    register_strategy_names,
    registry_names,
    rounds_per_task,
)
from learning.config_deploy import DeployConfig
from learning.config_files import (
    config_values,
    load_toml,
    parse_override,
    read_toml,
    table_values,
    to_toml,
)
from learning.config_keys import canonical_key, check_value, coerce, flat_values, key_spec
from learning.config_personal import PERSONAL_STRATEGIES, PersonalConfig
from learning.config_schema import (
    DRIFT_NAMES,
    SECTIONS,
    SUM_ONLY_STRATEGIES,
    AttackConfig,
    ContinualConfig,
    DataConfig,
    DevicesConfig,
    FederationConfig,
    PrivacyConfig,
    RuntimeConfig,
    StrategyConfig,
    TrainConfig,
)
from learning.plugin_settings import TABLE, PluginSettings, is_setting, settings_of
from learning.plugins import is_keras_file

__all__ = [
    "DRIFT_NAMES",
    "SECTIONS",
    "SUM_ONLY_STRATEGIES",
    "AttackConfig",
    "ContinualConfig",
    "DataConfig",
    "DevicesConfig",
    "PERSONAL_STRATEGIES",
    "PersonalConfig",
    "DeployConfig",
    "ExperimentConfig",
    "PluginSettings",
    "FederationConfig",
    "PrivacyConfig",
    "RuntimeConfig",
    "StrategyConfig",
    "TrainConfig",
    "build_config",
    "canonical_key",
    "check_value",
    "config_values",
    "flat_values",
    "key_spec",
    "load_toml",
    "table_values",
    "parse_override",
    "read_toml",
    "register_strategy_names",
    "registry_names",
    "rounds_per_task",
    "to_toml",
]


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
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    personal: PersonalConfig = field(default_factory=PersonalConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    # The user's settings for their plug-ins ([plugin]); empty, they appear nowhere, so a
    # run without them is the run it was before the table existed (same messages, digest).
    plugin: PluginSettings = field(default_factory=PluginSettings)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build and validate from kebab-case keys, flat or `section.key`, and plug-in
        settings `plugin.<name>`; unknown keys, keys in the wrong section and keys given
        twice are errors. Keys a dataset implies when left out (client-folders: its
        partition and client count) are filled in."""
        spec = key_spec()
        parts: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        flat = implied_values(flat_values(values))
        settings = settings_of(flat)
        for key, value in flat.items():
            if is_setting(key):
                continue
            section, f = spec[key]
            value = coerce(key, f, value)
            if key == "init-weights" or (key == "model" and is_keras_file(value)):
                value = absolute_path(value)  # every process reads the same file
            if "registry" in f.metadata:
                check_name(key, f.metadata["registry"], value)
            parts[section][f.name] = value
        sections = {name: SECTIONS[name](**kw) for name, kw in parts.items()}
        cfg = cls(**sections, plugin=settings)
        check_combinations(cfg)
        return cfg

    def to_flat(self) -> dict[str, Any]:
        """All keys with their resolved values (what `config.toml` records), then the
        plug-in settings as `plugin.<name>` (none when the table is empty)."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                out[f.name.replace("_", "-")] = getattr(section, f.name)
        out.update(self.plugin.flat())
        return out

    def to_nested(self) -> dict[str, dict[str, Any]]:
        """All keys grouped by section (Flower's `[tool.flwr.app.config]` tables), and
        `[plugin]` when there are settings."""
        spec = key_spec()
        out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in self.to_flat().items():
            if not is_setting(key):
                out[spec[key][0]][key] = value
        if self.plugin:
            out[TABLE] = dict(self.plugin)
        return out

    def replace(self, **flat: Any) -> ExperimentConfig:
        """A copy with some kebab-or-snake keys changed (validated again)."""
        merged = self.to_flat()
        merged.update({k.replace("_", "-"): v for k, v in flat.items()})
        return ExperimentConfig.from_flat(merged)


def absolute_path(value: str) -> str:
    """A file path made absolute where the config is first built (the server or CLI), so
    workers whose working directory differs read the same file; "" stays unset."""
    return str(Path(value).expanduser().resolve()) if value else ""


def build_config(
    toml_path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Defaults <- TOML file <- `--set` overrides, validated once."""
    return ExperimentConfig.from_flat(config_values(toml_path, overrides))
