"""Cosmic rays of single exposures: which frames need them found, L.A.Cosmic's mask, the mask
file, and stars measured without the hits."""

from __future__ import annotations


import astroscrappy
import numpy as np
import pytest
from astropy.io import fits
from scipy.spatial import cKDTree

from clusterphot.catalog import catalog_for_frame, cosmic_rays_of_frame
from clusterphot.config import FrameSettings
from clusterphot.cosmicrays import (LACOSMIC_OBJLIM, LACOSMIC_SIGCLIP, LACOSMIC_SIGFRAC, CosmicRayDecision,
                                    apply_cosmic_ray_mask, cosmic_ray_decision, find_cosmic_rays, lacosmic_saturation,
                                    product_suffix, read_cosmic_ray_mask, read_noise, write_cosmic_ray_mask)
from clusterphot.errors import FrameError
from clusterphot.frames import read_frame
from clusterphot.photometry import PhotometryParameters, fill_from_neighbours

from .synthetic import gaussian_stars, write_frame

FWHM = 2.0  # px: an HST star, undersampled as on ACS/WFC or WFC3/UVIS


def cosmic_ray_hits(shape, n, rng, avoid_x, avoid_y, clearance=6.0):
    """(image of n cosmic-ray hits in electrons, their x, y): single pixels, pairs, 2x2 blobs
    and short tracks of 300-5000 e- a pixel, each at least ``clearance`` px from a star."""
    image = np.zeros(shape, np.float32)
    tree = cKDTree(np.column_stack([avoid_x, avoid_y]))
    xs, ys = [], []
    while len(xs) < n:
        x, y = rng.integers(8, shape[1] - 8), rng.integers(8, shape[0] - 8)
        if tree.query([x, y])[0] < clearance:
            continue
        kind = len(xs) % 4
        if kind == 0:
            pixels = [(0, 0)]
        elif kind == 1:
            pixels = [(0, 0), (0, 1)]
        elif kind == 2:
            pixels = [(0, 0), (0, 1), (1, 0), (1, 1)]
        else:  # a track at a random angle
            length, angle = rng.integers(3, 7), rng.uniform(0, np.pi)
            pixels = {(int(round(t * np.sin(angle))), int(round(t * np.cos(angle)))) for t in range(length)}
        for dy, dx in pixels:
            image[y + dy, x + dx] += rng.uniform(300, 5000)
        xs.append(x)
        ys.append(y)
    return image, np.array(xs, float), np.array(ys, float)


@pytest.fixture(scope="module")
def single_exposure(tmp_path_factory):
    """An ACS/WFC-like flt exposure (electrons, 500 s): 150 stars and 150 cosmic-ray hits."""
    rng = np.random.default_rng(7)
    shape = (400, 400)
    x, y = rng.uniform(15, 385, 150), rng.uniform(15, 385, 150)
    flux = 10 ** rng.uniform(3.3, 5.0, 150)  # e-
    stars = gaussian_stars(shape, x, y, flux, FWHM / 2.3548, sky=30.0, read_noise=4.0, rng=rng)
    hits, cx, cy = cosmic_ray_hits(shape, 150, rng, x, y)
    folder = tmp_path_factory.mktemp("flt")
    path = write_frame(folder / "j8xi01abq_flt.fits", stars + hits, exptime=500.0,
                       extra_primary={"READNSEA": 4.0, "READNSEB": 4.0, "READNSEC": 4.0, "READNSED": 4.0})
    return {"path": path, "x": x, "y": y, "flux": flux, "cx": cx, "cy": cy, "hits": hits > 0}


def near(x, y, to_x, to_y, radius=1.5):
    """For each (to_x, to_y): is one of (x, y) within ``radius``?"""
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([to_x, to_y]))
    return distance < radius


def measure(path, cosmic_rays):
    params = PhotometryParameters(fwhm=FWHM, threshold=5.0)
    return catalog_for_frame(path, FrameSettings("F606W", cosmic_rays=cosmic_rays), params, system="instrumental")


