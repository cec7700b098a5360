"""One frame in, one calibrated star catalogue out (an astropy Table with units and metadata)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from . import __version__
from .config import PSF_WORKFLOW_OPTIONS, FrameSettings
from .cosmicrays import (CosmicRayDecision, apply_cosmic_ray_mask, cosmic_ray_decision, file_facts,
                         find_cosmic_rays, read_noise, sky_pedestal)
from .errors import FrameError, ZeropointError
from .filters import pivot_wavelength
from .fwhm import DEFAULT_GUESS, measure_fwhm
from .frames import (DEFAULT_DQ_BITS, Frame, clipped_level, exposure_time, gain, hugs_stack, image_unit, keyword,
                     read_configured_frame, saturation_level)
from .noise import frame_noise
from .photometry import (FLAG_DESCRIPTIONS, FLAG_EDGE, FLAG_NEIGHBOUR, FLAG_NONPOSITIVE_FLUX, Measurements,
                         PhotometryParameters, frame_sky_statistics, magnitudes, measure_frame,
                         region_overlaps)
from .psfio import write_psf
from .psfphot import PSF_FLAG_DESCRIPTIONS, PSFParameters, measure_frame_psf
from .zeropoints import Zeropoint, resolve_zeropoint, uvis_chip_photflam

log = logging.getLogger(__name__)

# Keywords that name a frame's filter: WFC3 and most ground-based headers (FILTER), ACS's two
# wheels (FILTER1/2, the unused one CLEAR...) and WFPC2's (FILTNAM1/2, the unused one blank).
FILTER_KEYWORDS = ("FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAM2")
# Median magnitudes of real stars, whatever the telescope: outside, the zero point or the
# exposure time is wrong.
PLAUSIBLE_MAGNITUDES = (0.0, 40.0)

CATALOG_COLUMNS = ("id", "x", "y", "ra", "dec", "flux", "flux_err", "sky", "mag", "mag_err",
                   "sharpness", "roundness", "flags")
# the PSF path's catalogues: these as well, after the flags
PSF_COLUMNS = ("qfit", "crowding", "n_iter", "found_in_pass")
PHOTOMETRY_METHODS = ("aperture", "psf")
# The PSF path sets the aperture path's bits by its fitting radius (about one FWHM), not by the aperture.
PSF_PATH_FLAG_WORDING = {
    FLAG_EDGE: "fitting radius touches masked pixels or the frame edge",
    FLAG_NONPOSITIVE_FLUX: "fitted flux <= 0, magnitude undefined (NaN)",
    FLAG_NEIGHBOUR: "neighbour within 2 fitting radii",
}


def psf_parameters(values: dict | None) -> PSFParameters:
    """PSFParameters from the config's ``photometry.psf`` (its workflow options left aside).

    Built from the dataclass's own fields, so a field added to it takes its default until the
    schema has it; a key of the config that is neither a field nor a workflow option is a bug
    (the schema and the dataclass disagree) and says so."""
    values = dict(values or {})
    names = {f.name for f in fields(PSFParameters)}
    unknown = set(values) - names - set(PSF_WORKFLOW_OPTIONS)
    if unknown:
        raise ValueError(f"photometry.psf keys {sorted(unknown)} are not fields of PSFParameters "
                         f"({sorted(names)}): workflow/schemas/config.schema.yaml and psfphot.py disagree")
    return PSFParameters(**{k: v for k, v in values.items() if k in names})


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


@dataclass(frozen=True)
class FrameCalibration:
    """What turns a frame's pixel values into electrons and magnitudes, from its header and the
    config's overrides."""

    exptime: float  # s
    unit: str  # the image's unit, as the header gives it
    is_rate: bool  # per second
    gain: float  # electrons per image unit (per second for a rate)
    electrons_per_unit: float  # electrons per pixel value (a stack's: as many as it averages exposures)
    saturation: float | None  # image units; None: unknown
    exposures_averaged: float = 1.0  # a HUGS stack: its EXPTIME over the exposure it is normalised to
    saturation_source: str = "unknown"  # config, a header keyword, a detector's full well, or the clipped pixels

    def flux_for_mag(self, mag: np.ndarray, zeropoint: float) -> np.ndarray:
        """The total flux (image units) of stars of magnitude ``mag``: :func:`clusterphot.photometry.magnitudes`
        inverted."""
        rate = 10.0 ** (-0.4 * (np.asarray(mag, float) - zeropoint))
        return rate if self.is_rate else rate * self.exptime


