"""Reading frames: HDU choice, scaling, units, keywords, and clear errors naming the file."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from clusterphot.frames import (
    MIN_FRAME_PIXELS,
    FrameError,
    celestial_wcs,
    clipped_level,
    exposure_time,
    gain,
    image_unit,
    read_frame,
    saturation_level,
)

from .conftest import shared_path
from .helpers import tan_wcs_header, warnings_from
from .synthetic import write_frame


def test_reads_the_first_image_extension_as_float32_with_merged_keywords(tmp_path):
    data = np.arange(400, dtype=np.float32).reshape(20, 20) + 1
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
    cube = np.ones((3, 20, 20), np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    with pytest.raises(FrameError, match="3-D cube.*plane"):
        read_frame(tmp_path / "cube.fits")
    assert read_frame(tmp_path / "cube.fits", plane=2).data.shape == (20, 20)
    fits.PrimaryHDU(np.full((20, 20), np.nan, np.float32)).writeto(tmp_path / "nan.fits")
    with pytest.raises(FrameError, match="no valid pixels"):
        read_frame(tmp_path / "nan.fits")
    fits.PrimaryHDU(np.zeros((20, 20), np.float32)).writeto(tmp_path / "zero.fits")
    with pytest.raises(FrameError, match="no valid pixels"):
        read_frame(tmp_path / "zero.fits")


@pytest.mark.parametrize("plane", [5, 2, -1])
def test_a_plane_outside_the_cube_names_the_file_and_the_planes_it_has(tmp_path, plane):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.ones((2, 20, 20), np.float32)).writeto(path)
    with pytest.raises(FrameError) as error:
        read_frame(path, plane=plane)
    assert str(error.value) == (f"{path}: plane {plane} does not exist: the cube has 2 planes (0..1); "
                                "set 'plane' for this filter in the config")
    assert read_frame(path, plane=1).shape == (20, 20)


@pytest.mark.parametrize("shape", [(1, 300), (300, 1), (MIN_FRAME_PIXELS - 1, 200), (1, 1)])
def test_an_image_too_small_to_hold_a_star_is_refused(tmp_path, shape):
    path = write_frame(tmp_path / "thin.fits", np.ones(shape, np.float32))
    with pytest.raises(FrameError) as error:
        read_frame(path)
    message = str(error.value)
    assert message.startswith(f"{path}: image is {shape[0]} x {shape[1]} pixels")
    assert f"at least {MIN_FRAME_PIXELS} pixels along each axis" in message


def test_an_image_of_the_smallest_size_is_read(tmp_path):
    shape = (MIN_FRAME_PIXELS, MIN_FRAME_PIXELS)
    assert read_frame(write_frame(tmp_path / "small.fits", np.ones(shape, np.float32))).shape == shape


def test_an_implausibly_long_exposure_time_is_warned_about(tmp_path, caplog):
    path = tmp_path / "f.fits"
    with caplog.at_level(logging.WARNING, logger="clusterphot.frames"):
        assert exposure_time(fits.Header({"EXPTIME": 1e30}), path) == 1e30
        assert exposure_time(fits.Header({"EXPTIME": 100.0}), path, override=2e6) == 2e6
    header_warning, config_warning = warnings_from(caplog, "clusterphot.frames")
    assert header_warning.startswith(f"{path}: exposure time 1e+30 s (EXPTIME in the header)")
    assert "magnitudes will be off" in header_warning
    assert config_warning.startswith(f"{path}: exposure time 2e+06 s (the config's 'exptime')")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clusterphot.frames"):
        exposure_time(fits.Header({"EXPTIME": 1e6}), path)  # a very deep stack, but possible
        exposure_time(fits.Header({"EXPTIME": 0.5}), path)
    assert warnings_from(caplog, "clusterphot.frames") == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"CD1_1": 0.0, "CD2_2": 0.0}, "singular"),  # a CD matrix of zeros
    ({"CTYPE1": "RA---XXX", "CTYPE2": "DEC--XXX"}, "Unrecognized projection code"),
])
def test_a_broken_wcs_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog, changes, words):
    path = write_frame(tmp_path / "broken.fits", np.ones((20, 20), np.float32), extra_sci=tan_wcs_header(10.0, **changes))
    with caplog.at_level(logging.WARNING, logger="clusterphot.frames"):
        frame = read_frame(path)
    assert frame.wcs is None
    [warning] = warnings_from(caplog, "clusterphot.frames")
    assert warning.startswith(f"{path}: the WCS cannot be used (")
    assert words in warning and "ra and dec will be NaN" in warning
    assert "\n" not in warning  # WCSLIB's several lines made one


def test_a_header_without_a_wcs_or_with_a_good_one_reads_without_a_warning(tmp_path, caplog):
    data = np.ones((20, 20), np.float32)
    with caplog.at_level(logging.WARNING, logger="clusterphot.frames"):
        assert read_frame(write_frame(tmp_path / "nowcs.fits", data)).wcs is None
        assert read_frame(write_frame(tmp_path / "wcs.fits", data, extra_sci=tan_wcs_header(10.0))).wcs.has_celestial
        assert celestial_wcs(fits.Header()) is None
    assert warnings_from(caplog, "clusterphot.frames") == []


def test_celestial_wcs_names_its_source_or_the_header(caplog):
    broken = fits.Header(tan_wcs_header(10.0, CTYPE1="RA---XXX", CTYPE2="DEC--XXX"))
    with caplog.at_level(logging.WARNING, logger="clusterphot.frames"):
        assert celestial_wcs(broken) is None
        assert celestial_wcs(broken, source="a.fits") is None
    first, second = warnings_from(caplog, "clusterphot.frames")
    assert first.startswith("header: the WCS cannot be used")
    assert second.startswith("a.fits: the WCS cannot be used")


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
    assert saturation_level(wfpc2, "count", False, 70.0, 15.0) == (4095.0, "SATURATE keyword")
    acs = fits.Header({"INSTRUME": "ACS", "DETECTOR": "WFC"})
    level, source = saturation_level(acs, "electron", True, 100.0, 1.0)
    assert level == pytest.approx(847.0) and source == "ACS/WFC full well"
    assert saturation_level(acs, "electron", True, 100.0, 1.0, override=500.0) == (500.0, "config")
    assert saturation_level(fits.Header(), "electron", False, 1.0, 1.0) == (None, "unknown")


def test_a_frame_is_clipped_where_its_largest_value_is_held_by_several_usable_pixels():
    rng = np.random.default_rng(2)
    frame = rng.normal(100.0, 5.0, (50, 50)).astype(np.float32)
    frame[10, 10] = 900.0  # one star's peak: the largest value, but not a plateau
    bad = np.zeros(frame.shape, bool)
    assert clipped_level(frame, bad) is None
    frame[30:32, 30:33] = 4095.0  # a flat-topped star, 6 pixels at a 12-bit converter's limit
    assert clipped_level(frame, bad) == (4095.0, 6)
    frame[40, 40] = np.nan
    assert clipped_level(frame, bad) == (4095.0, 6)  # a NaN is no value
    bad[30:32, 30:32] = True  # two of them left at 4095: too few for a plateau
    assert clipped_level(frame, bad) is None
    assert clipped_level(frame, np.ones(frame.shape, bool)) is None
    counts = rng.integers(0, 1000, (50, 50)).astype(np.uint16)  # an integer image as a library user may pass it
    counts[5:7, 5:8] = 65535
    assert clipped_level(counts, np.zeros(counts.shape, bool)) == (65535.0, 6)
    assert clipped_level(counts, np.ones(counts.shape, bool)) is None


def test_real_wfpc2_frame():
    path = shared_path("data", "ngc1261_wfpc2", "ubai2502m_f555w.fits")
    frame = read_frame(path)
    assert frame.shape == (800, 800)
    assert frame.header["EXPTIME"] == 70.0 and frame.header["BUNIT"] == "COUNTS"
    assert frame.wcs is not None and frame.wcs.has_celestial


def two_chip_file(path):
    """An flc-like file: an empty primary, then SCI, ERR and DQ for each of two chips."""
    hdus = [fits.PrimaryHDU()]
    hdus[0].header.update({"EXPTIME": 500.0, "INSTRUME": "ACS", "DETECTOR": "WFC"})
    for chip in (1, 2):
        hdus += [fits.ImageHDU(np.full((30, 40), 10.0 * chip, np.float32), name="SCI", ver=chip),
                 fits.ImageHDU(np.ones((30, 40), np.float32), name="ERR", ver=chip),
                 fits.ImageHDU(np.zeros((30, 40), np.int16), name="DQ", ver=chip)]
        hdus[-3].header["CCDCHIP"] = 3 - chip
    fits.HDUList(hdus).writeto(path)
    return path


def test_a_chip_is_chosen_by_name_and_version_and_a_missing_one_is_named_with_those_there(tmp_path):
    path = two_chip_file(tmp_path / "x_flc.fits")
    assert read_frame(path).hdu_index == 1  # the first chip by default
    second = read_frame(path, hdu=["SCI", 2])  # as YAML gives it
    assert second.hdu_index == 4 and second.data[0, 0] == 20.0 and second.header["CCDCHIP"] == 1
    assert second.header["EXPTIME"] == 500.0  # the primary's keywords under the chip's
    assert read_frame(path, hdu=("SCI", 1)).data[0, 0] == 10.0
    with pytest.raises(FrameError, match=r"x_flc.fits: no HDU \[SCI, 3\]; its image HDUs are 1 \(SCI,1\), "
                                         r"2 \(ERR,1\), 3 \(DQ,1\), 4 \(SCI,2\), 5 \(ERR,2\), 6 \(DQ,2\)"):
        read_frame(path, hdu=["SCI", 3])
    with pytest.raises(FrameError, match=r"no HDU 'WHT'"):
        read_frame(path, hdu="WHT")


def test_the_clis_hdu_takes_an_index_a_name_or_a_name_and_version():
    from clusterphot.cli import parse_hdu

    assert [parse_hdu(v) for v in ("3", "SCI", "SCI,2", "sci, 1", None)] == [3, "SCI", ("SCI", 2), ("sci", 1), None]


def test_an_hst_products_dq_bits_and_zero_weights_mask_its_pixels(tmp_path):
    """flc: the chip's own DQ (same EXTVER) masks the pixels with any of the chosen bits
    (cosmic ray 8192 by default, warm pixel 64 not); drz: WHT of 0 masks; a file without
    either has no product mask; a DQ of another shape stops, naming the file and extension."""
    from clusterphot.frames import DEFAULT_DQ_BITS

    path = tmp_path / "x_flc.fits"
    two_chip_file(path)
    with fits.open(path, mode="update") as hdul:
        hdul[("DQ", 2)].data[5, 5] = 8192 | 64
        hdul[("DQ", 2)].data[6, 7] = 64
        hdul[("DQ", 1)].data[9, 9] = 16
    second = read_frame(path, hdu=["SCI", 2])
    assert np.argwhere(second.product_mask).tolist() == [[5, 5]]
    assert second.bad_pixels()[5, 5] and not second.bad_pixels()[5, 6]  # not grown
    assert np.argwhere(read_frame(path, hdu=["SCI", 2], dq_bits=64).product_mask).tolist() == [[5, 5], [6, 7]]
    assert np.argwhere(read_frame(path).product_mask).tolist() == [[9, 9]]  # SCI,1 with DQ,1
    assert not read_frame(path, hdu=["SCI", 2], dq_bits=0).product_mask.any()
    assert DEFAULT_DQ_BITS & 8192 and not DEFAULT_DQ_BITS & 64

    weights = np.ones((30, 40), np.float32)
    weights[:, :6] = 0.0  # no exposure covers these columns
    drz = tmp_path / "x_drz.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((30, 40), 5.0, np.float32), name="SCI"),
                  fits.ImageHDU(weights, name="WHT"), fits.ImageHDU(np.ones((30, 40), np.int32), name="CTX")]
                 ).writeto(drz)
    frame = read_frame(drz)
    assert frame.product_mask[:, :6].all() and not frame.product_mask[:, 6:].any()
    fits.PrimaryHDU(np.full((30, 40), 5.0, np.float32)).writeto(tmp_path / "plain.fits")
    assert read_frame(tmp_path / "plain.fits").product_mask is None  # not an HST product

    wrong = tmp_path / "wrong_flc.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((30, 40), np.float32), name="SCI"),
                  fits.ImageHDU(np.zeros((15, 40), np.int16), name="DQ")]).writeto(wrong)
    with pytest.raises(FrameError, match=r"wrong_flc.fits: DQ,1 has shape \(15, 40\), not the SCI image's \(30, 40\)"):
        read_frame(wrong)


def test_a_products_dq_err_or_weights_are_never_measured_as_the_sky(tmp_path):
    """The first image of the sky is taken, not a DQ, ERR or WHT before it; a file of those
    alone, or an hdu naming one, stops with the file's image HDUs listed."""
    sky = np.full((30, 40), 7.0, np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((30, 40), np.float32), name="ERR"),
                  fits.ImageHDU(sky, name="SCI")]).writeto(tmp_path / "err_first.fits")
    frame = read_frame(tmp_path / "err_first.fits")
    assert frame.hdu_index == 2 and frame.data[0, 0] == 7.0
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((30, 40), np.int16), name="DQ"),
                  fits.ImageHDU(np.ones((30, 40), np.float32), name="WHT")]).writeto(tmp_path / "no_sci.fits")
    with pytest.raises(FrameError, match=r"no_sci.fits: no image of the sky: its image HDUs are 1 \(DQ,1\), "
                                         r"2 \(WHT,1\), only DQ, WHT extensions .* and no SCI"):
        read_frame(tmp_path / "no_sci.fits")
    with pytest.raises(FrameError, match=r"HDU 3 is a DQ extension \(data quality flags\), not an image of the sky"):
        read_frame(two_chip_file(tmp_path / "x_flc.fits"), hdu=["DQ", 1])


