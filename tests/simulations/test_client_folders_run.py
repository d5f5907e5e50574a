"""One real run (CLI, Flower's runtime, Ray workers) on a client-folders tree: each
round samples one client, and the client that trained reports exactly its own folder's
image count (the counts differ per folder, so a count names its folder). That the arrays
are folder k's images is checked at the learning layer (test_client_folders.py)."""

from __future__ import annotations

import json

import pytest
from client_tree import write_tree
from helpers import run_cli

from server.sampling import sample_clients

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

# Client k (sorted names) holds 2 + k images of each class: 4, 6, 8, 10, 12 in all.
CLIENTS = {f"site-{'abcde'[k]}": {"h": 2 + k, "v": 2 + k} for k in range(5)}
ROUNDS = 5


def _seed_visiting_every_client() -> int:
    """A seed whose one-client rounds 1..5 draw five different clients (the real
    sampler's draws), so five rounds check every folder."""
    for seed in range(1000):
        if sorted(sample_clients(seed, r, 5, 1)[0] for r in range(1, ROUNDS + 1)) == [
            0,
            1,
            2,
            3,
            4,
        ]:
            return seed
    raise AssertionError("no seed draws every client once")


def test_each_client_trains_on_its_own_folder(ray_address, tmp_path):
    written = write_tree(tmp_path / "data", CLIENTS, central={"h": 3, "v": 3})
    count = [len(written[f"{name}/train"]) for name in sorted(CLIENTS)]
    assert count == [4, 6, 8, 10, 12]
    seed = _seed_visiting_every_client()
    out = tmp_path / "run"
    sets = [
        'dataset="client-folders"',
        f'data-path="{tmp_path / "data"}"',
        "image-size=8",
        'model="mlp"',
        f"rounds={ROUNDS}",
        "clients-per-round=1",
        f"eval-every={ROUNDS}",
        f"seed={seed}",
        "lr=0.05",
    ]
    proc = run_cli(
        "run",
        "--quiet",
        "--out",
        str(out),
        *[a for s in sets for a in ("--set", s)],
        "--ray-address",
        ray_address,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (out / "config.toml").read_text()
    assert 'partition = "natural"' in config and "num-clients = 5" in config
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["replies"] for r in rows] == [1] * ROUNDS
    trained = {}
    for r in rows:
        (k,) = r["slowest_clients"]  # the round's one client
        assert r["examples"] == count[k], (r["round"], k, r["examples"])
        trained[k] = r["examples"]
    assert trained == dict(enumerate(count))  # every folder, each by its own client
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_accuracy"] > 0.5  # the class bands were learned (2 classes)