def frame_calibration(frame: Frame, settings: FrameSettings, bad: np.ndarray) -> FrameCalibration:
    """A frame's exposure time, unit, gain and saturation level (FrameError naming the file
    where the header lacks what is needed and the config does not give it); ``bad``: the frame's
    unusable pixels (:meth:`Frame.bad_pixels`, the caller's), left out of a clipped level."""
    exptime = exposure_time(frame.header, frame.path, settings.exptime, settings.source_name)
    unit, is_rate = image_unit(frame.header, frame.path)
    frame_gain = gain(frame.header, unit, settings.gain)
    saturation, saturation_source = saturation_level(frame.header, unit, is_rate, exptime, frame_gain,
                                                     settings.saturation)
    if saturation is None:  # no keyword, no known detector: the frame's own flat-topped stars, if it has them
        clipped = clipped_level(frame.data, bad)
        if clipped is not None:
            saturation, saturation_source = clipped[0], f"clipped: {clipped[1]} pixels at the frame's largest value"
            log.warning("%s: no saturation level in its header or the config, but %d pixels hold its largest "
                        "value, %.6g: taken as the level it saturates at (set 'saturation' if its detector "
                        "saturates lower)", frame.path, clipped[1], saturation)
    # A HUGS stack is the mean of its exposures normalised to one of them (its name's), EXPTIME
    # their total: a unit of it holds as many electrons' photons as exposures went in
    stack = hugs_stack(frame.header, [frame.path.name, settings.source_name])
    averaged = stack[1] if stack is not None and settings.exptime is None else 1.0
    return FrameCalibration(exptime, unit, is_rate, frame_gain,
                            frame_gain * averaged * (exptime if is_rate else 1.0), saturation, averaged,
                            saturation_source)


def cosmic_rays_of_frame(frame: Frame, settings: FrameSettings) -> tuple[np.ndarray | None, CosmicRayDecision]:
    """The frame's cosmic-ray pixels (None when it needs none) and why, by its
    ``settings.cosmic_rays`` (:func:`clusterphot.cosmicrays.cosmic_ray_decision`; a frame fetched
    by URL is known by its name too, ``settings.source_name``). L.A.Cosmic works in electrons, with the
    frame's read noise and saturation level, and the sky added back to a frame that had it
    subtracted (:func:`clusterphot.cosmicrays.sky_pedestal`)."""
    dq_bits = DEFAULT_DQ_BITS if settings.dq_bits is None else settings.dq_bits
    extensions, dq_cosmic_ray_bits = file_facts(frame, dq_bits)
    names = [frame.path.name] + ([settings.source_name] if settings.source_name else [])
    decision = cosmic_ray_decision(settings.cosmic_rays, frame.header, names, extensions, dq_cosmic_ray_bits)
    if not decision.lacosmic:
        return None, decision
    bad = frame.bad_pixels()
    calibration = frame_calibration(frame, settings, bad)
    epu = calibration.electrons_per_unit
    noise = read_noise(frame.header)
    sky = frame_sky_statistics(frame.data, bad)
    pedestal = sky_pedestal(sky.median * epu, sky.std * epu, noise)
    if pedestal > 0:
        log.info("%s: its sky was subtracted (median %.3g e-, scatter %.3g e-): %.4g e- added back for "
                 "L.A.Cosmic's noise model", frame.path, sky.median * epu, sky.std * epu, pedestal)
        decision = CosmicRayDecision(True, f"{decision.reason}; sky of {pedestal:.4g} e- added back")
    return find_cosmic_rays(frame.data, bad, epu, noise, calibration.saturation, pedestal), decision


