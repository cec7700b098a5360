"""Bad and unusual input through the workflow: one message naming the file and no output for a
bad frame; valid but unusual frames measured right; outputs written atomically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from clusterphot import paths
from clusterphot.composite import write_png
from clusterphot.outputs import write_table, write_yaml

from .helpers import SPARSE, assert_same_magnitudes, measure_f606w_frames, snakemake, star_field, tan_wcs_header
from .synthetic import write_frame

pytestmark = pytest.mark.workflow
SHAPE = (160, 160)
EXPTIME = 100.0


# --- bad frames: each stops its job with one line naming the file; frames that can be measured
# but look wrong are measured, with a warning in their log ------------------------------------


def write_bad_frames(folder) -> tuple[dict, dict, dict]:
    """The clusters' config entries, and for the frames that cannot be measured and for those
    that can but look wrong: cluster -> (filter, frame path, the words its error or warning holds)."""
    folder.mkdir()
    data = star_field()
    entries, errors, warned = {}, {}, {}

    def bad(cluster, path, words, **options):
        entries[cluster] = {"filters": {"F606W": {"image": str(path), **options} if options else str(path)}}
        errors[cluster] = ("F606W", path, words)

    path = write_frame(folder / "whole.fits", data)
    truncated = folder / "truncated.fits"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    bad("truncated", truncated, "truncated or corrupt FITS data")

    (folder / "notfits.fits").write_text("SIMPLE? no: a text file someone named .fits\n")
    bad("notfits", folder / "notfits.fits", "not a readable FITS file")

    table = fits.BinTableHDU(Table({"x": [1.0, 2.0]}))
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table.fits")
    bad("noimage", folder / "table.fits", "no image data in any HDU")

    fits.PrimaryHDU(np.stack([data, data])).writeto(folder / "cube.fits")
    bad("cube", folder / "cube.fits", "3-D cube of shape (2, 160, 160); set 'plane' (0..1)")
    bad("planeout", folder / "cube.fits",
        "plane 5 does not exist: the cube has 2 planes (0..1); set 'plane' for this filter in the config", plane=5)

    bad("allnan", write_frame(folder / "nan.fits", np.full(SHAPE, np.nan, np.float32)),
        "no valid pixels (all NaN or all zero)")
    bad("allzero", write_frame(folder / "zero.fits", np.zeros(SHAPE, np.float32)),
        "no valid pixels (all NaN or all zero)")
    bad("thin", write_frame(folder / "thin.fits", data[80:81, :].copy()),  # one row of a frame
        "image is 1 x 160 pixels (rows x columns); a frame must be at least 16 pixels along each axis")
    bad("noexptime", write_frame(folder / "noexp.fits", data, exptime=None),
        "no EXPTIME keyword; set 'exptime' for this filter in the config")
    bad("negexptime", write_frame(folder / "negexp.fits", data, exptime=-5.0), "EXPTIME is -5.0; it must be positive")
    bad("nophotflam", write_frame(folder / "nophotflam.fits", data, photflam=None),
        "no AB zero point for F606W: the header has no positive PHOTFLAM, and the ACS zero-point service did not "
        "answer")

    good = write_frame(folder / "good.fits", data, extra_sci=tan_wcs_header())
    bad("offregion", good, "photometry region [500, 600, 500, 600] (x0, x1, y0, y1) does not overlap the frame "
                           "of 160 x 160 pixels")
    entries["offregion"]["photometry"] = {"region": [500, 600, 500, 600]}
    holes = data.copy()
    holes[:, :80] = np.nan  # no data on the left half
    bad("emptyregion", write_frame(folder / "holes.fits", holes), "no valid pixels to estimate the sky")
    entries["emptyregion"]["photometry"] = {"region": [0, 60, 0, 160]}

    def looks_wrong(cluster, filter_name, path, words, **options):
        entries[cluster] = {"filters": {filter_name: {"image": str(path), **options} if options else str(path)}}
        warned[cluster] = (filter_name, path, words)

    # the header says F606W (write_frame's FILTER1)
    looks_wrong("otherfilter", "F814W", good, "the header says FILTER1='F606W' but the config calls this frame F814W")
    looks_wrong("longexposure", "F606W", good, "exposure time 1e+30 s (the config's 'exptime')", exptime=1.0e30)
    singular = write_frame(folder / "singular.fits", data, extra_sci=tan_wcs_header(CD1_1=0.0, CD2_2=0.0))
    looks_wrong("singularwcs", "F606W", singular, "the WCS cannot be used (SingularMatrixError")
    unknown = write_frame(folder / "unknown.fits", data, extra_sci=tan_wcs_header(CTYPE1="RA---XXX", CTYPE2="DEC--XXX"))
    looks_wrong("unknownprojection", "F606W", unknown, "Unrecognized projection code")
    return entries, errors, warned


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    entries, errors, warned = write_bad_frames(root / "frames")
    # the frame without PHOTFLAM asks the ACS zero-point service: one that never answers, on or
    # off line (port 9 of this machine)
    config = {"clusters": entries, "zeropoints": {"service_url": "http://127.0.0.1:9/none"}, **SPARSE}
    result = snakemake(root / "run", config)
    return root / "run", errors, warned, result


def test_every_bad_frame_stops_with_one_line_naming_it(bad_run):
    run, errors, _, result = bad_run
    assert result.returncode != 0  # keep-going: the other jobs ran, the run failed
    # each failed job says so as it stops (jobs run side by side: a line may share the terminal
    # with Snakemake's own output, so it is looked for anywhere in a line)
    assert result.stderr.count("clusterphot: error: ") == len(errors)
    # and the run ends with one line per failed job, its log and what went wrong
    lines = result.stderr.splitlines()
    failed = [k for k, line in enumerate(lines) if line.startswith("clusterphot: failed: ")]
    assert len(failed) == len(errors), lines[-40:]
    assert failed == list(range(failed[0], failed[0] + len(failed)))  # together, after the jobs' output
    assert not any(line.startswith(("[", "Finished", "Error in rule")) for line in lines[failed[-1]:])
    for cluster, (filter_name, path, words) in errors.items():
        # the first job to read the frame stops: its cosmic rays' (a frame it can read: its photometry)
        logs = [f"logs/{rule}/{cluster}/{filter_name}.log" for rule in ("cosmic_rays", "photometry")]
        mine = [lines[k] for k in failed if any(lines[k].startswith(f"clusterphot: failed: {log}: {path}: ")
                                                for log in logs) and words in lines[k]]
        assert len(mine) == 1, (cluster, [lines[k] for k in failed])
        log = "".join((run / log).read_text() for log in logs if (run / log).exists())
        assert words in log and "Traceback" not in log, (cluster, log)
    assert "Traceback" not in result.stderr


def test_a_quiet_run_still_ends_with_one_line_per_failed_job(bad_run):
    """Snakemake's ``-q`` leaves the failed jobs out of its own log: the summary finds them in
    the job logs the run wrote."""
    run, errors, _, _ = bad_run
    result = snakemake(run, yaml.safe_load((run / "test-config.yaml").read_text()), "-q")
    assert result.returncode != 0
    failed = [line for line in result.stderr.splitlines() if line.startswith("clusterphot: failed: ")]
    assert len(failed) == len(errors), result.stderr[-3000:]
    for cluster, (filter_name, path, words) in errors.items():
        assert sum(f"/{cluster}/{filter_name}.log: {path}: " in line and words in line for line in failed) == 1


def test_bad_frames_leave_no_output(bad_run):
    run, errors, _, _ = bad_run
    for cluster, (filter_name, _, _) in errors.items():
        for pattern in (paths.CATALOG, paths.SUMMARY, paths.LUMINOSITY_FUNCTION, paths.LUPTON_RGB, paths.WEIGHTED_RGB):
            path = pattern.format(cluster=cluster, filter=filter_name)
            assert not (run / path).exists(), path
    # nor temporary files of the writers (".name.tmpPID")
    assert not list(run.rglob(".*.tmp*"))


def test_a_region_off_the_frame_names_the_config_key(bad_run):
    run, *_ = bad_run
    log = (run / "logs/photometry/offregion/F606W.log").read_text()
    assert "set 'photometry.region'" in log
    log = (run / "logs/photometry/emptyregion/F606W.log").read_text()
    assert "'photometry.region' is [0, 60, 0, 160]" in log


def test_a_frame_that_looks_wrong_is_measured_with_a_warning_in_its_log(bad_run):
    run, _, warned, _ = bad_run
    for cluster, (filter_name, path, words) in warned.items():
        table = Table.read(run / paths.CATALOG.format(cluster=cluster, filter=filter_name))
        assert len(table) > 20, cluster
        log = (run / f"logs/photometry/{cluster}/{filter_name}.log").read_text()
        warnings = [line for line in log.splitlines() if " WARNING " in line and f"{path}: " in line]
        assert any(words in line for line in warnings), (cluster, log)
        assert "Traceback" not in log and " ERROR " not in log, (cluster, log)


def test_an_absurd_exposure_time_also_warns_about_the_median_magnitude(bad_run):
    run, *_ = bad_run
    table = Table.read(run / paths.CATALOG.format(cluster="longexposure", filter="F606W"))
    assert np.nanmedian(table["mag"]) > 80
    log = (run / "logs/photometry/longexposure/F606W.log").read_text()
    assert "magnitudes will be off" in log
    [median] = [line for line in log.splitlines() if "median magnitude" in line]
    assert " WARNING " in median and "outside 0..40" in median and "exposure time (1e+30 s)" in median


def test_a_broken_wcs_gives_nan_sky_positions(bad_run):
    run, *_ = bad_run
    for cluster in ("singularwcs", "unknownprojection"):
        table = Table.read(run / paths.CATALOG.format(cluster=cluster, filter="F606W"))
        assert np.isnan(np.asarray(table["ra"])).all() and table.meta["wcs"] is None
        log = (run / f"logs/photometry/{cluster}/F606W.log").read_text()
        assert "ra and dec will be NaN" in log
    # the same frame with a good WCS (measured as F814W) has them, and its log has no WCS warning
    table = Table.read(run / paths.CATALOG.format(cluster="otherfilter", filter="F814W"))
    assert np.isfinite(np.asarray(table["ra"])).all()
    assert "WCS" not in (run / "logs/photometry/otherfilter/F814W.log").read_text()


@pytest.mark.parametrize(("config", "expected"), [
    ({"clusters": {"../up": {"filters": {"F606W": "x.fits"}}}}, "config key 'clusters': '../up' does not match"),
    ({"clusters": {"ngc1": {"filters": {"F606W/x": "x.fits"}}}}, "config key 'clusters.ngc1.filters': 'F606W/x'"),
    ({"clusters": {"ngc1": {"filters": {"F606W-F814W": "x.fits"}}}},
     "config key 'clusters.ngc1.filters': 'F606W-F814W' does not match"),
    ({"clusters": {"ngc1": {"filters": {"F606W": {"image": "x.fits", "exptime": 0}}}}},
     "config key 'clusters.ngc1.filters.F606W.exptime': 0 is less than or equal to the minimum of 0"),
    ({"magnitude_system": "Johnson"}, "config key 'magnitude_system': 'Johnson' is not one of"),
    # what the schema cannot say
    ({"clusters": {"c": {"filters": {"F606W": "a.fits", "merged": "b.fits"}}}},
     "config key 'clusters.c.filters.merged': 'merged' cannot name a filter"),
    ({"clusters": {"c": {"filters": {"F606W": {"image": "a.fits", "exptime": math.nan}}}}},
     "config key 'clusters.c.filters.F606W.exptime': nan is not a finite number"),
    ({"clusters": {"c": {"filters": {"F606W": "a.fits"}}}, "photometry": {"region": [100, 10, 0, 50]}},
     "config key 'photometry.region': [100, 10, 0, 50] holds no pixels"),
    ({"clusters": {"c": {"filters": {"F606W": "a.fits", "F814W": "b.fits"}}},
      "catalogs": {"colour_pairs": [["F336W", "F814W"]]}},
     "config key 'catalogs.colour_pairs.0': no cluster has filter F336W"),
    ({"demo": {"filters": ["F555W", "F814W"]}}, "config key 'demo.filters.0': the demo simulates"),
])
def test_names_that_would_break_a_path_and_bad_values_are_config_errors(tmp_path, config, expected):
    result = snakemake(tmp_path, config)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("clusterphot: ")]
    assert len(lines) == 1 and lines[0].startswith(f"clusterphot: {expected}"), result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


# --- valid but unusual frames: measured, with the same magnitudes -----------------------------


def write_unusual_frames(folder) -> dict[str, dict]:
    """cluster -> its F606W config entry; every frame holds the same stars."""
    folder.mkdir()
    electrons = star_field()
    header = tan_wcs_header()
    frames = {}
    frames["electrons"] = write_frame(folder / "electrons.fits", electrons, extra_sci=header)
    frames["rate"] = write_frame(folder / "rate.fits", electrons / EXPTIME, bunit="ELECTRONS/S", extra_sci=header)
    # ACS in COUNTS with a gain of 2: half the numbers, PHOTFLAM per electron as ACS writes it
    frames["counts"] = write_frame(folder / "counts.fits", electrons / 2, bunit="COUNTS",
                                   extra_sci={**header, "CCDGAIN": 2.0})
    frames["bigendian"] = write_frame(folder / "bigendian.fits", electrons.astype(">f4"), extra_sci=header)

    holes = electrons.copy()
    holes[60:70, 0:40] = np.nan  # a NaN hole, as left by a bad column or a cosmic-ray mask
    frames["nanholes"] = write_frame(folder / "holes.fits", holes, extra_sci=header)

    frames["nowcs"] = write_frame(folder / "nowcs.fits", electrons)

    # unsigned 16-bit integers stored the FITS way (int16 with BZERO = 32768), in the primary
    # HDU with every keyword there too
    primary = fits.PrimaryHDU(np.rint(electrons).astype(np.int32))
    primary.scale("int16", bscale=1.0, bzero=32768.0)
    primary.header.update({"EXPTIME": EXPTIME, "BUNIT": "ELECTRONS", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9,
                           **header})
    primary.writeto(folder / "int16.fits")
    frames["int16primary"] = folder / "int16.fits"

    fits.PrimaryHDU(np.stack([np.zeros(SHAPE, np.float32), electrons])).writeto(folder / "cube.fits")
    with fits.open(folder / "cube.fits", mode="update") as hdul:
        hdul[0].header.update({"EXPTIME": EXPTIME, "BUNIT": "ELECTRONS", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9})
    # an flc file as MAST gives it: per chip SCI, ERR and DQ (observation keywords in the
    # primary); the stars on the second chip, with cosmic-ray hits its DQ flags (8192) and a
    # hot pixel (16); the first chip blank sky
    rng = np.random.default_rng(12)
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "FILTER1": "F606W",
                           "DATE-OBS": "2016-04-01", "EXPTIME": EXPTIME})
    hit = electrons.copy()
    dq = np.zeros(SHAPE, np.int16)
    rows, columns = rng.integers(0, SHAPE[0] - 1, 30), rng.integers(0, SHAPE[1] - 1, 30)
    for dy, dx, value in ((0, 0, 4000.0), (0, 1, 2500.0), (1, 0, 1500.0), (1, 1, 800.0)):  # 2x2 px each
        hit[rows + dy, columns + dx] += value
        dq[rows + dy, columns + dx] = 8192
    dq[5, 5] = 16
    chips = []
    for version, (image, flags) in enumerate(((rng.normal(40.0, 5.0, SHAPE).astype(np.float32), np.zeros_like(dq)),
                                              (hit, dq)), start=1):
        sci = fits.ImageHDU(image, name="SCI", ver=version)
        sci.header.update({"BUNIT": "ELECTRONS", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9, **header})
        chips += [sci, fits.ImageHDU(np.sqrt(np.abs(image)), name="ERR", ver=version),
                  fits.ImageHDU(flags, name="DQ", ver=version)]
    fits.HDUList([primary, *chips]).writeto(folder / "j_flc.fits")
    # a drizzled product: SCI in electrons/s, WHT (0 on a band no exposure covered, SCI 0 there), CTX
    rate = (electrons / EXPTIME).astype(np.float32)
    weight = np.full(SHAPE, EXPTIME, np.float32)
    weight[:, -12:] = 0.0
    rate[:, -12:] = 0.0
    sci = fits.ImageHDU(rate, name="SCI")
    sci.header.update({"BUNIT": "ELECTRONS/S", "PHOTFLAM": 7.8774e-20, "PHOTPLAM": 5921.9, **header})
    fits.HDUList([primary.copy(), sci, fits.ImageHDU(weight, name="WHT"),
                  fits.ImageHDU(np.ones(SHAPE, np.int32), name="CTX")]).writeto(folder / "j_drc.fits")
    frames["drc"] = folder / "j_drc.fits"

    entries = {name: str(path) for name, path in frames.items()}
    entries["cube"] = {"image": str(folder / "cube.fits"), "plane": 1}
    entries["flcchip2"] = {"image": str(folder / "j_flc.fits"), "hdu": ["SCI", 2]}
    return entries


@pytest.fixture(scope="module")
def unusual_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("unusual")
    return measure_f606w_frames(root / "run", write_unusual_frames(root / "frames"))


def test_unusual_frames_give_the_same_calibrated_magnitudes(unusual_run):
    # (the integer frame is rounded to whole electrons: a little noise, no offset)
    assert all(table.meta["magnitude_system"] == "AB" for table in unusual_run.values())
    assert_same_magnitudes(unusual_run, "electrons", 0.8)


def test_an_flc_chips_cosmic_rays_flagged_in_its_dq_are_not_stars(unusual_run):
    """The flc's second chip, read by [SCI, 2]: its 30 cosmic-ray hits, flagged in its DQ, are
    not in the catalogue (the test above: its stars have the reference's magnitudes)."""
    flc, reference = unusual_run["flcchip2"], unusual_run["electrons"]
    assert flc.meta["hdu"] == 4 and len(flc) <= len(reference)
    assert unusual_run["drc"].meta["image_unit"] == "electron / s"


def test_units_are_read_from_bunit(unusual_run):
    assert unusual_run["electrons"].meta["image_unit"] == "electron"
    assert unusual_run["rate"].meta["image_unit"] == "electron / s"
    assert unusual_run["counts"].meta["gain"] == 2.0
    assert str(unusual_run["rate"]["flux"].unit) == "electron / s"


def test_wcs_gives_sky_positions_and_its_absence_gives_nan(unusual_run):
    assert np.isfinite(np.asarray(unusual_run["electrons"]["ra"])).all()
    assert np.isnan(np.asarray(unusual_run["nowcs"]["ra"])).all()
    assert unusual_run["nowcs"].meta["wcs"] is None


def test_nan_hole_flags_the_stars_it_touches(unusual_run):
    table = unusual_run["nanholes"]
    near_hole = (np.asarray(table["y"]) > 55) & (np.asarray(table["y"]) < 75) & (np.asarray(table["x"]) < 45)
    assert near_hole.any()
    assert (np.asarray(table["flags"])[near_hole] & 2).all()


# --- atomic writes ------------------------------------------------------------------------------


def broken_table() -> Table:
    return Table({"a": [1.0, 2.0], "b": np.array([object(), object()], dtype=object)})


@pytest.mark.parametrize(("write", "good", "bad"), [
    (write_table, Table({"a": [1.0, 2.0]}), broken_table()),
    (write_yaml, {"a": 1}, {"a": object()}),
    (write_png, np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.complex64)),
])
def test_a_failed_write_leaves_the_previous_file_and_no_partial_one(tmp_path, write, good, bad):
    path = tmp_path / ("out.png" if write is write_png else "out.txt")
    write(good, path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # whatever the writer raises, the file must not change
        write(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
