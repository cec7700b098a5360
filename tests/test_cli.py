"""The command line measures one frame without the workflow, and fails in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from .synthetic import gaussian_stars, grid_of_stars, moffat_field, write_frame

CLUSTERPHOT = Path(sys.executable).with_name("clusterphot")


@pytest.mark.parametrize("method", ["psf", "aperture"])
def test_measure_writes_a_calibrated_catalogue(tmp_path, method):
    """25 stars, each its own PSF star: PSF fitting (the default) and apertures alike."""
    rng = np.random.default_rng(11)
    x, y = grid_of_stars((200, 200), spacing=30, margin=20, rng=rng)
    image = gaussian_stars((200, 200), x, y, np.full(x.size, 2e4), 0.9, sky=30.0, read_noise=4.0, rng=rng)
    frame = write_frame(tmp_path / "frame.fits", image, exptime=50.0)
    output = tmp_path / "cat.ecsv"
    method_option = ["--method", "aperture"] if method == "aperture" else []  # psf: the default
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(frame), "--filter", "F606W", "-o", str(output),
                             "--fwhm", "2.1", "--zeropoint", "25.0", *method_option], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = Table.read(output)
    assert table.meta.get("photometry_method", "aperture") == method
    assert len(table) == x.size
    assert table.meta["zeropoint"] == {"value": 25.0, "system": "AB", "source": "config"}
    expected = 25.0 - 2.5 * np.log10(2e4 / 50.0)
    assert abs(np.median(table["mag"]) - expected) < 0.02
    assert f"{x.size} stars" in result.stdout


def test_a_frame_without_a_saturation_level_is_saturated_where_its_stars_are_clipped(tmp_path):
    """A ground-based frame (no SATURATE keyword, an unknown camera) whose converter clipped its
    brightest stars at 30000: that value becomes its saturation level, those stars are flagged
    saturated and the others not, and the run says so."""
    rng = np.random.default_rng(5)
    x, y = grid_of_stars((200, 200), spacing=30, margin=20, rng=rng)
    flux = np.where(np.arange(x.size) % 4 == 0, 6e5, 2e4)  # every fourth star's peak far above the clip
    image = gaussian_stars((200, 200), x, y, flux, 0.9, sky=30.0, read_noise=4.0, rng=rng)
    image = np.minimum(np.rint(image), 30000.0).astype(np.float32)
    frame = write_frame(tmp_path / "frame.fits", image, exptime=50.0,
                        extra_primary={"TELESCOP": "ESO-2.2", "INSTRUME": "WFI", "DETECTOR": "CCD"})
    output = tmp_path / "cat.ecsv"
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(frame), "--filter", "F606W", "-o", str(output),
                             "--fwhm", "2.1", "--zeropoint", "25.0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "taken as the level it saturates at" in result.stdout + result.stderr
    table = Table.read(output)
    assert table.meta["saturation_level"] == 30000.0
    assert table.meta["saturation_source"].startswith("clipped: ")
    # each star's catalogue row (a clipped star's flat top may give a spurious detection or two more)
    distance = np.hypot(np.asarray(table["x"])[None, :] - x[:, None], np.asarray(table["y"])[None, :] - y[:, None])
    row = np.argmin(distance, axis=1)
    assert distance[np.arange(x.size), row].max() < 1.0
    saturated = (np.asarray(table["flags"])[row] & 1) > 0
    assert np.array_equal(saturated, flux > 1e5)


def test_a_missing_frame_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(tmp_path / "nope.fits"), "-f", "F606W",
                             "-o", str(tmp_path / "out.ecsv")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nope.fits: file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.ecsv").exists()


def test_measure_fits_psfs_by_default_and_writes_the_psf_catalogue_and_file(tmp_path):
    rng = np.random.default_rng(3)
    x, y = grid_of_stars((200, 200), spacing=24, margin=16, rng=rng)
    flux = rng.uniform(2e4, 2e5, x.size)
    image = moffat_field((200, 200), x, y, flux, fwhm=2.2, sky=50.0, read_noise=4.0, rng=rng)
    frame = write_frame(tmp_path / "frame.fits", image, exptime=50.0)
    output, psf_file = tmp_path / "cat.ecsv", tmp_path / "psf" / "F606W.fits"
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(frame), "-f", "F606W", "-o", str(output),
                             "--fwhm", "2.2", "--zeropoint", "25.0", "--psf-output", str(psf_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = Table.read(output)
    assert table.meta["photometry_method"] == "psf"
    assert {"qfit", "crowding"} <= set(table.colnames)
    assert len(table) == x.size
    # each measured star against the nearest true one: the PSF flux corrected to total
    nearest = np.argmin(np.hypot(table["x"][:, None] - x, table["y"][:, None] - y), axis=1)
    ratio = np.asarray(table["flux"]) / flux[nearest]
    assert abs(np.median(ratio) - 1) < 0.02 and np.all(np.abs(ratio - 1) < 0.05)
    header = fits.getheader(psf_file)
    assert header["FWHM"] == table.meta["psf"]["fwhm"] and 2.0 < header["FWHM"] < 2.6
    assert header["NSTARS"] == table.meta["psf"]["n_stars"] >= 20
    assert f"{x.size} stars" in result.stdout and f"from {header['NSTARS']} stars" in result.stdout


def test_too_few_psf_stars_is_one_line_or_a_fallback_to_apertures(tmp_path):
    rng = np.random.default_rng(4)
    x, y = grid_of_stars((100, 100), spacing=30, margin=20, rng=rng)  # 9 stars, 20 PSF stars needed
    image = moffat_field((100, 100), x, y, np.full(x.size, 5e4), fwhm=2.2, rng=rng)
    frame = write_frame(tmp_path / "frame.fits", image, exptime=50.0)
    command = [str(CLUSTERPHOT), "measure", str(frame), "-f", "F606W", "--fwhm", "2.2", "--zeropoint", "25.0",
               "--method", "psf"]
    result = subprocess.run([*command, "-o", str(tmp_path / "psf.ecsv"), "--fallback", "error"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    # the terminal is the log: what was measured (the FWHM) and one line for the error
    [error] = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert f"{frame}: only " in error and "20 needed" in error and "Traceback" not in result.stderr
    assert not (tmp_path / "psf.ecsv").exists()

    result = subprocess.run([*command, "-o", str(tmp_path / "fallback.ecsv"), "--fallback", "aperture"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = Table.read(tmp_path / "fallback.ecsv")
    assert table.meta["photometry_method"] == "aperture" and "20 needed" in table.meta["psf_fallback"]["reason"]
    assert "qfit" not in table.colnames and "measured with apertures" in result.stdout