def read_frame_for_photometry(path: str | Path, settings: FrameSettings,
                              cosmic_ray_mask: str | Path | None) -> tuple[Frame, dict]:
    """The frame with its cosmic rays masked and its product's noise (ERR or WHT, for
    :func:`clusterphot.noise.frame_noise`): the cosmic rays from the workflow's mask file
    (``cosmic_ray_mask``), or found here by ``settings.cosmic_rays`` when there is none (the
    CLI); and what was done, for the catalogue's metadata."""
    frame = read_configured_frame(path, settings, with_noise=True)
    if cosmic_ray_mask is not None:
        return frame, apply_cosmic_ray_mask(frame, cosmic_ray_mask)
    mask, decision = cosmic_rays_of_frame(frame, settings)
    if mask is not None:
        frame.mask_also(mask)
    return frame, {"cosmic_rays": "lacosmic" if decision.lacosmic else "none", "cosmic_rays_reason": decision.reason,
                   "cosmic_ray_pixels": 0 if mask is None else int(mask.sum())}


def catalog_for_frame(path: str | Path, settings: FrameSettings, params: PhotometryParameters,
                      system: str = "AB", zeropoint_cache: Path | None = None,
                      zeropoint_service: str | None = None, method: str = "aperture",
                      psf_params: PSFParameters | None = None, fallback: str = "error",
                      psf_output: str | Path | None = None, cosmic_ray_mask: str | Path | None = None) -> Table:
    """Measure every star of one frame and return the calibrated catalogue.

    ``method``: 'aperture', or 'psf' (PSF fitting with ``psf_params``; its PSF, fitted sky and
    PSF stars are written to ``psf_output`` when given, see :mod:`clusterphot.psfio`). When the
    PSF cannot be learned (too few PSF stars, no stars), ``fallback`` 'error' stops with the
    FrameError naming the file; 'aperture' measures the frame with apertures instead, says so
    in the log and in the catalogue's metadata (``psf_fallback``) and writes a PSF file that
    records it. Cosmic rays: see :func:`read_frame_for_photometry`.
    """
    if method not in PHOTOMETRY_METHODS:
        raise ValueError(f"photometry method {method!r} is none of {PHOTOMETRY_METHODS}")
    frame, cosmic_rays = read_frame_for_photometry(path, settings, cosmic_ray_mask)
    if cosmic_rays["cosmic_rays"] == "lacosmic":
        log.info("%s (%s): %d cosmic-ray pixels masked (%s)", frame.path, settings.filter_name,
                 cosmic_rays["cosmic_ray_pixels"], cosmic_rays["cosmic_rays_reason"])
    else:  # the metadata says why (and rule cosmic_rays's log)
        log.debug("%s (%s): no cosmic rays looked for (%s)", frame.path, settings.filter_name,
                  cosmic_rays["cosmic_rays_reason"])
    header = frame.header
    check_header_filter(header, settings.filter_name, frame.path)
    check_region(frame.shape, params, frame.path)
    bad = frame.bad_pixels()
    calibration = frame_calibration(frame, settings, bad)
    exptime, unit, is_rate = calibration.exptime, calibration.unit, calibration.is_rate
    frame_gain, electrons_per_unit = calibration.gain, calibration.electrons_per_unit
    saturation = calibration.saturation
    if saturation is None:
        log.warning("%s: saturation level unknown (no SATURATE keyword, unknown detector, no clipped "
                    "pixels); saturated stars are not flagged. Set 'saturation' in the config.", frame.path)
    photflam, photflam_label = uvis_chip_photflam(
        keyword(header, "INSTRUME"), keyword(header, "DETECTOR"), keyword(header, "PHOTFLAM"),
        keyword(header, "PHTFLAM1"), keyword(header, "PHTFLAM2"), keyword(header, "FLUXCORR"),
        keyword(header, "CCDCHIP"))
    try:
        zeropoint = resolve_zeropoint(
            system,
            override=settings.zeropoint,
            override_system=settings.zeropoint_system,
            photflam=photflam,
            photflam_label=photflam_label,
            photplam=keyword(header, "PHOTPLAM"),
            instrument=keyword(header, "INSTRUME"),
            detector=str(keyword(header, "DETECTOR", default="")),
            filter_name=settings.filter_name,
            date=keyword(header, "DATE-OBS"),
            cache_dir=zeropoint_cache,
            service_url=zeropoint_service,
            electrons_per_count=frame_gain if unit == "count" else 1.0,
        )
    except ZeropointError as error:
        raise FrameError(f"{frame.path}: {error}") from None

    params, fwhm_meta = frame_fwhm(frame.data, bad, params, saturation, frame.path)
    hint = ("" if params.region is None else
            f"; 'photometry.region' is {list(params.region)}: set it to a part of the frame with data")
    noise = frame_noise(frame, bad, electrons_per_unit)
    fallback_reason = None
    if method == "psf":
        psf_params = psf_params or PSFParameters()
        try:
            stars = measure_frame_psf(frame.data, bad, params, psf_params, electrons_per_unit, saturation,
                                      noise=noise, detect_through=frame.product_mask)
        except FrameError as error:  # raised without the file's name
            if fallback != "aperture":
                raise FrameError(f"{frame.path}: {error}{hint}") from None
            fallback_reason = str(error)
            log.warning("%s: no PSF photometry: %s; measured with apertures instead "
                        "(photometry.psf.fallback: aperture)", frame.path, error)
            # the PSF path subtracted the sky in place: the aperture path starts from the pixels
            # (the mask it left as it was, cosmic rays and all)
            product_mask = frame.product_mask
            frame = read_configured_frame(path, settings)
            frame.product_mask = product_mask
    if method == "aperture" or fallback_reason is not None:
        try:
            stars = measure_frame(frame.data, bad, params, electrons_per_unit, saturation, noise=noise,
                                  detect_through=frame.product_mask)
        except FrameError as error:  # raised without the file's name
            raise FrameError(f"{frame.path}: {error}{hint}") from None
    measured_with_psf = method == "psf" and fallback_reason is None
    mag, mag_err = magnitudes(stars.flux, stars.flux_err, zeropoint.value, exptime, is_rate)
    check_magnitudes(mag, frame.path, zeropoint, exptime)

    funit = flux_unit(unit, is_rate)
    table = star_table(stars, mag, mag_err, frame.wcs, funit, zeropoint.system, measured_with_psf)
    flag_descriptions = ({**FLAG_DESCRIPTIONS, **PSF_PATH_FLAG_WORDING, **PSF_FLAG_DESCRIPTIONS} if measured_with_psf
                         else FLAG_DESCRIPTIONS)
    table["flags"].description = "bit flags: " + "; ".join(f"{k} {v}" for k, v in flag_descriptions.items())

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
        "exposures_averaged": calibration.exposures_averaged,
        "saturation_level": saturation,
        "saturation_source": calibration.saturation_source,
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
        **cosmic_rays,
        "noise": noise.as_meta(),
        "n_stars": len(stars),
        "fwhm": fwhm_meta,
        "flags": {str(k): v for k, v in flag_descriptions.items()},
        "parameters": params.as_meta(),
        "versions": package_versions(),
    })
    if method == "psf":
        table.meta["photometry_method"] = "psf" if measured_with_psf else "aperture"
        table.meta["psf_parameters"] = {**psf_params.as_meta(), "fallback": fallback}
    if fallback_reason is not None:
        table.meta["psf_fallback"] = {"requested": "psf", "reason": fallback_reason,
                                      "file": None if psf_output is None else str(psf_output)}
        if psf_output is not None:
            write_psf(psf_output, None, cards={"FILTER": settings.filter_name, "IMAGE": str(path)},
                      note=f"no PSF: {fallback_reason}; measured with apertures (photometry.psf.fallback: aperture)")
    if measured_with_psf:
        psf = stars.extra["psf"]
        tiles = stars.extra["tiles"]
        table.meta["psf"] = {"fwhm": float(psf.fwhm), "n_stars": int(psf.n_stars),
                             "oversampling": int(psf.oversampling), "radius": float(psf.radius),
                             "tiles": len(tiles), "tiles_with_own_psf": sum(int(tile.own_psf) for tile in tiles),
                             "interpolation_zone": int(stars.extra.get("interpolation_zone", 0)),
                             "file": None if psf_output is None else str(psf_output)}
        table.meta["passes"] = stars.extra["passes"]
        if psf_output is not None:
            write_frame_psf(psf_output, stars, table, psf_params,
                            {"FILTER": settings.filter_name, "IMAGE": str(path)})
        if tiles:
            log.info("%s (%s): PSF from %d stars, FWHM %.2f px; %d tiles, %d with a PSF of their own",
                     frame.path, settings.filter_name, psf.n_stars, psf.fwhm, len(tiles),
                     table.meta["psf"]["tiles_with_own_psf"])
        else:
            log.info("%s (%s): PSF from %d stars, FWHM %.2f px; passes %s", frame.path, settings.filter_name,
                     psf.n_stars, psf.fwhm, stars.extra["passes"])
    log.info("%s (%s): %d stars (%s photometry), %s zero point %.4f from %s, %s %+.4f mag from %d stars, "
             "sky %.4g +- %.3g %s", frame.path, settings.filter_name, len(stars),
             "PSF" if measured_with_psf else "aperture", zeropoint.system, zeropoint.value, zeropoint.source,
             "correction to total" if measured_with_psf else "aperture correction",
             stars.aperture_correction.mag, stars.aperture_correction.n_stars,
             stars.sky_statistics.median, stars.sky_statistics.std, funit.to_string())
    return table


