"""Cross-matching the catalogues of one cluster's filters: each frame registered onto a
reference frame, stars matched one-to-one into colour catalogues, and the merged multi-band
catalogue."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import astropy.units as u
import numpy as np
import yaml
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS

from .errors import ClusterphotError, RegistrationError
from .filters import pivot_wavelength
from .frames import celestial_wcs
from .matching import match_one_to_one, merge_positions
from .outputs import write_yaml
from .registration import Transform, solve_transform, wcs_transform

log = logging.getLogger(__name__)


def catalog_pivot(table: Table, filter_name: str) -> float:
    """Pivot wavelength of a catalogue's filter: as its metadata records it (worked out by
    :func:`clusterphot.filters.pivot_wavelength`), else by that function from the name."""
    value = table.meta.get("pivot_wavelength") or pivot_wavelength(filter_name)
    if value is None:
        raise ClusterphotError(f"{table.meta.get('image', filter_name)}: no pivot wavelength for {filter_name} "
                               "(set 'pivot_wavelength' for this filter in the config)")
    return float(value)


def filters_blue_to_red(catalogs: Mapping[str, Table]) -> list[str]:
    """Filter names sorted by pivot wavelength."""
    return sorted(catalogs, key=lambda f: catalog_pivot(catalogs[f], f))


def catalog_wcs(table: Table) -> WCS | None:
    """The frame's WCS, as recorded in a catalogue's metadata."""
    header = table.meta.get("wcs")
    return celestial_wcs(fits.Header(header)) if header else None


def reference_filter(catalogs: Mapping[str, Table]) -> str:
    """The filter whose catalogue has the most stars with a magnitude: the common pixel grid."""
    return max(catalogs, key=lambda f: int(np.isfinite(np.asarray(catalogs[f]["mag"], float)).sum()))


def register_catalogs(catalogs: Mapping[str, Table], reference: str, max_shift: float,
                      tolerance: float, model: str) -> dict[str, Transform]:
    """Transform of each catalogue's pixels onto the reference frame's, solved from the stars."""
    ref = catalogs[reference]
    ref_wcs = catalog_wcs(ref)
    log.info("reference frame %s (%s): the filter with the most stars with a magnitude", reference,
             ref.meta.get("image", "frame unknown"))
    transforms = {reference: Transform.identity()}
    for name, table in catalogs.items():
        if name == reference:
            continue
        frame_wcs = catalog_wcs(table)
        initial = None
        if frame_wcs is not None and ref_wcs is not None:
            initial = wcs_transform(frame_wcs, ref_wcs, tuple(table.meta["shape"]))
        try:
            transforms[name] = solve_transform(
                np.asarray(table["x"], float), np.asarray(table["y"], float), np.asarray(table["mag"], float),
                np.asarray(ref["x"], float), np.asarray(ref["y"], float), np.asarray(ref["mag"], float),
                initial=initial, model=model, max_shift=max_shift, tolerance=tolerance,
            )
        except RegistrationError as error:
            raise RegistrationError(
                f"cluster {table.meta.get('cluster', '?')}: {name} ({table.meta.get('image', 'frame unknown')}) "
                f"cannot be registered onto {reference} ({ref.meta.get('image', 'frame unknown')}): {error}"
            ) from None
        log.info("%s onto %s: %s", name, reference, transforms[name].describe())
    return transforms


def suffixed(table: Table, filter_name: str, rows: np.ndarray) -> Table:
    """The catalogue's rows (-1 = absent: masked) with every column suffixed by the filter."""
    present = rows >= 0
    out = Table()
    for name in table.colnames:
        column = table[name]
        values = np.asarray(column)[np.where(present, rows, 0)]
        if values.dtype.kind == "f":
            values = np.where(present, values, np.nan)
        out.add_column(MaskedColumn(values, mask=~present, name=f"{name}_{filter_name}", unit=column.unit,
                                    description=column.description))
    return out