def test_injected_cosmic_rays_are_masked_and_stop_being_detected_and_the_stars_stay(single_exposure):
    truth = single_exposure
    raw = measure(truth["path"], "none")
    cleaned = measure(truth["path"], "auto")  # an flt: a single exposure
    assert raw.meta["cosmic_rays"] == "none"
    assert cleaned.meta["cosmic_rays"] == "lacosmic"
    assert "flt" in cleaned.meta["cosmic_rays_reason"]
    hits_found = near(raw["x"], raw["y"], truth["cx"], truth["cy"])
    assert hits_found.sum() >= 30, "the hits DAOFIND takes for stars (its sharpness range drops single pixels)"
    assert near(cleaned["x"], cleaned["y"], truth["cx"], truth["cy"]).sum() <= 0.05 * hits_found.sum()
    # every star found without masking is found with it, at the same magnitude
    stars_raw = near(raw["x"], raw["y"], truth["x"], truth["y"])
    stars_cleaned = near(cleaned["x"], cleaned["y"], truth["x"], truth["y"])
    assert stars_cleaned.sum() >= stars_raw.sum()
    _, match = cKDTree(np.column_stack([cleaned["x"], cleaned["y"]])).query(np.column_stack([raw["x"], raw["y"]]))
    both = near(cleaned["x"], cleaned["y"], raw["x"], raw["y"]) & near(truth["x"], truth["y"], raw["x"], raw["y"])
    difference = np.asarray(cleaned["mag"])[match[both]] - np.asarray(raw["mag"])[both]
    assert np.nanmedian(np.abs(difference)) < 0.002
    # the mask holds the hits, and few of the stars' pixels
    assert 0.9 * truth["hits"].sum() <= cleaned.meta["cosmic_ray_pixels"] <= 1.6 * truth["hits"].sum()


def test_a_frame_whose_sky_was_subtracted_gets_it_back_for_lacosmic(single_exposure, tmp_path):
    """L.A.Cosmic's noise model is each pixel's photons: on the exposure less its sky of 30 e-,
    without it every noise peak passes for a hit."""
    frame = read_frame(single_exposure["path"])
    subtracted = write_frame(tmp_path / "j8xi01abq_flt.fits", frame.data - 30.0, exptime=500.0,
                             extra_primary={"READNSEA": 4.0})
    mask, decision = cosmic_rays_of_frame(read_frame(subtracted), FrameSettings("F606W"))
    assert "added back" in decision.reason
    assert 0.9 * single_exposure["hits"].sum() <= mask.sum() <= 1.6 * single_exposure["hits"].sum()
    raw, _ = cosmic_rays_of_frame(read_frame(single_exposure["path"]), FrameSettings("F606W"))
    assert (mask != raw).sum() < 0.05 * raw.sum()


@pytest.mark.parametrize("method", ["aperture", "psf"])
def test_a_star_whose_centre_is_masked_is_still_found_and_flagged(single_exposure, tmp_path, method):
    """A hot pixel (5e4 e-) on the centre of 20 stars, flagged in the DQ: the stars found without
    it are found with it where they are (all but one at most) (the masked pixel holds its neighbours' mean while stars are
    looked for, not the sky: a hole would split a star or hide it), once, flagged 2, and without
    the hot pixel's light (the PSF fit from the star's other pixels is 5 per cent high: the
    learned PSF's core). "Once" for the stars with no other star within 4 px: a closer pair is a
    blend, split or merged whether a pixel is masked or not (one of these stars, 2.3 px from a
    star of half its flux, is fitted as itself and a detection on its far side, with the hot
    pixel and without)."""
    truth = single_exposure
    frame = read_frame(truth["path"])
    chosen = np.argsort(truth["x"])[20:40]
    cx, cy = np.rint(truth["x"][chosen]).astype(int), np.rint(truth["y"][chosen]).astype(int)
    params = PhotometryParameters(fwhm=FWHM, threshold=5.0)
    tables = []
    for hot in (False, True):
        data, dq = frame.data.copy(), np.zeros(frame.shape, np.int16)
        if hot:
            data[cy, cx] += 5e4
            dq[cy, cx] = 16
        path = tmp_path / f"j8xi0{int(hot)}abq_flc.fits"
        primary = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "EXPTIME": 500.0})
        fits.HDUList([fits.PrimaryHDU(header=primary),
                      fits.ImageHDU(data, name="SCI", ver=1, header=fits.Header({"BUNIT": "ELECTRONS"})),
                      fits.ImageHDU(dq, name="DQ", ver=1)]).writeto(path)
        tables.append(catalog_for_frame(path, FrameSettings("F606W", cosmic_rays="none"), params,
                                        system="instrumental", method=method))
    distances = [np.hypot(np.asarray(t["x"])[:, None] - truth["x"][chosen],
                          np.asarray(t["y"])[:, None] - truth["y"][chosen]) for t in tables]
    found_before, found = (d.min(axis=0) < 1.0 for d in distances)
    assert found_before.sum() >= 18
    assert (found & found_before).sum() >= found_before.sum() - 1  # with holes: 4 or 5 lost
    table, d = tables[1], distances[1]
    pairs = cKDTree(np.column_stack([truth["x"], truth["y"]])).query_pairs(4.0, output_type="ndarray")
    alone = ~np.isin(chosen, pairs.ravel())
    on_hot = d[:, alone].min(axis=1) < 1.0
    assert alone.sum() >= 17
    assert on_hot.sum() == found[alone].sum()  # one detection each, not a ring of them
    assert np.all(np.asarray(table["flags"])[on_hot] & 2)
    # against the same star without the hot pixel, whose 5e4 e- would be 0.5-25 times its light:
    # a few per cent more from its other pixels (one, beside a cosmic ray the fit now leans on, 34)
    before = tables[0]
    _, same = cKDTree(np.column_stack([before["x"], before["y"]])).query(
        np.column_stack([table["x"], table["y"]])[on_hot])
    ratio = np.asarray(table["flux"])[on_hot] / np.asarray(before["flux"])[same]
    assert np.median(ratio) < 1.1 and np.all(ratio < 1.4), ratio


