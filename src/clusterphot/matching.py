"""Cross-matching star lists that are already on a common pixel grid.

Matching is strictly one-to-one: a star is paired only with its *mutual* nearest neighbour
(each is the other's closest star) within the match radius. In a crowded field this leaves
ambiguous stars unmatched rather than pairing one star with two others, which is what ruins
colours in a colour-magnitude diagram. Stars with non-finite positions are never matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def _finite_points(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) array of the finite positions and their row indices in the input."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    rows = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    return np.column_stack([x[rows], y[rows]]), rows


def match_one_to_one(x1, y1, x2, y2, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (index1, index2, separation) of mutual nearest neighbours within radius (cKDTree).

    Strictly one-to-one: no star appears in two pairs. Symmetric: swapping the lists swaps the
    outputs. Pairs are sorted by index1; separations are in the units of x, y (pixels).
    """
    if not radius > 0:
        raise ValueError(f"match radius must be positive, got {radius}")
    points1, rows1 = _finite_points(x1, y1)
    points2, rows2 = _finite_points(x2, y2)
    if len(points1) == 0 or len(points2) == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty.copy(), np.empty(0, dtype=float)

    tree1, tree2 = cKDTree(points1), cKDTree(points2)
    # A miss is reported as distance inf and index == number of points in the tree.
    separation, nearest2 = tree2.query(points1, distance_upper_bound=radius)
    _, nearest1 = tree1.query(points2, distance_upper_bound=radius)

    candidates = np.flatnonzero(nearest2 < len(points2))
    # Padding nearest1 with a sentinel row lets misses (index len(points2)) be looked up.
    back = np.append(nearest1, -1)[nearest2[candidates]]
    mutual = candidates[back == candidates]
    return rows1[mutual], rows2[nearest2[mutual]], separation[mutual]


def merge_positions(positions: Sequence[tuple[np.ndarray, np.ndarray]], radius: float) -> np.ndarray:
    """Group stars of several catalogues (already on the reference pixel grid) into objects.

    Returns an integer array of shape (n_objects, n_catalogues): the row index of each object's
    star in each catalogue, -1 where absent. Catalogue by catalogue, stars are matched one-to-one
    within radius against the current objects' mean positions; matched stars join their object
    (moving its mean position), unmatched stars start new objects. Each catalogue contributes at
    most one star per object; stars with non-finite positions are left out.
    """
    n_catalogues = len(positions)
    points = [_finite_points(x, y) for x, y in positions]
    n_max = sum(len(p) for p, _ in points)
    members = np.full((n_max, n_catalogues), -1, dtype=np.intp)
    sum_x = np.zeros(n_max)
    sum_y = np.zeros(n_max)
    count = np.zeros(n_max)
    n_objects = 0

    for k, (xy, rows) in enumerate(points):
        mean_x = sum_x[:n_objects] / np.maximum(count[:n_objects], 1)
        mean_y = sum_y[:n_objects] / np.maximum(count[:n_objects], 1)
        star, obj, _ = match_one_to_one(xy[:, 0], xy[:, 1], mean_x, mean_y, radius)

        members[obj, k] = rows[star]
        sum_x[obj] += xy[star, 0]
        sum_y[obj] += xy[star, 1]
        count[obj] += 1

        unmatched = np.ones(len(xy), dtype=bool)
        unmatched[star] = False
        new = slice(n_objects, n_objects + int(unmatched.sum()))
        members[new, k] = rows[unmatched]
        sum_x[new] = xy[unmatched, 0]
        sum_y[new] = xy[unmatched, 1]
        count[new] = 1
        n_objects = new.stop

    return members[:n_objects]
