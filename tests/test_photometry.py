"""Per-frame photometry on frames with injected stars of known flux."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.utils.exceptions import NoDetectionsWarning

from clusterphot.catalog import catalog_for_frame, header_filters
from clusterphot.config import FrameSettings
from clusterphot.errors import FrameError
from clusterphot.frames import bad_pixel_mask
from clusterphot.photometry import (
    FLAG_EDGE,
    FLAG_NONPOSITIVE_FLUX,
    FLAG_SATURATED,
    POGSON,
    PhotometryParameters,
    detect_stars,
    frame_sky_statistics,
    magnitudes,
    measure_frame,
    plateau_labels,
    region_mask,
    region_overlaps,
)
from clusterphot.zeropoints import ab_zeropoint

from .helpers import warnings_from
from .synthetic import gaussian_stars, grid_of_stars, write_frame

SIGMA = 0.9  # PSF sigma, pixels (FWHM 2.1)
PARAMS = PhotometryParameters(fwhm=2.1, threshold=5.0, aperture_radius=3.0, annulus_radii=(10.0, 15.0),
                              aperture_correction_radius=9.0, aperture_correction_min_snr=50.0)


def match(x_true, y_true, x, y, radius=1.0):
    """Index of the nearest detection for each true star, -1 where none within radius."""
    d2 = (x_true[:, None] - x[None, :]) ** 2 + (y_true[:, None] - y[None, :]) ** 2
    nearest = np.argmin(d2, axis=1)
    return np.where(d2[np.arange(len(x_true)), nearest] < radius**2, nearest, -1)


@pytest.fixture(scope="module")
def injected():
    rng = np.random.default_rng(42)
    shape = (400, 400)
    x, y = grid_of_stars(shape, spacing=32, margin=24, rng=rng)
    flux = 10 ** rng.uniform(3.0, 5.0, x.size)  # electrons
    image = gaussian_stars(shape, x, y, flux, SIGMA, sky=50.0, read_noise=4.0, rng=rng)
    return image, x, y, flux


def test_injected_stars_recovered_with_their_true_flux_within_errors(injected):
    image, x, y, flux = injected
    stars = measure_frame(image.copy(), bad_pixel_mask(image), PARAMS, electrons_per_unit=1.0, saturation=None)
    index = match(x, y, stars.x, stars.y)
    assert (index >= 0).all(), "every injected star is found"
    assert len(stars) == len(x), "and nothing else"
    pull = (stars.flux[index] - flux) / stars.flux_err[index]
    assert abs(np.median(pull)) < 0.3
    assert 0.7 < np.std(pull) < 1.4, "errors describe the scatter"
    assert np.mean(np.abs(pull) < 3) > 0.95
    # positions to a small fraction of a pixel
    assert np.median(np.hypot(stars.x[index] - x, stars.y[index] - y)) < 0.1


def test_aperture_correction_matches_a_noise_free_star(injected):
    """The correction measured on noisy stars with local skies equals the true flux ratio."""
    image, *_ = injected
    stars = measure_frame(image.copy(), bad_pixel_mask(image), PARAMS, 1.0, None)
    correction = stars.aperture_correction
    # ratio of the two apertures on noise-free, sky-free stars at a few sub-pixel phases
    phases = [(50.0, 50.0), (80.3, 50.4), (50.5, 80.5), (80.2, 80.7)]
    clean = gaussian_stars((130, 130), [p[0] for p in phases], [p[1] for p in phases], [1.0] * 4, SIGMA)
    positions = np.array(phases)
    small = aperture_photometry(clean, CircularAperture(positions, PARAMS.aperture_radius))["aperture_sum"]
    big = aperture_photometry(clean, CircularAperture(positions, PARAMS.aperture_correction_radius))["aperture_sum"]
    expected = float(np.mean(big / small))
    assert expected > 1.005, "the small aperture does miss light"
    assert correction.measured
    assert correction.n_stars >= PARAMS.aperture_correction_min_stars
    assert correction.factor == pytest.approx(expected, rel=0.003)
    assert correction.mag == pytest.approx(-2.5 * math.log10(correction.factor))


def test_pogson_magnitudes_and_error_propagation():
    flux = np.array([1000.0, 250.0, 0.0, -30.0])
    err = np.array([10.0, 5.0, 3.0, 3.0])
    mag, mag_err = magnitudes(flux, err, zeropoint=25.0, exptime=10.0, is_rate=False)
    assert mag[0] == pytest.approx(25.0 - 2.5 * math.log10(100.0))  # 20.0, not 2.4 log10
    assert mag[1] - mag[0] == pytest.approx(2.5 * math.log10(4.0))
    assert mag_err[0] == pytest.approx(POGSON * 0.01)
    assert np.isnan(mag[2]) and np.isnan(mag[3]), "no magnitude for non-positive flux (never abs())"
    assert np.isnan(mag_err[3])
    rate_mag, _ = magnitudes(flux, err, zeropoint=25.0, exptime=10.0, is_rate=True)
    assert rate_mag[0] == pytest.approx(25.0 - 2.5 * 3.0)


def test_negative_net_flux_is_flagged_and_has_no_magnitude(tmp_path):
    """A faint star whose sky annulus sits on brighter light (a ring) measures below zero."""
    rng = np.random.default_rng(3)
    shape = (120, 120)
    image = gaussian_stars(shape, [60.0], [60.0], [900.0], SIGMA, sky=40.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    radius = np.hypot(xx - 60.0, yy - 60.0)
    image[(radius >= 9) & (radius <= 16)] += 50.0  # brighter light right where the annulus is
    image = (rng.poisson(image) + rng.normal(0, 4.0, shape)).astype(np.float32)
    path = write_frame(tmp_path / "ring.fits", image)
    table = catalog_for_frame(path, FrameSettings("F606W"), PARAMS)
    star = np.argmin(np.hypot(table["x"].value - 60.0, table["y"].value - 60.0))
    assert np.hypot(table["x"].value[star] - 60.0, table["y"].value[star] - 60.0) < 1.0
    assert table["flux"][star] < 0
    assert np.isnan(table["mag"][star]) and np.isnan(table["mag_err"][star])
    assert table["flags"][star] & FLAG_NONPOSITIVE_FLUX
    positive = table["flux"] > 0
    assert np.all(np.isfinite(table["mag"][positive]))
    assert not np.any(table["flags"][positive] & FLAG_NONPOSITIVE_FLUX)


def test_zero_border_and_nans_are_masked_and_edge_stars_flagged():
    rng = np.random.default_rng(5)
    shape = (300, 300)
    x = np.array([150.0, 42.0, 150.0])
    y = np.array([150.0, 150.0, 100.0])
    image = gaussian_stars(shape, x, y, [3e4, 3e4, 3e4], SIGMA, sky=40.0, read_noise=4.0, rng=rng)
    image[:, :40] = 0.0  # no-coverage border, as drizzled stacks have
    image[104, 150:152] = np.nan  # a NaN hole in the third star's aperture
    image[200, 200] = 0.0  # an isolated exact zero is a valid pixel
    bad = bad_pixel_mask(image)
    assert bad[:, :40].all() and bad[104, 151]
    assert not bad[200, 200]
    assert not bad[150, 150]
    stars = measure_frame(image.copy(), bad, PARAMS, 1.0, None)
    index = match(x, y, stars.x, stars.y)
    assert (index >= 0).all()
    assert not stars.flags[index[0]] & FLAG_EDGE
    assert stars.flags[index[1]] & FLAG_EDGE
    assert stars.flags[index[2]] & FLAG_EDGE
    assert np.isfinite(stars.flux).all(), "NaN pixels never reach a flux"


def test_the_bad_pixel_mask_is_grown_as_scipys_maximum_filter_grows_it():
    """bad_pixel_mask grows the mask with OpenCV's dilation: the same mask as ndimage's maximum
    filter over (2 grow + 1)^2 pixels, at the frame's edges and corners too."""
    rng = np.random.default_rng(11)
    image = rng.normal(40.0, 4.0, (157, 203)).astype(np.float32)
    image[rng.uniform(size=image.shape) < 0.003] = np.nan
    image[0, 0] = image[-1, 5] = image[80, -1] = np.nan  # on the edges and in a corner
    image[:, :9] = 0.0
    for grow in (1, 2, 3):
        ungrown = bad_pixel_mask(image, grow=0)
        expected = ndimage.maximum_filter(ungrown, size=2 * grow + 1)
        np.testing.assert_array_equal(bad_pixel_mask(image, grow=grow), expected)
        assert expected.sum() > ungrown.sum()