def test_lacosmic_in_blocks_is_one_call_on_the_whole_frame(single_exposure):
    frame = read_frame(single_exposure["path"])
    bad = np.zeros(frame.shape, bool)
    bad[100:110, 200:260] = True
    whole, _ = astroscrappy.detect_cosmics(frame.data, inmask=bad, gain=1.0, readnoise=4.0, satlevel=1e30,
                                           sigclip=LACOSMIC_SIGCLIP, sigfrac=LACOSMIC_SIGFRAC, objlim=LACOSMIC_OBJLIM,
                                           niter=4, sepmed=False, fsmode="median")
    blocks = find_cosmic_rays(frame.data, bad, 1.0, 4.0, None, block_rows=64)
    assert whole.sum() > 100
    np.testing.assert_array_equal(blocks, whole & ~bad)


def test_the_frames_cosmic_rays_work_in_electrons_whatever_its_units(single_exposure, tmp_path):
    """The same exposure in electrons and in electrons/s (drizzle's units) gives the same mask."""
    frame = read_frame(single_exposure["path"])
    rate = write_frame(tmp_path / "j8xi01abq_flt.fits", frame.data / 500.0, exptime=500.0, bunit="ELECTRONS/S",
                       extra_primary={"READNSEA": 4.0})
    electrons_mask, _ = cosmic_rays_of_frame(frame, FrameSettings("F606W"))
    rate_mask, decision = cosmic_rays_of_frame(read_frame(rate), FrameSettings("F606W"))
    assert decision.lacosmic
    assert (electrons_mask != rate_mask).sum() <= 2  # float32 rounding at the thresholds


# --- which frames need them ----------------------------------------------------------------------


def header(**cards) -> fits.Header:
    values = fits.Header()
    values.update(cards)
    return values


