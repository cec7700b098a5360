"""Artificial-star tests of one frame as the workflow runs them (issue 12): each job draws its
share of the frame's artificial stars and measures them in passes of at most ``fraction`` of
the frame's stars (so that they do not crowd the field themselves); the frame's jobs are then
gathered into one table of artificial stars and the completeness curve per magnitude and
radial zone, with the 50 and 90 per cent completeness limits. The science is in
:mod:`clusterphot.completeness`.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table, vstack

from .catalog import float_column, frame_calibration, read_frame_for_photometry
from .config import FrameSettings
from .completeness import (ZONES, aperture_path_psf, cluster_centre, completeness_curve, completeness_limit,
                           default_magnitude_range, fit_fleming, measure_artificial_pass,
                           measure_artificial_pass_aperture, light_in_rings, positions_in_light, radial_zones,
                           recovered_stars, sky_below_cluster, symmetry_centre)
from .errors import FrameError
from .noise import frame_noise
from .photometry import FLAG_SATURATED, PhotometryParameters, magnitudes, region_mask
from .psffit import fit_radius_for
from .psfio import model_image, read_psf
from .psfphot import PSFParameters

log = logging.getLogger(__name__)

TRACER_FRACTION = 0.1  # the brightest tenth of the stars find the cluster's centre
MIN_TRACERS = 50  # and at least this many
# PSF path: a pass fits the stars detected within this many FWHM of an artificial one (the
# neighbours whose fitting pixels its light reaches; farther ones are held as measured), and at
# least those whose fitting pixels touch its own (patch_radius). Against the truth on simulated
# crowded frames (4000 artificial stars on 1000x1000 with 15,000 stars, 3000 on 600x600 with
# 5000) 3.6 FWHM gives the completeness of 5.5 FWHM within 0.007 per 1-mag bin, its bias within
# 0.0015 mag and its scatter within 10 %, fitting half the stars (5.0 against 6.8 ms per
# artificial star); 3.2 FWHM (the least at FWHM 2.2: 7.4 px) that of 3.6 within 0.009, 0.003
# mag and 6 %
PSF_PATCH_FWHM = 3.2


@dataclass(frozen=True)
class ArtificialStarSettings:
    """The config's ``artificial_stars`` section (the schema holds the defaults)."""

    n_stars: int = 400  # per frame; 0: none
    magnitude_range: tuple[float, float] | None = None  # None: default_magnitude_range
    fraction: float = 0.05  # of the frame's stars, injected in one pass
    recovery_radius: float = 1.0  # px
    max_delta_mag: float = 0.75
    seed: int = 1
    bin_width: float = 0.5  # mag
    zones: int = ZONES

    @classmethod
    def from_meta(cls, values: dict) -> ArtificialStarSettings:
        """From the config's section (its ``jobs`` aside); another key means the schema and this
        class disagree: a bug, said so."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known - {"jobs"}
        if unknown:
            raise ValueError(f"artificial_stars keys {sorted(unknown)} are not fields of ArtificialStarSettings: "
                             "workflow/schemas/config.schema.yaml and artificial.py disagree")
        values = {k: v for k, v in values.items() if k in known}
        if values.get("magnitude_range") is not None:
            values["magnitude_range"] = tuple(values["magnitude_range"])
        return cls(**values)


def scatter_item(item: str) -> tuple[int, int]:
    """(job, n_jobs) of Snakemake's scatter item "k-of-n": job 0-based."""
    k, n = item.split("-of-")
    return int(k) - 1, int(n)


def job_share(n_stars: int, n_jobs: int, job: int) -> int:
    """How many of a frame's ``n_stars`` artificial stars job ``job`` (0-based) of ``n_jobs`` draws."""
    return n_stars // n_jobs + (1 if job < n_stars % n_jobs else 0)


