"""Tests of the simulated cluster frames: they are the ground truth of the other tests."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from clusterphot import simulate as sim
from clusterphot.filters import DETECTORS, HUGS_FILTERS

SMALL = dict(shape=(256, 256), n_stars=400, core_radius=30.0)


def small(seed: int = 3, filters=("F606W", "F814W"), **kwargs):
    return sim.simulate_cluster("test", seed, filters=filters, **{**SMALL, **kwargs})


def test_same_seed_is_bit_identical_and_another_seed_differs():
    a, b, c = small(7), small(7), small(8)
    for f in a:
        assert np.array_equal(a[f][0]["SCI"].data, b[f][0]["SCI"].data)
        assert a[f][1].meta == b[f][1].meta
        for name in a[f][1].colnames:
            assert np.array_equal(a[f][1][name], b[f][1][name])
        assert not np.array_equal(a[f][0]["SCI"].data, c[f][0]["SCI"].data)
        assert not np.array_equal(a[f][1]["x"], c[f][1]["x"])


def test_a_filter_frame_does_not_depend_on_the_other_filters():
    alone = small(5, filters=("F814W",))["F814W"]
    together = small(5, filters=("F275W", "F814W"))["F814W"]
    assert np.array_equal(alone[0]["SCI"].data, together[0]["SCI"].data)


def test_files_round_trip_with_hst_keywords(tmp_path):
    paths = sim.write_simulated_cluster(tmp_path, "NGC 0000", 11, filters=("F336W", "F606W"), **SMALL)
    names = ["F336W.fits", "F336W_truth.ecsv", "F606W.fits", "F606W_truth.ecsv"]
    assert sorted(p.name for p in paths) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporaries left
    frames = sim.simulate_cluster("NGC 0000", 11, filters=("F336W", "F606W"), **SMALL)
    for f, instrument, detector in [("F336W", "WFC3", "UVIS"), ("F606W", "ACS", "WFC")]:
        with fits.open(tmp_path / f"{f}.fits") as hdul:
            primary, sci = hdul[0].header, hdul["SCI"].header
            assert hdul[0].data is None
            assert primary["TELESCOP"] == "HST"
            assert (primary["INSTRUME"], primary["DETECTOR"], primary["FILTER"]) == (instrument, detector, f)
            assert primary["EXPTIME"] == sim.DEFAULT_EXPTIME[f] > 0
            assert primary["DATE-OBS"] == "2016-04-01"
            assert primary["CCDGAIN"] == DETECTORS[f"{instrument}/{detector}"].gain
            assert primary["READNSE"] == DETECTORS[f"{instrument}/{detector}"].read_noise
            assert sci["BUNIT"] == "ELECTRONS"
            assert sci["PHOTFLAM"] > 0 and sci["PHOTPLAM"] == pytest.approx(sim.HST_PIVOT_WAVELENGTH[f])
            assert "SATURATE" not in primary and "SATURATE" not in sci
            wcs = WCS(sci)
            assert wcs.has_celestial and wcs.wcs.ctype[0] == "RA---TAN"
            scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0
            assert scale == pytest.approx(0.04)
            assert hdul["SCI"].data.dtype == np.dtype(">f4")
            assert np.array_equal(hdul["SCI"].data, frames[f][0]["SCI"].data)
        truth = Table.read(tmp_path / f"{f}_truth.ecsv")
        expected = frames[f][1]
        assert truth.colnames == expected.colnames
        units = [truth[name].unit for name in ("x", "ra", "flux", "mag")]
        assert units == ["pix", "deg", "electron", "mag"]
        assert np.array_equal(truth["flux"], expected["flux"])
        assert np.array_equal(truth["phase"], expected["phase"])
        assert truth.meta["filter"] == f and truth.meta["seed"] == 11
        assert truth.meta["shift"] == expected.meta["shift"]


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Table, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        sim.write_simulated_cluster(tmp_path, "test", 1, filters=("F606W",), **SMALL)
    # The FITS was complete and stays; no ECSV and no temporary.
    assert [p.name for p in tmp_path.iterdir()] == ["F606W.fits"]


def test_noise_free_frame_conserves_flux():
    # A compact cluster well inside the border, faint enough that nothing saturates.
    frames = small(2, filters=("F814W",), noise=False, border=20, tidal_radius=60.0, exptime=20.0)
    hdul, truth = frames["F814W"]
    image = hdul["SCI"].data
    assert not truth["saturated"].any() and image.max() < DETECTORS["ACS/WFC"].full_well
    assert np.hypot(truth["x"] - 127.5, truth["y"] - 127.5).max() < 62  # all stamps on exposed pixels
    n_valid = (image.shape[0] - 40) * (image.shape[1] - 40)
    expected = truth["flux"].sum() + truth.meta["sky"] * n_valid
    assert image.sum(dtype=np.float64) == pytest.approx(expected, rel=1e-3)


def test_star_is_rendered_at_its_true_position_with_its_true_flux():
    hdul, truth = sim.simulate_cluster(
        "one",
        4,
        filters=("F606W",),
        shape=(64, 64),
        n_stars=1,
        core_radius=3.0,
        tidal_radius=10.0,
        noise=False,
        border=0,
        exptime=10.0,
    )["F606W"]
    star = hdul["SCI"].data - truth.meta["sky"]
    yy, xx = np.indices(star.shape)
    assert star.sum() == pytest.approx(truth["flux"][0], rel=1e-4)
    assert (star * xx).sum() / star.sum() == pytest.approx(truth["x"][0], abs=0.01)
    assert (star * yy).sum() / star.sum() == pytest.approx(truth["y"][0], abs=0.01)
    # The FWHM is as stated: the peak pixel of a pixel-integrated PSF is a bit below the
    # continuous Moffat's peak, but by much less than a 10 per cent change in width would give.
    alpha = sim.moffat_alpha(truth.meta["psf_fwhm"])
    moffat_peak = (sim.MOFFAT_BETA - 1) / (np.pi * alpha**2)
    assert 0.75 < star.max() / truth["flux"][0] / moffat_peak <= 1.0


def test_saturated_stars_are_clipped_at_full_well():
    hdul, truth = small(6, filters=("F814W",), distance_modulus=13.0)["F814W"]
    image, full_well = hdul["SCI"].data, DETECTORS["ACS/WFC"].full_well
    assert image.max() == np.float32(full_well)
    sat = truth[truth["saturated"] & truth["in_footprint"]]
    assert len(sat) > 0
    ix, iy = np.round(sat["x"]).astype(int), np.round(sat["y"]).astype(int)
    assert np.all(image[iy, ix] == np.float32(full_well))
    # Flat tops: a saturated giant has a plateau of clipped pixels, not a single one.
    assert (image == np.float32(full_well)).sum() > 2 * len(sat)
    # Only saturated stars are clipped: unsaturated stars' central pixels are below full well.
    ok = truth[~truth["saturated"] & truth["in_footprint"]]
    assert np.all(image[np.round(ok["y"]).astype(int), np.round(ok["x"]).astype(int)] < full_well)


def test_zero_border_is_present():
    for f, (hdul, truth) in small(9, filters=HUGS_FILTERS).items():
        image, b = hdul["SCI"].data, truth.meta["border"]
        assert all(16 <= b[side] <= 32 for side in ("left", "right", "bottom", "top")), f
        assert np.all(image[: b["bottom"]] == 0.0) and np.all(image[image.shape[0] - b["top"] :] == 0.0)
        assert np.all(image[:, : b["left"]] == 0.0) and np.all(image[:, image.shape[1] - b["right"] :] == 0.0)
        inner = image[b["bottom"] : image.shape[0] - b["top"], b["left"] : image.shape[1] - b["right"]]
        assert np.count_nonzero(inner == 0.0) == 0  # sky + noise is never exactly zero
        # Stars whose centre pixel is in the border are flagged as off the footprint.
        x, y = np.round(np.asarray(truth["x"])), np.round(np.asarray(truth["y"]))
        on_data = (x >= b["left"]) & (x < 256 - b["right"]) & (y >= b["bottom"]) & (y < 256 - b["top"])
        assert np.array_equal(on_data, truth["in_footprint"])
        assert 0 < (~on_data).sum() < len(truth)


@pytest.mark.parametrize("rotation", [0.0, 25.0])
def test_filters_are_misregistered_by_subpixel_shifts_and_wcs_is_right(rotation):
    frames = small(12, filters=HUGS_FILTERS, rotation=rotation)
    reference = frames["F606W"][1]
    shifts = {}
    for f, (hdul, truth) in frames.items():
        dx, dy = truth.meta["shift"]
        assert 0 < np.hypot(dx, dy) and max(abs(dx), abs(dy)) <= 0.7
        shifts[f] = (dx, dy)
        # All stars move together: the shift relative to F606W is the difference of the shifts.
        assert np.allclose(truth["x"] - reference["x"], dx - reference.meta["shift"][0], atol=1e-9)
        assert np.allclose(truth["y"] - reference["y"], dy - reference.meta["shift"][1], atol=1e-9)
        # The header WCS maps the true sky positions to the true pixels to within 0.3 px.
        x, y = WCS(hdul["SCI"].header).world_to_pixel_values(truth["ra"], truth["dec"])
        assert np.hypot(x - truth["x"], y - truth["y"]).max() < 0.3
        assert hdul["SCI"].header["ORIENTAT"] == rotation
    assert len(set(shifts.values())) == len(HUGS_FILTERS)


def test_cmd_has_turnoff_rgb_and_both_horizontal_branches():
    frames = sim.simulate_cluster("test", 1, filters=("F606W", "F814W"), shape=(128, 128), n_stars=3000)
    v, i = frames["F606W"][1], frames["F814W"][1]
    colour = np.asarray(v["mag"] - i["mag"])
    mag, phase = np.asarray(v["mag"]), np.asarray(v["phase"])
    ms = phase == "MS"
    turnoff = ms & (mag < np.percentile(mag[ms], 2))  # the brightest main-sequence stars
    rgb, hb = phase == "RGB", phase == "HB"
    assert np.median(mag[rgb]) < np.median(mag[turnoff]) - 1.0
    assert np.median(colour[rgb]) > np.median(colour[turnoff]) + 0.1
    assert mag[rgb].min() == pytest.approx(mag[turnoff].min() - 3.5, abs=0.5)
    # The turn-off is the bluest point of the MS, and the MS luminosity function rises faintwards.
    assert colour[turnoff].mean() < np.median(colour[ms])
    counts, _ = np.histogram(mag[ms], bins=4)
    assert np.all(np.diff(counts) > 0)
    assert hb.sum() >= 20
    assert (colour[hb] < colour[turnoff].min()).any() and (colour[hb] > colour[turnoff].max()).any()
    assert np.all(mag[hb] < mag[turnoff].min())


def test_truth_ids_are_the_same_stars_in_every_filter():
    frames = small(4, filters=HUGS_FILTERS)
    tables = [truth for _, truth in frames.values()]
    for truth in tables[1:]:
        assert np.array_equal(truth["id"], tables[0]["id"])
        assert np.array_equal(truth["ra"], tables[0]["ra"])
        assert np.array_equal(truth["phase"], tables[0]["phase"])
    assert len(np.unique(tables[0]["id"])) == SMALL["n_stars"]
    # Hot stars are brighter in the UV relative to the optical than cool ones.
    uv_minus_v = np.asarray(frames["F275W"][1]["mag"] - frames["F606W"][1]["mag"])
    teff = np.asarray(tables[0]["teff"])
    assert np.corrcoef(teff, uv_minus_v)[0, 1] < -0.8


def test_king_profile_is_centrally_concentrated_and_inside_the_frame():
    _, truth = small(5, filters=("F606W",), n_stars=2000)["F606W"]
    x0, y0 = np.asarray(truth["x"]) - truth.meta["shift"][0], np.asarray(truth["y"]) - truth.meta["shift"][1]
    assert x0.min() >= -0.5 and x0.max() < 255.5 and y0.min() >= -0.5 and y0.max() < 255.5
    r = np.hypot(x0 - 127.5, y0 - 127.5)
    uniform_fraction = np.pi * 30.0**2 / 256**2  # stars within a core radius if spread evenly
    assert (r < 30.0).mean() > 3 * uniform_fraction


def test_flux_follows_the_ab_zero_point():
    _, truth = small(1, filters=("F275W",))["F275W"]
    zp = -2.5 * np.log10(sim.HUGS_PHOTFLAM["F275W"]) - 5 * np.log10(2709.7) - 2.408
    assert truth.meta["zeropoint_ab"] == pytest.approx(zp)
    mag = zp - 2.5 * np.log10(np.asarray(truth["flux"]) / truth.meta["exptime"])
    assert np.allclose(mag, truth["mag"], atol=1e-9)


def test_default_depths_saturate_giants_and_lose_the_faintest_dwarfs():
    frames = sim.simulate_cluster("test", 2, shape=(256, 256), n_stars=1500, core_radius=40.0)
    for f, (_, truth) in frames.items():
        meta = truth.meta
        snr = sim.point_source_snr(
            np.asarray(truth["flux"]), meta["sky"], meta["read_noise"], meta["psf_fwhm"]
        )
        ms = truth["phase"] == "MS"
        assert (snr[ms] < 3).mean() > 0.05, f  # completeness must fall off on the main sequence
        if f in ("F606W", "F814W"):
            rgb = truth["phase"] == "RGB"
            brightest = np.argsort(np.asarray(truth["mag"])[rgb])[:3]
            assert truth["saturated"][rgb][brightest].all(), f
            assert (truth["saturated"] & ms).mean() < 0.05, f  # but not the bulk of the cluster


def test_cosmic_rays_are_sharp_spikes():
    clean = small(3, filters=("F606W",), noise=False)["F606W"][0]["SCI"].data
    hit = small(3, filters=("F606W",), noise=False, n_cosmic_rays=15)["F606W"][0]["SCI"].data
    changed = np.count_nonzero(hit != clean)
    assert 1 <= changed <= 45
    assert (hit - clean).max() > 100


def test_unknown_filter_is_refused():
    with pytest.raises(ValueError, match="F555W"):
        sim.simulate_cluster("test", 1, filters=("F555W",), **SMALL)


def test_crowded_frame_is_one_filter_with_the_requested_stars():
    hdul, truth = sim.simulate_crowded_frame(shape=(300, 200), n_stars=500, seed=2, filter_name="F814W")
    assert hdul["SCI"].data.shape == (300, 200) and hdul[0].header["FILTER"] == "F814W"
    assert len(truth) == 500 and truth.meta["core_radius"] == pytest.approx(10.0)


def test_the_photon_noise_limit_is_what_an_ideal_psf_fit_reaches():
    """Stars of S/N 100 on a flat sky, measured by the best fit there is (the true PSF, position
    and sky known; weights from the model, iterated): their flux scatter is the limit
    point_source_snr gives, and larger than the noise-equivalent-area formula's."""
    rng = np.random.default_rng(7)
    sky, read_noise, fwhm = 100.0, 5.0, 2.2
    psf = sim.moffat_phase_stamps(fwhm, n_phase=1)[0, 0].astype(float).ravel()
    nea = 1.0 / np.sum(psf**2)
    flux = 15000.0
    expected = flux * psf + sky
    images = rng.poisson(expected, size=(8000, psf.size)) + read_noise * rng.standard_normal((8000, psf.size))
    signal = images - sky
    fitted = signal @ psf / np.sum(psf**2)
    for _ in range(5):  # maximum likelihood: weights from the model of each star
        weight = 1.0 / (np.maximum(fitted, 0.0)[:, None] * psf + sky + read_noise**2)
        fitted = np.sum(weight * psf * signal, axis=1) / np.sum(weight * psf**2, axis=1)
    scatter = np.std(fitted / flux)
    limit = 1.0 / sim.point_source_snr(flux, sky, read_noise, fwhm)
    nea_limit = np.sqrt(flux + nea * (sky + read_noise**2)) / flux
    assert 100 < 1 / limit < 110
    assert scatter / limit == pytest.approx(1.0, abs=0.03)
    assert scatter / nea_limit > 1.06


def test_a_stars_neighbour_flux_is_the_other_stars_within_the_radius():
    x, y, flux = np.array([0.0, 3.0, 20.0, 0.0]), np.array([0.0, 0.0, 0.0, 4.9]), np.array([1.0, 10.0, 100.0, 1000.0])
    np.testing.assert_array_equal(sim.neighbour_flux(x, y, flux, 5.0), [1010.0, 1.0, 0.0, 1.0])
