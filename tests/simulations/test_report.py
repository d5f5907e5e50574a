"""The HTML comparison report: content, escaping, partial runs, and a real render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from learning.errors import ConfigError
from simulations.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
BASE_CONFIG = {"strategy": "fedavg", "rounds": 5, "trim-beta": 0.2, "data-path": ""}


def _toml(cfg: dict) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items())


def make_run(
    root: Path,
    name: str,
    accuracies: list[float | None],
    config: dict | None = None,
    summary: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """A run directory written by hand, shaped like what server/app.py writes."""
    run = root / name
    run.mkdir(parents=True)
    rows = []
    acc_last = next((a for a in reversed(accuracies) if a is not None), 0.5)
    for i, acc in enumerate(accuracies, start=1):
        rows.append(
            {
                "round": i,
                "accuracy": acc,
                "loss": None if acc is None else 2.0 - acc,
                "train_loss": 1.5 - acc_last * 0.2 * i,
                "train_accuracy": 0.4 + acc_last * 0.1 * i,
                "clients": 4,
                "replies": 4,
                "failures": i % 2,
                "bytes_sent": 2_000_000,
                "bytes_received": 1_000_000,
                "train_seconds": 1.0 + i,
                "aggregate_seconds": 0.01,
                "eval_seconds": 0.2,
                "round_seconds": 1.3 + i,
                "elapsed_seconds": 1.5 * i,
                **(extra or {}),
            }
        )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluated = [a for a in accuracies if a is not None]
    full_summary = {
        "final_accuracy": evaluated[-1] if evaluated else None,
        "best_accuracy": max(evaluated) if evaluated else None,
        "best_round": accuracies.index(max(evaluated)) + 1 if evaluated else None,
        "rounds_completed": len(accuracies),
        "wall_seconds": 12.5,
        "strategy": "fedavg",
        **(summary or {}),
    }
    (run / "summary.json").write_text(json.dumps(full_summary))
    (run / "config.toml").write_text(_toml({**BASE_CONFIG, **(config or {})}))
    return run


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(tmp_path, "fedavg-lr01", [0.3, 0.5, 0.6, 0.7, 0.75], {"lr": 0.1}),
        make_run(tmp_path, "fedavg-lr05", [0.2, None, 0.35, 0.4, 0.42], {"lr": 0.5}),
    ]


def _config_table(page: str) -> str:
    start = page.index("<h2>Config differences</h2>")
    return page[start : page.index("<h2>", start + 5)]


def test_two_runs_are_compared_on_one_self_contained_page(two_runs, tmp_path):
    out = write_report(two_runs, tmp_path / "out" / "report.html")
    assert out == tmp_path / "out" / "report.html"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "fedavg-lr01" in page and "fedavg-lr05" in page
    diff = _config_table(page)
    assert "<td>lr</td>" in diff and "<td>0.1</td>" in diff and "<td>0.5</td>" in diff
    assert "trim-beta" not in diff  # identical keys are left out
    assert page.count("data:image/png;base64,") >= 2  # test + train curves
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert "0.7500" in page and "0.4200" in page  # final accuracies in the header
    resources = page[page.index("<h2>Resources</h2>") :]
    # 5 rounds x 2 MB sent / 1 MB received; failures 1+0+1+0+1; median round 1.3+3 s
    for cell in ("10.0", "5.0", "3", "4.3 s"):
        assert f'<td class="num">{cell}</td>' in resources, cell
    assert "peak_rss_mb" not in page  # memory columns only when recorded


def test_single_run_shows_its_full_config_collapsed(two_runs, tmp_path):
    page = write_report(two_runs[:1], tmp_path / "one.html").read_text()
    assert "<details>" in page and "trim-beta" in page
    assert "Config differences" not in page


def test_strings_from_files_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    run = make_run(tmp_path, "r&d", [0.1, 0.2], {"data-path": evil}, {"strategy": evil})
    other = make_run(tmp_path, "plain", [0.1, 0.3])
    page = write_report([run, other], tmp_path / "r.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "r&amp;d" in page


def test_a_folder_without_metrics_is_refused_in_one_line(two_runs, tmp_path):
    with pytest.raises(ConfigError) as info:
        write_report([two_runs[0], tmp_path], tmp_path / "r.html")
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"{str(tmp_path)!r} is not a run directory (no metrics.jsonl); "
        "pass the folder printed by perennial run"
    )
    assert not (tmp_path / "r.html").exists()


def test_partial_run_directories_drop_sections_not_the_report(two_runs, tmp_path):
    crashed = make_run(tmp_path, "crashed", [0.1, 0.2, 0.3])
    (crashed / "summary.json").unlink()
    (crashed / "config.toml").write_text("lr = [unclosed\n")
    with open(crashed / "metrics.jsonl", "a") as f:
        f.write('{"round": 4, "accur')  # killed mid-write
    empty = make_run(tmp_path, "empty", [])
    (empty / "metrics.jsonl").write_text("")
    page = write_report([two_runs[0], crashed, empty], tmp_path / "r.html").read_text()
    assert "crashed" in page and "empty" in page
    assert "no summary.json" in page and "config.toml unreadable" in page
    assert "1 unreadable line(s)" in page
    assert "0.3000" in page  # final accuracy falls back to metrics.jsonl
    only_empty = write_report([empty], tmp_path / "e.html").read_text()
    assert "no evaluated rounds yet" in only_empty


def test_same_directory_names_get_distinct_labels(tmp_path):
    a = make_run(tmp_path / "grid-a", "run", [0.1, 0.2])
    b = make_run(tmp_path / "grid-b", "run", [0.3, 0.4])
    page = write_report([a, b], tmp_path / "r.html").read_text()
    assert "grid-a/run" in page and "grid-b/run" in page


def test_memory_and_continual_learning_sections(tmp_path):
    matrix = [[0.9, 0.1, 0.1], [0.6, 0.85, 0.1], [0.5, 0.7, 0.8]]
    run = make_run(
        tmp_path,
        "cl",
        [0.5, 0.6, 0.67],
        summary={"accuracy_matrix": matrix, "average_accuracy": 0.6667, "bwt": -0.275},
        extra={"peak_rss_mb": 812.5, "acc_task_0": 0.5, "acc_task_1": 0.6},
    )
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "peak_rss_mb (max)" in page and "812.5" in page
    assert "Continual learning" in page and "accuracy matrix of cl" in page
    assert "0.6667" in page and "-0.2750" in page
    assert "computed from the matrix" in page  # forgetting was not in the summary
    assert "per-task accuracy of cl" in page


def test_deployment_fault_events_have_their_section(two_runs, tmp_path):
    events = [
        {"round": 2, "event": "node-lost", "node": "0abc", "reason": "timeout"},
        {"round": 2, "event": "round-timeout", "waiting": 1},
        {"round": 4, "event": "resumed", "after_round": 3},
    ]
    run = make_run(tmp_path, "dep", [0.5, 0.6, 0.7, 0.8], summary={"fault_events": events})
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "Deployment faults" in page
    assert "node-lost" in page and "0abc" in page and "1 waiting" in page
    assert "after round 3" in page
    page = write_report(two_runs, tmp_path / "plain.html").read_text()
    assert "Deployment faults" not in page  # no events, no section


def test_partition_png_is_embedded_when_it_is_a_png(two_runs, tmp_path):
    cv2 = pytest.importorskip("cv2")
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 200, dtype=np.uint8))
    assert ok
    (two_runs[0] / "partition.png").write_bytes(png.tobytes())
    (two_runs[1] / "partition.png").write_bytes(b"truncated")
    page = write_report(two_runs, tmp_path / "r.html").read_text()
    section = page[page.index("Label distribution") :]
    assert "partition of fedavg-lr01" in section
    assert "fedavg-lr05" not in section  # a broken partition.png is skipped


def _pixels_near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 24) -> int:
    bgr = np.array(rgb[::-1], dtype=np.int16)
    return int((np.abs(img.astype(np.int16) - bgr).max(axis=2) <= tol).sum())


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless render needs /usr/bin/chromium (apt-get install -y chromium)",
)
def test_page_renders_in_headless_chromium(two_runs, tmp_path):
    cv2 = pytest.importorskip("cv2")
    page = write_report(two_runs, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert shot.stat().st_size > 20_000
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (2000, 1200)
    assert img.reshape(-1, 3).std(axis=0).max() > 10  # not one flat colour
    # both runs' curves were drawn: matplotlib's C0 blue and C1 orange are on screen
    assert _pixels_near(img, (31, 119, 180)) > 200
    assert _pixels_near(img, (255, 127, 14)) > 200
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
