"""Solving a frame's transform onto the reference grid from synthetic star fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from clusterphot.registration import RegistrationError, Transform, solve_transform, vote_shift, wcs_transform

SIZE = 1000.0
SHIFT = np.array([3.7, -2.2])
ROTATION_DEG = 0.3
SCALE = 1.001


def rotation_scale(angle_deg: float, scale: float) -> np.ndarray:
    angle = math.radians(angle_deg)
    return scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


TRUE = Transform(rotation_scale(ROTATION_DEG, SCALE), SHIFT)  # frame pixels -> reference pixels


def reference_field(rng, n_stars: int = 1500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stars uniform over the frame with a power-law luminosity function (more faint stars)."""
    x, y = rng.uniform(0, SIZE, (2, n_stars))
    flux = rng.pareto(1.5, n_stars) + 1.0
    return x, y, 24.0 - 2.5 * np.log10(flux)


def cosmic_rays(rng, n: int, mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections at random positions, as bright as the brighter half of the real stars."""
    x, y = rng.uniform(0, SIZE, (2, n))
    return x, y, rng.uniform(mag.min(), np.median(mag), n)


def observed_frame(rng, x_ref, y_ref, mag_ref, transform: Transform = TRUE, window=(300.0, 150.0)):
    """The reference stars seen in another frame: 30% lost, partial overlap, noise, 25% cosmic rays.

    Returns the frame's catalogue (x, y, mag), the reference row of each real star in it (the
    first rows of the catalogue) and the noise-free frame positions of those stars.
    """
    x_true, y_true = transform.inverse().apply(x_ref, y_ref)
    seen = (rng.uniform(size=len(x_ref)) > 0.3) & (x_ref > window[0]) & (y_ref > window[1])
    rows = np.flatnonzero(seen)
    x = x_true[rows] + rng.normal(0, 0.03, len(rows))
    y = y_true[rows] + rng.normal(0, 0.03, len(rows))
    mag = mag_ref[rows] + 0.7 + rng.normal(0, 0.05, len(rows))  # another filter: a colour
    cx, cy, cmag = cosmic_rays(rng, int(0.25 * len(rows)), mag)
    catalogue = np.concatenate([x, cx]), np.concatenate([y, cy]), np.concatenate([mag, cmag])
    return catalogue, rows, (x_true[rows], y_true[rows])


def with_cosmic_rays(rng, x, y, mag, fraction: float = 0.25):
    cx, cy, cmag = cosmic_rays(rng, int(fraction * len(x)), mag)
    return np.concatenate([x, cx]), np.concatenate([y, cy]), np.concatenate([mag, cmag])


def rms_error(solved: Transform, x, y, x_ref, y_ref) -> float:
    """Rms distance (px) between the solved positions of true frame positions and the truth."""
    xs, ys = solved.apply(x, y)
    return float(np.sqrt(np.mean((xs - x_ref) ** 2 + (ys - y_ref) ** 2)))


@pytest.fixture
def field():
    rng = np.random.default_rng(42)
    x_ref, y_ref, mag_ref = reference_field(rng)
    catalogue, rows, true_frame = observed_frame(rng, x_ref, y_ref, mag_ref)
    catalogue_ref = with_cosmic_rays(rng, x_ref, y_ref, mag_ref)
    return catalogue, catalogue_ref, rows, true_frame, (x_ref[rows], y_ref[rows])


def test_solves_rotated_scaled_shifted_frame_with_cosmic_rays_and_partial_overlap(field):
    (x, y, mag), catalogue_ref, rows, true_frame, true_ref = field
    solved = solve_transform(x, y, mag, *catalogue_ref)

    n_real = len(rows)
    assert rms_error(solved, *true_frame, *true_ref) < 0.02
    np.testing.assert_allclose(solved.offset, SHIFT, atol=0.05)
    assert solved.rotation_deg == pytest.approx(ROTATION_DEG, abs=0.003)
    assert solved.scale == pytest.approx(SCALE, abs=5e-5)
    assert solved.n_pairs > 0.8 * n_real
    assert 0.02 < solved.rms < 0.08  # the 0.03 px per-axis noise, from both lists
    assert solved.method == "stars (affine)"


def test_converges_from_a_wcs_seed_one_pixel_off(field):
    (x, y, mag), catalogue_ref, rows, true_frame, true_ref = field
    seed = Transform(rotation_scale(ROTATION_DEG + 0.02, SCALE), SHIFT + [1.0, -0.8], method="wcs")
    solved = solve_transform(x, y, mag, *catalogue_ref, initial=seed, model="similarity")

    assert rms_error(solved, *true_frame, *true_ref) < 0.02
    assert solved.rotation_deg == pytest.approx(ROTATION_DEG, abs=0.003)
    assert solved.method == "wcs+stars (similarity)"


def test_vote_finds_the_shift_with_30_percent_spurious_stars_on_each_side():
    rng = np.random.default_rng(11)
    x_ref, y_ref, mag_ref = reference_field(rng, 500)
    (x, y, mag), _, _ = observed_frame(rng, x_ref, y_ref, mag_ref, Transform(np.eye(2), [15.2, -9.6]), (0, 0))
    x, y, mag = with_cosmic_rays(rng, x, y, mag, 0.3)
    x_ref, y_ref, _ = with_cosmic_rays(rng, x_ref, y_ref, mag_ref, 0.3)
    shift, votes = vote_shift(x, y, x_ref, y_ref, max_shift=20.0)

    np.testing.assert_allclose(shift, [15.2, -9.6], atol=0.05)
    assert votes >= 0.6 * 500


def test_shift_model_on_a_pure_shift_with_nan_magnitudes():
    rng = np.random.default_rng(3)
    x_ref, y_ref, mag_ref = reference_field(rng, 400)
    (x, y, mag), _, _ = observed_frame(rng, x_ref, y_ref, mag_ref, Transform(np.eye(2), [-12.3, 8.6]))
    mag[::5] = np.nan  # photometry failed, positions still good
    solved = solve_transform(x, y, mag, x_ref, y_ref, mag_ref, model="shift")

    np.testing.assert_allclose(solved.offset, [-12.3, 8.6], atol=0.02)
    np.testing.assert_array_equal(solved.matrix, np.eye(2))
    assert solved.method == "stars (shift)"


def test_few_pairs_fall_back_to_a_simpler_model():
    # Eight stars on a small (subarray-like) frame, so the rotation smears the vote little.
    rng = np.random.default_rng(5)
    x_ref, y_ref, mag_ref = rng.uniform(0, 200, 8), rng.uniform(0, 200, 8), rng.uniform(18, 22, 8)
    x, y = TRUE.inverse().apply(x_ref, y_ref)
    solved = solve_transform(x, y, mag_ref, x_ref, y_ref, mag_ref, model="affine")

    assert solved.method == "stars (similarity)"
    assert solved.n_pairs == 8
    assert rms_error(solved, x, y, x_ref, y_ref) < 1e-6


def test_too_few_common_stars_raises_with_counts_and_search_range():
    rng = np.random.default_rng(7)
    x_ref, y_ref, mag_ref = reference_field(rng, 60)
    x, y, mag = reference_field(rng, 50)  # an unrelated field
    x[:4], y[:4] = x_ref[:4] + 2.0, y_ref[:4] - 1.0  # only four stars in common
    with pytest.raises(RegistrationError, match=r"need 6\) between 50 frame stars and 60 reference stars.*20\.0 px"):
        solve_transform(x, y, mag, x_ref, y_ref, mag_ref)


def test_shift_beyond_max_shift_raises():
    rng = np.random.default_rng(8)
    x_ref, y_ref, mag_ref = reference_field(rng, 300)
    with pytest.raises(RegistrationError, match="raise max_shift"):
        solve_transform(x_ref + 35.0, y_ref, mag_ref, x_ref, y_ref, mag_ref, max_shift=20.0)


def tan_wcs(crpix, rotation_deg: float = 0.0) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [81.04, -69.75]
    wcs.wcs.crpix = crpix
    wcs.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    wcs.wcs.pc = rotation_scale(rotation_deg, 1.0)
    return wcs


def test_wcs_transform_recovers_crpix_offset():
    frame = tan_wcs([2048.0, 1024.0])
    reference = tan_wcs([2048.0 + 1.5, 1024.0 - 0.7])
    transform = wcs_transform(frame, reference, shape=(2048, 4096))

    np.testing.assert_allclose(transform.offset, [1.5, -0.7], atol=1e-6)
    np.testing.assert_allclose(transform.matrix, np.eye(2), atol=1e-9)
    assert transform.method == "wcs"
    assert transform.rms < 1e-6


def test_wcs_transform_recovers_rotation():
    transform = wcs_transform(tan_wcs([500.0, 500.0], 0.0), tan_wcs([500.0, 500.0], 0.4), shape=(1000, 1000))
    assert abs(transform.rotation_deg) == pytest.approx(0.4, abs=1e-4)
    # CRPIX is 1-based: the reference pixel is (499, 499) in 0-based pixel coordinates.
    x, y = transform.apply(499.0, 499.0)
    assert (x, y) == pytest.approx((499.0, 499.0), abs=1e-6)


def test_transform_meta_and_inverse_round_trip():
    meta = TRUE.as_meta()
    assert meta["rotation_deg"] == pytest.approx(ROTATION_DEG)
    assert meta["scale"] == pytest.approx(SCALE)
    assert meta["shift"] == pytest.approx(list(SHIFT))
    assert meta["rms"] is None and isinstance(meta["matrix"][0][0], float)
    x, y = TRUE.inverse().then(TRUE).apply([0.0, 123.4], [5.0, 999.0])
    np.testing.assert_allclose([x, y], [[0.0, 123.4], [5.0, 999.0]], atol=1e-9)