def test_saturated_star_is_flagged():
    rng = np.random.default_rng(9)
    shape = (200, 200)
    image = gaussian_stars(shape, [60.0, 140.0], [100.0, 100.0], [2e6, 2e4], SIGMA, sky=40.0,
                           read_noise=4.0, rng=rng)
    full_well = 80000.0
    np.minimum(image, full_well, out=image)
    stars = measure_frame(image.copy(), bad_pixel_mask(image), PARAMS, 1.0, saturation=full_well)
    index = match(np.array([60.0, 140.0]), np.array([100.0, 100.0]), stars.x, stars.y)
    assert stars.flags[index[0]] & FLAG_SATURATED
    assert not stars.flags[index[1]] & FLAG_SATURATED


def test_region_limits_the_measured_area(injected):
    image, x, y, _ = injected
    params = PhotometryParameters(**{**PARAMS.__dict__, "region": (0, 200, 0, 400)})
    stars = measure_frame(image.copy(), bad_pixel_mask(image), params, 1.0, None)
    assert len(stars) > 0
    assert stars.x.max() < 200
    assert len(stars) == pytest.approx(np.sum(x < 200 - 4), abs=6)


def test_catalogue_is_calibrated_with_units_and_provenance(tmp_path, injected):
    image, x, y, flux = injected
    exptime = 200.0
    path = write_frame(tmp_path / "f606w.fits", image, exptime=exptime)
    table = catalog_for_frame(path, FrameSettings("F606W"), PARAMS, system="AB")
    assert table.colnames == ["id", "x", "y", "ra", "dec", "flux", "flux_err", "sky", "mag", "mag_err",
                              "sharpness", "roundness", "flags"]
    assert str(table["flux"].unit) == "electron"
    assert str(table["x"].unit) == "pix"
    zeropoint = ab_zeropoint(7.8774e-20, 5921.9)
    assert table.meta["zeropoint"]["value"] == pytest.approx(zeropoint, abs=1e-3)
    assert table.meta["zeropoint"]["source"].startswith("PHOTFLAM")
    assert table.meta["exptime"] == exptime
    assert table.meta["aperture_correction"]["measured"]
    index = match(x, y, np.asarray(table["x"]), np.asarray(table["y"]))
    true_mag = zeropoint - 2.5 * np.log10(flux / exptime)
    bright = flux > 2e4
    offset = np.asarray(table["mag"])[index][bright] - true_mag[bright]
    assert abs(np.median(offset)) < 0.01
    assert np.std(offset) < 0.02


