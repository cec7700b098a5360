"""Reading frames: HDU choice, scaling, units, keywords, and clear errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from clusterphot.frames import (
    FrameError,
    exposure_time,
    gain,
    image_unit,
    read_frame,
    saturation_level,
)

from .conftest import shared_path
from .synthetic import write_frame


def test_reads_the_first_image_extension_as_float32_with_merged_keywords(tmp_path):
    data = np.arange(100, dtype=np.float32).reshape(10, 10) + 1
    frame = read_frame(write_frame(tmp_path / "a.fits", data, exptime=370.0))
    assert frame.data.dtype == np.float32
    assert frame.hdu_index == 1
    np.testing.assert_array_equal(frame.data, data)
    assert frame.header["EXPTIME"] == 370.0  # from the primary
    assert frame.header["PHOTFLAM"] == pytest.approx(7.8774e-20)  # from SCI


def test_integer_image_with_bscale_bzero_and_big_endian(tmp_path):
    values = np.arange(1, 401, dtype=">i2").reshape(20, 20)
    hdu = fits.PrimaryHDU(values.copy())  # scale() rewrites the array it holds
    hdu.scale("int16", bscale=0.5, bzero=100.0)
    hdu.header["EXPTIME"] = 10.0
    hdu.writeto(tmp_path / "int.fits")
    frame = read_frame(tmp_path / "int.fits")
    assert frame.hdu_index == 0
    assert frame.data.dtype == np.float32 and frame.data.dtype.isnative
    np.testing.assert_allclose(frame.data, values.astype(float), atol=0.5)


@pytest.mark.parametrize("content, message", [
    (b"this is not FITS", "not a readable FITS"),
    (None, "does not exist"),
])
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.fits"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FrameError, match=message) as error:
        read_frame(path)
    assert str(path) in str(error.value)


def test_cube_needs_a_plane_and_blank_images_are_refused(tmp_path):
    cube = np.ones((3, 8, 8), np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    with pytest.raises(FrameError, match="3-D cube.*plane"):
        read_frame(tmp_path / "cube.fits")
    assert read_frame(tmp_path / "cube.fits", plane=2).data.shape == (8, 8)
    fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32)).writeto(tmp_path / "nan.fits")
    with pytest.raises(FrameError, match="no valid pixels"):
        read_frame(tmp_path / "nan.fits")
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(tmp_path / "zero.fits")
    with pytest.raises(FrameError, match="no valid pixels"):
        read_frame(tmp_path / "zero.fits")


def test_exposure_time_must_exist_and_be_positive(tmp_path):
    path = tmp_path / "f.fits"
    header = fits.Header({"EXPTIME": 0.0})
    with pytest.raises(FrameError, match="EXPTIME is 0.0"):
        exposure_time(header, path)
    with pytest.raises(FrameError, match="no EXPTIME.*config"):
        exposure_time(fits.Header(), path)
    assert exposure_time(fits.Header(), path, override=340.0) == 340.0


def test_units_gain_and_saturation():
    path = "x.fits"
    assert image_unit(fits.Header({"BUNIT": "ELECTRONS/S"}), path) == ("electron", True)
    assert image_unit(fits.Header({"BUNIT": "COUNTS"}), path) == ("count", False)
    with pytest.raises(FrameError, match="BUNIT"):
        image_unit(fits.Header({"BUNIT": "Jy/beam"}), path)
    wfpc2 = fits.Header({"INSTRUME": "WFPC2", "ATODGAIN": 15.0, "SATURATE": 4095})
    assert gain(wfpc2, "count") == 15.0
    assert gain(wfpc2, "electron") == 1.0
    assert saturation_level(wfpc2, "count", False, 70.0, 15.0) == 4095.0
    acs = fits.Header({"INSTRUME": "ACS", "DETECTOR": "WFC"})
    assert saturation_level(acs, "electron", True, 100.0, 1.0) == pytest.approx(847.0)
    assert saturation_level(fits.Header(), "electron", False, 1.0, 1.0) is None


def test_real_wfpc2_frame():
    path = shared_path("data", "ngc1261_wfpc2", "ubai2502m_f555w.fits")
    frame = read_frame(path)
    assert frame.shape == (800, 800)
    assert frame.header["EXPTIME"] == 70.0 and frame.header["BUNIT"] == "COUNTS"
    assert frame.wcs is not None and frame.wcs.has_celestial
