"""Every generator comes from one helper, and no two purposes can share a stream."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest

from learning.streams import ARITY, MAX_FIELD, Tag, generator, seed_sequence

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("learning", "privacy", "server", "clients", "strategies", "simulations")


def _entropy(seq: np.random.SeedSequence) -> tuple[int, ...]:
    """The words NumPy actually hashes (what decides the stream)."""
    from numpy.random.bit_generator import _coerce_to_uint32_array

    run = list(_coerce_to_uint32_array(seq.entropy))
    spawn = list(_coerce_to_uint32_array(seq.spawn_key))
    if spawn and len(run) < seq.pool_size:
        run += [0] * (seq.pool_size - len(run))
    return tuple(int(w) for w in run + spawn)


def test_every_tag_has_a_fixed_arity_and_tags_are_unique():
    assert set(ARITY) == set(Tag)
    assert len({int(t) for t in Tag}) == len(Tag)


def test_no_two_purposes_assemble_the_same_entropy():
    keys = [0, 1, 7, 2**32, 2**64 + 3, 2**128 - 1]
    values = [0, 1, 2, 217, 36885, 2**32 - 1]
    seen: dict[tuple[int, ...], tuple] = {}
    for key, tag in itertools.product(keys, Tag):
        for fields in itertools.product(values, repeat=ARITY[tag]):
            words = _entropy(seed_sequence(key, tag, *fields))
            assert words not in seen, f"{(key, tag.name, fields)} collides with {seen[words]}"
            seen[words] = (key, tag.name, fields)


def test_the_collisions_the_review_found_are_gone():
    s, r = 3, 5
    # the old central-noise list equalled partition 217's training list, the sampler
    # partition 0's, the Poisson draw partition 36885's
    noise = generator(s, Tag.CENTRAL_NOISE, r, 0).random(4)
    assert not np.array_equal(noise, generator(s, Tag.LOCAL_TRAIN, r, 217).random(4))
    sample = generator(s, Tag.SAMPLE, r).random(4)
    assert not np.array_equal(sample, generator(s, Tag.LOCAL_TRAIN, r, 0).random(4))
    top_up = generator(s, Tag.TOP_UP, r, 1).random(4)
    assert not np.array_equal(top_up, generator(s, Tag.LOCAL_TRAIN, r, 1).random(4))


def test_malformed_requests_are_refused():
    with pytest.raises(ValueError, match="takes 2 fields"):
        seed_sequence(0, Tag.LOCAL_TRAIN, 1)
    with pytest.raises(ValueError, match="outside"):
        seed_sequence(0, Tag.SAMPLE, MAX_FIELD)
    with pytest.raises(ValueError, match="key"):
        seed_sequence(-1, Tag.SAMPLE, 1)


def _random_calls(path: Path) -> list[str]:
    """Calls that make a generator or seed NumPy other than through learning/streams."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        last = name.split(".")[-1]
        if last in ("default_rng", "SeedSequence", "RandomState", "PCG64", "set_seed") or (
            name.endswith("random.seed") or last == "set_random_seed"
        ):
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return bad


def test_nothing_else_makes_generators():
    bad = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if path.relative_to(ROOT).as_posix() in ("learning/streams.py",):
                continue
            if path.relative_to(ROOT).as_posix() == "learning/warm_start.py":
                # Keras's initialisers: seeded once from the (public) seed for the model
                bad += [b for b in _random_calls(path) if "set_random_seed" not in b]
                continue
            if path.relative_to(ROOT).as_posix() == "privacy/client_mods.py":
                # seeds NumPy's global generator (Flower's mods draw from it) from a stream
                bad += [b for b in _random_calls(path) if "random.seed" not in b]
                continue
            bad += _random_calls(path)
    assert not bad, "make generators with learning.streams.generator:\n" + "\n".join(bad)


def test_the_local_eval_streams_are_their_own():
    """A client's local split, its personal shuffling and a new client's personalising
    draw from streams apart from its round's training shuffle (issue 17)."""
    s, r, pid = 3, 5, 7
    train = generator(s, Tag.LOCAL_TRAIN, r, pid).random(4)
    for other in (
        generator(s, Tag.PERSONAL_TRAIN, r, pid),
        generator(s, Tag.NEW_CLIENT_TRAIN, r, pid),
        generator(s, Tag.LOCAL_SPLIT, pid),
        generator(s, Tag.LOCAL_EVAL_SAMPLE, r),
        generator(s, Tag.HOLDOUT),
    ):
        assert not np.array_equal(other.random(4), train)
