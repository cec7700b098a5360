"""One frame in, one calibrated star catalogue out (an astropy Table with units and metadata)."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from . import __version__
from .config import FrameSettings
from .errors import FrameError, ZeropointError
from .filters import pivot_wavelength
from .frames import bad_pixel_mask, exposure_time, gain, image_unit, keyword, read_frame, saturation_level
from .photometry import FLAG_DESCRIPTIONS, PhotometryParameters, magnitudes, measure_frame
from .zeropoints import resolve_zeropoint

log = logging.getLogger(__name__)

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


def catalog_for_frame(path: str | Path, settings: FrameSettings, params: PhotometryParameters,
                      system: str = "AB", zeropoint_cache: Path | None = None,
                      zeropoint_service: str | None = None) -> Table:
    """Measure every star of one frame and return the calibrated catalogue."""
    frame = read_frame(path, hdu=settings.hdu, plane=settings.plane)
    header = frame.header
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
    stars = measure_frame(frame.data, bad, params, electrons_per_unit, saturation)
    mag, mag_err = magnitudes(stars.flux, stars.flux_err, zeropoint.value, exptime, is_rate)

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
        "pivot_wavelength": pivot_wavelength(settings.filter_name, settings.pivot_wavelength,
                                             keyword(header, "PHOTPLAM")),
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
