"""The PSF's FWHM measured from a frame's stars, and lengths given in FWHM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clusterphot.config import length_in_pixels, validate_config
from clusterphot.errors import ConfigError
from clusterphot.fwhm import MIN_STARS, measure_fwhm
from clusterphot.photometry import PhotometryParameters

from .conftest import REPO
from .synthetic import gaussian_stars, grid_of_stars

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
GAUSSIAN_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # per sigma
PIXELS_FWHM = GAUSSIAN_FWHM * math.sqrt(1.0 + 1 / 12)  # sigma 1 px, seen through pixels


def star_frame(sigma: float, spacing: int = 40, shape=(400, 400), flux=(2e4, 2e5), seed=3):
    rng = np.random.default_rng(seed)
    x, y = grid_of_stars(shape, spacing=spacing, margin=spacing // 2, rng=rng)
    image = gaussian_stars(shape, x, y, rng.uniform(*flux, x.size), sigma=sigma, sky=50.0, read_noise=4.0,
                           rng=rng, stamp=int(5 * sigma) + 3)
    return image, np.zeros(shape, bool), x, y


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5, 3.0])  # FWHM 1.6 to 7.1 px, all from the same 2 px guess
def test_the_fwhm_of_gaussian_stars_is_measured(sigma):
    image, bad, x, _ = star_frame(sigma, spacing=int(12 * sigma) + 20)
    result = measure_fwhm(image, bad, saturation=None)
    assert result.measured and result.n_stars >= min(x.size, 50) * 0.9
    # the profile of the pixels: the Gaussian convolved with a pixel (its variance + 1/12 px^2)
    assert result.fwhm == pytest.approx(GAUSSIAN_FWHM * math.sqrt(sigma**2 + 1 / 12), rel=0.03)
    assert result.gaussian == pytest.approx(GAUSSIAN_FWHM * sigma, rel=0.03)  # the fits know the pixels
    assert result.scatter < 0.05 * result.fwhm
    assert np.array_equal(image, star_frame(sigma, spacing=int(12 * sigma) + 20)[0])  # the frame left as it was


def test_saturated_stars_and_masked_pixels_stay_out_of_it():
    image, bad, x, y = star_frame(1.0)
    level = 12000.0  # about half the stars' peaks
    flat_topped = np.minimum(image, level)  # bright stars' cores clipped: wider if measured
    saturated = (image > level).sum()
    assert saturated > 0
    clipped = image[np.rint(y).astype(int), np.rint(x).astype(int)] > level
    assert clipped.sum() > 10
    clean = measure_fwhm(flat_topped, bad, saturation=level / 0.9)
    assert clean.fwhm == pytest.approx(PIXELS_FWHM, rel=0.03) and clean.n_stars <= x.size - clipped.sum()
    # unknown saturation: a flat top of many pixels is as many maxima side by side, no isolated
    # star; those clipped in a pixel or two barely widen
    assert measure_fwhm(flat_topped, bad, saturation=None).fwhm == pytest.approx(PIXELS_FWHM, rel=0.03)
    # a masked pixel beside a star takes that star out, not the measurement
    for xi, yi in zip(x[::2], y[::2]):
        bad[int(round(yi)), int(round(xi)) + 1] = True
    assert measure_fwhm(image, bad, saturation=None).fwhm == pytest.approx(PIXELS_FWHM, rel=0.03)


def test_too_few_stars_give_no_fwhm_and_say_why():
    image, bad, _, _ = star_frame(1.0, spacing=180, shape=(360, 360))
    result = measure_fwhm(image, bad, saturation=None)
    assert not result.measured and math.isnan(result.fwhm)
    assert f"at least {MIN_STARS} needed" in result.note


def test_lengths_in_fwhm_become_pixels():
    assert length_in_pixels(3.0, 2.5) == 3.0
    assert length_in_pixels("1.5 fwhm", 2.4) == pytest.approx(3.6)
    assert length_in_pixels(" 2FWHM ", 2.0) == 4.0
    with pytest.raises(ConfigError, match="neither pixels"):
        length_in_pixels("3 px", 2.0)
    params = PhotometryParameters(fwhm="auto", aperture_radius="1.5 fwhm", annulus_radii=("4 fwhm", 15.0),
                                  aperture_correction_radius="4 fwhm").in_pixels(2.5)
    assert (params.fwhm, params.aperture_radius, params.annulus_radii, params.aperture_correction_radius) == (
        2.5, 3.75, (10.0, 15.0), 10.0)
    with pytest.raises(ConfigError, match="inner radius must be the smaller"):
        PhotometryParameters(annulus_radii=("8 fwhm", 15.0)).in_pixels(2.5)  # 20 px inside 15 px


@pytest.mark.parametrize("photometry, error", [
    ({"fwhm": "auto", "aperture_radius": "1.5 fwhm", "annulus_radii": ["4 fwhm", 20.0]}, None),
    ({"fwhm": 2.2, "aperture_radius": 3.0, "aperture_correction_radius": "4fwhm"}, None),
    ({"fwhm": "measure"}, "photometry.fwhm"),
    ({"aperture_radius": "3 px"}, "photometry.aperture_radius"),
    ({"annulus_radii": ["8 fwhm", "5 fwhm"]}, "inner radius 8 fwhm must be smaller"),
    ({"aperture_radius": "0 fwhm"}, "is no length"),
])
def test_the_config_takes_auto_and_lengths_in_fwhm(photometry, error):
    config = {"clusters": {"a": {"filters": {"F606W": "a.fits"}}}, "photometry": photometry}
    if error is None:
        validate_config(config, SCHEMA)
        assert config["photometry"]["fwhm"] == photometry["fwhm"]
    else:
        with pytest.raises(ConfigError, match=error):
            validate_config(config, SCHEMA)


def test_an_aperture_outside_its_annulus_at_the_frames_fwhm_stops_naming_the_key():
    with pytest.raises(ConfigError, match="'photometry.aperture_radius': 4 fwhm is 10.00 px"):
        PhotometryParameters(aperture_radius="4 fwhm").in_pixels(2.5)  # the default annulus starts at 10 px
    assert PhotometryParameters(aperture_radius="4 fwhm", annulus_radii=("6 fwhm", "9 fwhm"),
                                aperture_correction_radius="6 fwhm").in_pixels(2.5).aperture_radius == 10.0


def test_the_catalogue_says_when_its_fwhm_was_assumed_or_the_configured_one_is_off(tmp_path, caplog):
    from clusterphot.catalog import frame_fwhm

    image, bad, _, _ = star_frame(1.0)
    with caplog.at_level("INFO"):
        params, meta = frame_fwhm(image, bad, PhotometryParameters(fwhm=4.0), None, tmp_path / "frame.fits")
    assert params.fwhm == 4.0 and meta["source"] == "the config's photometry.fwhm"
    assert meta["measured"] == pytest.approx(PIXELS_FWHM, rel=0.03)
    assert any("photometry.fwhm is 4.00 px but the frame's stars measure" in r.message for r in caplog.records)
    caplog.clear()
    sparse, bad, _, _ = star_frame(1.0, spacing=180, shape=(360, 360))
    with caplog.at_level("INFO"):
        params, meta = frame_fwhm(sparse, bad, PhotometryParameters(), None, tmp_path / "frame.fits")
    assert params.fwhm == 2.0 and meta["source"].startswith("assumed") and meta["measured"] is None
    assert any("the FWHM could not be measured" in r.message and r.levelname == "WARNING" for r in caplog.records)
