"""One frame in, one calibrated star catalogue out (an astropy Table with units and metadata)."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from . import __version__
from .config import FrameSettings
from .errors import FrameError, ZeropointError
from .filters import pivot_wavelength
from .frames import bad_pixel_mask, exposure_time, gain, image_unit, keyword, read_frame, saturation_level
from .photometry import FLAG_DESCRIPTIONS, PhotometryParameters, magnitudes, measure_frame, region_overlaps
from .zeropoints import Zeropoint, resolve_zeropoint

log = logging.getLogger(__name__)

# Keywords that name a frame's filter: WFC3 and most ground-based headers (FILTER), ACS's two
# wheels (FILTER1/2, the unused one CLEAR...) and WFPC2's (FILTNAM1/2, the unused one blank).
FILTER_KEYWORDS = ("FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAM2")
# Median magnitudes of real stars, whatever the telescope: outside, the zero point or the
# exposure time is wrong.
PLAUSIBLE_MAGNITUDES = (0.0, 40.0)

CATALOG_COLUMNS = ("id", "x", "y", "ra", "dec", "flux", "flux_err", "sky", "mag", "mag_err",
                   "sharpness", "roundness", "flags")


def float_column(column) -> np.ndarray:
    """A table column as plain floats, masked entries as NaN."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers, for the catalogue's metadata."""
    versions = {"clusterphot": __version__}
    for name in ("numpy", "scipy", "astropy", "photutils", "acstools"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def flux_unit(unit: str, is_rate: bool) -> u.UnitBase:
    base = u.electron if unit == "electron" else u.count
    return base / u.s if is_rate else base


def header_filters(header: fits.Header) -> dict[str, str]:
    """Keyword -> filter name of the filters a header names (empty wheels left out)."""
    named = {}
    for name in FILTER_KEYWORDS:
        value = header.get(name)
        if not isinstance(value, str) or not value.strip() or value.strip().upper().startswith("CLEAR"):
            continue
        named[name] = value.strip()
    return named


def check_header_filter(header: fits.Header, filter_name: str, path: Path) -> None:
    """Warn when the header names filters and the configured name is none of them (nor one of
    them with a suffix, as F606W_short): the wrong frame, or the wrong name (whose pivot
    wavelength would then be used)."""
    named = header_filters(header)
    if named and not any(filter_name.upper().startswith(value.upper()) for value in named.values()):
        found = ", ".join(f"{key}={value!r}" for key, value in named.items())
        log.warning("%s: the header says %s but the config calls this frame %s; check that the right "
                    "image is configured for %s", path, found, filter_name, filter_name)


def check_magnitudes(mag: np.ndarray, path: Path, zeropoint: Zeropoint, exptime: float) -> None:
    """Warn when the median magnitude is not one of real stars (a wrong zero point or exposure time)."""
    finite = mag[np.isfinite(mag)]
    if finite.size == 0:
        return
    median = float(np.median(finite))
    low, high = PLAUSIBLE_MAGNITUDES
    if not low <= median <= high:
        log.warning("%s: the median magnitude is %.1f, outside %g..%g: check the zero point (%s %.4f from %s) "
                    "and the exposure time (%g s) used", path, median, low, high, zeropoint.system,
                    zeropoint.value, zeropoint.source, exptime)


def check_region(shape: tuple[int, int], params: PhotometryParameters, path: Path) -> None:
    """A photometry region must hold some of the frame's pixels."""
    if not region_overlaps(shape, params.region):
        ny, nx = shape
        raise FrameError(f"{path}: photometry region {list(params.region)} (x0, x1, y0, y1) does not overlap "
                         f"the frame of {ny} x {nx} pixels (rows x columns; x 0..{nx - 1}, y 0..{ny - 1}); "
                         "set 'photometry.region' (or the cluster's own) to pixels on the frame")


def catalog_for_frame(path: str | Path, settings: FrameSettings, params: PhotometryParameters,
                      system: str = "AB", zeropoint_cache: Path | None = None,
                      zeropoint_service: str | None = None) -> Table:
    """Measure every star of one frame and return the calibrated catalogue."""
    frame = read_frame(path, hdu=settings.hdu, plane=settings.plane)
    header = frame.header
    check_header_filter(header, settings.filter_name, frame.path)
    check_region(frame.shape, params, frame.path)
    exptime = exposure_time(header, frame.path, settings.exptime)
    unit, is_rate = image_unit(header, frame.path)
    frame_gain = gain(header, unit, settings.gain)
    electrons_per_unit = frame_gain * (exptime if is_rate else 1.0)
    saturation = saturation_level(header, unit, is_rate, exptime, frame_gain, settings.saturation)
    if saturation is None:
        log.warning("%s: saturation level unknown (no SATURATE keyword, unknown detector); "
                    "saturated stars are not flagged. Set 'saturation' in the config.", frame.path)
    try:
        zeropoint = resolve_zeropoint(
            system,
            override=settings.zeropoint,
            photflam=keyword(header, "PHOTFLAM"),
            photplam=keyword(header, "PHOTPLAM"),
            instrument=keyword(header, "INSTRUME"),
            detector=str(keyword(header, "DETECTOR", default="")),
            filter_name=settings.filter_name,
            date=keyword(header, "DATE-OBS"),
            cache_dir=zeropoint_cache,
            service_url=zeropoint_service,
        )
    except ZeropointError as error:
        raise FrameError(f"{frame.path}: {error}") from None

    bad = bad_pixel_mask(frame.data)
    try:
        stars = measure_frame(frame.data, bad, params, electrons_per_unit, saturation)
    except FrameError as error:  # raised without the file's name
        hint = ("" if params.region is None else
                f"; 'photometry.region' is {list(params.region)}: set it to a part of the frame with data")
        raise FrameError(f"{frame.path}: {error}{hint}") from None
    mag, mag_err = magnitudes(stars.flux, stars.flux_err, zeropoint.value, exptime, is_rate)
    check_magnitudes(mag, frame.path, zeropoint, exptime)

    funit = flux_unit(unit, is_rate)
    mag_unit = {"AB": u.ABmag, "ST": u.STmag}.get(zeropoint.system, u.mag)
    table = Table()
    table["id"] = np.arange(1, len(stars) + 1, dtype=np.int64)
    table["x"] = stars.x * u.pix
    table["y"] = stars.y * u.pix
    if frame.wcs is not None and len(stars):
        ra, dec = frame.wcs.pixel_to_world_values(stars.x, stars.y)
    else:
        ra = dec = np.full(len(stars), np.nan)
    table["ra"] = np.asarray(ra, dtype=np.float64) * u.deg
    table["dec"] = np.asarray(dec, dtype=np.float64) * u.deg
    table["flux"] = stars.flux * funit
    table["flux_err"] = stars.flux_err * funit
    table["sky"] = stars.sky * funit / u.pix
    # Magnitudes stay plain floats with the system in the unit string, so NaN survives ECSV.
    table["mag"] = mag
    table["mag"].unit = mag_unit if zeropoint.system != "instrumental" else u.mag
    table["mag_err"] = mag_err * u.mag
    table["sharpness"] = stars.sharpness
    table["roundness"] = stars.roundness
    table["flags"] = stars.flags
    # Written precision: well below each quantity's error, and the same on every rerun.
    for name, fmt in (("x", ".4f"), ("y", ".4f"), ("ra", ".8f"), ("dec", ".8f"), ("flux", ".7g"),
                      ("flux_err", ".5g"), ("sky", ".6g"), ("mag", ".5f"), ("mag_err", ".5f"),
                      ("sharpness", ".4f"), ("roundness", ".4f")):
        table[name].info.format = fmt
    table["x"].description = "0-based pixel column of the centroid"
    table["y"].description = "0-based pixel row of the centroid"
    table["flux"].description = "aperture-corrected total flux, local sky subtracted"
    table["mag"].description = f"{zeropoint.system} magnitude: zeropoint - 2.5 log10(flux / exptime)"
    table["flags"].description = "bit flags: " + "; ".join(f"{k} {v}" for k, v in FLAG_DESCRIPTIONS.items())

    table.meta.update({
        "filter": settings.filter_name,
        "image": str(path),
        "hdu": frame.hdu_index,
        "telescope": keyword(header, "TELESCOP"),
        "instrument": keyword(header, "INSTRUME"),
        "detector": None if keyword(header, "DETECTOR") is None else str(keyword(header, "DETECTOR")),
        "date_obs": keyword(header, "DATE-OBS"),
        "exptime": exptime,
        "image_unit": funit.to_string(),
        "gain": frame_gain,
        "saturation_level": saturation,
        # the wavelength that orders the colours (config, nominal HST value, PHOTPLAM); an AB zero
        # point from the header used the header's own PHOTPLAM, recorded beside it
        "pivot_wavelength": pivot_wavelength(settings.filter_name, settings.pivot_wavelength,
                                             keyword(header, "PHOTPLAM")),
        "photplam": keyword(header, "PHOTPLAM"),
        "zeropoint": zeropoint.as_meta(),
        "magnitude_system": zeropoint.system,
        "aperture_correction": stars.aperture_correction.as_meta(),
        "frame_sky": {"mean": stars.sky_statistics.mean, "median": stars.sky_statistics.median,
                      "std": stars.sky_statistics.std, "unit": funit.to_string()},
        "shape": list(frame.shape),
        # the frame's WCS, so that later steps (registration) need not reopen the frame
        "wcs": None if frame.wcs is None else {k: v for k, v in frame.wcs.to_header(relax=True).items()
                                               if k not in ("COMMENT", "HISTORY", "")},
        "masked_fraction": float(bad.mean()),
        "n_stars": len(stars),
        "flags": {str(k): v for k, v in FLAG_DESCRIPTIONS.items()},
        "parameters": params.as_meta(),
        "versions": package_versions(),
    })
    log.info("%s (%s): %d stars, %s zero point %.4f from %s, aperture correction %+.4f mag from %d stars, "
             "sky %.4g +- %.3g %s", frame.path, settings.filter_name, len(stars), zeropoint.system,
             zeropoint.value, zeropoint.source, stars.aperture_correction.mag, stars.aperture_correction.n_stars,
             stars.sky_statistics.median, stars.sky_statistics.std, funit.to_string())
    return table
