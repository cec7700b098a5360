"""Bad and unusual input through the workflow: one message naming the file and no output for a
bad frame; valid but unusual frames measured right; outputs written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from clusterphot.composite import write_png
from clusterphot.outputs import write_table, write_yaml

from .synthetic import gaussian_stars, grid_of_stars, write_frame
from .helpers import snakemake

pytestmark = pytest.mark.workflow
SHAPE = (160, 160)
EXPTIME = 100.0


def star_field() -> np.ndarray:
    """Electrons over EXPTIME: isolated stars on a sky, with noise."""
    rng = np.random.default_rng(11)
    x, y = grid_of_stars(SHAPE, spacing=25, margin=18, rng=rng)
    return gaussian_stars(SHAPE, x, y, rng.uniform(3e4, 2e5, x.size), sigma=1.2, sky=30.0, read_noise=4.0, rng=rng)


def a_wcs() -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [48.07, -55.22]
    wcs.wcs.crpix = [80, 80]
    wcs.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    return wcs.to_header()


# --- bad frames: each stops its job with one line naming the file ----------------------------


def write_bad_frames(folder) -> dict[str, tuple[str, str]]:
    """cluster -> (frame path, the words its error must contain)."""
    folder.mkdir()
    data = star_field()
    bad = {}

    path = write_frame(folder / "whole.fits", data)
    truncated = folder / "truncated.fits"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    bad["truncated"] = (truncated, "truncated or corrupt FITS data")

    (folder / "notfits.fits").write_text("SIMPLE? no: a text file someone named .fits\n")
    bad["notfits"] = (folder / "notfits.fits", "not a readable FITS file")

    table = fits.BinTableHDU(Table({"x": [1.0, 2.0]}))
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table.fits")
    bad["noimage"] = (folder / "table.fits", "no image data in any HDU")

    fits.PrimaryHDU(np.stack([data, data])).writeto(folder / "cube.fits")
    bad["cube"] = (folder / "cube.fits", "3-D cube of shape (2, 160, 160); set 'plane' (0..1)")

    bad["allnan"] = (write_frame(folder / "nan.fits", np.full(SHAPE, np.nan, np.float32)),
                     "no valid pixels (all NaN or all zero)")
    bad["allzero"] = (write_frame(folder / "zero.fits", np.zeros(SHAPE, np.float32)),
                      "no valid pixels (all NaN or all zero)")
    bad["noexptime"] = (write_frame(folder / "noexp.fits", data, exptime=None),
                        "no EXPTIME keyword; set 'exptime' for this filter in the config")
    bad["negexptime"] = (write_frame(folder / "negexp.fits", data, exptime=-5.0), "EXPTIME is -5.0; it must be positive")
    bad["nophotflam"] = (write_frame(folder / "nophotflam.fits", data, photflam=None),
                         "no AB zero point for F606W: the header has no positive PHOTFLAM; set 'zeropoint'")
    return bad


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    bad = write_bad_frames(root / "frames")
    config = {"clusters": {name: {"filters": {"F606W": str(path)}} for name, (path, _) in bad.items()}}
    result = snakemake(root / "run", config)
    return root / "run", bad, result


def test_every_bad_frame_stops_with_one_line_naming_it(bad_run):
    run, bad, result = bad_run
    assert result.returncode != 0
    messages = [line for line in result.stderr.splitlines() if line.startswith("clusterphot: error: ")]
    for cluster, (path, words) in bad.items():
        mine = [line for line in messages if str(path) in line]
        assert len(mine) == 1, (cluster, mine)
        assert words in mine[0], (cluster, mine[0])
        log = (run / f"logs/photometry/{cluster}/F606W.log").read_text()
        assert words in log and "Traceback" not in log
    assert "Traceback" not in result.stderr


def test_bad_frames_leave_no_output(bad_run):
    run, bad, _ = bad_run
    for cluster in bad:
        for path in (f"results/catalogs/{cluster}/F606W.ecsv", f"results/summary/{cluster}.tsv",
                     f"results/plots/{cluster}/lf_F606W.png", f"results/rgb/{cluster}_lupton.png",
                     f"results/rgb/{cluster}_weighted.png"):
            assert not (run / path).exists(), path
    # nor temporary files of the writers (".name.tmpPID")
    assert not list(run.rglob(".*.tmp*"))


@pytest.mark.parametrize(("config", "expected"), [
    ({"clusters": {"../up": {"filters": {"F606W": "x.fits"}}}}, "config key 'clusters': '../up' does not match"),
    ({"clusters": {"ngc1": {"filters": {"F606W/x": "x.fits"}}}}, "config key 'clusters.ngc1.filters': 'F606W/x'"),
    ({"clusters": {"ngc1": {"filters": {"F606W-F814W": "x.fits"}}}}, "'F606W-F814W' does not match"),
    ({"clusters": {"ngc1": {"filters": {"F606W": {"image": "x.fits", "exptime": 0}}}}},
     "config key 'clusters.ngc1.filters.F606W.exptime': 0 is less than or equal to the minimum of 0"),
    ({"magnitude_system": "Johnson"}, "config key 'magnitude_system': 'Johnson' is not one of"),
])
def test_names_that_would_break_a_path_and_bad_values_are_config_errors(tmp_path, config, expected):
    result = snakemake(tmp_path, config)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


# --- valid but unusual frames: measured, with the same magnitudes -----------------------------


def write_unusual_frames(folder) -> dict[str, dict]:
    """cluster -> its F606W config entry; every frame holds the same stars."""
    folder.mkdir()
    electrons = star_field()
    header = a_wcs()
    frames = {}
    frames["electrons"] = write_frame(folder / "electrons.fits", electrons, extra_sci=header)
    frames["rate"] = write_frame(folder / "rate.fits", electrons / EXPTIME, bunit="ELECTRONS/S", extra_sci=header)
    # COUNTS with a gain of 2: half the numbers, and PHOTFLAM per count twice as large
    frames["counts"] = write_frame(folder / "counts.fits", electrons / 2, bunit="COUNTS", photflam=2 * 7.8774e-20,
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
    entries = {name: str(path) for name, path in frames.items()}
    entries["cube"] = {"image": str(folder / "cube.fits"), "plane": 1}
    return entries


@pytest.fixture(scope="module")
def unusual_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("unusual")
    entries = write_unusual_frames(root / "frames")
    config = {"clusters": {name: {"filters": {"F606W": entry}} for name, entry in entries.items()}}
    targets = [f"results/catalogs/{name}/F606W.ecsv" for name in entries]
    result = snakemake(root / "run", config, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: Table.read(root / "run" / target) for name, target in zip(entries, targets)}


def test_unusual_frames_give_the_same_calibrated_magnitudes(unusual_run):
    reference = unusual_run["electrons"]
    good = reference["flags"] == 0
    tree = cKDTree(np.column_stack([reference["x"], reference["y"]])[good])
    assert good.sum() >= 20
    for name, table in unusual_run.items():
        assert table.meta["magnitude_system"] == "AB", name
        distance, index = tree.query(np.column_stack([table["x"], table["y"]]), distance_upper_bound=0.2)
        matched = np.isfinite(distance)
        assert matched.sum() >= 0.8 * good.sum(), name
        difference = np.asarray(table["mag"])[matched] - np.asarray(reference["mag"])[good][index[matched]]
        # the integer frame is rounded to whole electrons: a little noise, no offset
        assert abs(np.nanmedian(difference)) < 0.003, (name, np.nanmedian(difference))


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
