"""Bad input at the command line: one line on stderr, exit 2, nothing overwritten."""

from __future__ import annotations

import pytest
from helpers import run_cli


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "rounds=abc"], "'rounds' must be an integer"),
        (["--set", "nonsense=1"], "unknown config key 'nonsense'"),
        (["--set", "strategy=fedavgg"], "unknown strategy 'fedavgg'"),
        (["--set", "model=vgg"], "unknown model 'vgg'"),
        (["--set", "dataset=imagenet"], "unknown dataset 'imagenet'"),
        (["--set", "partition=zipf"], "unknown partition 'zipf'"),
        (["--set", "dataset=npz", "--set", "data-path=/nonexistent/x.npz"], "/nonexistent/x.npz"),
        (["missing-config.toml"], "not found"),
        (["--set", "rounds"], "expects KEY=VALUE"),
        (["--set", 'dp="central"', "--set", "delta=0.05"], "must be < 1/num-clients"),
        (["--set", 'dp="central"', "--set", 'strategy="krum"'], "cannot be combined"),
        (["--set", "secure-aggregation=true", "--set", "reconstruction-threshold=3"], "half"),
        (
            [
                "--set",
                'dp="central"',
                "--set",
                'dp-clipping="adaptive"',
                "--set",
                "clipped-count-stddev=0.1",
            ],
            "clipped-count-stddev",
        ),
    ],
)
def test_one_line_exit_2(tmp_path, args, fragment):
    proc = run_cli("run", *args, "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_corrupt_data_file_is_one_line(tmp_path):
    bad = tmp_path / "data.npz"
    bad.write_bytes(b"this is not a zip file")
    proc = run_cli("run", "--set", "dataset=npz", "--set", f"data-path={bad}")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr


def test_existing_run_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"round": 1}\n')
    proc = run_cli("run", "--out", str(out))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert (out / "metrics.jsonl").read_text() == '{"round": 1}\n'


def test_unknown_command_is_one_line():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
