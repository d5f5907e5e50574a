"""Central DP's sampling and noise hold against the clients: the real round loop runs on a
fake grid that records every message a client receives, and a client armed with all of
it tries to reproduce who was sampled and what noise was added."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from fake_grid import DELTA, RecordingGrid

from learning.config import ExperimentConfig
from learning.streams import Tag, generator
from privacy.server_key import KEY_FILE, client_config, server_key
from server.loop import run_rounds
from server.sampling import poisson_clients


def _cfg(**extra) -> ExperimentConfig:
    flat = {
        "model": "small-cnn",
        "dp": "central",
        "num-clients": 200,
        "clients-per-round": 20,
        "rounds": 3,
        "noise-multiplier": 1.0,
        "clipping-norm": 10.0,  # the fake update is never clipped
        "delta": 1e-3,
        "seed": 7,
    }
    flat.update(extra)
    return ExperimentConfig.from_flat(flat)


def _run(cfg: ExperimentConfig, run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = RecordingGrid(4)
    result = run_rounds(grid, cfg, lambda w: (0.0, 0.0), 4, run_dir=run_dir)
    return grid, result


def _sampled(grid: RecordingGrid) -> dict[int, list[int]]:
    by_round: dict[int, list[int]] = {}
    for m in grid.seen:
        c = m.content["config"]
        by_round.setdefault(int(c["server-round"]), []).append(int(c["partition-id"]))
    return {r: sorted(p) for r, p in by_round.items()}


def _noise(result, grid: RecordingGrid, cfg: ExperimentConfig) -> list[np.ndarray]:
    """The noise of each round, read off the released models (the updates are known)."""
    out = []
    sampled = _sampled(grid)
    models = {}
    for m in grid.seen:
        models.setdefault(int(m.content["config"]["server-round"]), m.content["arrays"])
    releases = [models[r].to_numpy_ndarrays() for r in sorted(models)[1:]] + [result.weights]
    expected = cfg.federation.clients_per_round
    for r, after in zip(sorted(models), releases, strict=True):
        before = models[r].to_numpy_ndarrays()
        mean = len(sampled[r]) * DELTA / expected
        noise = np.concatenate([(a - b - mean).ravel() for a, b in zip(after, before, strict=True)])
        out.append(noise * expected / (cfg.privacy.noise_multiplier * cfg.privacy.clipping_norm))
    return out


def _client_guesses(received: dict, rnd: int, n: int) -> dict[str, list[int]]:
    """Every integer a client received, tried as the seed of today's and our streams."""
    rate = received["clients-per-round"] / received["num-clients"]
    guesses = {}
    for name, value in received.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            continue
        old = np.random.default_rng([value, rnd, 0x9015])
        guesses[f"old:{name}"] = [int(c) for c in np.flatnonzero(old.random(n) < rate)]
        guesses[f"new:{name}"] = poisson_clients(value, rnd, n, rate)
    return guesses


def _noise_guesses(received: dict, rnd: int, d: int) -> list[np.ndarray]:
    out = []
    for value in received.values():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            continue
        out.append(np.random.default_rng([value, rnd, 0xD9, 0]).normal(0.0, 1.0, d))
        out.append(generator(value, Tag.CENTRAL_NOISE, rnd, 0).normal(0.0, 1.0, d))
    return out


def test_a_client_cannot_reproduce_the_sample_or_the_noise(tmp_path):
    cfg = _cfg(**{"privacy-seed": 12345})
    grid, result = _run(cfg, tmp_path)
    sampled = _sampled(grid)
    noises = _noise(result, grid, cfg)
    assert len(sampled) == 3 and all(sampled.values())
    for m in grid.seen:
        received = dict(m.content["config"])
        assert "privacy-seed" not in received  # the server's key is never sent
        rnd = int(received["server-round"])
        for name, guess in _client_guesses(received, rnd, 200).items():
            assert guess != sampled[rnd], f"a client reproduced round {rnd}'s sample ({name})"
        noise = noises[rnd - 1]
        for guess in _noise_guesses(received, rnd, noise.size):
            corr = float(np.corrcoef(guess, noise)[0, 1])
            assert abs(corr) < 6 / np.sqrt(noise.size), "a client reproduced the noise"


def test_the_noise_read_off_the_release_is_what_the_server_drew(tmp_path):
    """The attack test above reads the noise correctly (else it would prove nothing)."""
    cfg = _cfg(**{"privacy-seed": 12345})
    grid, result = _run(cfg, tmp_path)
    key = server_key(cfg, None)
    for rnd, noise in enumerate(_noise(result, grid, cfg), start=1):
        drawn = generator(key, Tag.CENTRAL_NOISE, rnd, 0).normal(0.0, 1.0, noise.size)
        assert float(np.corrcoef(drawn, noise)[0, 1]) > 0.99


def test_pinned_key_reproduces_and_a_different_noise_multiplier_draws_independent_noise(tmp_path):
    pinned = {"privacy-seed": 99}
    a_grid, a = _run(_cfg(**pinned), tmp_path / "a")
    b_grid, b = _run(_cfg(**pinned), tmp_path / "b")
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(x, y)  # same config and key: the same run
    c_cfg = _cfg(**pinned, **{"noise-multiplier": 1.5})
    c_grid, c = _run(c_cfg, tmp_path / "c")
    na = _noise(a, a_grid, _cfg(**pinned))[0]
    nc = _noise(c, c_grid, c_cfg)[0]
    assert abs(float(np.corrcoef(na, nc)[0, 1])) < 6 / np.sqrt(na.size)


def test_unpinned_runs_draw_fresh_keys_kept_owner_only_for_resume(tmp_path):
    cfg = _cfg()
    k1 = server_key(cfg, tmp_path / "one")
    k2 = server_key(cfg, tmp_path / "two")
    assert k1 != k2
    assert server_key(cfg, tmp_path / "one") == k1  # a resumed run reads its key back
    mode = stat.S_IMODE(os.stat(tmp_path / "one" / KEY_FILE).st_mode)
    assert mode == 0o600
    a_grid, a = _run(cfg, tmp_path / "a")
    b_grid, b = _run(cfg, tmp_path / "b")
    na, nb = _noise(a, a_grid, cfg)[0], _noise(b, b_grid, cfg)[0]
    assert abs(float(np.corrcoef(na, nb)[0, 1])) < 6 / np.sqrt(na.size)


def test_server_only_keys_are_stripped_and_deployment_refuses_a_pinned_key():
    flat = _cfg(**{"privacy-seed": 5}).to_flat()
    assert "privacy-seed" not in client_config(flat)
    assert client_config(flat)["seed"] == 7
    from learning.errors import ConfigError

    with pytest.raises(ConfigError, match="privacy-seed cannot be pinned in a deployment"):
        _cfg(**{"privacy-seed": 5, "federation-mode": "deployment"})


def test_a_resumed_run_reads_the_pinned_key_back_from_its_key_file(tmp_path):
    """config.toml does not hold privacy-seed, so a resumed run gets it from server-key."""
    pinned = _cfg(**{"privacy-seed": 31337})
    first = server_key(pinned, tmp_path)
    resumed = ExperimentConfig.from_flat(
        {k: v for k, v in pinned.to_flat().items() if k != "privacy-seed"}
    )
    assert server_key(resumed, tmp_path) == first


@pytest.mark.parametrize(("key", "value"), [("seed", 2**32), ("privacy-seed", 2**63)])
def test_seeds_beyond_what_the_generators_take_are_refused_in_one_line(key, value):
    from learning.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        _cfg(**{key: value})
