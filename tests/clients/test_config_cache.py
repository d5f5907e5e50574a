"""The ClientApp builds its typed config once per process per run, not per message."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

import clients.app as client_app
from learning.config import ExperimentConfig, build_config


def _message(flat: dict, **extras) -> Message:
    content = RecordDict({"arrays": ArrayRecord([]), "config": ConfigRecord({**flat, **extras})})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def test_config_is_built_once_and_per_message_keys_do_not_rebuild(monkeypatch):
    client_app._CONFIGS.clear()
    cfg = build_config(None, ["rounds=3", "lr=0.05"])
    built = []
    real = ExperimentConfig.from_flat

    def counting(values):
        built.append(values)
        return real(values)

    monkeypatch.setattr(client_app.ExperimentConfig, "from_flat", staticmethod(counting))
    flat = cfg.to_flat()
    for rnd in (1, 2, 3):
        for pid in (0, 5):
            got, extras = client_app.experiment_from_message(
                _message(
                    flat, **{"partition-id": pid, "server-round": rnd, "clipping_norm": 0.1 * rnd}
                )
            )
            assert got == cfg
            assert extras == {"partition-id": pid, "server-round": rnd, "clipping_norm": 0.1 * rnd}
    assert len(built) == 1


def test_a_changed_experiment_key_gives_the_new_config():
    client_app._CONFIGS.clear()
    flat = build_config(None, ["lr=0.05"]).to_flat()
    a, _ = client_app.experiment_from_message(_message(flat, **{"partition-id": 0}))
    b, _ = client_app.experiment_from_message(_message({**flat, "lr": 0.2}, **{"partition-id": 0}))
    assert a.train.lr == 0.05 and b.train.lr == 0.2
    a2, _ = client_app.experiment_from_message(_message(flat, **{"partition-id": 1}))
    assert a2 == a


def test_plugin_settings_reach_the_client_config_and_key_its_cache():
    """Workers and SuperNodes rebuild the config from the message: the `plugin.<name>`
    keys are experiment keys, and a setting's type is part of the cache key."""
    client_app._CONFIGS.clear()
    flat = build_config(None, ["plugin.width=1"]).to_flat()
    a, extras = client_app.experiment_from_message(_message(flat, **{"partition-id": 0}))
    assert dict(a.plugin) == {"width": 1} and extras == {"partition-id": 0}
    b, _ = client_app.experiment_from_message(_message({**flat, "plugin.width": True}))
    assert b.plugin["width"] is True
    c, _ = client_app.experiment_from_message(_message({**flat, "plugin.width": 2}))
    assert c.plugin["width"] == 2