@pytest.mark.parametrize("mode, name, cards, extensions, dq_bits, lacosmic, because", [
    ("auto", "hlsp_hugs_hst_acs-wfc_ngc1261_f606w_v1_stack-0370s.fits", {"TELESCOP": "HST"}, ["PRIMARY"], 0,
     False, "stack"),
    ("auto", "j8xi01010_drc.fits", {"TELESCOP": "HST"}, ["PRIMARY", "SCI", "WHT", "CTX"], 0, False, "drizzled"),
    ("auto", "mosaic.fits", {"TELESCOP": "HST", "D001VER": "WDRIZZLE"}, ["PRIMARY"], 0, False, "drizzled"),
    ("auto", "j8xi01010_crj.fits", {"TELESCOP": "HST", "CRCORR": "COMPLETE"}, ["PRIMARY", "SCI"], 0, False,
     "CR-combined"),
    ("auto", "r_sum.fits", {"TELESCOP": "KPNO 2.1m", "NCOMBINE": 5}, ["PRIMARY"], 0, False, "5 exposures"),
    ("auto", "j8xi01abq_flc.fits", {"TELESCOP": "HST"}, ["PRIMARY", "SCI", "ERR", "DQ"], 8192, False, "bit 8192"),
    ("auto", "j8xi01abq_flc.fits", {"TELESCOP": "HST"}, ["PRIMARY", "SCI", "ERR", "DQ"], 0, True, "flc"),
    ("auto", "ubai2505m_f336w.fits", {"INSTRUME": "WFPC2", "FILENAME": "ubai2505m_c0f.fits"}, ["PRIMARY", "SCI"],
     0, True, "c0f"),
    ("auto", "u2x50101t.fits", {"INSTRUME": "WFPC2"}, ["PRIMARY"], 0, True, "WFPC2"),
    ("auto", "r_0042.fits", {"TELESCOP": "KPNO 2.1m"}, ["PRIMARY"], 0, True, "ground-based"),
    ("auto", "r_0042.fits", {"TELESCOP": "HST", "CRSPLIT": 1}, ["PRIMARY"], 0, True, "CRSPLIT"),
    ("auto", "demo.fits", {"TELESCOP": "HST", "ORIGIN": "clusterphot.simulate"}, ["PRIMARY", "SCI"], 0, False,
     "no sign"),
    ("lacosmic", "hlsp_x_stack-0370s.fits", {}, ["PRIMARY"], 0, True, "config"),
    ("none", "u2x50101t_c0m.fits", {"INSTRUME": "WFPC2"}, ["PRIMARY"], 0, False, "config"),
    ("auto", "j8xi01abq_drc.fits", {"TELESCOP": "HST", "NDRIZIM": 1}, ["PRIMARY", "SCI", "WHT", "CTX"], 0, True,
     "single exposure, drizzled"),
    ("auto", "iabc01xyq_flt.fits", {"INSTRUME": "WFC3", "DETECTOR": "IR"}, ["PRIMARY", "SCI", "ERR", "DQ"], 0,
     False, "up the ramp"),
    ("auto", "j8xi01abq_flc.fits", {"TELESCOP": "HST"}, ["PRIMARY", "SCI", "ERR", "DQ"], 4096 | 8192, False,
     "bit 4096 and 8192"),
])
def test_auto_finds_cosmic_rays_only_in_single_exposures(mode, name, cards, extensions, dq_bits, lacosmic, because):
    decision = cosmic_ray_decision(mode, header(**cards), [name], extensions, dq_bits)
    assert decision.lacosmic is lacosmic
    assert because in decision.reason


def test_a_frame_fetched_by_url_is_known_by_the_urls_name():
    """The workflow keeps a fetched frame as {filter}.fits: the URL's name still says it is a stack."""
    decision = cosmic_ray_decision("auto", header(TELESCOP="HST", INSTRUME="ACS"),
                                   ["F606W.fits", "hlsp_hugs_hst_acs-wfc_ngc1261_f606w_v1_stack-0370s.fits"],
                                   ["PRIMARY"])
    assert not decision.lacosmic and "stack" in decision.reason


def test_wfpc2_read_noise_follows_its_gain():
    assert read_noise(header(INSTRUME="WFPC2", ATODGAIN=15.0)) == 7.0
    assert read_noise(header(INSTRUME="WFPC2", ATODGAIN=7.0)) == 5.2
    assert read_noise(header(INSTRUME="ACS", DETECTOR="WFC", READNSEA=4.0, READNSEB=5.0)) == 4.5


def test_product_suffix_reads_hst_file_names():
    assert product_suffix("ubai2505m_c0m.fits") == "c0m"
    assert product_suffix("J8XI01ABQ_FLC.FITS") == "flc"
    assert product_suffix("idxy01010_drc.fits.gz") == "drc"
    assert product_suffix("ngc1261_f336w.fits") is None


