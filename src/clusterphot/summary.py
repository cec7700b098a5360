"""One line per filter: how many stars, how many usable, their magnitude range, and the
calibration that produced them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from .catalog import float_column
from .outputs import atomic_output


SUMMARY_COLUMNS = ("filter", "n_stars", "n_with_mag", "n_clean", "mag_min", "mag_max", "mag_mean",
                   "mag_std", "zeropoint", "zeropoint_system", "zeropoint_source", "aperture_correction_mag",
                   "m50", "m90")
MAG_COLUMNS = ("mag_min", "mag_max", "mag_mean", "mag_std", "zeropoint", "aperture_correction_mag", "m50", "m90")


def zeropoint_of(meta: Mapping) -> tuple[float, str, str]:
    """(value, system, source) of a catalogue's zero point; NaN and '' where unknown."""
    zeropoint = meta.get("zeropoint")
    if isinstance(zeropoint, Mapping):
        return (float(zeropoint.get("value", math.nan)),
                str(zeropoint.get("system") or meta.get("magnitude_system") or ""),
                str(zeropoint.get("source") or ""))
    if zeropoint is not None:  # a bare number
        return float(zeropoint), str(meta.get("magnitude_system") or ""), ""
    return math.nan, str(meta.get("magnitude_system") or ""), ""


def aperture_correction_mag(meta: Mapping) -> float:
    """The aperture correction applied (mag, negative = brighter); NaN if not recorded."""
    correction = meta.get("aperture_correction")
    if isinstance(correction, Mapping) and correction.get("mag") is not None:
        return float(correction["mag"]) + 0.0  # + 0.0 turns -0.0 (no correction) into 0.0
    return math.nan


def completeness_limits(curve: Table | None) -> tuple[float, float]:
    """(m50, m90) of a frame's completeness curve (all zones); NaN without one."""
    if curve is None:
        return math.nan, math.nan
    values = [curve.meta.get(key) for key in ("m50", "m90")]
    return tuple(math.nan if value is None else float(value) for value in values)


def summarize_catalog(filter_name: str, catalog: Table, curve: Table | None = None) -> dict:
    """The summary row of one filter's catalogue (and its completeness curve, if any)."""
    mag = float_column(catalog["mag"]) if "mag" in catalog.colnames else np.full(len(catalog), np.nan)
    flags = np.asarray(catalog["flags"]) if "flags" in catalog.colnames else np.zeros(len(catalog), int)
    finite = np.isfinite(mag)
    good = mag[finite]
    value, system, source = zeropoint_of(catalog.meta)
    m50, m90 = completeness_limits(curve)
    # Explicit empty case: NaN without numpy's "mean of empty slice" warnings.
    return {
        "filter": filter_name,
        "n_stars": len(catalog),
        "n_with_mag": int(finite.sum()),
        "n_clean": int((finite & (flags == 0)).sum()),
        "mag_min": float(good.min()) if good.size else math.nan,
        "mag_max": float(good.max()) if good.size else math.nan,
        "mag_mean": float(good.mean()) if good.size else math.nan,
        "mag_std": float(good.std()) if good.size else math.nan,
        "zeropoint": value,
        "zeropoint_system": system,
        "zeropoint_source": source,
        "aperture_correction_mag": aperture_correction_mag(catalog.meta),
        "m50": m50,
        "m90": m90,
    }


def summarize_catalogs(catalogs: Mapping[str, Table], curves: Mapping[str, Table] | None = None) -> Table:
    """One row per filter, in the mapping's order (see ``SUMMARY_COLUMNS``).

    Magnitude statistics use the finite magnitudes only; ``mag_std`` is the population
    standard deviation (ddof=0). ``n_clean`` counts stars with a magnitude and no flags.
    """
    curves = curves or {}
    rows = [summarize_catalog(name, catalog, curves.get(name)) for name, catalog in catalogs.items()]
    # Typed empty columns, so a summary of no catalogues still has the right dtypes.
    dtypes = [str, np.int64, np.int64, np.int64] + [np.float64] * 5 + [str, str] + [np.float64] * 3
    table = Table(rows=[[row[c] for c in SUMMARY_COLUMNS] for row in rows] or None,
                  names=SUMMARY_COLUMNS, dtype=dtypes)
    for name in MAG_COLUMNS:
        table[name].unit = u.mag
    table["mag_std"].description = "population standard deviation (ddof=0) of the finite magnitudes"
    table["n_clean"].description = "stars with a finite magnitude and flags == 0"
    table["aperture_correction_mag"].description = "aperture correction applied, mag (negative = brighter)"
    table["m50"].description = ("50 per cent completeness from artificial stars (NaN: no test, no fit, or the "
                                "curve never reaches it)")
    table["m90"].description = ("90 per cent completeness from artificial stars (NaN: no test, no fit, or the "
                                "curve never reaches it)")
    return table


def write_summary_tsv(table: Table, path: str | Path) -> None:
    """Write the summary as tab-separated text with a header line, atomically."""
    formats = {name: "%.4f" for name in MAG_COLUMNS if name in table.colnames}
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.tab", formats=formats, overwrite=True)
