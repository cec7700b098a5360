"""One line per filter: how many stars, how many usable, their magnitude range, and the
calibration that produced them."""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from .catalog import float_column
from .outputs import atomic_output

log = logging.getLogger(__name__)

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
    for row in rows:
        log.info("%s: %d stars, %d with a magnitude, %d of them unflagged; %.2f-%.2f mag; zero point %s %.4f "
                 "(%s); m50 %.2f", row["filter"], row["n_stars"], row["n_with_mag"], row["n_clean"],
                 row["mag_min"], row["mag_max"], row["zeropoint_system"], row["zeropoint"],
                 row["zeropoint_source"] or "source unknown", row["m50"])
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


# The cluster's page: what the report opens on, and a file that opens on its own in a browser.
PAGE_STYLE = """
.clusterphot-page { font-family: sans-serif; }
.clusterphot-page h2 { font-size: 1.4em; margin: 0.6em 0 0.4em 0; }
.clusterphot-page figure { display: inline-block; vertical-align: top; margin: 0 1% 1em 0; }
.clusterphot-page figure.composite { width: 60%; min-width: 22em; }
.clusterphot-page figure.cmd { width: 31%; min-width: 15em; }
.clusterphot-page figure img { width: 100%; }
.clusterphot-page figcaption { font-size: 0.85em; color: #444; }
.clusterphot-page table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
.clusterphot-page caption { text-align: left; padding-bottom: 0.4em; }
.clusterphot-page th, .clusterphot-page td { padding: 0.15em 0.6em; border-bottom: 1px solid #ccc;
  text-align: right; }
.clusterphot-page th { background: #f0f0f0; }
.clusterphot-page td.text { text-align: left; }
"""


def png_data_uri(path: str | Path) -> str:
    """A PNG as a data URI: the page carries its pictures."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def summary_table_html(table: Table, caption: str) -> str:
    """The summary table as HTML, units in the heading and magnitudes to 4 decimals."""
    def unit(name: str) -> str:  # the TSV read back has none: the magnitudes' is known
        found = table[name].unit or ("mag" if name in MAG_COLUMNS else None)
        return f" ({found})" if found else ""

    heading = "".join(f"<th>{html.escape(name)}{unit(name)}</th>" for name in table.colnames)
    rows = []
    for row in table:  # one row per filter
        cells = []
        for name in table.colnames:
            value = row[name]
            if name in MAG_COLUMNS:
                cells.append(f"<td>{float(value):.4f}</td>")
            elif isinstance(value, str):
                cells.append(f'<td class="text">{html.escape(value)}</td>')
            else:
                cells.append(f"<td>{value}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div style="overflow-x: auto"><table><caption>{html.escape(caption)}</caption><thead><tr>{heading}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def cluster_page_html(cluster: str, summary: Table, composite: str | Path | None,
                      cmds: list[tuple[str, str | Path]]) -> str:
    """A cluster on one self-contained HTML page: its colour composite, its CMDs ((colour, PNG)
    pairs) and its summary table."""
    parts = [f'<div class="clusterphot-page"><style>{PAGE_STYLE}</style><h2>{html.escape(cluster)}</h2>']
    if composite is not None:
        parts.append(f'<figure class="composite"><img src="{png_data_uri(composite)}" alt="colour composite of '
                     f'{html.escape(cluster)}"><figcaption>Lupton et al. (2004) colour composite (grey where not '
                     "every filter covers the sky)</figcaption></figure>")
    parts.append("<div>")
    if not cmds:
        parts.append("<p>No colour-magnitude diagram: the cluster has one filter.</p>")
    for colour, path in cmds:
        parts.append(f'<figure class="cmd"><img src="{png_data_uri(path)}" alt="{html.escape(colour)} CMD">'
                     f"<figcaption>{html.escape(colour)}: stars matched in both filters that pass the quality "
                     "cuts</figcaption></figure>")
    parts.append("</div>")
    parts.append(summary_table_html(summary, f"{cluster}, per filter: stars measured, with a magnitude and "
                                    "unflagged; magnitudes in the zero point's system; the zero point and its "
                                    "source; the aperture correction applied; m50 and m90 from artificial "
                                    "stars (NaN without a test)"))
    parts.append("</div>")
    return "\n".join(parts)


def write_cluster_page(page: str, path: str | Path, cluster: str) -> None:
    """The page as an HTML file, atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>clusterphot: "
                             f"{html.escape(cluster)}</title></head><body>\n{page}\n</body></html>\n")
