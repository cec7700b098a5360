"""Frames as the archive gives them, through the workflow with nothing in the config but the file
name (and the chip): a HUGS stack and a WFPC2 c0m exposure measure the same stars at the same
calibrated magnitudes as a plain frame in electrons, reading their units, exposure time and zero
point where each product keeps them."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from scipy.spatial import cKDTree

from .conftest import local_http_server
from .helpers import assert_same_magnitudes, measure_f606w_frames, star_field, tan_wcs_header
from .synthetic import write_frame
from .test_zeropoints import FakeAcsService, published_acs_table

pytestmark = pytest.mark.workflow
EXPTIME = 100.0  # star_field's electrons are for 100 s
WFPC2_GAIN = 7.0  # e- per DN


def write_layouts(folder, f606w: dict) -> dict:
    """cluster -> its F606W config entry: the same stars in a plain frame (electrons, the ACS
    table's PHOTFLAM), a HUGS stack and a WFPC2 c0m exposure."""
    folder.mkdir()
    electrons = star_field()
    wcs = tan_wcs_header()
    entries = {"plain": str(write_frame(folder / "plain.fits", electrons, exptime=EXPTIME,
                                        photflam=f606w["PHOTFLAM"], photplam=f606w["PHOTPLAM"], extra_sci=wcs))}
    # A HUGS stack: the image in the primary HDU, in electrons with no BUNIT, normalised to the
    # exposure its name gives (EXPTIME the total of four), a DATE-OBS with a time of day, a WCS,
    # no PHOTFLAM: the zero point comes from the ACS calculator
    stack = fits.PrimaryHDU(electrons.astype(np.float32))
    stack.header.update({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "FILTER": "F606W",
                         "DATE-OBS": "2016-04-01T05:06:07", "EXPTIME": 4 * EXPTIME, **wcs})
    name = f"hlsp_hugs_hst_acs-wfc_ngc0001_f606w_v1_stack-{int(EXPTIME):04d}s.fits"
    stack.writeto(folder / name)
    entries["hugs"] = str(folder / name)
    # A WFPC2 c0m exposure as the WFPC2 Data Handbook gives it in multi-extension FITS: the
    # observation keywords (EXPTIME, ATODGAIN) in the primary, one SCI per chip (PC1, WF2, ...)
    # in COUNTS with its own PHOTFLAM (per DN/s); the stars on WF2, a cosmic-ray-free
    # single exposure that auto still looks at with L.A.Cosmic
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "HST", "INSTRUME": "WFPC2", "FILTNAM1": "F606W", "EXPTIME": EXPTIME,
                           "ATODGAIN": WFPC2_GAIN, "DATE-OBS": "2009-03-18", "FILENAME": "u2x50101t_c0f.fits"})
    rng = np.random.default_rng(3)
    chips = []
    for version, image in enumerate((rng.normal(30.0, 5.0, electrons.shape), electrons), start=1):
        sci = fits.ImageHDU((image / WFPC2_GAIN).astype(np.float32), name="SCI", ver=version)
        sci.header.update({"BUNIT": "COUNTS", "PHOTFLAM": f606w["PHOTFLAM"] * WFPC2_GAIN,
                           "PHOTPLAM": f606w["PHOTPLAM"], "SATURATE": 4095, **wcs})
        chips.append(sci)
    fits.HDUList([primary, *chips]).writeto(folder / "u2x50101t_c0m.fits")
    entries["c0m"] = {"image": str(folder / "u2x50101t_c0m.fits"), "hdu": ["SCI", 2]}
    return entries


@pytest.fixture(scope="module")
def archive_run(tmp_path_factory):
    table = published_acs_table()  # skips without ../shared
    FakeAcsService.rows = table
    f606w = next(row for row in table if row["filter"] == "F606W")
    root = tmp_path_factory.mktemp("archive")
    entries = write_layouts(root / "frames", f606w)
    with local_http_server(FakeAcsService) as base:
        return measure_f606w_frames(root / "run", entries, artificial_stars={"n_stars": 0},
                                    zeropoints={"service_url": f"{base}/single-filter-resource"})


def test_every_layout_gives_the_same_calibrated_magnitudes(archive_run):
    assert_same_magnitudes(archive_run, "plain", 0.9)


def test_a_hugs_stack_is_read_from_its_primary_hdu_its_name_and_the_acs_calculator(archive_run):
    meta = archive_run["hugs"].meta
    assert meta["hdu"] == 0 and meta["image_unit"] == "electron"
    assert meta["exptime"] == EXPTIME  # the name's 0100s, not EXPTIME's total of four
    assert meta["exposures_averaged"] == 4.0  # whose photons a unit holds, for the noise
    assert "acstools.acszpt" in meta["zeropoint"]["source"] and meta["magnitude_system"] == "AB"
    assert meta["cosmic_rays"] == "none" and "stack" in meta["cosmic_rays_reason"]


def test_a_wfpc2_c0m_chip_is_read_in_counts_through_its_gain(archive_run):
    meta = archive_run["c0m"].meta
    assert meta["hdu"] == 2 and meta["image_unit"] == "ct" and meta["gain"] == WFPC2_GAIN
    assert meta["zeropoint"]["source"].startswith("PHOTFLAM")
    assert meta["cosmic_rays"] == "lacosmic" and "c0m" in meta["cosmic_rays_reason"]
    # the errors in electrons: the same stars, the same magnitude errors as the plain frame's
    reference = archive_run["plain"]
    _, index = cKDTree(np.column_stack([reference["x"], reference["y"]])).query(
        np.column_stack([archive_run["c0m"]["x"], archive_run["c0m"]["y"]]))
    ratio = np.asarray(archive_run["c0m"]["mag_err"]) / np.asarray(reference["mag_err"])[index]
    assert abs(np.nanmedian(ratio) - 1) < 0.05
