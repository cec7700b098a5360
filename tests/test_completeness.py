"""Artificial-star tests' parts (issue 12): positions, magnitudes, injection, recovery and the
completeness curve, each against what it must give on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from clusterphot.completeness import (
    add_artificial_stars,
    cluster_centre,
    completeness_curve,
    completeness_limit,
    default_magnitude_range,
    fit_fleming,
    fleming,
    positions_like,
    radial_zones,
    recovered_stars,
)
from clusterphot.simulate import sample_king_positions

from .synthetic import moffat_epsf


def king_cluster(rng, n=3000, shape=(800, 800), centre=(430.0, 370.0)):
    return sample_king_positions(rng, n, shape, centre, 40.0, 600.0)


def test_the_cluster_centre_is_where_its_stars_are_densest():
    rng = np.random.default_rng(1)
    x, y = king_cluster(rng)
    cx, cy = cluster_centre(x, y, (800, 800), smoothing=20.0)
    assert np.hypot(cx - 430.0, cy - 370.0) < 5.0
    # a HUGS frame's size is binned coarsely (its counts would be 800 MB at one bin per pixel)
    cx, cy = cluster_centre(x * 12.5, y * 12.5, (10000, 10000), smoothing=250.0)
    assert np.hypot(cx - 430.0 * 12.5, cy - 370.0 * 12.5) < 60.0


def test_artificial_stars_follow_the_bright_stars_spatial_profile():
    """Drawn from 1000 'bright' stars of a King cluster, 20000 positions have the radial
    distribution of the cluster itself (its 10-90 per cent radii within 10 per cent), all on
    the frame, and the same seed gives the same positions."""
    rng = np.random.default_rng(2)
    x, y = king_cluster(rng, n=30000)
    bright = rng.choice(len(x), 1000, replace=False)
    fx, fy = positions_like(x[bright], y[bright], 20000, (800, 800), np.random.default_rng(5))
    assert len(fx) == 20000 and (fx >= -0.5).all() and (fx < 799.5).all() and (fy >= -0.5).all() and (fy < 799.5).all()
    true_r = np.hypot(x - 430.0, y - 370.0)
    fake_r = np.hypot(fx - 430.0, fy - 370.0)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert np.quantile(fake_r, q) == pytest.approx(np.quantile(true_r, q), rel=0.1), q
    # not uniform: a uniform draw puts half of them beyond 240 px
    assert np.median(fake_r) < 150.0
    again = positions_like(x[bright], y[bright], 20000, (800, 800), np.random.default_rng(5))
    assert np.array_equal(again[0], fx) and np.array_equal(again[1], fy)
    # never on a masked pixel (here a zero-filled band through the core)
    bad = np.zeros((800, 800), bool)
    bad[350:390, :] = True
    mx, my = positions_like(x[bright], y[bright], 5000, (800, 800), np.random.default_rng(6), bad)
    assert len(mx) == 5000 and not bad[np.rint(my).astype(int), np.rint(mx).astype(int)].any()
    with pytest.raises(ValueError, match="two stars"):
        positions_like(x[:1], y[:1], 10, (800, 800), rng)


def test_the_default_magnitude_range_spans_the_unsaturated_stars_and_beyond_the_faintest():
    mag = np.array([14.0, 15.0, 18.0, 24.0, np.nan])
    saturated = np.array([True, False, False, False, False])
    assert default_magnitude_range(mag, saturated) == (14.5, 25.5)
    with pytest.raises(ValueError, match="unsaturated"):
        default_magnitude_range(mag[:1], saturated[:1])


def test_injected_stars_carry_their_flux_and_its_photon_noise():
    """On an empty frame, 400 stars of 20000 e- each: the light added around each sums to its
    flux within its photon noise, and the scatter of those sums is the photon noise."""
    psf = moffat_epsf(2.2)
    ys, xs = np.mgrid[20:400:20, 20:400:20]
    x, y = xs.ravel() + 0.3, ys.ravel() - 0.2
    flux = np.full(x.size, 2e4)
    data = np.zeros((420, 420), np.float32)
    add_artificial_stars(data, x, y, flux, psf, 1.0, np.random.default_rng(3))
    assert data.dtype == np.float32 and (data >= 0).all()
    # each star's light within 9 px (the PSF holds all its light within its grid)
    oy, ox = np.mgrid[-9:10, -9:10]
    sums = np.array([data[int(round(b)) + oy, int(round(a)) + ox].sum() for a, b in zip(x, y)])
    expected = float(psf.data.sum() / psf.oversampling**2) * 2e4  # the PSF's light on its grid
    assert np.median(sums) == pytest.approx(expected, rel=0.005)
    assert np.std(sums) == pytest.approx(np.sqrt(expected), rel=0.15)
    # without electrons_per_unit the noise would be wrong: 4 e- per unit, a quarter of the variance
    quiet = np.zeros((420, 420), np.float32)
    add_artificial_stars(quiet, x, y, flux / 4.0, psf, 4.0, np.random.default_rng(3))
    quiet_sums = np.array([quiet[int(round(b)) + oy, int(round(a)) + ox].sum() for a, b in zip(x, y)])
    assert np.std(quiet_sums) == pytest.approx(np.sqrt(expected) / 4.0, rel=0.15)


def test_an_artificial_star_is_recovered_only_by_a_new_detection_close_in_place_and_magnitude():
    x_in = np.array([10.0, 30.0, 50.0, 70.0, 90.0, 90.5, 110.0])
    y_in = np.zeros(7)
    mag_in = np.full(7, 20.0)
    # measured: 0 recovers the first (0.4 px, 0.1 mag off); 1 is a real star as it was (at 30, 0.3,
    # 20.1 mag); 2 is 1.5 px from the third; 3 is on the fourth but 1 mag off; 4 sits on both the
    # fifth and sixth: it recovers the nearer, the other is lost; 5 is on a real star of 23 mag
    # but 3 mag brighter than it: the artificial star, found
    x_out = np.array([10.4, 30.0, 51.5, 70.0, 90.4, 110.2])
    y_out = np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    mag_out = np.array([20.1, 20.0, 20.0, 21.0, 20.05, 19.98])
    x_real, y_real, mag_real = np.array([30.0, 300.0, 110.0]), np.array([0.3, 0.0, 0.2]), np.array([20.1, 20.0, 23.0])
    match = recovered_stars(x_in, y_in, mag_in, x_out, y_out, mag_out, x_real, y_real, mag_real, 1.0, 0.75)
    assert match.tolist() == [0, -1, -1, -1, -1, 4, 5]
    # no real catalogue: the second is recovered by what was a real star; exactly on top counts
    none = np.zeros(0)
    match = recovered_stars(x_in, y_in, mag_in, x_out, y_out, mag_out, none, none, none, 1.0, 0.75)
    assert match[1] == 1
    exact = recovered_stars(x_in[:1], y_in[:1], mag_in[:1], x_in[:1], y_in[:1], mag_in[:1], none, none, none, 1.0,
                            0.75)
    assert exact.tolist() == [0]
    assert recovered_stars(x_in, y_in, mag_in, x_out[:0], y_out[:0], mag_out[:0], x_real, y_real, mag_real, 1.0,
                           0.75).tolist() == [-1] * 7


def test_the_completeness_curve_recovers_a_known_completeness_and_its_limits():
    """Artificial stars recovered with Fleming et al.'s probability (plateau 0.97, m_half 24,
    alpha 2/mag): per 0.5-mag bin the fraction within its binomial interval (mostly) and within
    0.03 of the truth, the fitted m50 and m90 within 0.03 mag of the truth's, and the recovered
    stars' delta mag as drawn."""
    rng = np.random.default_rng(4)
    n = 60000
    mag = rng.uniform(20.0, 27.0, n)
    probability = fleming(mag, 0.97, 2.0, 24.0)
    recovered = rng.random(n) < probability
    delta = rng.normal(0.02, 0.05, n)
    radius = rng.uniform(0.0, 300.0, n)
    curve = completeness_curve(mag, recovered, delta, radius)
    assert set(curve["zone"]) == {0, 1, 2, 3}
    everything = curve[curve["zone"] == 0]
    assert everything["injected"].sum() == n
    assert sum(curve[curve["zone"] == k]["injected"].sum() for k in (1, 2, 3)) == n
    # the fraction in a bin is the mean probability over it, not the probability at its centre
    in_bins = [(mag >= lo) & (mag < hi) for lo, hi in zip(everything["mag_low"], everything["mag_high"])]
    expected = np.array([probability[b].mean() if b.any() else np.nan for b in in_bins])
    within = (everything["completeness_low"] <= expected) & (expected <= everything["completeness_high"])
    assert within[np.isfinite(expected)].mean() > 0.5  # a 68 per cent interval
    assert np.nanmax(np.abs(everything["completeness"] - expected)) < 0.03
    bright = everything[np.asarray(everything["mag"]) < 23.0]
    assert np.allclose(bright["delta_mag"], 0.02, atol=0.01)
    assert np.allclose(bright["delta_mag_scatter"], 0.05, rtol=0.15)
    assert everything["mag"].unit == "mag" and everything["r_in"].unit == "pix"
    # zones of equal numbers
    edges = radial_zones(radius)
    assert np.allclose(edges[1:3], [100.0, 200.0], atol=5.0) and edges[0] == 0 and edges[-1] == np.inf

    plateau, alpha, m_half = fit_fleming(mag, recovered)
    assert plateau == pytest.approx(0.97, abs=0.01) and m_half == pytest.approx(24.0, abs=0.03)
    true_m90 = completeness_limit(0.97, 2.0, 24.0, 0.9)
    assert fleming(np.array([true_m90]), 0.97, 2.0, 24.0)[0] == pytest.approx(0.9)
    assert completeness_limit(plateau, alpha, m_half, 0.5) == pytest.approx(
        completeness_limit(0.97, 2.0, 24.0, 0.5), abs=0.03)
    assert completeness_limit(plateau, alpha, m_half, 0.9) == pytest.approx(true_m90, abs=0.03)
    # a plateau below the level: no such limit; too few stars or none lost: no fit
    assert np.isnan(completeness_limit(0.85, 2.0, 24.0, 0.9))
    assert np.isnan(fit_fleming(mag[:10], recovered[:10])[0])
    assert np.isnan(fit_fleming(mag, np.ones(n, bool))[0])


