"""One-to-one cross-matching and multi-catalogue merging."""

from __future__ import annotations

import numpy as np
import pytest

from clusterphot.matching import match_one_to_one, merge_positions


def dense_field(rng, n: int = 3000, size: float = 200.0):
    """Mean star spacing about size / sqrt(n) = 3.7 px."""
    return rng.uniform(0, size, n), rng.uniform(0, size, n)


def test_never_pairs_a_star_twice_in_a_crowded_field():
    rng = np.random.default_rng(1)
    x1, y1 = dense_field(rng)
    x2, y2 = dense_field(rng)
    i, j, separation = match_one_to_one(x1, y1, x2, y2, radius=6.0)

    assert len(i) > 100  # the test must actually exercise ambiguous pairs
    assert len(np.unique(i)) == len(i)
    assert len(np.unique(j)) == len(j)
    assert np.all(separation <= 6.0)
    np.testing.assert_allclose(separation, np.hypot(x1[i] - x2[j], y1[i] - y2[j]))


def test_symmetric_under_swapping_the_lists():
    rng = np.random.default_rng(2)
    x1, y1 = dense_field(rng, 2000)
    x2, y2 = dense_field(rng, 2500)
    i, j, _ = match_one_to_one(x1, y1, x2, y2, radius=5.0)
    j_swapped, i_swapped, _ = match_one_to_one(x2, y2, x1, y1, radius=5.0)

    assert set(zip(i.tolist(), j.tolist())) == set(zip(i_swapped.tolist(), j_swapped.tolist()))


def test_recovers_every_star_of_a_shifted_noisy_copy():
    rng = np.random.default_rng(3)
    x1, y1 = dense_field(rng, 1000, size=1000.0)
    order = rng.permutation(1000)
    x2 = x1[order] + rng.normal(0, 0.05, 1000)
    y2 = y1[order] + rng.normal(0, 0.05, 1000)
    i, j, _ = match_one_to_one(x1, y1, x2, y2, radius=0.5)

    assert len(i) == 1000
    np.testing.assert_array_equal(order[j], i)


def test_ignores_nan_positions_and_empty_lists():
    i, j, separation = match_one_to_one([0.0, np.nan, 5.0], [0.0, 1.0, 5.0], [np.nan, 5.1, 0.2], [0.0, 5.0, 0.0], 1.0)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 2), (2, 1)]
    assert np.all(np.isfinite(separation))
    assert all(len(a) == 0 for a in match_one_to_one([], [], [1.0], [1.0], 1.0))


def test_merge_positions_reconstructs_objects_from_catalogues_with_dropouts():
    rng = np.random.default_rng(4)
    n_true = 800
    x_true, y_true = rng.uniform(0, 500, (2, n_true))  # spacing ~18 px, radius 1 px
    catalogues, truth = [], []
    for _ in range(3):
        ids = rng.permutation(np.flatnonzero(rng.uniform(size=n_true) > 0.25))
        catalogues.append((x_true[ids] + rng.normal(0, 0.1, len(ids)), y_true[ids] + rng.normal(0, 0.1, len(ids))))
        truth.append(ids)
    members = merge_positions(catalogues, radius=1.0)

    assert members.shape[1] == 3
    for k in range(3):
        column = members[:, k][members[:, k] >= 0]
        assert len(np.unique(column)) == len(column) == len(truth[k])
    # Every object's stars are one true star; every true star seen is one object.
    ids = np.where(members >= 0, np.stack([truth[k][members[:, k]] for k in range(3)], axis=1), -1)
    for row in ids:
        assert len(set(row[row >= 0].tolist())) == 1
    seen = np.unique(np.concatenate(truth))
    assert len(members) == len(seen)


def test_merge_positions_keeps_one_star_per_catalogue_per_object():
    # Two stars of the second catalogue close to one object: only the nearer joins it.
    members = merge_positions([([10.0], [10.0]), ([10.2, 10.9], [10.0, 10.0])], radius=2.0)
    assert members.tolist() == [[0, 0], [-1, 1]]


@pytest.mark.parametrize("radius", [0.0, -1.0])
def test_rejects_non_positive_radius(radius):
    with pytest.raises(ValueError, match="radius"):
        match_one_to_one([0.0], [0.0], [0.0], [0.0], radius)