@pytest.mark.parametrize("bunit, scale, is_rate", [("ELECTRONS", 1.0, False), ("COUNTS", 1 / 2.0, False),
                                                   ("ELECTRONS/S", 1 / 200.0, True)])
def test_magnitudes_do_not_depend_on_the_frame_units(tmp_path, injected, bunit, scale, is_rate):
    """The same ACS exposure in electrons, DN (gain 2) or electrons/s gives the same magnitudes
    (ACS's PHOTFLAM is per electron/s whatever the unit: the zero point moves for DN)."""
    image, *_ = injected
    path = write_frame(tmp_path / "f.fits", image * np.float32(scale), exptime=200.0, bunit=bunit,
                       photflam=7.8774e-20, extra_sci={"CCDGAIN": 2.0})
    table = catalog_for_frame(path, FrameSettings("F606W"), PARAMS)
    reference = catalog_for_frame(write_frame(tmp_path / "r.fits", image, exptime=200.0),
                                  FrameSettings("F606W"), PARAMS)
    assert len(table) == len(reference)
    np.testing.assert_allclose(table["mag"], reference["mag"], atol=2e-4)
    np.testing.assert_allclose(table["mag_err"], reference["mag_err"], rtol=2e-3)


@pytest.mark.parametrize("min_separation", [0.0, 3.0])
def test_searching_in_strips_finds_what_one_whole_frame_search_finds(min_separation):
    rng = np.random.default_rng(21)
    shape = (600, 500)
    n = 3000  # crowded: stars straddle every strip boundary
    x, y = rng.uniform(0, shape[1], n), rng.uniform(0, shape[0], n)
    frame = gaussian_stars(shape, x, y, 10 ** rng.uniform(2.5, 4.5, n), sigma=1.2, sky=20.0, read_noise=3.0,
                           rng=rng)
    frame -= np.float32(20.0)
    params = PhotometryParameters(fwhm=2.0, min_separation=min_separation)
    sky = frame_sky_statistics(frame, np.zeros(shape, bool))
    whole = detect_stars(frame, sky, params, strip_pixels=10**12)
    strips = detect_stars(frame, sky, params, strip_pixels=40 * shape[1])  # 40-row strips: 15 of them
    assert len(whole) > 1000 and len(strips) == len(whole)
    for name in ("x_centroid", "y_centroid", "sharpness", "roundness1", "peak", "flux"):
        np.testing.assert_allclose(np.asarray(strips[name]), np.asarray(whole[name]), rtol=0, atol=1e-9,
                                   err_msg=name)