def frame_fwhm(data: np.ndarray, bad: np.ndarray, params: PhotometryParameters, saturation: float | None,
               path: Path) -> tuple[PhotometryParameters, dict]:
    """The frame's parameters in pixels (:meth:`PhotometryParameters.in_pixels`) at the FWHM
    measured from its bright stars (``photometry.fwhm: auto``) or the configured one; and for
    the metadata what was measured, used and configured. The FWHM is measured either way: a
    configured one far from the stars' is worth a warning."""
    auto = params.fwhm == "auto"
    measured = measure_fwhm(data, bad, saturation, DEFAULT_GUESS if auto else float(params.fwhm),
                            params.saturation_fraction)
    if auto and measured.measured:
        used, source = measured.fwhm, "measured (photometry.fwhm: auto)"
    elif auto:
        used, source = DEFAULT_GUESS, f"assumed: the frame's could not be measured ({measured.note})"
        log.warning("%s: the FWHM could not be measured (%s); %.1f px assumed: set photometry.fwhm for this "
                    "cluster", path, measured.note, DEFAULT_GUESS)
    else:
        used, source = float(params.fwhm), "the config's photometry.fwhm"
        if measured.measured and abs(measured.fwhm / used - 1.0) > 0.3:
            log.warning("%s: photometry.fwhm is %.2f px but the frame's stars measure %.2f px: set it to that, or "
                        "to auto", path, used, measured.fwhm)
    resolved = params.in_pixels(used)
    if resolved.annulus_radii[0] < 2.5 * used or resolved.aperture_correction_radius < 2.5 * used:
        log.warning("%s: at a FWHM of %.2f px the sky annulus starts at %.2f px and the aperture correction reaches "
                    "%.2f px, within 2.5 FWHM: the star's own light is in its sky and the correction falls short; "
                    "give photometry.annulus_radii and aperture_correction_radius in FWHM ('4 fwhm')", path, used,
                    resolved.annulus_radii[0], resolved.aperture_correction_radius)
    log.info("%s: FWHM %.2f px, %s; stars measure %s; aperture %.2f px, sky annulus %.2f-%.2f px, aperture "
             "correction to %.2f px", path, used, source,
             f"{measured.fwhm:.2f} +- {measured.scatter:.2f} px ({measured.n_stars} stars' profile; a Gaussian's "
             f"{measured.gaussian:.2f} px)"
             if measured.measured else f"nothing ({measured.note})",
             resolved.aperture_radius, *resolved.annulus_radii, resolved.aperture_correction_radius)
    configured = {name: getattr(params, name) for name in ("fwhm", "aperture_radius", "aperture_correction_radius")}
    configured["annulus_radii"] = list(params.annulus_radii)
    return resolved, {"used": used, "source": source, **measured.as_meta(), "configured": configured}