def pass_sizes(n_stars: int, n_catalogue: int, fraction: float) -> list[int]:
    """Numbers of artificial stars per pass: as few passes as keep each at most ``fraction`` of
    the catalogue's ``n_catalogue`` stars (at least one star a pass), their sizes as even as can be."""
    if n_stars <= 0:
        return []
    passes = math.ceil(n_stars / max(1, math.floor(fraction * n_catalogue)))
    return [n_stars // passes + (1 if k < n_stars % passes else 0) for k in range(passes)]


def job_seed(seed: int, cluster: str, filter_name: str, job: int) -> list[int]:
    """The entropy of one job's random numbers: the config's seed, the frame and the job (every
    frame and job its own stream; the same run twice, the same stars)."""
    return [int(seed), zlib.crc32(cluster.encode()), zlib.crc32(filter_name.encode()), int(job)]


def tracer_stars(mag: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The stars that find the cluster's centre (:func:`profile_centre`): the brightest
    TRACER_FRACTION of the unsaturated stars with a magnitude (at least MIN_TRACERS), the least
    incomplete in a crowded core. (Its radial profile comes from the frame's light: even these
    are hidden in a dense core.)"""
    usable = np.flatnonzero(np.isfinite(mag) & ((np.asarray(flags) & FLAG_SATURATED) == 0))
    n = max(MIN_TRACERS, int(TRACER_FRACTION * len(usable)))
    tracers = np.zeros(len(mag), bool)
    tracers[usable[np.argsort(mag[usable], kind="stable")][:n]] = True
    return tracers


def profile_centre(x: np.ndarray, y: np.ndarray, tracers: np.ndarray, shape: tuple[int, int],
                   fwhm: float) -> tuple[float, float]:
    """The cluster's centre: where its tracer stars (``tracers`` of x, y) are densest, smoothed
    over 5 per cent of the frame (at least 10 FWHM), then the centre of all the stars around it
    (:func:`clusterphot.completeness.symmetry_centre`, within 2-6 times that smoothing): the
    densest point of the stars found lies on the ring around a crowded core's hole."""
    smoothing = max(10.0 * fwhm, 0.05 * min(shape))
    start = cluster_centre(x[tracers], y[tracers], shape, smoothing)
    return symmetry_centre(x, y, shape, start, 2.0 * smoothing, 6.0 * smoothing)


def patch_radius(method: str, params: PhotometryParameters, recovery_radius: float) -> float:
    """How far from an artificial star a pass measures the stars it detects: far enough that
    every star whose measurement the artificial one changes is measured again (PSF path: its
    neighbours in the fit, PSF_PATCH_FWHM FWHM; aperture path: its apertures' neighbours for
    the neighbour flag, twice the aperture radius beyond the recovery radius)."""
    if method == "psf":
        return max(PSF_PATCH_FWHM * params.fwhm, 2.0 * fit_radius_for(params.fwhm) + recovery_radius + 2.0)
    return recovery_radius + 2.0 * params.aperture_radius + 1.0


def catalogue_arrays(catalog: Table) -> dict[str, np.ndarray]:
    """x, y, flux, mag, mag_err and flags of a catalogue as plain arrays (NaN magnitudes kept)."""
    return {name: float_column(catalog[name]) for name in ("x", "y", "flux", "mag", "mag_err")} | {
        "flags": np.asarray(catalog["flags"], dtype=np.int64)}


def run_artificial_stars(image: str | Path, settings: FrameSettings, catalog: Table, psf_path: str | Path | None,
                         params: PhotometryParameters, psf_params: PSFParameters | None,
                         ast: ArtificialStarSettings, cluster: str, job: int, n_jobs: int,
                         cosmic_ray_mask: str | Path | None = None) -> Table:
    """Job ``job`` (0-based) of ``n_jobs`` of a frame's artificial-star test: its share of
    ``ast.n_stars`` drawn and measured in passes as the catalogue was measured (with its PSF
    file when the frame was measured by PSF fitting; otherwise with apertures, the artificial
    stars drawn with a PSF learned the same way). One row per artificial star. The catalogue's
    cosmic rays (``cosmic_ray_mask``, the workflow's file) stay masked: the artificial stars
    fall on them as real stars do."""
    frame, _ = read_frame_for_photometry(image, settings, cosmic_ray_mask)
    bad = frame.bad_pixels()
    calibration = frame_calibration(frame, settings, bad)
    if not params.is_in_pixels:  # as the catalogue was measured: at its FWHM (photometry.fwhm: auto)
        params = params.in_pixels(float(catalog.meta["fwhm"]["used"]))
    stars = catalogue_arrays(catalog)
    zeropoint = float(catalog.meta["zeropoint"]["value"])
    method = catalog.meta.get("photometry_method", "aperture")  # a PSF frame fallen back: apertures
    psf_params = psf_params or PSFParameters()
    noise = frame_noise(frame, bad, calibration.electrons_per_unit)  # the product's, as the catalogue's
    outside = region_mask(frame.shape, params.region)
    avoid = bad if outside is None else bad | outside
    tracers = tracer_stars(stars["mag"], stars["flags"])
    seed = job_seed(ast.seed, cluster, settings.filter_name, job)
    rng = np.random.default_rng(seed)
    radius = patch_radius(method, params, ast.recovery_radius)
    skipped, mag_range, profile_sky = None, ast.magnitude_range, None
    if tracers.sum() < 2:  # an empty catalogue, or one without unsaturated stars with magnitudes
        skipped = f"only {int(tracers.sum())} unsaturated stars with a magnitude to trace the cluster's profile"
    else:
        centre = profile_centre(stars["x"], stars["y"], tracers, frame.shape, params.fwhm)
        # the cluster's light in rings of one FWHM: fine enough for a core a few FWHM wide
        profile_sky = sky_below_cluster(frame.data, ~avoid, centre)
        light = light_in_rings(frame.data, ~avoid, centre, params.fwhm, profile_sky)
        if not light.sum() > 0:
            skipped = "the frame shows no light above its sky to trace the cluster's profile"
        else:
            log.info("artificial stars follow the frame's light in rings of %.2f px around (%.1f, %.1f), above a "
                     "sky of %.6g", params.fwhm, centre[0], centre[1], profile_sky)
        mag_range = mag_range or default_magnitude_range(stars["mag"], (stars["flags"] & FLAG_SATURATED) > 0,
                                                         stars["mag_err"])
    if skipped is None and method == "psf":
        psf_file = read_psf(psf_path)
        # the catalogue's stars and fitted sky, drawn once for all the job's passes
        catalogue_light = model_image(psf_file, stars["x"], stars["y"], stars["flux"],
                                      (0, 0, frame.shape[1], frame.shape[0]))
    elif skipped is None:
        try:
            psf = aperture_path_psf(np.array(frame.data, np.float32), bad, stars["x"], stars["y"], params, psf_params,
                                    calibration.saturation, calibration.electrons_per_unit)
        except FrameError as error:
            # a small or sparse frame measured with apertures: its catalogue stands, its
            # completeness is unknown (NaN), and the log and the tables say why
            skipped = f"{error}; lower photometry.psf.min_psf_stars to test it"
        correction = float(catalog.meta["aperture_correction"]["factor"])
    if skipped:
        log.warning("%s: no artificial-star test: %s", frame.path, skipped)

    sizes = [] if skipped else pass_sizes(job_share(ast.n_stars, n_jobs, job), len(catalog), ast.fraction)
    parts = []
    for number, n in enumerate(sizes):
        x, y = positions_in_light(light, params.fwhm, centre, n, frame.shape, rng, avoid)
        mag_in = rng.uniform(mag_range[0], mag_range[1], n)
        flux = calibration.flux_for_mag(mag_in, zeropoint)
        if method == "psf":
            measured = measure_artificial_pass(frame.data, bad, stars, psf_file, x, y, flux, params, psf_params,
                                               calibration.electrons_per_unit, calibration.saturation, rng, radius,
                                               catalogue_light, noise, frame.product_mask)
        else:
            measured = measure_artificial_pass_aperture(frame.data, bad, psf, x, y, flux, params,
                                                        calibration.electrons_per_unit, calibration.saturation, rng,
                                                        radius, correction, noise, frame.product_mask)
        mag_out, mag_err_out = magnitudes(measured.flux, measured.flux_err, zeropoint, calibration.exptime,
                                          calibration.is_rate)
        match = recovered_stars(x, y, mag_in, measured.x, measured.y, mag_out, stars["x"], stars["y"], stars["mag"],
                                ast.recovery_radius, ast.max_delta_mag)
        parts.append(pass_table(x, y, mag_in, match, measured, mag_out, mag_err_out, job, number))
        log.info("job %d, pass %d: %d artificial stars, %d recovered; %d stars measured around them", job + 1,
                 number + 1, n, int((match >= 0).sum()), len(measured.x))
    table = vstack(parts) if parts else pass_table(*[np.zeros(0)] * 3, np.zeros(0, np.intp), None,
                                                   np.zeros(0), np.zeros(0), job, 0)
    table.meta.update({"cluster": cluster, "filter": settings.filter_name, "job": job + 1, "n_jobs": n_jobs,
                       "seed_entropy": seed, "passes": sizes,
                       "magnitude_range": None if mag_range is None else [float(m) for m in mag_range],
                       "photometry_method": method, "patch_radius": radius, "profile_sky": profile_sky,
                       "settings": settings_meta(ast),
                       "skipped": skipped})
    return table


def pass_table(x: np.ndarray, y: np.ndarray, mag_in: np.ndarray, match: np.ndarray, measured, mag_out: np.ndarray,
               mag_err_out: np.ndarray, job: int, number: int) -> Table:
    """The rows of one pass's artificial stars: where and how bright they were put, and what
    the measurement that recovered each gave (NaN, flags -1 where none did)."""
    found = match >= 0
    picked = match[found]

    def out(values, fill):
        column = np.full(len(x), fill, dtype=np.asarray(values).dtype if len(values) else float)
        column[found] = np.asarray(values)[picked]
        return column

    empty = np.zeros(0)
    table = Table()
    table["x"] = np.asarray(x, float) * u.pix
    table["y"] = np.asarray(y, float) * u.pix
    table["mag_in"] = np.asarray(mag_in, float) * u.mag
    table["recovered"] = found
    table["mag_out"] = out(mag_out, np.nan) * u.mag
    table["mag_err_out"] = out(mag_err_out, np.nan) * u.mag
    table["x_out"] = out(measured.x if measured is not None else empty, np.nan) * u.pix
    table["y_out"] = out(measured.y if measured is not None else empty, np.nan) * u.pix
    table["flags_out"] = out(measured.flags if measured is not None else np.zeros(0, np.int32), -1).astype(np.int32)
    table["job"] = np.full(len(x), job + 1, np.int32)
    table["pass"] = np.full(len(x), number + 1, np.int32)
    return table


def settings_meta(ast: ArtificialStarSettings) -> dict:
    values = asdict(ast)
    values["magnitude_range"] = None if ast.magnitude_range is None else list(ast.magnitude_range)
    return values


def describe_columns(table: Table, system: str) -> None:
    """Descriptions and written precision of the artificial stars' table's columns."""
    descriptions = {
        "x": "0-based pixel column where the artificial star was put",
        "y": "0-based pixel row where the artificial star was put",
        "mag_in": f"{system} magnitude it was given",
        "recovered": "a new detection within the recovery radius and max_delta_mag of it",
        "mag_out": f"{system} magnitude measured (NaN: not recovered)",
        "mag_err_out": "error of mag_out",
        "x_out": "0-based pixel column measured",
        "y_out": "0-based pixel row measured",
        "flags_out": "the measured star's flags, as the catalogue's (-1: not recovered)",
        "r_centre": "distance from the cluster's centre",
        "zone": "radial zone (1: innermost; see the curve's zone_edges_px)",
        "job": "the job (of n_jobs) that measured it",
        "pass": "the pass of its job",
    }
    for name, text in descriptions.items():
        if name in table.colnames:
            table[name].description = text
    for name, fmt in (("x", ".3f"), ("y", ".3f"), ("x_out", ".3f"), ("y_out", ".3f"), ("mag_in", ".4f"),
                      ("mag_out", ".4f"), ("mag_err_out", ".4f"), ("r_centre", ".2f")):
        table[name].info.format = fmt


def gather_artificial_stars(parts: list[Table], catalog: Table, ast: ArtificialStarSettings) -> tuple[Table, Table]:
    """The frame's jobs' artificial stars in one table (with each star's distance from the
    cluster's centre and radial zone) and its completeness curve (per magnitude bin and zone,
    :func:`clusterphot.completeness.completeness_curve`), the Fleming et al. (1995) fits' m50
    and m90 per zone in the curve's metadata (``limits``; zone 0 is all)."""
    stars = vstack(parts, metadata_conflicts="silent")
    shape = tuple(catalog.meta["shape"])
    arrays = catalogue_arrays(catalog)
    tracers = tracer_stars(arrays["mag"], arrays["flags"])
    centre = profile_centre(arrays["x"], arrays["y"], tracers, shape, float(catalog.meta["parameters"]["fwhm"]))
    x, y = float_column(stars["x"]), float_column(stars["y"])
    radius = np.hypot(x - centre[0], y - centre[1])
    zone_edges = radial_zones(radius, ast.zones)
    mag_in = float_column(stars["mag_in"])
    recovered = np.asarray(stars["recovered"], bool)
    delta = float_column(stars["mag_out"]) - mag_in
    stars["r_centre"] = radius * u.pix
    stars["zone"] = np.searchsorted(zone_edges, radius, side="right").astype(np.int32)
    system = catalog.meta.get("magnitude_system") or "instrumental"
    describe_columns(stars, system)
    curve = completeness_curve(mag_in, recovered, delta, radius, ast.bin_width, zone_edges)

    limits = []
    for zone in range(len(zone_edges)):  # 0: all, then from the centre out
        r_in, r_out = (0.0, math.inf) if zone == 0 else (zone_edges[zone - 1], zone_edges[zone])
        inside = (radius >= r_in) & (radius < r_out)
        plateau, alpha, m_half = fit_fleming(mag_in[inside], recovered[inside])
        limits.append({"zone": zone, "r_in_px": float(r_in), "r_out_px": float(r_out), "n": int(inside.sum()),
                       "plateau": plateau, "alpha": alpha, "m_half": m_half,
                       "m50": completeness_limit(plateau, alpha, m_half, 0.5),
                       "m90": completeness_limit(plateau, alpha, m_half, 0.9)})
    jobs = [{key: part.meta.get(key) for key in ("job", "seed_entropy", "passes", "patch_radius", "profile_sky")}
            for part in parts]
    skipped = [part.meta["skipped"] for part in parts if part.meta.get("skipped")]
    meta = {"skipped": skipped[0] if skipped else None, "cluster": catalog.meta.get("cluster"),
            "filter": catalog.meta.get("filter"), "magnitude_system": system,
            "photometry_method": parts[0].meta.get("photometry_method"),
            "settings": settings_meta(ast), "n_jobs": len(parts), "jobs": jobs,
            "magnitude_range": parts[0].meta.get("magnitude_range"),
            "centre_px": [centre[0], centre[1]], "zone_edges_px": [float(e) for e in zone_edges],
            "n_artificial": len(stars), "n_recovered": int(recovered.sum()), "catalogue": catalog.meta.get("image")}
    stars.meta.clear()
    stars.meta.update(meta)
    curve.meta.update(meta)
    curve.meta["limits"] = limits
    curve.meta["m50"], curve.meta["m90"] = limits[0]["m50"], limits[0]["m90"]
    curve["completeness"].description = "fraction of the bin's artificial stars recovered"
    curve["completeness_low"].description = "lower end of its 68.3 per cent (Wilson) binomial interval"
    curve["completeness_high"].description = "upper end of its 68.3 per cent (Wilson) binomial interval"
    curve["delta_mag"].description = "median of mag_out - mag_in of the recovered stars"
    curve["delta_mag_scatter"].description = "1.4826 x median absolute deviation of mag_out - mag_in"
    curve["zone"].description = "0: all; 1, 2, ...: radial zones from the cluster's centre out"
    return stars, curve