def test_daofind_with_opencvs_maxima_is_photutils_daostarfinder():
    """photometry.dao_find (OpenCV's dilation for the local maxima) against DAOStarFinder.find_stars
    on a crowded frame with saturated-like plateaus, masked rows and a zero-filled border: the
    same stars in the same order, every measure equal."""
    from photutils.detection import DAOStarFinder

    from clusterphot.photometry import dao_find

    rng = np.random.default_rng(8)
    shape = (300, 260)
    n = 2500
    x, y = rng.uniform(-3, shape[1] + 3, n), rng.uniform(-3, shape[0] + 3, n)
    frame = gaussian_stars(shape, x, y, 10 ** rng.uniform(2.0, 5.5, n), sigma=1.0, sky=20.0, read_noise=3.0,
                           rng=rng) - np.float32(20.0)
    frame = np.minimum(frame, np.float32(3000.0))  # flat tops: ties for the maximum
    frame[:, :7] = 0.0  # a zero-filled border
    mask = np.zeros(shape, bool)
    mask[100:140] = True
    finder = DAOStarFinder(threshold=4 * 3.0, fwhm=2.2, sharpness_range=(0.2, 1.0), roundness_range=(-1.0, 1.0),
                           min_separation=0.0, exclude_border=False)
    ours, theirs = dao_find(finder, frame, mask), finder.find_stars(frame, mask=mask)
    assert len(theirs) > 800 and ours.colnames == theirs.colnames and len(ours) == len(theirs)
    for name in theirs.colnames:
        np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(theirs[name]), err_msg=name)
    with pytest.warns(NoDetectionsWarning):
        assert dao_find(finder, np.zeros(shape, np.float32), np.zeros(shape, bool)) is None