def test_a_pass_measured_around_its_artificial_stars_equals_the_whole_frame_measured_again(tmp_path):
    """Issue 12: the artificial stars (5 per cent of the stars, following the bright stars into
    a crowded core) measured only around themselves, the catalogue's other stars held as
    measured, are recovered as when the whole frame is measured again with the same PSF and
    correction: the same ones (95 per cent), with the same magnitudes within their errors (a
    tenth of an error typically; blended pairs trade light between them, up to about 2
    errors), from a third of the fits."""
    from dataclasses import replace

    from astropy.table import Table

    from clusterphot.catalog import write_frame_psf
    from clusterphot.completeness import measure_artificial_pass
    from clusterphot.frames import bad_pixel_mask
    from clusterphot.photometry import PhotometryParameters
    from clusterphot.psfio import read_psf
    from clusterphot.psfphot import PSFParameters, measure_frame_psf
    from clusterphot.simulate import simulate_crowded_frame

    hdul, truth = simulate_crowded_frame(shape=(400, 400), n_stars=2500, seed=8, filter_name="F606W", fwhm=2.2)
    frame = hdul[1].data.astype(np.float32)
    full_well = float(truth.meta["full_well"])
    params, psf_params = PhotometryParameters(fwhm=2.2), PSFParameters()
    data = frame.copy()
    real = measure_frame_psf(data, bad_pixel_mask(data), params, psf_params, 1.0, full_well)
    # the PSF file the workflow writes beside the catalogue, and read back as a pass job will
    write_frame_psf(tmp_path / "psf.fits", real, Table({"id": np.arange(len(real.x))}), psf_params, {})
    psf_file = read_psf(tmp_path / "psf.fits")
    psf, correction, level = psf_file.psf, psf_file.correction, psf_file.footprint_level
    catalogue = {"x": real.x, "y": real.y, "flux": real.flux}

    rng = np.random.default_rng(12)
    n = len(real.x) // 20
    x, y = positions_like(real.x[real.flux > np.quantile(real.flux, 0.5)], real.y[real.flux > np.quantile(real.flux, 0.5)],
                          n, frame.shape, rng, bad_pixel_mask(frame))
    mag = rng.uniform(-2.5 * np.log10(np.quantile(real.flux, 0.9)), -2.5 * np.log10(np.quantile(real.flux, 0.02)), n)
    flux = 10 ** (-0.4 * mag)

    patches = measure_artificial_pass(frame, bad_pixel_mask(frame), catalogue, psf_file, x, y, flux, params,
                                      psf_params, 1.0, full_well, np.random.default_rng(99), 12.0)
    # the whole frame again: the same artificial stars and noise, the same PSF and correction
    whole_data = frame.copy()
    add_artificial_stars(whole_data, x, y, flux / correction, psf, 1.0, np.random.default_rng(99), level)
    whole = measure_frame_psf(whole_data, bad_pixel_mask(frame), params, replace(psf_params, psf_rebuilds=0), 1.0,
                              full_well, psf=psf, catalogue_correction=correction)

    def recovered(m):
        out_mag = -2.5 * np.log10(np.where(m.flux > 0, m.flux, np.nan))
        real_mag = -2.5 * np.log10(np.where(real.flux > 0, real.flux, np.nan))
        return recovered_stars(x, y, mag, m.x, m.y, out_mag, real.x, real.y, real_mag, 1.0, 0.75), out_mag

    by_patches, mag_patches = recovered(patches)
    by_whole, mag_whole = recovered(whole)
    assert (by_whole >= 0).mean() > 0.4  # many are found (crowded: the artificial stars follow the core)
    both = (by_patches >= 0) & (by_whole >= 0)
    assert ((by_patches >= 0) == (by_whole >= 0)).mean() >= 0.95
    err = 1.0857 * whole.flux_err[by_whole[both]] / whole.flux[by_whole[both]]
    difference = mag_patches[by_patches[both]] - mag_whole[by_whole[both]]
    assert np.median(np.abs(difference) / err) < 0.15 and np.quantile(np.abs(difference) / err, 0.9) < 0.75
    assert np.max(np.abs(difference) / err) < 2.5
    # and far fewer stars were fitted
    assert len(patches.x) < 0.4 * len(whole.x)
