"""Per-filter summary: numbers equal numpy's on the catalogue; the TSV is written atomically."""

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from clusterphot.summary import SUMMARY_COLUMNS, summarize_catalogs, write_summary_tsv


def catalogue(n=200, seed=0, n_nan=15, zeropoint=26.4943, apcorr=-0.1234):
    """A catalogue like catalog_for_frame's: NaN magnitudes and several flag values."""
    rng = np.random.default_rng(seed)
    table = Table()
    table["id"] = np.arange(1, n + 1)
    mag = rng.normal(22.0, 1.3, n)
    mag[rng.choice(n, size=min(n_nan, n), replace=False)] = np.nan
    table["mag"] = mag
    table["mag"].unit = u.ABmag
    table["flags"] = rng.choice([0, 0, 0, 1, 2, 4, 16, 18], size=n).astype(np.int32)
    table.meta.update({
        "filter": "F606W",
        "magnitude_system": "AB",
        "zeropoint": {"value": zeropoint, "system": "AB", "source": "PHOTFLAM, PHOTPLAM (header)"},
        "aperture_correction": {"factor": 10 ** (-0.4 * apcorr), "mag": apcorr, "measured": True},
    })
    return table


def test_numbers_match_numpy():
    table = catalogue()
    row = summarize_catalogs({"F606W": table})[0]
    mag = np.asarray(table["mag"])
    flags = np.asarray(table["flags"])
    assert row["n_stars"] == len(table)
    assert row["n_with_mag"] == np.isfinite(mag).sum() == len(table) - 15
    assert row["n_clean"] == (np.isfinite(mag) & (flags == 0)).sum()
    assert row["n_clean"] < row["n_with_mag"]  # the flags really removed stars
    assert row["mag_min"] == pytest.approx(np.nanmin(mag))
    assert row["mag_max"] == pytest.approx(np.nanmax(mag))
    assert row["mag_mean"] == pytest.approx(np.nanmean(mag))
    assert row["mag_std"] == pytest.approx(np.nanstd(mag))
    assert row["zeropoint"] == pytest.approx(26.4943)
    assert row["zeropoint_system"] == "AB"
    assert row["zeropoint_source"] == "PHOTFLAM, PHOTPLAM (header)"
    assert row["aperture_correction_mag"] == pytest.approx(-0.1234)


def test_one_row_per_filter_in_order():
    catalogs = {"F814W": catalogue(50, seed=1), "F435W": catalogue(80, seed=2), "F606W": catalogue(30, seed=3)}
    summary = summarize_catalogs(catalogs)
    assert summary.colnames == list(SUMMARY_COLUMNS)
    assert list(summary["filter"]) == ["F814W", "F435W", "F606W"]
    assert list(summary["n_stars"]) == [50, 80, 30]


def test_flagged_stars_are_not_clean():
    table = catalogue(n=6, n_nan=0)
    table["mag"] = [20.0, 21.0, np.nan, 22.0, 23.0, 24.0]
    table["flags"] = [0, 2, 0, 0, 16, 0]
    row = summarize_catalogs({"F606W": table})[0]
    assert (row["n_stars"], row["n_with_mag"], row["n_clean"]) == (6, 5, 3)


def test_masked_magnitudes_count_as_missing():
    table = catalogue(n=4, n_nan=0)
    table["mag"] = MaskedColumn([20.0, 21.0, 22.0, 23.0], mask=[False, True, False, False])
    row = summarize_catalogs({"F606W": table})[0]
    assert row["n_with_mag"] == 3
    assert row["mag_mean"] == pytest.approx(np.mean([20.0, 22.0, 23.0]))


@pytest.mark.parametrize("mags", [[], [np.nan, np.nan]])
def test_no_magnitudes_gives_nan_without_warnings(mags):
    table = catalogue(n=len(mags), n_nan=0)
    table["mag"] = np.asarray(mags, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = summarize_catalogs({"F606W": table})[0]
    assert (row["n_stars"], row["n_with_mag"], row["n_clean"]) == (len(mags), 0, 0)
    for name in ("mag_min", "mag_max", "mag_mean", "mag_std"):
        assert math.isnan(row[name])


def test_missing_metadata():
    table = catalogue(n=10)
    table.meta.clear()
    row = summarize_catalogs({"F606W": table})[0]
    assert math.isnan(row["zeropoint"]) and math.isnan(row["aperture_correction_mag"])
    assert row["zeropoint_system"] == "" and row["zeropoint_source"] == ""


def test_no_correction_is_zero_not_minus_zero():
    table = catalogue(n=10, apcorr=-0.0)
    assert str(summarize_catalogs({"F606W": table})["aperture_correction_mag"][0]) == "0.0"


def test_no_catalogues():
    summary = summarize_catalogs({})
    assert len(summary) == 0 and summary.colnames == list(SUMMARY_COLUMNS)


# --- TSV -----------------------------------------------------------------------------------------


def test_tsv_round_trip(tmp_path):
    summary = summarize_catalogs({"F606W": catalogue(seed=1), "F814W": catalogue(n=0, n_nan=0)})
    path = tmp_path / "summary.tsv"
    write_summary_tsv(summary, path)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(SUMMARY_COLUMNS)
    assert len(lines) == 3
    first = dict(zip(SUMMARY_COLUMNS, lines[1].split("\t")))
    assert first["n_stars"] == "200"
    assert first["mag_mean"] == f"{summary['mag_mean'][0]:.4f}"
    assert first["zeropoint_source"] == "PHOTFLAM, PHOTPLAM (header)"
    empty = dict(zip(SUMMARY_COLUMNS, lines[2].split("\t")))
    assert empty["n_stars"] == "0" and empty["mag_min"] == "nan"
    back = Table.read(path, format="ascii.tab")
    assert back["n_clean"][0] == summary["n_clean"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.tsv"]


def test_tsv_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "summary.tsv"
    path.write_text("previous\n")

    def half_write(self, target, **kwargs):
        with open(target, "w") as handle:
            handle.write("filter\tn_st")
        raise OSError("disk full")

    monkeypatch.setattr(Table, "write", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_summary_tsv(summarize_catalogs({"F606W": catalogue()}), path)
    assert path.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.tsv"]


def test_completeness_limits_come_from_the_curves_and_are_nan_without_one():
    curve = Table({"zone": [0]}, meta={"m50": 25.31, "m90": 24.02})
    summary = summarize_catalogs({"F606W": catalogue(), "F814W": catalogue(seed=1)}, {"F606W": curve})
    assert summary["m50"][0] == pytest.approx(25.31) and summary["m90"][0] == pytest.approx(24.02)
    assert math.isnan(summary["m50"][1]) and math.isnan(summary["m90"][1])
    assert summary["m50"].unit == u.mag