def test_a_hugs_stack_takes_the_exposure_time_its_name_gives(caplog):
    """Its pixels are normalised to the exposure its name gives; a fetched one is known by its URL's name."""
    from pathlib import Path

    header = fits.Header({"EXPTIME": 1480.0})
    stack = "hlsp_hugs_hst_acs-wfc_ngc6101_f606w_v1_stack-0370s.fits"
    with caplog.at_level(logging.INFO, logger="clusterphot.frames"):
        assert exposure_time(header, Path(stack)) == 370.0
    assert "normalised to 370 s" in caplog.text
    assert exposure_time(header, Path("F606W.fits"), source_name=stack) == 370.0
    assert exposure_time(header, Path("F606W.fits")) == 1480.0
    assert exposure_time(header, Path(stack), override=100.0) == 100.0


def test_acs_and_wfc3_frames_without_bunit_are_in_electrons_wfpc2_in_counts():
    from pathlib import Path

    assert image_unit(fits.Header({"INSTRUME": "ACS"}), Path("x.fits")) == ("electron", False)
    assert image_unit(fits.Header({"INSTRUME": "WFC3"}), Path("x.fits")) == ("electron", False)
    assert image_unit(fits.Header({"INSTRUME": "WFPC2"}), Path("x.fits")) == ("count", False)
    assert image_unit(fits.Header({}), Path("x.fits")) == ("count", False)
