"""A frame's PSF on disk, ``results/psf/{cluster}/{filter}.fits``, and the PSF fit's model of the
frame rebuilt from it and the catalogue.

The file holds what the catalogue alone cannot give back:

- the primary image: the effective PSF's grid (float64, so that a model rebuilt from it is the
  fit's own), with FWHM, NSTARS, OVERSAMP, RADIUS and a linear WCS from grid nodes to pixel
  offsets from the star (CRPIX at the central node, CDELT = 1 / OVERSAMP);
- ``SKY``: the fitted sky, one value per ``SKYCELL`` x ``SKYCELL`` cell of the frame (image
  units, above ``SKYLEVEL``, the frame's median sky that was subtracted first; 0 where no star
  was near);
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from .config import FrameSettings
from .frames import bad_pixel_mask, read_frame
from .outputs import atomic_output
from .photometry import region_mask
from .psf import EPSF
from .psffit import footprint_radii, render

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


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
    psf_star_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    note: str = ""

    @property
    def fallback(self) -> bool:
        return self.psf is None


def write_psf(path: str | Path, psf: EPSF | None, *, sky: np.ndarray | None = None, sky_cell: int = 0,
              sky_level: float = 0.0, correction: float = 1.0, footprint_level: float = 0.0,
              footprint_smallest: float = 0.0, psf_star_ids=(), psf_star_x=(), psf_star_y=(),
              cards: dict | None = None, note: str = "") -> None:
    """Write a frame's PSF (or, with ``psf=None``, the record of a fallback to apertures) atomically.

    ``cards``: more header keywords, name -> value or (value, comment)."""
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
    hdus = [fits.PrimaryHDU(None if psf is None else np.asarray(psf.data, np.float64), header=header)]
    if sky is not None:
        sky_header = fits.Header()
        sky_header["SKYCELL"] = (int(sky_cell), "pixels per cell side, from pixel (0, 0)")
        sky_header["SKYLEVEL"] = (float(sky_level), "median sky subtracted before the fit")
        sky_header["COMMENT"] = "Fitted sky per cell above SKYLEVEL (image units per pixel)."
        hdus.append(fits.ImageHDU(np.asarray(sky, np.float32), header=sky_header, name="SKY"))
    if psf is not None:
        columns = [fits.Column("id", "K", array=np.asarray(psf_star_ids, np.int64)),
                   fits.Column("x", "D", unit="pix", array=np.asarray(psf_star_x, np.float64)),
                   fits.Column("y", "D", unit="pix", array=np.asarray(psf_star_y, np.float64))]
        hdus.append(fits.BinTableHDU.from_columns(columns, name="PSFSTARS"))
    with atomic_output(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)


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
                       n_stars=int(header["NSTARS"]), wing=wing)
        result = PSFFile(psf, header, correction=float(header.get("APCORR", 1.0)), note=note,
                         footprint_level=float(header.get("FOOTLEV", 0.0)),
                         footprint_smallest=float(header.get("FOOTMIN", 0.0)))
        if "SKY" in hdul:
            result.sky = np.array(hdul["SKY"].data, dtype=np.float32)
            result.sky_cell = int(hdul["SKY"].header["SKYCELL"])
            result.sky_level = float(hdul["SKY"].header["SKYLEVEL"])
        if "PSFSTARS" in hdul:
            result.psf_star_ids = np.array(hdul["PSFSTARS"].data["id"], dtype=np.int64)
    return result


# --- the fit's model, rebuilt -------------------------------------------------------------------


def render_stars(x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: EPSF, box: tuple[int, int, int, int],
                 footprint_level: float = 0.0, footprint_smallest: float = 0.0) -> np.ndarray:
    """The stars as ``psf`` draws them on the pixels of ``box`` = (x0, y0, width, height), float32:
    the PSF fit's own drawing (:func:`clusterphot.psffit.render`, each star out to its
    footprint, :func:`clusterphot.psffit.footprint_radii`, or with ``footprint_level`` 0 to the
    PSF's reach) on the box, for the stars that reach it."""
    x0, y0, width, height = box
    x, y, flux = (np.asarray(a, dtype=np.float64) for a in (x, y, flux))
    if footprint_level > 0:
        radii = footprint_radii(psf, flux, footprint_level, footprint_smallest)
    else:
        radii = np.full(len(x), int(math.floor(psf.reach)))
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    near = ((xi + radii >= x0) & (xi - radii < x0 + width) & (yi + radii >= y0) & (yi - radii < y0 + height)
            & np.isfinite(flux))
    return render((height, width), x[near] - x0, y[near] - y0, flux[near], psf, radii[near])


