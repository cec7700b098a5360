"""A frame's PSF file (write_psf / read_psf), the fit's model rebuilt from it and the catalogue,
and the PSF path's catalogue: its columns, metadata and fallback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits

from clusterphot.catalog import PSF_COLUMNS, catalog_for_frame
from clusterphot.config import FrameSettings
from clusterphot.errors import FrameError
from clusterphot.frames import bad_pixel_mask, read_frame
from clusterphot.photometry import FLAG_DESCRIPTIONS, PhotometryParameters
from clusterphot.psf import EPSF
from clusterphot.psfio import fitted_fluxes, model_image, read_psf, render_stars, sky_image, write_psf
from clusterphot.psfphot import PSF_FLAG_DESCRIPTIONS, PSFParameters, Tile, measure_frame_psf
from clusterphot.simulate import write_simulated_cluster

from .synthetic import moffat_epsf

FWHM = 2.2


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """A small simulated crowded frame in F814W (256 x 256 pixels)."""
    folder = tmp_path_factory.mktemp("frame")
    write_simulated_cluster(folder, name="psf", seed=7, filters=["F814W"], shape=(256, 256), n_stars=400,
                            distance_modulus=16.5)
    return folder / "F814W.fits"


@pytest.fixture(scope="module")
def psf_catalogue(frame, tmp_path_factory):
    psf_path = tmp_path_factory.mktemp("psf") / "F814W.fits"
    table = catalog_for_frame(frame, FrameSettings("F814W"), PhotometryParameters(), method="psf",
                              psf_params=PSFParameters(), psf_output=psf_path)
    return table, psf_path


def test_write_psf_and_read_psf_round_trip(tmp_path):
    psf = EPSF(moffat_epsf(FWHM).data, 4, n_stars=37, wing=(1.9, 2.5, -2.0625), wing_from=6.0)
    rng = np.random.default_rng(2)
    sky = rng.normal(0.0, 1.0, (3, 4)).astype(np.float32)
    path = tmp_path / "psf.fits"
    psf_errors = np.array([[4e-3, 2e-3, np.nan], [3e-3, 1e-3, 0.0]])  # per residual pass and ring
    write_psf(path, psf, sky=sky, sky_cell=32, sky_level=12.5, correction=1.0625, footprint_level=0.75,
              footprint_smallest=3.2, psf_star_ids=[3, 9, 11], psf_star_x=[10.0, 20.5, 30.25],
              psf_star_y=[5.0, 6.0, 7.0], psf_errors=psf_errors, cards={"FILTER": "F814W"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["psf.fits"], "temporary file left behind"
    back = read_psf(path)
    assert np.array_equal(back.psf.data, psf.data) and back.psf.data.dtype == np.float64
    assert (back.psf.oversampling, back.psf.n_stars) == (4, 37)
    assert back.psf.fwhm == psf.fwhm and back.psf.radius == psf.radius
    assert back.psf.wing == psf.wing and back.psf.reach == psf.reach > psf.radius
    assert back.psf.wing_start == psf.wing_start == 6.0
    assert (back.footprint_level, back.footprint_smallest) == (0.75, 3.2)
    assert np.array_equal(back.sky, sky) and (back.sky_cell, back.sky_level) == (32, 12.5)
    assert back.correction == 1.0625 and list(back.psf_star_ids) == [3, 9, 11]
    np.testing.assert_array_equal(back.psf_errors, psf_errors)
    assert fits.getheader(path, "PSFERR")["RINGWID"] == 0.5
    assert not back.fallback
    header = fits.getheader(path)
    assert header["FWHM"] == pytest.approx(psf.fwhm) and header["NSTARS"] == 37
    assert header["OVERSAMP"] == 4 and header["RADIUS"] == psf.radius and header["FILTER"] == "F814W"
    # the grid's WCS: the central node is offset 0, nodes 1/OVERSAMP pixel apart
    centre = psf.data.shape[0] // 2
    assert header["CRPIX1"] == header["CRPIX2"] == centre + 1 and header["CDELT1"] == 0.25
    assert fits.getdata(path, "PSFSTARS")["x"][2] == 30.25


def test_a_fallback_is_a_file_without_a_psf(tmp_path):
    path = tmp_path / "fallback.fits"
    write_psf(path, None, note="no PSF: only 3 stars")
    back = read_psf(path)
    assert back.fallback and back.psf is None and back.note == "no PSF: only 3 stars"
    header = fits.getheader(path)
    assert header["FALLBACK"] is True and header["METHOD"] == "aperture"


def test_the_sky_per_cell_and_the_stars_are_drawn_back_on_any_box():
    cells = np.arange(12, dtype=np.float32).reshape(3, 4)
    image = np.repeat(np.repeat(cells, 8, 0), 8, 1)[:20, :27]  # partial cells at the top and right
    from clusterphot.psfio import PSFFile
    psf = moffat_epsf(FWHM)
    psf_file = PSFFile(psf, fits.Header(), sky=cells, sky_cell=8, correction=2.0)
    box = (5, 3, 17, 11)
    assert np.array_equal(sky_image(psf_file, box), image[3:14, 5:22])
    # a star inside the box and one outside whose wing reaches in
    x, y, flux = np.array([10.3, 30.0]), np.array([7.6, 8.0]), np.array([2000.0, 8000.0])
    yy, xx = np.mgrid[3:14, 5:22]
    reach = np.floor(psf.radius) + 0.5  # each star drawn out to this from its nearest pixel, as the fit does
    expected = sum(f / 2.0 * psf.evaluate(xx - xs, yy - ys) * (np.hypot(xx - round(xs), yy - round(ys)) <= reach)
                   for xs, ys, f in zip(x, y, flux))
    drawn = model_image(psf_file, x, y, flux, box) - sky_image(psf_file, box)
    assert np.allclose(drawn, expected, atol=1e-3)
    assert drawn[:, -1].sum() > 0.5 * expected[:, -1].sum() > 0  # the outer star's wing
    assert np.array_equal(render_stars(x, y, fitted_fluxes(psf_file, flux), psf, (200, 200, 5, 5)), np.zeros((5, 5)))


def test_the_psf_catalogue_has_the_fits_columns_and_metadata(psf_catalogue):
    table, psf_path = psf_catalogue
    assert table.colnames[-len(PSF_COLUMNS) - 1 :] == ["flags", *PSF_COLUMNS]
    assert str(table["crowding"].unit) == "mag" and table["n_iter"].dtype.kind == "i"
    assert (np.asarray(table["found_in_pass"]) >= 0).all() and np.isfinite(table["qfit"]).all()
    for name in PSF_COLUMNS:
        assert table[name].description, name
    assert table["flux"].description.startswith("PSF flux corrected to total")
    meta = table.meta
    assert meta["photometry_method"] == "psf"
    assert meta["psf"]["file"] == str(psf_path) and meta["psf"]["n_stars"] >= 20
    assert meta["psf_parameters"] == {**PSFParameters().as_meta(), "fallback": "error"}
    # the last pass fits every star kept; each pass's new stars are a part of those before dropping
    assert meta["passes"][-1]["stars"] == len(table) and meta["passes"][0]["new"] == meta["passes"][0]["stars"]
    assert sum(p["new"] for p in meta["passes"]) >= len(table)
    assert meta["psf"]["tiles"] == 0 and meta["psf"]["tiles_with_own_psf"] == 0
    assert meta["aperture_correction"]["note"] == "PSF flux to total"
    assert {"32", "64"} <= set(meta["flags"]) and "32 poor PSF fit" in table["flags"].description
    # every flag set is a documented bit
    documented = sum({**FLAG_DESCRIPTIONS, **PSF_FLAG_DESCRIPTIONS})
    assert (np.asarray(table["flags"]) & ~documented == 0).all()
    header = fits.getheader(psf_path)
    assert header["FWHM"] == pytest.approx(meta["psf"]["fwhm"]) and header["NSTARS"] == meta["psf"]["n_stars"]
    assert header["APCORR"] == pytest.approx(meta["aperture_correction"]["factor"])
    assert set(read_psf(psf_path).psf_star_ids) <= set(table["id"])
    # the residual passes' PSF errors, measured (finite, not negative) in each pass that ran
    errors = read_psf(psf_path).psf_errors
    assert errors.ndim == 2 and 1 <= len(errors) <= PSFParameters().residual_passes
    assert np.all(np.isfinite(errors)) and np.all(errors >= 0)


def test_the_catalogue_and_psf_file_give_back_the_fits_model(frame, psf_catalogue):
    """The model the fit subtracted, drawn again from what was written (catalogue x, y, flux;
    the PSF file's PSF, sky and correction): the same to well below the sky's noise."""
    table, psf_path = psf_catalogue
    data = read_frame(frame).data
    measured = measure_frame_psf(data, bad_pixel_mask(data), PhotometryParameters(), PSFParameters(), 1.0,
                                 table.meta["saturation_level"], keep_model=True)
    psf_file = read_psf(psf_path)
    ny, nx = data.shape
    rebuilt = model_image(psf_file, np.asarray(table["x"]), np.asarray(table["y"]), np.asarray(table["flux"]),
                          (0, 0, nx, ny))
    difference = np.abs(rebuilt - measured.extra["model"])
    sigma = table.meta["frame_sky"]["std"]
    assert np.percentile(difference, 99) < 0.1 * sigma and difference.max() < 2 * sigma
    assert psf_file.sky_level == pytest.approx(table.meta["frame_sky"]["median"], rel=1e-6)


def test_too_few_psf_stars_stop_the_frame_or_fall_back_to_apertures(frame, tmp_path):
    impossible = PSFParameters(min_psf_stars=100000)
    with pytest.raises(FrameError) as error:
        catalog_for_frame(frame, FrameSettings("F814W"), PhotometryParameters(), method="psf",
                          psf_params=impossible, psf_output=tmp_path / "none.fits")
    assert str(error.value).startswith(f"{frame}: only ") and "100000 needed" in str(error.value)
    assert "\n" not in str(error.value) and not (tmp_path / "none.fits").exists()

    psf_path = tmp_path / "fallback.fits"
    table = catalog_for_frame(frame, FrameSettings("F814W"), PhotometryParameters(), method="psf",
                              psf_params=impossible, fallback="aperture", psf_output=psf_path)
    aperture = catalog_for_frame(frame, FrameSettings("F814W"), PhotometryParameters())
    assert table.colnames == aperture.colnames  # the aperture columns
    assert np.array_equal(np.asarray(table["flux"]), np.asarray(aperture["flux"]))  # on the frame as read
    assert table.meta["photometry_method"] == "aperture"
    assert "100000 needed" in table.meta["psf_fallback"]["reason"]
    assert read_psf(psf_path).fallback and "100000 needed" in read_psf(psf_path).note
    assert "photometry_method" not in aperture.meta and "psf" not in aperture.meta  # aperture catalogues as before


def test_the_psf_figure_and_the_psf_detection_map_are_drawn(frame, psf_catalogue, tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from clusterphot.plots import PSFFitView, plot_detections, plot_psf

    table, psf_path = psf_catalogue
    data = read_frame(frame).data
    bad = bad_pixel_mask(data)
    psf_file = read_psf(psf_path)
    plot_psf(psf_file, table, data, tmp_path / "psf.png", "c", "F814W", bad=bad)
    # as if fitted in two tiles, the right one with the frame's PSF, interpolated: a panel more
    ny, nx = data.shape
    tiles = [Tile((0, 0, nx // 2, ny), psf_file.psf, True, 1.0),
             Tile((nx // 2, 0, nx, ny), psf_file.psf, False, 1.0)]
    plot_psf(replace(psf_file, tiles=tiles, zone=64), table, data, tmp_path / "psf_tiles.png", "c", "F814W", bad=bad)
    write_psf(tmp_path / "none.fits", None, note="no PSF: only 3 stars")
    plot_psf(read_psf(tmp_path / "none.fits"), table, data, tmp_path / "none.png", "c", "F814W", bad=bad)
    x, y, flux = (np.asarray(table[name], dtype=float) for name in ("x", "y", "flux"))
    view = PSFFitView(model=lambda box: model_image(psf_file, x, y, flux, box) + psf_file.sky_level,
                      fwhm=psf_file.psf.fwhm, residual_pass=np.asarray(table["found_in_pass"]) > 0,
                      sky_sigma=table.meta["frame_sky"]["std"], unit="electron")
    plot_detections(data, x, y, tmp_path / "psf_map.png", 3.0, (10.0, 15.0), "psf", bad=bad, psf_fit=view)
    plot_detections(data, x, y, tmp_path / "map.png", 3.0, (10.0, 15.0), "aperture", bad=bad)
    assert plt.get_fignums() == [], "a figure was left open"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["map.png", "none.png", "psf.png", "psf_map.png",
                                                              "psf_tiles.png"]
    sizes = {p.stem: Image.open(p).size for p in tmp_path.glob("*.png")}
    assert sizes["psf_map"][1] > 1.5 * sizes["map"][1] and sizes["psf"][0] > 1500
    assert sizes["psf_tiles"][0] > 1.25 * sizes["psf"][0]
    assert np.asarray(Image.open(tmp_path / "psf.png").convert("L")).std() > 20