@pytest.mark.parametrize("bit", [4096, 8192])  # found by AstroDrizzle, by the CR-SPLIT combination
def test_an_flc_whose_dq_flags_cosmic_rays_needs_no_lacosmic_unless_its_dq_bits_ignore_them(tmp_path, bit):
    data = np.full((40, 40), 50.0, np.float32)
    dq = np.zeros((40, 40), np.int16)
    dq[5, 5] = bit
    path = tmp_path / "j8xi01abq_flc.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"TELESCOP": "HST", "EXPTIME": 100.0})),
                  fits.ImageHDU(data, name="SCI", ver=1), fits.ImageHDU(dq, name="DQ", ver=1)]).writeto(path)
    _, decision = cosmic_rays_of_frame(read_frame(path), FrameSettings("F606W"))
    assert not decision.lacosmic and f"bit {bit}," in decision.reason
    _, decision = cosmic_rays_of_frame(read_frame(path, dq_bits=0), FrameSettings("F606W", dq_bits=0))
    assert decision.lacosmic


# --- the mask file --------------------------------------------------------------------------------


def test_the_mask_file_keeps_the_mask_and_says_why(single_exposure, tmp_path):
    mask = np.zeros((30, 40), bool)
    mask[3, 4] = mask[10, 11] = True
    path = tmp_path / "F606W_cosmic_rays.fits"
    write_cosmic_ray_mask(path, mask, CosmicRayDecision(True, "auto: a single exposure (an HST flt product)"),
                          "j8xi01abq_flt.fits", mask.shape)
    read, about = read_cosmic_ray_mask(path, mask.shape)
    np.testing.assert_array_equal(read, mask)
    assert about == {"cosmic_rays": "lacosmic", "cosmic_rays_reason": "auto: a single exposure (an HST flt product)",
                     "cosmic_ray_pixels": 2}
    with pytest.raises(FrameError, match="shape"):
        read_cosmic_ray_mask(path, (40, 40))
    none = tmp_path / "none.fits"
    write_cosmic_ray_mask(none, None, CosmicRayDecision(False, "auto: a stack (its file name says so)"), "x.fits",
                          (30, 40))
    assert read_cosmic_ray_mask(none, (30, 40)) == (None, {"cosmic_rays": "none", "cosmic_ray_pixels": 0,
                                                          "cosmic_rays_reason": "auto: a stack (its file name says so)"})
    assert not list(tmp_path.glob("*.part"))


def test_a_frames_cosmic_rays_join_its_product_mask(single_exposure, tmp_path):
    frame = read_frame(single_exposure["path"])
    assert frame.product_mask is None
    mask = single_exposure["hits"]
    path = tmp_path / "mask.fits"
    write_cosmic_ray_mask(path, mask, CosmicRayDecision(True, "test"), "x.fits", mask.shape)
    about = apply_cosmic_ray_mask(frame, path)
    assert about["cosmic_ray_pixels"] == mask.sum()
    np.testing.assert_array_equal(frame.product_mask, mask)
    assert frame.bad_pixels()[mask].all()


def test_painting_over_fills_masked_pixels_from_their_neighbours():
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 0.01, (60, 60)).astype(np.float32) + 1.0
    data[20:40, :] += 1.0  # a step: the fill follows its own side
    mask = np.zeros(data.shape, bool)
    mask[10, 30] = mask[30, 30:33] = True
    data[mask] = 500.0  # the hits
    assert fill_from_neighbours(data, mask, np.ones(data.shape, bool)) == 4
    assert abs(data[10, 30] - 1.0) < 0.05
    assert np.all(np.abs(data[30, 30:33] - 2.0) < 0.05)


def test_a_pixel_at_the_saturation_level_is_saturated_to_lacosmic():
    """A clipped frame's plateau is its saturation level exactly: converted to electrons as a
    block's pixels are, each plateau pixel must be at or above what astroscrappy takes for the
    level (in float64 the level came out above its own pixels in 362 of these 2000 cases)."""
    rng = np.random.default_rng(4)
    for level, gain, pedestal in zip(rng.uniform(1e3, 7e4, 2000).astype(np.float32), rng.uniform(0.5, 20.0, 2000),
                                     rng.uniform(0.0, 500.0, 2000)):
        pixel = np.float32(level) * np.float32(gain) + np.float32(pedestal)  # as find_cosmic_rays makes a block
        assert np.float32(pixel) >= np.float32(lacosmic_saturation(float(level), gain, pedestal))
    assert lacosmic_saturation(None, 2.0, 10.0) == float(np.finfo(np.float32).max)
