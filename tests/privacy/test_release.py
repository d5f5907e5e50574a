"""Under central DP a run publishes only what epsilon accounts for (an allowlist)."""

from __future__ import annotations

import json
import re

import pytest
from fake_grid import RecordingGrid

from learning.config import ExperimentConfig
from privacy.release import RELEASABLE, releasable, release_row

WITHHELD = (
    "client_update_norm",
    "client_cosine_to_mean",
    "slowest_clients",
    "bytes_received",
    "bytes_sent",
    "updates_per_node",
    "train_loss",
    "train_accuracy",
    "replies",
    "failures",
    "examples",
    "client_seconds",
    "rejected_updates",
)


def _cfg(**extra) -> ExperimentConfig:
    flat = {
        "model": "small-cnn",
        "dp": "central",
        "num-clients": 200,
        "clients-per-round": 20,
        "rounds": 2,
        "delta": 1e-3,
        "test-subset": 200,
        "privacy-seed": 1,
    }
    flat.update(extra)
    return ExperimentConfig.from_flat(flat)


def _tags(log_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0})
        acc.Reload()
        for kind in acc.Tags().values():
            if isinstance(kind, list):
                tags.update(kind)
    return tags


def _run(cfg: ExperimentConfig, run_dir):
    from server.app import run_experiment
    from simulations.report import write_report

    run_dir.mkdir(parents=True)
    summary = run_experiment(RecordingGrid(4), cfg, run_dir, 4)
    write_report([run_dir], run_dir / "report.html")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return summary, rows


def test_a_central_dp_run_releases_only_allowlisted_fields(tmp_path):
    summary, rows = _run(_cfg(), tmp_path / "run")
    assert len(rows) == 2 and rows[-1]["epsilon"] is not None and rows[-1]["epsilon_pld"]
    for row in rows:
        assert set(row) <= RELEASABLE, set(row) - RELEASABLE
    tags = _tags(tmp_path / "run" / "tensorboard")
    assert tags and all(releasable(t.split("/", 1)[1]) for t in tags), tags
    assert not any(t.startswith("updates/") for t in tags)  # no per-client histograms
    summary_text = json.dumps(summary)
    for name in WITHHELD:
        assert name not in summary_text, name
    report = (tmp_path / "run" / "report.html").read_text()
    for name in ("client_update_norm", "slowest_clients", "updates_per_node", "train_loss"):
        assert name not in report, name
    # the resources table keeps its columns, but sent / received / failures have no value
    resources = report.split("<h2>Resources</h2>", 1)[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", resources.split("</tr></tbody>", 1)[0])
    assert all("absent" in c for c in cells[5:8]), cells
    assert not (tmp_path / "run" / "partition.png").exists()  # per-client label counts


def test_operator_diagnostics_keep_the_fields_and_mark_them(tmp_path):
    _, rows = _run(_cfg(**{"operator-diagnostics": True}), tmp_path / "run")
    assert "replies" in rows[0] and "client_update_norm_mean" in rows[0]
    assert "replies" in rows[0]["outside_epsilon"] and "accuracy" not in rows[0]["outside_epsilon"]
    tags = _tags(tmp_path / "run" / "tensorboard")
    assert "outside_epsilon/replies" in tags and "metrics/replies" not in tags
    assert "metrics/accuracy" in tags


def test_the_virtual_clock_and_training_times_are_withheld(tmp_path):
    """A round lasts as long as its slowest drawn client, whose device is computable from
    the public seed: the clock would name a sampled client (found in review)."""
    devices = {"device-profile": "lognormal", "slow-fraction": 0.1, "slow-factor": 10.0}
    _, rows = _run(_cfg(**devices), tmp_path / "run")
    for row in rows:
        for name in (
            "virtual_seconds",
            "virtual_round_seconds",
            "train_seconds",
            "round_seconds",
            "elapsed_seconds",
            "utilisation",
        ):
            assert name not in row, name


def test_a_pinned_key_is_kept_out_of_config_toml_and_the_report(tmp_path):
    run = tmp_path / "run"
    _run(_cfg(**{"privacy-seed": 424242}), run)
    assert "privacy-seed" not in (run / "config.toml").read_text()
    assert "424242" not in (run / "report.html").read_text()
    assert int((run / "server-key").read_text(), 16) == 424242  # owner-only file


@pytest.mark.parametrize("dp", ["none", "local"])
def test_runs_without_central_dp_keep_every_field(dp):
    row = {"round": 1, "replies": 3, "brand_new_field": 1.0}
    cfg = ExperimentConfig.from_flat({"dp": dp})
    assert release_row(row, cfg) == row


def test_a_new_field_is_withheld_until_registered():
    row = {"round": 1, "accuracy": 0.5, "brand_new_field": 1.0, "acc_task_3": 0.2}
    assert release_row(row, _cfg()) == {"round": 1, "accuracy": 0.5, "acc_task_3": 0.2}


def test_tasks_on_the_virtual_clock_are_refused_with_central_dp():
    from learning.errors import ConfigError

    with pytest.raises(ConfigError, match="task-seconds cannot be combined"):
        _cfg(
            **{
                "task-seconds": 100.0,
                "scenario": "class-incremental",
                "rounds": 10,
                "device-profile": "lognormal",
            }
        )