def test_plateau_labels_group_pixels_as_ndimage_label_does():
    rng = np.random.default_rng(5)
    mask = rng.random((60, 80)) > 0.8
    rows, cols = np.nonzero(mask)
    expected, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    labels = plateau_labels(rows, cols)
    # the same partition of the pixels into groups, whatever the numbering
    pairs = set(zip(labels.tolist(), expected[rows, cols].tolist()))
    assert len(pairs) == len(set(labels.tolist())) == len(set(expected[rows, cols].tolist()))


# --- frames that can be measured but look wrong, and regions that cannot be --------------------------


@pytest.fixture(scope="module")
def small_field():
    """A 100 x 100 frame (electrons over 100 s) of isolated stars, AB magnitudes about 22."""
    rng = np.random.default_rng(8)
    shape = (100, 100)
    x, y = grid_of_stars(shape, spacing=25, margin=18, rng=rng)
    return gaussian_stars(shape, x, y, rng.uniform(2e4, 1e5, x.size), SIGMA, sky=30.0, read_noise=4.0, rng=rng)


@pytest.mark.parametrize(("header", "named"), [
    ({"FILTER": "F814W"}, {"FILTER": "F814W"}),  # WFC3, ground
    ({"FILTER1": "F606W", "FILTER2": "CLEAR2L"}, {"FILTER1": "F606W"}),  # ACS: the other wheel empty
    ({"FILTER1": "CLEAR1L", "FILTER2": "F814W"}, {"FILTER2": "F814W"}),
    ({"FILTNAM1": "F555W", "FILTNAM2": ""}, {"FILTNAM1": "F555W"}),  # WFPC2: the other wheel blank
    ({"FILTER1": "CLEAR1L", "FILTER2": "CLEAR2L"}, {}),
    ({"INSTRUME": "ACS"}, {}),
])
def test_header_filters_are_read_from_the_keywords_of_each_instrument(header, named):
    assert header_filters(fits.Header(header)) == named


@pytest.mark.parametrize(("configured", "primary", "warned"), [
    ("F814W", {}, True),  # write_frame's header says FILTER1 = F606W
    ("f606w", {}, False),  # the same filter in lower case
    ("F606W", {"FILTER1": "CLEAR1L", "FILTER2": "F814W"}, True),
    ("F814W", {"FILTER1": "CLEAR1L", "FILTER2": "F814W"}, False),
    ("R", {"FILTER1": "CLEAR1L"}, False),  # the header names no filter: nothing to compare
])
def test_a_header_filter_other_than_the_configured_one_is_warned_about(tmp_path, caplog, small_field, configured,
                                                                       primary, warned):
    path = write_frame(tmp_path / "f.fits", small_field, extra_primary=primary)
    with caplog.at_level(logging.WARNING, logger="clusterphot.catalog"):
        table = catalog_for_frame(path, FrameSettings(configured, zeropoint=25.0), PARAMS)
    assert len(table) > 0  # a warning, not an error
    about_filter = [m for m in warnings_from(caplog, "clusterphot.catalog") if "the header says" in m]
    assert bool(about_filter) == warned
    if warned:
        keyword = "FILTER1='F606W'" if not primary else "FILTER2='F814W'"
        assert about_filter[0].startswith(f"{path}: the header says {keyword} but the config calls this frame "
                                          f"{configured}")


def test_an_absurd_exposure_time_warns_that_the_magnitudes_are_off(tmp_path, caplog, small_field):
    path = write_frame(tmp_path / "f.fits", small_field)
    with caplog.at_level(logging.WARNING, logger="clusterphot"):
        good = catalog_for_frame(path, FrameSettings("F606W"), PARAMS)
    assert warnings_from(caplog, "clusterphot.catalog") == [] and warnings_from(caplog, "clusterphot.frames") == []
    assert 15 < np.nanmedian(good["mag"]) < 30
    with caplog.at_level(logging.WARNING, logger="clusterphot"):
        table = catalog_for_frame(path, FrameSettings("F606W", exptime=1e30), PARAMS)
    assert np.nanmedian(table["mag"]) > 40  # written all the same: a warning, not an error
    [exposure] = warnings_from(caplog, "clusterphot.frames")
    assert exposure.startswith(f"{path}: exposure time 1e+30 s (the config's 'exptime')")
    [median] = warnings_from(caplog, "clusterphot.catalog")
    zeropoint = table.meta["zeropoint"]["value"]
    assert median.startswith(f"{path}: the median magnitude is {np.nanmedian(table['mag']):.1f}, outside 0..40")
    assert f"zero point (AB {zeropoint:.4f} from PHOTFLAM" in median and "exposure time (1e+30 s)" in median


