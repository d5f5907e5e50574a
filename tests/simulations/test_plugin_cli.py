"""Bad plug-ins at the command line: one line on stderr, exit 2, before any worker
starts (no run directory is created, so no Ray was started)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from byo_package import write_package
from helpers import ROOT

SMALL = ["--set", "num-clients=4", "--set", "clients-per-round=2", "--set", "rounds=1"]


@pytest.fixture(scope="module")
def user_path(tmp_path_factory):
    return str(write_package(tmp_path_factory.mktemp("user")))


def _run(user_path, tmp_path, *sets):
    args = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "run", *SMALL, *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), user_path])},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (['model="missing_pkg.nets:build"'], "cannot import module 'missing_pkg.nets'"),
        (['model="byo_pkg.models:one_arg"'], "cannot be called with 2 positional"),
        (
            ['dataset="byo_pkg.data:flat_images"', 'model="byo_pkg.models:build"'],
            "images have shape (240, 64)",
        ),
        (
            ['dataset="byo_pkg.data:load"', 'partition="byo_pkg.split:overlapping"'],
            "parts must be disjoint",
        ),
        (['dataset="byo_pkg.data:load"', 'model="byo_pkg.models:logits"'], "(logits?)"),
    ],
)
def test_bad_plugin_is_one_line_exit_2(user_path, tmp_path, sets, fragment):
    line = _run(user_path, tmp_path, *sets)
    assert fragment in line and "expected" in line, line