def sky_cells(sky_image: np.ndarray, cell: int) -> np.ndarray:
    """One value per ``cell`` x ``cell`` block of a piecewise-constant sky image (the median of
    the block, robust to rounding and to a model drawn slightly differently)."""
    ny, nx = sky_image.shape
    n_cells_x = -(-nx // cell)
    cells = np.zeros((-(-ny // cell), n_cells_x), np.float32)
    for row in range(cells.shape[0]):  # a row of cells at a time: no padded copy of the frame
        block = sky_image[row * cell : (row + 1) * cell]
        pad = n_cells_x * cell - nx
        if pad:
            block = np.pad(block, ((0, 0), (0, pad)), constant_values=np.nan)
        blocks = block.reshape(block.shape[0], n_cells_x, cell)
        cells[row] = np.nanmedian(blocks.transpose(1, 0, 2).reshape(n_cells_x, -1), axis=1)
    return cells


def sky_image(psf_file: PSFFile, box: tuple[int, int, int, int]) -> np.ndarray:
    """The fitted sky (above SKYLEVEL) on the pixels of ``box``, float32 (0 without a SKY)."""
    x0, y0, width, height = box
    if psf_file.sky is None:
        return np.zeros((height, width), np.float32)
    rows = np.clip(np.arange(y0, y0 + height) // psf_file.sky_cell, 0, psf_file.sky.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + width) // psf_file.sky_cell, 0, psf_file.sky.shape[1] - 1)
    return psf_file.sky[np.ix_(rows, cols)]


def fitted_fluxes(psf_file: PSFFile, flux: np.ndarray) -> np.ndarray:
    """The fit's PSF fluxes from the catalogue's (which are corrected to total)."""
    return np.asarray(flux, dtype=np.float64) / psf_file.correction


def model_image(psf_file: PSFFile, x: np.ndarray, y: np.ndarray, flux: np.ndarray,
                box: tuple[int, int, int, int]) -> np.ndarray:
    """The fit's model (stars and fitted sky, above SKYLEVEL) of the pixels of ``box`` from the
    catalogue's x, y and flux; float32. ``frame - SKYLEVEL - model`` is the residual."""
    if psf_file.psf is None:
        raise ValueError("no PSF: the frame fell back to aperture photometry")
    return (render_stars(x, y, fitted_fluxes(psf_file, flux), psf_file.psf, box, psf_file.footprint_level,
                         psf_file.footprint_smallest) + sky_image(psf_file, box))


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
                   output: str | Path) -> None:
    """Write the residual image of a frame measured with PSF fitting: the frame less SKYLEVEL
    and the fit's model, float32, NaN on masked pixels and outside the photometry region, with
    the frame's WCS. A frame that fell back to aperture photometry gets a header-only file
    that says so."""
    psf_file = read_psf(psf_path)
    cards = {"FILTER": settings.filter_name, "IMAGE": str(image), "PSFFILE": str(psf_path),
             "BUNIT": str(catalog.meta.get("image_unit", ""))}
    if psf_file.psf is None:
        log.warning("%s: %s; no residual image", psf_path, psf_file.note)
        write_residual(output, None, {**cards, "NOTE": psf_file.note})
        return
    frame = read_frame(image, hdu=settings.hdu, plane=settings.plane)
    bad = bad_pixel_mask(frame.data)
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