def test_a_wrong_zero_point_alone_also_warns_about_the_median_magnitude(tmp_path, caplog, small_field):
    path = write_frame(tmp_path / "f.fits", small_field)
    with caplog.at_level(logging.WARNING, logger="clusterphot.catalog"):
        catalog_for_frame(path, FrameSettings("F606W", zeropoint=-25.0), PARAMS)
    [median] = warnings_from(caplog, "clusterphot.catalog")
    assert "outside 0..40" in median and "zero point (AB -25.0000 from config)" in median


@pytest.mark.parametrize(("region", "overlaps"), [
    ((0, 100, 0, 100), True), ((-50, 1, -50, 1), True), ((99, 500, 99, 500), True),
    ((100, 200, 0, 100), False), ((0, 100, 100, 120), False), ((-20, 0, 0, 100), False),
    (None, True),
])
def test_region_overlaps_the_frame_as_region_mask_counts_pixels(region, overlaps):
    assert region_overlaps((100, 100), region) is overlaps
    if region is not None:
        assert (~region_mask((100, 100), region)).any() == overlaps


def test_a_region_off_the_frame_is_a_frame_error_naming_the_file_and_the_key(tmp_path, small_field):
    path = write_frame(tmp_path / "f.fits", small_field)
    params = PhotometryParameters(**{**PARAMS.__dict__, "region": (500, 600, 10, 90)})
    with pytest.raises(FrameError) as error:
        catalog_for_frame(path, FrameSettings("F606W"), params)
    message = str(error.value)
    assert message.startswith(f"{path}: photometry region [500, 600, 10, 90] (x0, x1, y0, y1) does not overlap "
                              "the frame of 100 x 100 pixels")
    assert "'photometry.region'" in message


def test_a_region_with_no_valid_pixels_is_a_frame_error_naming_the_file(tmp_path, small_field):
    image = small_field.copy()
    image[:, :50] = np.nan  # the left half has no data
    path = write_frame(tmp_path / "f.fits", image)
    params = PhotometryParameters(**{**PARAMS.__dict__, "region": (0, 40, 0, 100)})
    with pytest.raises(FrameError) as error:
        catalog_for_frame(path, FrameSettings("F606W"), params)
    message = str(error.value)
    assert message.startswith(f"{path}: no valid pixels to estimate the sky")
    assert "'photometry.region' is [0, 40, 0, 100]" in message
    right_half = PhotometryParameters(**{**PARAMS.__dict__, "region": (50, 100, 0, 100)})
    assert len(catalog_for_frame(path, FrameSettings("F606W"), right_half)) > 0


def test_frame_sky_statistics_of_a_fully_masked_frame_is_a_frame_error():
    data = np.ones((40, 40), np.float32)
    with pytest.raises(FrameError, match="^no valid pixels to estimate the sky"):
        frame_sky_statistics(data, np.ones(data.shape, bool))