def star_table(stars: Measurements, mag: np.ndarray, mag_err: np.ndarray, wcs, funit: u.UnitBase, system: str,
               psf: bool) -> Table:
    """The catalogue's columns, with units, descriptions and written precision; with ``psf`` the
    PSF fit's columns too."""
    mag_unit = {"AB": u.ABmag, "ST": u.STmag}.get(system, u.mag)
    table = Table()
    table["id"] = np.arange(1, len(stars) + 1, dtype=np.int64)
    table["x"] = stars.x * u.pix
    table["y"] = stars.y * u.pix
    if wcs is not None and len(stars):
        ra, dec = wcs.pixel_to_world_values(stars.x, stars.y)
    else:
        ra = dec = np.full(len(stars), np.nan)
    table["ra"] = np.asarray(ra, dtype=np.float64) * u.deg
    table["dec"] = np.asarray(dec, dtype=np.float64) * u.deg
    table["flux"] = stars.flux * funit
    table["flux_err"] = stars.flux_err * funit
    table["sky"] = stars.sky * funit / u.pix
    # Magnitudes stay plain floats with the system in the unit string, so NaN survives ECSV.
    table["mag"] = mag
    table["mag"].unit = mag_unit if system != "instrumental" else u.mag
    table["mag_err"] = mag_err * u.mag
    table["sharpness"] = stars.sharpness
    table["roundness"] = stars.roundness
    table["flags"] = stars.flags
    # Written precision: well below each quantity's error, and the same on every rerun.
    formats = [("x", ".4f"), ("y", ".4f"), ("ra", ".8f"), ("dec", ".8f"), ("flux", ".7g"),
               ("flux_err", ".5g"), ("sky", ".6g"), ("mag", ".5f"), ("mag_err", ".5f"),
               ("sharpness", ".4f"), ("roundness", ".4f")]
    table["x"].description = "0-based pixel column of the centroid"
    table["y"].description = "0-based pixel row of the centroid"
    table["flux"].description = "aperture-corrected total flux, local sky subtracted"
    table["mag"].description = f"{system} magnitude: zeropoint - 2.5 log10(flux / exptime)"
    if psf:
        table["x"].description = "0-based pixel column of the PSF fit's position"
        table["y"].description = "0-based pixel row of the PSF fit's position"
        table["flux"].description = "PSF flux corrected to total, fitted sky subtracted"
        table["sky"].description = "fitted sky per pixel at the star"
        table["sharpness"].description = "DAOFIND sharpness where the star was detected"
        table["roundness"].description = "DAOFIND roundness where the star was detected"
        extra = stars.extra
        table["qfit"] = np.asarray(extra["qfit"], dtype=np.float64)
        table["qfit"].description = ("reduced chi^2 of the PSF fit on the star's pixels within one fitting "
                                    "radius (about a FWHM; 1: as the noise says)")
        table["crowding"] = np.asarray(extra["crowding"], dtype=np.float64) * u.mag
        table["crowding"].description = ("how much brighter the star would seem were its neighbours not "
                                         "fitted, within one fitting radius (0: no neighbour light there)")
        table["n_iter"] = np.asarray(extra["n_iter"], dtype=np.int32)
        table["n_iter"].description = "fits the star took part in"
        table["found_in_pass"] = np.asarray(extra["found_in_pass"], dtype=np.int32)
        table["found_in_pass"].description = ("0: detected on the frame; k: on the residual image of the "
                                              "k-th pass (flag 64)")
        formats += [("qfit", ".4g"), ("crowding", ".4f")]
    for name, fmt in formats:
        table[name].info.format = fmt
    return table


def write_frame_psf(path: str | Path, stars: Measurements, table: Table, psf_params: PSFParameters,
                    cards: dict) -> None:
    """The PSF file of a frame measured with PSF fitting: the PSF, the fitted sky per cell and the
    PSF stars, so that the catalogue and this file give back the fit's model
    (:func:`clusterphot.psfio.model_image`)."""
    cell = int(psf_params.sky_cell)
    chosen = np.asarray(stars.extra["psf_stars"], dtype=np.intp)
    write_psf(path, stars.extra["psf"], sky=stars.extra["sky_cells"], sky_cell=cell, tiles=stars.extra["tiles"],
              zone=int(stars.extra.get("interpolation_zone", 0)), sky_level=float(np.float32(stars.sky_statistics.median)), correction=stars.aperture_correction.factor,
              footprint_level=float(stars.extra["footprint_level"]),
              footprint_smallest=float(stars.extra["footprint_smallest"]),
              psf_star_ids=np.asarray(table["id"])[chosen],
              psf_star_x=stars.x[chosen], psf_star_y=stars.y[chosen], psf_errors=stars.extra.get("psf_errors"),
              cards=cards)
