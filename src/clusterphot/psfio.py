"""A frame's PSF on disk, ``results/psf/{cluster}/{filter}.fits``, and the PSF fit's model of the
frame rebuilt from it and the catalogue.

The file holds what the catalogue alone cannot give back:

- the primary image: the effective PSF's grid (float64, so that a model rebuilt from it is the
  fit's own), with FWHM, NSTARS, OVERSAMP, RADIUS and a linear WCS from grid nodes to pixel
  offsets from the star (CRPIX at the central node, CDELT = 1 / OVERSAMP);
- ``SKY``: the fitted sky, one value per ``SKYCELL`` x ``SKYCELL`` cell of the frame (image
  units, above ``SKYLEVEL``, the frame's median sky that was subtracted first; 0 where no star
  was near);
- ``TILEPSF`` and ``TILES``, for a frame measured in tiles (larger than ``photometry.psf.tile``):
  one PSF grid per tile (its own, learned from the tile's stars, or the frame's where the tile
  had too few) and the tiles' core boxes; a star was fitted with the PSF of the tile whose core
  holds it, or with PSFZONE > 0 with the tiles' PSFs interpolated to its zone of that tile
  (:class:`clusterphot.psf.PSFGrid`);
- ``PSFERR``: what the PSF gets wrong around a star, as each residual pass measured it on the
  PSF stars' residual and looked for new stars with it (:func:`clusterphot.psfphot.psf_error_profile`):
  per tile (one row for a frame measured whole), per pass, per ring of RINGWID px from the star,
  the rms of the residual beyond its noise as a fraction of the star's flux per pixel (NaN: too
  few PSF stars to measure it); an artificial-star pass looks for stars as the catalogue did;
- ``PSFSTARS``: the catalogue ids and positions of the PSF stars (bright, isolated,
  unsaturated; as the PSF path selects them among its final stars, those the correction to
  total is measured on).

With the catalogue (positions, and fluxes divided by the correction to total, APCORR) they give
the fit's model of every pixel, :func:`model_image`: the stars as the PSF draws them plus the
fitted sky. ``frame - SKYLEVEL - model`` is the residual image.

A frame whose PSF could not be learned and that fell back to aperture photometry
(``photometry.psf.fallback: aperture``) gets a file without a grid: METHOD = 'aperture' and
FALLBACK = T, with the reason in NOTE; :func:`read_psf` gives ``psf=None`` for it.

Files are written under a temporary name and renamed, like every output.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from .config import FrameSettings
from .cosmicrays import apply_cosmic_ray_mask
from .frames import read_configured_frame
from .outputs import atomic_output
from .photometry import region_mask
from .psf import EPSF, PSFGrid, zone_centre, zone_index
from .psffit import footprint_radii, render
from .psfphot import PSF_ERROR_RING, Tile, padded_psf_errors, star_corrections, tile_grid, tile_of

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ZONE_PSFS_KEPT = 32  # zone_psf's cache


@dataclass
class PSFFile:
    """What :func:`read_psf` gives back."""

    psf: EPSF | None  # None: the frame fell back to aperture photometry
    header: fits.Header
    sky: np.ndarray | None = None  # fitted sky per cell, image units above sky_level
    sky_cell: int = 0  # pixels per cell side
    sky_level: float = 0.0  # the frame's median sky, subtracted before the fit
    correction: float = 1.0  # catalogue flux / fitted PSF flux (the correction to total)
    footprint_level: float = 0.0  # image units: the fit drew each star out to where its light falls below this
    footprint_smallest: float = 0.0  # px: but at least this far (0, 0: every star out to the PSF's reach)
    # a frame measured in tiles: per tile its core box (x0, y0, x1, y1) and the PSF its stars were
    # fitted with (empty: one PSF for the whole frame)
    tiles: list = field(default_factory=list)
    zone: int = 0  # px: each tile's stars fitted with the tiles' PSFs interpolated over zones this size (0: not)
    # the zones' PSFs drawn last (zone_psf): (tile, zone) -> EPSF
    zone_psfs: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    psf_star_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    note: str = ""
    # a frame measured whole: its residual passes' PSF errors (Tile.psf_errors; in tiles, each tile's)
    psf_errors: np.ndarray | None = None

    @property
    def fallback(self) -> bool:
        return self.psf is None


def write_psf(path: str | Path, psf: EPSF | None, *, sky: np.ndarray | None = None, sky_cell: int = 0,
              sky_level: float = 0.0, correction: float = 1.0, footprint_level: float = 0.0,
              footprint_smallest: float = 0.0, tiles=(), zone: int = 0, psf_star_ids=(), psf_star_x=(),
              psf_star_y=(), psf_errors: np.ndarray | None = None, cards: dict | None = None,
              note: str = "") -> None:
    """Write a frame's PSF (or, with ``psf=None``, the record of a fallback to apertures) atomically.

    ``tiles``: for a frame measured in tiles, its :class:`clusterphot.psfphot.Tile`s (core box,
    PSF, learned from the tile or not, correction, residual passes' PSF errors), written as the
    cube ``TILEPSF`` (one grid per tile, on the primary's grid), the table ``TILES`` and the
    cube ``PSFERR``; ``zone`` (px), the zones their PSFs were interpolated over (0: each tile's
    constant over it). ``psf_errors``: a frame measured whole, its residual passes' PSF errors
    (each tile's are its ``psf_errors``), written as ``PSFERR``. ``cards``: more header keywords,
    name -> value or (value, comment)."""
    header = fits.Header()
    header["CPFORMAT"] = (FORMAT_VERSION, "clusterphot PSF file format version")
    header["METHOD"] = ("psf" if psf is not None else "aperture", "how the frame's catalogue was measured")
    header["FALLBACK"] = (psf is None, "no PSF: measured with apertures instead")
    if psf is not None:
        centre = psf.data.shape[0] // 2
        header["FWHM"] = (psf.fwhm, "[pixel] full width at half maximum of the PSF")
        header["NSTARS"] = (int(psf.n_stars), "stars the PSF was learned from")
        header["OVERSAMP"] = (int(psf.oversampling), "grid nodes per frame pixel")
        header["RADIUS"] = (psf.radius, "[pixel] half-size of the grid (the wing beyond)")
        if psf.wing is not None:
            alpha, beta, log_amplitude = psf.wing
            header["WINGALPH"] = (alpha, "[pixel] wing: A (1 + (r/alpha)^2)^-beta")
            header["WINGBETA"] = (beta, "wing's power-law index beta")
            header["WINGLNA"] = (log_amplitude, "ln A, A in fraction of flux per pixel")
            header["REACH"] = (psf.reach, "[pixel] PSF 0 beyond (no wing: RADIUS)")
            header["WINGFROM"] = (psf.wing_start, "[pixel] the wing's formula from here out")
        header["GRIDSUM"] = (float(psf.data.sum()), "sum of the grid (about OVERSAMP**2)")
        header["APCORR"] = (float(correction), "total / fitted PSF flux (correction to total)")
        header["FOOTLEV"] = (float(footprint_level), "stars drawn to where their light is below")
        header["FOOTMIN"] = (float(footprint_smallest), "[pixel] but at least this far (0: to REACH)")
        for axis, name in ((1, "x"), (2, "y")):
            header[f"CTYPE{axis}"] = ("LINEAR", f"pixel offset from the star along {name}")
            header[f"CUNIT{axis}"] = ("pixel", "frame pixels")
            header[f"CRPIX{axis}"] = (centre + 1.0, "the star: the central node (1-based)")
            header[f"CRVAL{axis}"] = (0.0, "offset at CRPIX")
            header[f"CDELT{axis}"] = (1.0 / psf.oversampling, "offset between nodes, pixels")
        header["COMMENT"] = ("Effective PSF (Anderson & King 2000): node value = fraction of a star's flux "
                             "falling in a frame pixel whose centre lies at the node's offset from the star.")
    for name, value in (cards or {}).items():
        header[name] = value
    if note:
        header["NOTE"] = note
    if psf is not None and len(tiles):  # (before the primary HDU is made: it copies the header)
        header["NTILES"] = (len(tiles), "tiles, each with a PSF in TILEPSF")
        header["PSFZONE"] = (int(zone), "[pixel] tile PSFs interpolated in zones, 0: no")
    hdus = [fits.PrimaryHDU(None if psf is None else np.asarray(psf.data, np.float64), header=header)]
    if sky is not None:
        sky_header = fits.Header()
        sky_header["SKYCELL"] = (int(sky_cell), "pixels per cell side, from pixel (0, 0)")
        sky_header["SKYLEVEL"] = (float(sky_level), "median sky subtracted before the fit")
        sky_header["COMMENT"] = "Fitted sky per cell above SKYLEVEL (image units per pixel)."
        hdus.append(fits.ImageHDU(np.asarray(sky, np.float32), header=sky_header, name="SKY"))
    if psf is not None and len(tiles):
        cube = fits.ImageHDU(np.stack([np.asarray(tile.psf.data, np.float64) for tile in tiles]), name="TILEPSF")
        cube.header["COMMENT"] = "One effective PSF per row of TILES, on the primary's grid (CRPIX, CDELT)."
        boxes = np.array([tile.core for tile in tiles], np.int64)
        wings = np.array([tile.psf.wing if tile.psf.wing is not None else (np.nan,) * 3 for tile in tiles])
        table = fits.BinTableHDU.from_columns(
            [fits.Column(name, "K", unit="pix", array=boxes[:, k]) for k, name in enumerate(("x0", "y0", "x1", "y1"))]
            + [fits.Column("own_psf", "L", array=np.array([tile.own_psf for tile in tiles], bool)),
               fits.Column("apcorr", "D", array=np.array([tile.correction for tile in tiles])),
               fits.Column("n_stars", "K", array=np.array([tile.psf.n_stars for tile in tiles], np.int64)),
               fits.Column("fwhm", "D", unit="pix", array=np.array([tile.psf.fwhm for tile in tiles])),
               fits.Column("wing_alpha", "D", unit="pix", array=wings[:, 0]),
               fits.Column("wing_beta", "D", array=wings[:, 1]),
               fits.Column("wing_ln_amplitude", "D", array=wings[:, 2]),
               fits.Column("wing_from", "D", unit="pix", array=np.array([tile.psf.wing_start for tile in tiles]))],
            name="TILES")
        table.header["COMMENT"] = ("Stars on a tile's core pixels (x0 <= x + 0.5 < x1, likewise y; open at the frame's edges) were fitted with "
                                   "its PSF (own_psf F: the frame's, too few PSF stars in the tile) and "
                                   "corrected to total by its apcorr (APCORR: the frame PSF's); with PSFZONE > 0 "
                                   "with the tiles' PSFs interpolated to their zone and apcorr to their position.")
        hdus += [cube, table]
    errors = [tile.psf_errors for tile in tiles] if len(tiles) else [psf_errors]
    if psf is not None and all(e is not None for e in errors):
        hdus.append(psf_errors_hdu(errors))
    if psf is not None:
        columns = [fits.Column("id", "K", array=np.asarray(psf_star_ids, np.int64)),
                   fits.Column("x", "D", unit="pix", array=np.asarray(psf_star_x, np.float64)),
                   fits.Column("y", "D", unit="pix", array=np.asarray(psf_star_y, np.float64))]
        hdus.append(fits.BinTableHDU.from_columns(columns, name="PSFSTARS"))
    with atomic_output(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)


def psf_errors_hdu(errors: list[np.ndarray]) -> fits.ImageHDU:
    """``PSFERR``: the tiles' (or the frame's) residual passes' PSF errors as one cube (tile,
    pass, ring; :func:`clusterphot.psfphot.padded_psf_errors`)."""
    hdu = fits.ImageHDU(padded_psf_errors(errors), name="PSFERR")
    hdu.header["RINGWID"] = (PSF_ERROR_RING, "[pixel] width of the rings around a star")
    hdu.header["COMMENT"] = ("Per tile (row of TILES; one for a frame fitted whole), residual pass and ring: rms of the "
                             "PSF stars' residual beyond its noise, fraction of the star's flux per pixel (NaN: not measured).")
    return hdu


def read_psf(path: str | Path) -> PSFFile:
    """A file :func:`write_psf` wrote."""
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        note = str(header.get("NOTE", ""))
        psf = None
        if not header.get("FALLBACK", False):
            wing = (tuple(float(header[k]) for k in ("WINGALPH", "WINGBETA", "WINGLNA"))
                    if "WINGALPH" in header else None)
            psf = EPSF(np.array(hdul[0].data, dtype=np.float64), int(header["OVERSAMP"]),
                       n_stars=int(header["NSTARS"]), wing=wing, wing_from=header.get("WINGFROM"))
        result = PSFFile(psf, header, correction=float(header.get("APCORR", 1.0)), note=note,
                         footprint_level=float(header.get("FOOTLEV", 0.0)),
                         footprint_smallest=float(header.get("FOOTMIN", 0.0)), zone=int(header.get("PSFZONE", 0)))
        if "SKY" in hdul:
            result.sky = np.array(hdul["SKY"].data, dtype=np.float32)
            result.sky_cell = int(hdul["SKY"].header["SKYCELL"])
            result.sky_level = float(hdul["SKY"].header["SKYLEVEL"])
        if psf is not None and "TILES" in hdul:
            rows = hdul["TILES"].data
            for k, grid in enumerate(hdul["TILEPSF"].data):
                wing = tuple(float(rows[name][k]) for name in ("wing_alpha", "wing_beta", "wing_ln_amplitude"))
                has_wing = bool(np.all(np.isfinite(wing)))
                tile_psf = EPSF(np.array(grid, dtype=np.float64), psf.oversampling, n_stars=int(rows["n_stars"][k]),
                                wing=wing if has_wing else None,
                                wing_from=float(rows["wing_from"][k]) if has_wing else None)
                core = tuple(int(rows[name][k]) for name in ("x0", "y0", "x1", "y1"))
                result.tiles.append(Tile(core, tile_psf, bool(rows["own_psf"][k]), float(rows["apcorr"][k])))
        if psf is not None and "PSFERR" in hdul:
            cube = np.array(hdul["PSFERR"].data, dtype=np.float64)
            if len(cube) != max(len(result.tiles), 1):
                raise ValueError(f"{path}: PSFERR holds {len(cube)} tiles' PSF errors, TILES {len(result.tiles)} tiles")
            for tile, errors in zip(result.tiles, cube):
                tile.psf_errors = errors
            if not result.tiles:
                result.psf_errors = cube[0]
        if "PSFSTARS" in hdul:
            result.psf_star_ids = np.array(hdul["PSFSTARS"].data["id"], dtype=np.int64)
    return result


# --- the fit's model, rebuilt -------------------------------------------------------------------


def render_stars(x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: EPSF, box: tuple[int, int, int, int],
                 footprint_level: float = 0.0, footprint_smallest: float = 0.0,
                 footprint_psf: EPSF | None = None) -> np.ndarray:
    """The stars as ``psf`` draws them on the pixels of ``box`` = (x0, y0, width, height), float32:
    the PSF fit's own drawing (:func:`clusterphot.psffit.render`, each star out to its
    footprint, :func:`clusterphot.psffit.footprint_radii`, or with ``footprint_level`` 0 to the
    PSF's reach) on the box, for the stars that reach it. ``footprint_psf``: the PSF whose
    envelope set the footprints in the fit, when not ``psf`` (a zone's PSF is drawn as far as
    its tile's: the fit's footprints are its tile PSF's)."""
    x0, y0, width, height = box
    x, y, flux = (np.asarray(a, dtype=np.float64) for a in (x, y, flux))
    if footprint_level > 0:
        radii = footprint_radii(footprint_psf or psf, flux, footprint_level, footprint_smallest)
    else:
        radii = np.full(len(x), int(math.floor(psf.reach)))
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    near = ((xi + radii >= x0) & (xi - radii < x0 + width) & (yi + radii >= y0) & (yi - radii < y0 + height)
            & np.isfinite(flux))
    return render((height, width), x[near] - x0, y[near] - y0, flux[near], psf, radii[near])


def sky_image(psf_file: PSFFile, box: tuple[int, int, int, int]) -> np.ndarray:
    """The fitted sky (above SKYLEVEL) on the pixels of ``box``, float32 (0 without a SKY)."""
    x0, y0, width, height = box
    if psf_file.sky is None:
        return np.zeros((height, width), np.float32)
    rows = np.clip(np.arange(y0, y0 + height) // psf_file.sky_cell, 0, psf_file.sky.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + width) // psf_file.sky_cell, 0, psf_file.sky.shape[1] - 1)
    return psf_file.sky[np.ix_(rows, cols)]


def tiles_of(psf_file: PSFFile, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each star's tile (index into ``psf_file.tiles``; -1: the frame was fitted whole)."""
    if not psf_file.tiles:
        return np.full(np.shape(x), -1, np.intp)
    return tile_of(x, y, [tile.core for tile in psf_file.tiles])


def zone_psf(psf_file: PSFFile, grid: PSFGrid, k: int, zone: int) -> EPSF:
    """The PSF the fit drew the stars of zone ``zone`` of tile ``k`` with (the tiles' PSFs,
    ``grid``, interpolated to its centre, :meth:`clusterphot.psf.PSFGrid.zone_psf`), kept for the next
    call: the PSF figure draws a few stars at a time around each of up to a thousand PSF
    stars, and tabulating a zone's PSF (2-3 ms) for every one of its draws took minutes. The
    last ZONE_PSFS_KEPT are kept (5 MB of tables each)."""
    key = (k, zone)
    cache = psf_file.zone_psfs
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    tile = psf_file.tiles[k]
    psf = grid.zone_psf(tile.psf, zone_centre(tile.core, psf_file.zone, zone))
    cache[key] = psf
    if len(cache) > ZONE_PSFS_KEPT:
        cache.popitem(last=False)
    return psf


def drawing_psfs(psf_file: PSFFile, x: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, EPSF, EPSF]]:
    """The stars at (x, y) (frame pixels) in groups, each (indices, PSF, footprints' PSF) with the
    PSF the fit drew them with: the frame's, their tile's, or when the tiles' PSFs were
    interpolated (PSFZONE > 0) their zone's of their tile (the same tables the fit evaluated:
    one zone's PSF alone), and the PSF whose envelope set their footprints in the fit (their
    tile's, or the frame's). One group at a time: a list of a HUGS frame's 1600 zones' PSFs,
    each tabulated as it was drawn (5 MB), held 7.7 GB by the last."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not psf_file.tiles:
        yield np.arange(len(x)), psf_file.psf, psf_file.psf
        return
    tile_index = tiles_of(psf_file, x, y)
    grid = tile_grid(psf_file.tiles) if psf_file.zone > 0 else None
    for k in np.unique(tile_index[tile_index >= 0]):  # a few dozen tiles, then a few zones each
        mine, tile = np.flatnonzero(tile_index == k), psf_file.tiles[k]
        if grid is None or not grid.interpolates(tile.psf):  # (as PSFGrid.zoned gave the fit)
            yield mine, tile.psf, tile.psf
            continue
        zone = zone_index(tile.core, psf_file.zone, x[mine], y[mine])
        for z in np.unique(zone):
            yield mine[zone == z], zone_psf(psf_file, grid, int(k), int(z)), tile.psf


def psf_for(psf_file: PSFFile, x: float, y: float) -> EPSF:
    """The PSF a star at (x, y) was fitted with: its tile's, its zone's when the tiles' PSFs were
    interpolated, or the frame's."""
    _, psf, _ = next(drawing_psfs(psf_file, np.array([x], np.float64), np.array([y], np.float64)))
    return psf


def fitted_fluxes(psf_file: PSFFile, flux: np.ndarray, x: np.ndarray | None = None,
                  y: np.ndarray | None = None) -> np.ndarray:
    """The fit's PSF fluxes from the catalogue's (which are corrected to total); for a frame
    measured in tiles the stars' positions say whose tile's correction each has (or, with the
    tiles' PSFs interpolated, which tiles' corrections, interpolated as the fit did)."""
    flux = np.asarray(flux, dtype=np.float64)
    if not psf_file.tiles or x is None:
        return flux / psf_file.correction
    return flux / star_corrections(psf_file.tiles, psf_file.correction, x, y, psf_file.zone > 0)


def stars_image(psf_file: PSFFile, x: np.ndarray, y: np.ndarray, flux: np.ndarray,
                box: tuple[int, int, int, int]) -> np.ndarray:
    """The fit's stars (no sky) on the pixels of ``box`` from the catalogue's x, y and flux, each
    drawn with the PSF it was fitted with; float32."""
    if psf_file.psf is None:
        raise ValueError("no PSF: the frame fell back to aperture photometry")
    fitted = fitted_fluxes(psf_file, flux, x, y)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not psf_file.tiles:
        return render_stars(x, y, fitted, psf_file.psf, box, psf_file.footprint_level, psf_file.footprint_smallest)
    x0, y0, width, height = box
    stars = np.zeros((height, width), np.float32)  # each star with the PSF it was fitted with
    for members, psf, footprint_psf in drawing_psfs(psf_file, x, y):
        # each group drawn on the part of the box its stars reach, not on the whole box: a frame
        # fitted in 100 tiles has 1600 zones, and drawing each on the whole 10k frame took minutes
        reach = int(math.ceil(max(psf.reach, footprint_psf.reach))) + 1
        gx0 = max(x0, int(np.floor(np.nanmin(x[members]))) - reach)
        gy0 = max(y0, int(np.floor(np.nanmin(y[members]))) - reach)
        gx1 = min(x0 + width, int(np.ceil(np.nanmax(x[members]))) + reach + 1)
        gy1 = min(y0 + height, int(np.ceil(np.nanmax(y[members]))) + reach + 1)
        if gx1 <= gx0 or gy1 <= gy0:
            continue
        stars[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0] += render_stars(
            x[members], y[members], fitted[members], psf, (gx0, gy0, gx1 - gx0, gy1 - gy0),
            psf_file.footprint_level, psf_file.footprint_smallest, footprint_psf)
    return stars


def model_image(psf_file: PSFFile, x: np.ndarray, y: np.ndarray, flux: np.ndarray,
                box: tuple[int, int, int, int]) -> np.ndarray:
    """The fit's model (stars and fitted sky, above SKYLEVEL) of the pixels of ``box`` from the
    catalogue's x, y and flux; float32. ``frame - SKYLEVEL - model`` is the residual."""
    stars = stars_image(psf_file, x, y, flux, box)
    stars += sky_image(psf_file, box)
    return stars


def residual_image(data: np.ndarray, bad: np.ndarray, psf_file: PSFFile, x: np.ndarray, y: np.ndarray,
                   flux: np.ndarray) -> np.ndarray:
    """The whole frame minus SKYLEVEL minus the fit's model, float32; NaN where ``bad``."""
    ny, nx = data.shape
    residual = np.asarray(data, np.float32) - np.float32(psf_file.sky_level)
    residual -= model_image(psf_file, x, y, flux, (0, 0, nx, ny))
    residual[bad] = np.nan
    return residual


def write_residual(path: str | Path, residual: np.ndarray | None, cards: dict | None = None) -> None:
    """The residual image as a float32 primary HDU (atomically); ``None``: a header-only file
    for a frame that fell back to aperture photometry (there is no model to subtract)."""
    header = fits.Header()
    for name, value in (cards or {}).items():
        header[name] = value
    data = None if residual is None else np.asarray(residual, np.float32)
    with atomic_output(path) as tmp:
        fits.PrimaryHDU(data, header=header).writeto(tmp, overwrite=True)


def frame_residual(image: str | Path, settings: FrameSettings, catalog, psf_path: str | Path,
                   output: str | Path, cosmic_ray_mask: str | Path | None = None) -> None:
    """Write the residual image of a frame measured with PSF fitting: the frame less SKYLEVEL
    and the fit's model, float32, NaN on masked pixels and outside the photometry region, with
    the frame's WCS (masked: its product's DQ and its cosmic rays, ``cosmic_ray_mask``, the
    workflow's file). A frame that fell back to aperture photometry gets a header-only file
    that says so."""
    psf_file = read_psf(psf_path)
    cards = {"FILTER": settings.filter_name, "IMAGE": str(image), "PSFFILE": str(psf_path),
             "BUNIT": str(catalog.meta.get("image_unit", ""))}
    if psf_file.psf is None:
        log.warning("%s: %s; no residual image", psf_path, psf_file.note)
        write_residual(output, None, {**cards, "NOTE": psf_file.note})
        return
    frame = read_configured_frame(image, settings)
    if cosmic_ray_mask is not None:
        apply_cosmic_ray_mask(frame, cosmic_ray_mask)
    bad = frame.bad_pixels()
    region = (catalog.meta.get("parameters") or {}).get("region")
    outside = region_mask(frame.shape, None if region is None else tuple(region))
    if outside is not None:
        bad |= outside
    flux = np.ma.filled(np.ma.asarray(catalog["flux"], dtype=float), np.nan)
    residual = residual_image(frame.data, bad, psf_file, np.asarray(catalog["x"], float),
                              np.asarray(catalog["y"], float), flux)
    if frame.wcs is not None:
        cards.update({card.keyword: (card.value, card.comment) for card in frame.wcs.to_header(relax=True).cards
                      if card.keyword not in ("COMMENT", "HISTORY", "")})
    cards["SKYLEVEL"] = (psf_file.sky_level, "frame's median sky, subtracted")
    cards["COMMENT"] = "Frame - SKYLEVEL - (catalogue stars drawn with the PSF file's PSF + fitted sky)."
    write_residual(output, residual, cards)
    valid = residual[np.isfinite(residual)]
    log.info("%s: residual of %d stars written to %s (median %.3g, robust rms %.3g)", image, len(catalog), output,
             np.median(valid) if valid.size else np.nan,
             1.4826 * np.median(np.abs(valid - np.median(valid))) if valid.size else np.nan)