def reference_positions(catalogs: Mapping[str, Table], transforms: Mapping[str, Transform],
                        names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [transforms[n].apply(np.asarray(catalogs[n]["x"], float), np.asarray(catalogs[n]["y"], float))
            for n in names]


def mean_reference_position(positions, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean reference-grid position of each object over the filters it was seen in."""
    xs = np.full(rows.shape, np.nan)
    ys = np.full(rows.shape, np.nan)
    for k, (x, y) in enumerate(positions):
        present = rows[:, k] >= 0
        xs[present, k] = x[rows[present, k]]
        ys[present, k] = y[rows[present, k]]
    return np.nanmean(xs, axis=1), np.nanmean(ys, axis=1)


def add_sky_positions(table: Table, reference_wcs: WCS | None) -> None:
    if reference_wcs is not None and len(table):
        ra, dec = reference_wcs.pixel_to_world_values(np.asarray(table["x"]), np.asarray(table["y"]))
    else:
        ra = dec = np.full(len(table), np.nan)
    table["ra"] = np.asarray(ra, float) * u.deg
    table["dec"] = np.asarray(dec, float) * u.deg


def registration_meta(transforms: Mapping[str, Transform], reference: str) -> dict:
    return {"reference_filter": reference, "transforms": {f: t.as_meta() for f, t in transforms.items()}}


def matched_pair(catalogs: Mapping[str, Table], transforms: Mapping[str, Transform], blue: str, red: str,
                 radius: float, reference: str) -> Table:
    """Stars matched one-to-one between two filters, both frames' columns side by side, with colour."""
    (xb, yb), (xr, yr) = reference_positions(catalogs, transforms, [blue, red])
    ib, ir, separation = match_one_to_one(xb, yb, xr, yr, radius)
    table = Table()
    table["x"] = 0.5 * (xb[ib] + xr[ir]) * u.pix
    table["y"] = 0.5 * (yb[ib] + yr[ir]) * u.pix
    add_sky_positions(table, catalog_wcs(catalogs[reference]))
    table["separation"] = np.asarray(separation, float) * u.pix
    for name, rows in ((blue, ib), (red, ir)):
        part = suffixed(catalogs[name], name, rows)
        for column in part.itercols():
            table.add_column(column.filled(np.nan) if column.dtype.kind == "f" else column.filled())
    mag_b = np.asarray(table[f"mag_{blue}"], float)
    mag_r = np.asarray(table[f"mag_{red}"], float)
    table["colour"] = (mag_b - mag_r) * u.mag
    table["colour_err"] = np.hypot(np.asarray(table[f"mag_err_{blue}"], float),
                                   np.asarray(table[f"mag_err_{red}"], float)) * u.mag
    table["colour"].description = f"{blue} - {red}"
    table["x"].description = f"0-based pixel column on the reference frame ({reference})"
    table.meta.update({
        "blue": blue, "red": red, "match_radius": radius,
        "n_matched": len(table), f"n_{blue}": len(catalogs[blue]), f"n_{red}": len(catalogs[red]),
        "magnitude_system": shared_system([catalogs[blue], catalogs[red]]),
        "magnitude_systems": {f: catalogs[f].meta.get("magnitude_system") for f in (blue, red)},
        "zeropoints": {blue: catalogs[blue].meta.get("zeropoint"), red: catalogs[red].meta.get("zeropoint")},
        **registration_meta({f: transforms[f] for f in (reference, blue, red)}, reference),
    })
    log.info("%s-%s: %d stars matched one-to-one within %g px (of %d %s and %d %s stars); median separation "
             "%.3f px", blue, red, len(table), radius, len(catalogs[blue]), blue, len(catalogs[red]), red,
             float(np.median(separation)) if len(table) else float("nan"))
    return table


def shared_system(catalogs: list[Table]) -> str | None:
    """The catalogues' magnitude system, or 'mixed' when their zero points are of different
    systems (a config zero point given in VEGA beside AB ones; ``magnitude_systems`` then says
    which is which)."""
    systems = {catalog.meta.get("magnitude_system") for catalog in catalogs}
    return systems.pop() if len(systems) == 1 else "mixed"


def merged_catalog(catalogs: Mapping[str, Table], transforms: Mapping[str, Transform], radius: float,
                   min_filters: int, reference: str) -> Table:
    """One row per star seen in at least ``min_filters`` filters, all filters' columns side by side."""
    names = filters_blue_to_red(catalogs)
    positions = reference_positions(catalogs, transforms, names)
    rows = merge_positions(positions, radius)
    n_filters = (rows >= 0).sum(axis=1)
    rows, n_filters = rows[n_filters >= min_filters], n_filters[n_filters >= min_filters]
    x, y = mean_reference_position(positions, rows)
    table = Table()
    table["id"] = np.arange(1, len(rows) + 1)
    table["x"] = x * u.pix
    table["y"] = y * u.pix
    add_sky_positions(table, catalog_wcs(catalogs[reference]))
    table["n_filters"] = n_filters
    for k, name in enumerate(names):
        part = suffixed(catalogs[name], name, rows[:, k])
        for column in part.itercols():
            table.add_column(column.filled(np.nan) if column.dtype.kind == "f" else column)
    table.meta.update({
        "filters": names, "match_radius": radius, "min_filters": min_filters, "n_stars": len(table),
        "n_per_filter": {n: int((rows[:, k] >= 0).sum()) for k, n in enumerate(names)},
        "magnitude_system": shared_system([catalogs[name] for name in names]),
        "magnitude_systems": {name: catalogs[name].meta.get("magnitude_system") for name in names},
        **registration_meta(transforms, reference),
    })
    seen = ", ".join(f"{n} {table.meta['n_per_filter'][n]} of {len(catalogs[n])}" for n in names)
    log.info("%d stars seen in at least %d of %d filters (within %g px on %s's grid); per filter: %s",
             len(table), min_filters, len(names), radius, reference, seen)
    return table


def read_catalogs(filters: Sequence[str], catalog_paths: Sequence[str | Path]) -> dict[str, Table]:
    """Filter -> catalogue, from the filters and their catalogues' paths in the same order."""
    if len(filters) != len(catalog_paths):
        raise ValueError(f"{len(filters)} filters but {len(catalog_paths)} catalogues")
    return {name: Table.read(path, format="ascii.ecsv") for name, path in zip(filters, catalog_paths)}


def write_registration(transforms: Mapping[str, Transform], reference: str, path) -> None:
    """The solved transforms as YAML (written atomically)."""
    write_yaml(registration_meta(transforms, reference), path)


def read_registration(path) -> tuple[str, dict[str, Transform]]:
    """(reference filter, filter -> Transform) from a registration YAML file."""
    meta = yaml.safe_load(Path(path).read_text())
    transforms = {f: Transform.from_meta(m) for f, m in meta["transforms"].items()}
    return meta["reference_filter"], transforms