def test_cosmic_rays_flagged_in_an_flcs_dq_are_not_stars_and_enter_no_flux(tmp_path):
    """An flc-like chip with 40 stars and 60 cosmic-ray hits (2x2 pixels, flagged 8192 in DQ as
    CR-SPLIT rejection flags them, 6 of them inside stars' apertures): with the DQ mask no hit
    is a detection, the stars hit are flagged and none is brighter for it, and the others'
    fluxes are those of a frame without the hits; with dq_bits 0 (DQ ignored) the hits are
    found as stars and the stars hit are brighter by the hit's light."""
    from clusterphot.catalog import catalog_for_frame
    from clusterphot.config import FrameSettings

    rng = np.random.default_rng(4)
    x, y = rng.uniform(20, 280, 40), rng.uniform(20, 280, 40)
    clean = gaussian_stars((300, 300), x, y, np.full(40, 3e4), SIGMA, sky=40.0, read_noise=4.0, rng=rng)
    hit = clean.copy()
    cx, cy = rng.integers(5, 295, 54), rng.integers(5, 295, 54)
    cx, cy = np.r_[cx, np.rint(x[:6]).astype(int) + 1], np.r_[cy, np.rint(y[:6]).astype(int)]
    dq = np.zeros((300, 300), np.int16)
    for dy, dx, value in ((0, 0, 4000.0), (0, 1, 2500.0), (1, 0, 1500.0), (1, 1, 800.0)):  # a few pixels each
        hit[cy + dy, cx + dx] += value
        dq[cy + dy, cx + dx] = 8192

    def write(name, image, with_dq=True):
        primary = fits.PrimaryHDU()
        primary.header.update({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "FILTER1": "F606W",
                               "EXPTIME": 100.0})
        sci = fits.ImageHDU(image, name="SCI", ver=1)
        sci.header.update({"BUNIT": "ELECTRONS", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9})
        hdus = [primary, sci] + ([fits.ImageHDU(dq, name="DQ", ver=1)] if with_dq else [])
        fits.HDUList(hdus).writeto(tmp_path / name)
        return tmp_path / name

    params = PhotometryParameters(fwhm=2.0 * SIGMA * math.sqrt(2 * math.log(2)))
    flc = write("hit_flc.fits", hit)
    masked = catalog_for_frame(flc, FrameSettings("F606W"), params)
    # nor are the hits looked for with L.A.Cosmic (which auto would do in an flc whose DQ flags none)
    ignored = catalog_for_frame(flc, FrameSettings("F606W", dq_bits=0, cosmic_rays="none"), params)
    reference = catalog_for_frame(write("clean.fits", clean, with_dq=False), FrameSettings("F606W"), params)

    def near(catalogue, px, py):
        d = np.hypot(np.asarray(catalogue["x"])[:, None] - px, np.asarray(catalogue["y"])[:, None] - py)
        return d.min(axis=1) < 1.5

    assert not near(masked, cx[:54], cy[:54]).any()
    assert near(ignored, cx[:54], cy[:54]).sum() >= 40
    stars_masked, stars_reference = match(x, y, masked["x"], masked["y"]), match(x, y, reference["x"], reference["y"])
    assert (stars_masked >= 0).all() and (stars_reference >= 0).all()
    flux_masked = np.asarray(masked["flux"])[stars_masked]
    flux_reference = np.asarray(reference["flux"])[stars_reference]
    error = np.asarray(reference["flux_err"])[stars_reference]
    touched = (np.asarray(masked["flags"])[stars_masked] & FLAG_EDGE) > 0
    # a hit in the aperture: the star is flagged, and its masked pixels add nothing (its flux
    # is short of theirs, never over)
    assert touched[:6].all() and np.all(flux_masked[:6] < flux_reference[:6] + 3 * error[:6])
    # the others: the same within a twentieth of an error (the sky and the aperture correction,
    # without the masked pixels, move by 1e-4)
    assert (~touched).sum() >= 25
    assert np.all(np.abs(flux_masked - flux_reference)[~touched] < 0.05 * error[~touched])
    stars_ignored = match(x[:6], y[:6], ignored["x"], ignored["y"])
    assert np.all(np.asarray(ignored["flux"])[stars_ignored] - flux_reference[:6] > 2000.0)
