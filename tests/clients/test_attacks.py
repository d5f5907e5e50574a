"""Attacks and faults: fixed by seed, and each update rule on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from clients.attacks import alie, fault_draw, flip_labels, malicious_clients, poison_update


def test_malicious_set_is_fixed_by_seed_and_sized_by_fraction():
    a = malicious_clients(0, 50, 0.2)
    assert a == malicious_clients(0, 50, 0.2)
    assert len(a) == 10 and all(0 <= c < 50 for c in a)
    assert a != malicious_clients(1, 50, 0.2)
    assert malicious_clients(0, 50, 0.0) == frozenset()


def test_fault_draws_repeat_and_differ_by_kind():
    assert fault_draw(3, 7, 11, "crash") == fault_draw(3, 7, 11, "crash")
    assert fault_draw(3, 7, 11, "crash") != fault_draw(3, 7, 11, "nan")
    draws = [fault_draw(0, r, 1, "crash") for r in range(2000)]
    assert 0.27 < np.mean(np.array(draws) < 0.3) < 0.33


def test_label_flip():
    np.testing.assert_array_equal(flip_labels(np.array([0, 3, 9]), 10), [9, 6, 0])


X = [np.array([1.0, 1.0]), np.array([0.0])]
Y = [np.array([2.0, 0.0]), np.array([1.0])]  # honest update (1, -1, 1)


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("sign-flip", [[-3.0, 5.0], [-4.0]]),  # x - 4 (y - x)
        ("scaling", [[5.0, -3.0], [4.0]]),  # x + 4 (y - x)
        ("free-ride", [[1.0, 1.0], [0.0]]),
        ("label-flip", [[2.0, 0.0], [1.0]]),  # data attack: update unchanged
    ],
)
def test_update_attacks(attack, expected):
    got = poison_update(attack, X, Y, 4.0, 1.0, np.random.default_rng(0))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e)


def test_gaussian_attack_is_noise_around_the_global_model():
    got = poison_update(
        "gaussian", [np.zeros(10_000)], [np.ones(10_000)], 1.0, 2.0, np.random.default_rng(0)
    )
    assert abs(got[0].mean()) < 0.1 and 1.9 < got[0].std() < 2.1


def test_alie_shifts_the_mean_by_z_standard_deviations():
    honest = [[np.array([1.0, 10.0])], [np.array([3.0, 10.0])]]  # mean (2, 10), std (1, 0)
    np.testing.assert_allclose(alie(honest, 1.5)[0], [0.5, 10.0])
