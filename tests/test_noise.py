"""A product's own noise: the ERR of a calibrated exposure, the WHT of a drizzled product, and the
correlation drizzling puts between pixels, in the flux errors of both photometry paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from clusterphot.catalog import catalog_for_frame
from clusterphot.config import FrameSettings
from clusterphot.frames import Frame, read_frame
from clusterphot.noise import FrameNoise, drizzle_kernel, drizzle_ratio, frame_noise
from clusterphot.photometry import (PhotometryParameters, aperture_sums, flux_variance, frame_sky_statistics,
                                   measure_frame)
from clusterphot.psfphot import PSFParameters

from .synthetic import grid_of_stars, moffat_field

FWHM = 2.5


def write_product(path, sci, err=None, dq=None, wht=None, primary=None):
    """An HST-like product: empty primary, SCI (electrons) and the companions given, EXTVER 1."""
    header = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "EXPTIME": 100.0,
                          **(primary or {})})
    hdus = [fits.PrimaryHDU(header=header), fits.ImageHDU(sci, name="SCI", ver=1)]
    hdus[1].header.update({"BUNIT": "ELECTRONS", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9})
    for name, values in (("ERR", err), ("DQ", dq), ("WHT", wht)):
        if values is not None:
            hdus.append(fits.ImageHDU(values, name=name, ver=1))
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture(scope="module")
def two_amplifiers():
    """A chip whose right half is read with 4x the noise (another amplifier: 12 e- against 3, on
    a sky of 20 e-), 512 faint stars on a grid, and its ERR as calacs writes it (photons of the
    pixel's value plus that half's read noise)."""
    rng = np.random.default_rng(12)
    shape = (384, 768)
    x, y = grid_of_stars(shape, spacing=24, margin=12, rng=rng)
    flux = 10 ** rng.uniform(2.6, 3.8, x.size)
    read_noise = np.where(np.arange(shape[1]) < shape[1] // 2, 3.0, 12.0)[None, :] * np.ones(shape)
    expected = moffat_field(shape, x, y, flux, FWHM, sky=20.0)
    sci = (rng.poisson(expected) + rng.normal(0.0, read_noise)).astype(np.float32)
    err = np.sqrt(np.maximum(sci, 0) + read_noise**2).astype(np.float32)
    dq = np.zeros(shape, np.int16)
    return {"sci": sci, "err": err, "dq": dq, "x": x, "y": y, "flux": flux}


def matched(table, truth):
    """(index into the truth, is it a clean match) of each catalogue star: within 1 px, no flag."""
    d = np.hypot(np.asarray(table["x"])[:, None] - truth["x"], np.asarray(table["y"])[:, None] - truth["y"])
    return d.argmin(axis=1), (d.min(axis=1) < 1.0) & (np.asarray(table["flags"]) == 0)


def pulls(table, truth):
    """(measured - k true) / error of the faint stars (true flux below 30 of its errors: their
    noise is the background's), by half of the chip; k, the median of measured over true, takes
    out what is not noise (these stars are too faint for an aperture correction)."""
    nearest, use = matched(table, truth)
    flux, error, true = np.asarray(table["flux"]), np.asarray(table["flux_err"]), truth["flux"][nearest]
    use &= true < 30 * error
    pull = (flux - np.median(flux[use] / true[use]) * true) / error
    right = np.asarray(table["x"]) >= 384
    return pull[use & ~right], pull[use & right]


def robust_std(values):
    return 1.4826 * np.median(np.abs(values - np.median(values)))


@pytest.mark.parametrize("method", ["psf", "aperture"])
def test_an_flcs_err_gives_each_amplifiers_noise_and_the_same_stars_as_without_it(tmp_path, two_amplifiers, method):
    truth = two_amplifiers
    flc = write_product(tmp_path / "j8xi01abq_flc.fits", truth["sci"], truth["err"], truth["dq"])
    plain = write_product(tmp_path / "plain.fits", truth["sci"])
    params = PhotometryParameters(fwhm=FWHM, threshold=5.0)
    psf = PSFParameters(min_psf_stars=15) if method == "psf" else None
    kwargs = {"system": "instrumental", "method": method, "psf_params": psf}
    with_err = catalog_for_frame(flc, FrameSettings("F606W", cosmic_rays="none"), params, **kwargs)
    without = catalog_for_frame(plain, FrameSettings("F606W", cosmic_rays="none"), params, **kwargs)
    assert with_err.meta["noise"]["source"].startswith("ERR")
    assert without.meta["noise"]["source"] == "the sky's scatter"
    # the same stars at the same fluxes: the noise moves no aperture flux, and the fit's weights little
    d = np.hypot(np.asarray(with_err["x"])[:, None] - np.asarray(without["x"]),
                 np.asarray(with_err["y"])[:, None] - np.asarray(without["y"]))
    common = d.min(axis=1) < 0.5
    # every true star found without the ERR is found with it (a residual pass may differ by one or
    # two: the noisy half's residual, scaled to one noise for the chip, had spurious peaks), and
    # what is new is stars: the quiet half's residual, scaled to its own noise, shows fainter ones
    both = d.min(axis=0) < 0.5
    _, true_without = matched(without, truth)
    assert (true_without & ~both).sum() <= 2
    nearest, _ = matched(with_err, truth)
    assert np.all(np.hypot(np.asarray(with_err["x"]) - truth["x"][nearest],
                           np.asarray(with_err["y"]) - truth["y"][nearest])[~common] < 1.0)
    pair = d[common].argmin(axis=1)
    ratio = np.asarray(with_err["flux"])[common] / np.asarray(without["flux"])[pair]
    assert np.median(np.abs(ratio - 1)) < (1e-6 if method == "aperture" else 0.003)
    # the errors follow each half's noise
    left, right = pulls(with_err, truth)
    assert len(left) >= 25 and len(right) >= 25
    for half in (left, right):
        assert 0.65 < robust_std(half) < 1.4, (method, robust_std(left), robust_std(right))
    quiet = np.asarray(with_err["x"])[common] < 384
    error_ratio = np.asarray(with_err["flux_err"])[common] / np.asarray(without["flux_err"])[pair]
    if method == "psf":  # one sky noise for the chip (the two halves' mixed): the quiet half's errors too large
        assert np.median(error_ratio[quiet]) < 0.85
    else:  # each star's own sky annulus knew its half's noise already, but from its few hundred pixels
        assert np.all(np.abs(np.median(error_ratio[quiet]) - 1) < 0.1)
        assert np.all(np.abs(np.median(error_ratio[~quiet]) - 1) < 0.1)
        # against the noise the chip was made with (its half's read noise and the sky, over the
        # aperture, and the star's photons): the ERR's within 3 per cent, star by star within 1.5
        spreads = {}
        for name, table in (("ERR", with_err), ("annulus", without)):
            nearest, use = matched(table, truth)
            x = np.asarray(table["x"])
            read_noise = np.where(x < 384, 3.0, 12.0)
            factor = table.meta["aperture_correction"]["factor"]
            net = np.clip(np.asarray(table["flux"]) / factor, 0, None)
            expected = factor * np.sqrt(net + np.pi * params.aperture_radius**2 * (20.0 + read_noise**2))
            ratio = np.asarray(table["flux_err"]) / expected
            for half in (use & (x < 384), use & (x >= 384)):
                if name == "ERR":
                    assert abs(np.median(ratio[half]) - 1) < 0.03
                spreads.setdefault(name, []).append(robust_std(ratio[half]))
        assert max(spreads["ERR"]) < 0.015 < max(spreads["annulus"]), spreads


def test_masked_pixels_never_enter_a_flux_nor_its_error(tmp_path, two_amplifiers):
    """Hot pixels flagged in the DQ (16) beside 20 stars, with a huge value and ERR: the stars'
    fluxes and errors are those of the same product whose flagged pixels were left as they were."""
    truth = two_amplifiers
    brightest = np.argsort(truth["flux"])[-20:]
    hot = (np.rint(truth["y"][brightest]).astype(int), np.rint(truth["x"][brightest]).astype(int) + 1)
    dq = truth["dq"].copy()
    dq[hot] = 16
    sci, err = truth["sci"].copy(), truth["err"].copy()
    sci[hot] += 5e4
    err[hot] = 1e3
    hit = write_product(tmp_path / "hit_flc.fits", sci, err, dq)
    quiet = write_product(tmp_path / "quiet_flc.fits", truth["sci"], truth["err"], dq)
    settings, params = FrameSettings("F606W", cosmic_rays="none"), PhotometryParameters(fwhm=FWHM)
    with_hits = catalog_for_frame(hit, settings, params, system="instrumental")
    without = catalog_for_frame(quiet, settings, params, system="instrumental")
    d = np.hypot(np.asarray(with_hits["x"])[:, None] - truth["x"][brightest],
                 np.asarray(with_hits["y"])[:, None] - truth["y"][brightest])
    near_hot = d.min(axis=1) < 1.0
    assert near_hot.sum() >= 18
    assert np.all(np.asarray(with_hits["flags"])[near_hot] & 2)  # a masked pixel in the aperture
    for column in ("x", "y", "flux", "flux_err"):
        np.testing.assert_allclose(np.asarray(with_hits[column]), np.asarray(without[column]), rtol=1e-6)


def test_a_drizzled_products_wht_scales_the_noise_where_fewer_exposures_fell(tmp_path):
    """A mosaic whose right half had a quarter of the exposure time: its WHT (exposure time, as
    drizzle's EXP weights) is a quarter there and its noise twice, and the background variance
    the photometry uses four times."""
    rng = np.random.default_rng(5)
    shape = (240, 480)
    x, y = grid_of_stars(shape, spacing=24, margin=12, rng=rng)
    flux = 10 ** rng.uniform(3.0, 4.6, x.size)
    wht = np.where(np.arange(shape[1]) < shape[1] // 2, 4.0, 1.0)[None, :] * np.ones(shape, np.float32)
    expected = moffat_field(shape, x, y, flux, FWHM, sky=0.0)
    sigma = 6.0 / np.sqrt(wht)  # the sky's noise (a drizzled frame is sky-subtracted)
    sci = (expected + rng.normal(0.0, 1.0, shape) * np.sqrt(sigma**2 + np.maximum(expected, 0))).astype(np.float32)
    drc = write_product(tmp_path / "j8xi01010_drc.fits", sci, wht=wht.astype(np.float32),
                        primary={"D001PIXF": 1.0, "D001SCAL": 0.05, "D001ISCL": 0.05})
    frame = read_frame(drc, with_noise=True)
    noise = frame_noise(frame, frame.bad_pixels(), 1.0)
    assert frame.weight is None  # handed over, not kept twice
    # relative: four times the variance where the weight is a quarter
    ratio = np.median(noise.background_variance[:, 300:]) / np.median(noise.background_variance[:, :200])
    assert ratio == pytest.approx(4.0, rel=1e-3)
    assert noise.correlation == pytest.approx(1.5, rel=2e-3)
    assert "WHT" in noise.source and "pixfrac/scale 1" in noise.source


@pytest.mark.parametrize("cards, r", [
    ({}, None),
    ({"D001PIXF": 1.0, "D001SCAL": 0.05, "D001ISCL": 0.05}, 1.0),
    ({"D001PIXF": 0.8, "D001SCAL": 0.05, "D001ISCL": 0.05}, 0.8),
    ({"D001PIXF": 1.0, "D001SCAL": 0.025, "D001ISCL": 0.05}, 2.0),  # half-size output pixels
    ({"D001PIXF": "junk", "D001SCAL": 0.05, "D001ISCL": 0.05}, None),
    ({"D001PIXF": 1.0, "D001SCAL": 0.05}, None),  # no input scale: the ratio is unknown
    ({"D001PIXF": 1.0, "D001SCAL": 0.05, "D001ISCL": 0.05, "D001KERN": "gaussian"}, None),  # not the square
])
def test_the_drizzle_keywords_give_pixfrac_over_scale(cards, r):
    ratio, why = drizzle_ratio(fits.Header(cards))
    assert ratio == (None if r is None else pytest.approx(r))
    assert why


@pytest.mark.parametrize("r", [0.5, 0.8, 1.0, 1.5, 2.0])
def test_the_drizzle_kernel_sums_to_fruchter_and_hooks_r_squared(r):
    """Fruchter & Hook (2002): R = r / (1 - 1/(3r)) for r >= 1, 1 / (1 - r/3) for r <= 1."""
    expected = r / (1 - 1 / (3 * r)) if r >= 1 else 1 / (1 - r / 3)
    kernel = drizzle_kernel(r)
    assert kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] == 1.0
    assert np.sqrt(kernel.sum()) == pytest.approx(expected, rel=2e-3)
    noise = FrameNoise(None, kernel)
    assert noise.correlation == pytest.approx(expected, rel=2e-3)
    assert 1.0 < noise.variance_factor(2.0) < noise.variance_factor(10.0) < expected**2  # edges hold less


def drizzled_noise(shape, exposures, rng):
    """Pure sky noise (sigma 1 per input pixel) of ``exposures`` frames, each shifted by a random
    fraction of a pixel and drizzled (pixfrac 1, same scale: each input pixel's value shared
    among the four output pixels it overlaps by their overlap areas), averaged."""
    total = np.zeros(shape)
    side = int(round(math.sqrt(exposures)))
    for k in range(exposures):  # a dither pattern covering the pixel evenly, as a survey's does
        u, v = (k % side + rng.uniform()) / side, (k // side + rng.uniform()) / side
        noise = rng.normal(0.0, 1.0, (shape[0] + 1, shape[1] + 1))
        weights = np.array([[(1 - v) * (1 - u), (1 - v) * u], [v * (1 - u), v * u]])
        total += ndimage.correlate(noise, weights, mode="constant")[1:, 1:]
    return total / exposures


@pytest.mark.parametrize("radius", [2.0, 3.0, 5.0])
def test_aperture_errors_on_a_drizzled_frame_need_its_correlation(radius):
    """The scatter of aperture sums on drizzled sky against flux_variance's error from the pixels'
    scatter: too small without the drizzle's correlation, right with it."""
    rng = np.random.default_rng(8)
    sky = drizzled_noise((600, 600), 16, rng).astype(np.float32)
    bad = np.zeros(sky.shape, bool)
    per_pixel = frame_sky_statistics(sky, bad).std
    centres = np.arange(10, 590, 2 * radius + 2)
    x, y = (c.ravel() for c in np.meshgrid(centres, centres))
    sums = aperture_sums(sky, bad, x, y, radius)
    area, n_sky = math.pi * radius**2, np.full(x.size, 1e12)  # a known sky: the aperture's own noise
    sky_std = np.full(x.size, per_pixel)
    naive = np.sqrt(flux_variance(np.zeros(x.size), area, sky_std, n_sky, 1.0))
    factor = FrameNoise(None, drizzle_kernel(1.0)).variance_factor(radius)
    correlated = np.sqrt(flux_variance(np.zeros(x.size), area, sky_std, n_sky, 1.0, aperture_factor=factor))
    assert np.std(sums / naive) > 1.2
    assert 0.93 < np.std(sums / correlated) < 1.07, (np.std(sums / naive), np.std(sums / correlated))


def test_aperture_errors_with_err_count_a_crowded_cores_unresolved_light():
    """Faint stars on a halo of unresolved light (up to 200 e- over a sky of 20): ERR's
    background is the median sky's, and the halo's own photons come from each star's local sky
    (without them the stars on the halo had pulls of 1.3 and 1.5)."""
    rng = np.random.default_rng(3)
    shape = (512, 768)
    x, y = grid_of_stars(shape, spacing=16, margin=12, rng=rng)
    flux = 10 ** rng.uniform(2.6, 3.4, x.size)
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    halo = 200.0 * np.exp(-0.5 * ((columns - 580) ** 2 + (rows - 256) ** 2) / 70.0**2)
    sci = (rng.poisson(moffat_field(shape, x, y, flux, FWHM, sky=20.0) + halo)
           + rng.normal(0.0, 3.0, shape)).astype(np.float32)
    err = np.sqrt(np.maximum(sci, 0) + 3.0**2).astype(np.float32)
    frame = Frame(path=None, data=sci, header=fits.Header(), wcs=None, hdu_index=0, error=err)
    bad = np.zeros(shape, bool)
    noise = frame_noise(frame, bad, 1.0)
    stars = measure_frame(frame.data, bad, PhotometryParameters(fwhm=FWHM, threshold=5.0), 1.0, None, noise=noise)
    d = np.hypot(stars.x[:, None] - x, stars.y[:, None] - y)
    nearest, clean = d.argmin(axis=1), (d.min(axis=1) < 1.0) & (stars.flags == 0)
    pull = (stars.flux - np.median(stars.flux[clean] / flux[nearest][clean]) * flux[nearest]) / stars.flux_err
    on_halo = halo[np.rint(stars.y).astype(int), np.rint(stars.x).astype(int)]
    for low, high in ((0, 5), (50, 250)):
        chosen = clean & (on_halo >= low) & (on_halo < high)
        assert chosen.sum() > 40
        assert 0.8 < robust_std(pull[chosen]) < 1.2, (low, high, robust_std(pull[chosen]))
