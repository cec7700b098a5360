"""Artificial-star tests (issue 12): where to put the artificial stars, how bright to make them,
how to add them to a frame, which of them the photometry got back, and the completeness,
photometric bias and scatter that follow, per magnitude and per distance from the cluster's
centre.

The artificial stars follow the cluster's own radial profile as its light traces it (the
light of all its stars, the bright ones foremost, found or not: crowding hides even bright
stars in a dense core, and faint detections most), so the artificial stars see the real
crowding; their magnitudes are uniform over the range asked for. A star counts as recovered
only when a new detection (no star of the frame's own catalogue within the recovery radius and
``max_delta_mag`` of it) lies within that radius of it and within ``max_delta_mag`` of its
magnitude.

Pixel coordinates are 0-based with a pixel's centre on the integer, as everywhere here.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from astropy import units as u
from astropy.stats import binom_conf_interval, sigma_clipped_stats
from astropy.table import Table
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

from photutils.aperture import CircularAperture

from .noise import FrameNoise
from .photometry import (POGSON, Measurements, PhotometryParameters, close_to, measure_frame, peak_values,
                         subtract_frame_sky)
from .psf import EPSF
from .psffit import footprint_radii, star_footprints
from .psfio import PSFFile, drawing_psfs, fitted_fluxes, model_image, stars_image
from .psfphot import PSFParameters, learn_psf, measure_frame_psf, select_psf_stars

SKY_ANNULI = 10  # the sky under a cluster: the faintest of 10 annuli around its centre
# azimuths tried at one distance before another distance is drawn: where the frame holds only a
# short arc of the circle (a far corner, the centre near an edge) 30 tries left the density there
# 28 per cent low; only the few stars still off the frame are tried again, a few ms per pass
AZIMUTH_TRIES = 1000
ZONES = 3  # radial zones from the cluster's centre, of equal numbers of artificial stars


def cluster_centre(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], smoothing: float) -> tuple[float, float]:
    """Where the stars (x, y) are densest: the peak of their counts smoothed by a Gaussian of
    ``smoothing`` px, refined to the mean position of the stars within ``smoothing`` of it."""
    ny, nx = shape
    step = max(1.0, smoothing / 4.0)  # px per bin: a 10k frame's counts in a few MB, not 800
    bins = (max(1, math.ceil(ny / step)), max(1, math.ceil(nx / step)))
    counts, _, _ = np.histogram2d(y, x, bins=bins, range=((-0.5, bins[0] * step - 0.5), (-0.5, bins[1] * step - 0.5)))
    row, column = np.unravel_index(np.argmax(ndimage.gaussian_filter(counts, smoothing / step)), counts.shape)
    peak_x, peak_y = (column + 0.5) * step - 0.5, (row + 0.5) * step - 0.5
    near = np.hypot(x - peak_x, y - peak_y) <= smoothing
    if not near.any():
        return float(peak_x), float(peak_y)
    return float(np.mean(x[near])), float(np.mean(y[near]))


def symmetry_centre(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], start: tuple[float, float],
                    radius: float, largest: float) -> tuple[float, float]:
    """The centre of the stars (x, y) around ``start``: the mean position of those within a
    circle, moved there and taken again until it stays (a mean shift). The circle is as wide as
    the frame's nearest edge allows (a circle cut by an edge would pull the centre inwards),
    between ``radius`` and ``largest`` px. Why not the densest point: crowding hides stars in a
    cluster's core, the more so the denser it is, and the densest point of the stars found then
    lies on the ring around that hole, 15-70 px off the true centre on simulated frames (600 and
    1000 px wide); the hole is round, so the mean of the stars around it is not moved by it."""
    ny, nx = shape
    x, y = np.asarray(x, float), np.asarray(y, float)
    cx, cy = start
    for _ in range(100):
        edge = min(cx + 0.5, nx - 0.5 - cx, cy + 0.5, ny - 0.5 - cy)
        within = np.hypot(x - cx, y - cy) <= max(radius, min(largest, edge))
        if not within.any():
            break
        moved_x, moved_y = float(np.mean(x[within])), float(np.mean(y[within]))
        step = math.hypot(moved_x - cx, moved_y - cy)
        cx, cy = moved_x, moved_y
        if step < 0.01:
            break
    return cx, cy


def sky_below_cluster(data: np.ndarray, usable: np.ndarray, centre: tuple[float, float],
                      max_samples: int = 250_000) -> float:
    """The frame's sky under a cluster: the faintest of the sigma-clipped medians of its usable
    pixels in SKY_ANNULI annuli around ``centre`` holding equal numbers of them (sampled on a
    regular grid as :func:`clusterphot.photometry.frame_sky_statistics` does). A cluster can
    fill the frame, and its unresolved light then lifts the frame's median above the sky; its
    faintest annulus is the nearest to it (ValueError if no pixel is usable)."""
    step = max(1, int(math.ceil(math.sqrt(data.size / max_samples))))
    rows, columns = np.nonzero(usable[::step, ::step])
    if len(rows) == 0:
        raise ValueError("no usable pixel to measure the sky on")
    values = data[::step, ::step][rows, columns]
    radius = np.hypot(columns * step - centre[0], rows * step - centre[1])
    order = np.argsort(radius, kind="stable")
    medians = [sigma_clipped_stats(values[part], sigma=3.0, maxiters=10)[1]
               for part in np.array_split(order, SKY_ANNULI) if len(part)]
    return float(np.min(medians))


def light_in_rings(data: np.ndarray, usable: np.ndarray, centre: tuple[float, float], ring_width: float,
                   sky: float, block_rows: int = 512) -> np.ndarray:
    """The frame's light above ``sky`` in rings of ``ring_width`` px around ``centre`` (ring k:
    k w <= r < (k + 1) w), summed over their ``usable`` pixels; a ring whose sum is negative
    (noise, a sky a little high) holds none. Rows are taken a block at a time: the distances of
    a whole 10k x 10k frame would take 400 MB."""
    ny, nx = data.shape
    corners = np.hypot(np.array([0, nx - 1]) - centre[0], np.array([[0], [ny - 1]]) - centre[1])
    light = np.zeros(int(corners.max() / ring_width) + 1)
    columns = np.arange(nx, dtype=np.float32) - np.float32(centre[0])
    for first in range(0, ny, block_rows):
        rows = np.arange(first, min(ny, first + block_rows), dtype=np.float32) - np.float32(centre[1])
        ring = (np.hypot(columns[None, :], rows[:, None]) / np.float32(ring_width)).astype(np.intp)
        keep = usable[first:first + block_rows]
        light += np.bincount(ring[keep], weights=data[first:first + block_rows][keep] - sky, minlength=len(light))
    return np.clip(light, 0.0, None)


def positions_in_light(light: np.ndarray, ring_width: float, centre: tuple[float, float], n: int,
                       shape: tuple[int, int], rng: np.random.Generator,
                       bad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions on the frame with the surface density of the cluster's light: a ring
    (from :func:`light_in_rings`) drawn with the probability of its share of the light, a
    distance uniform over its area, and an azimuth drawn uniformly among those that fall on the
    frame and off ``bad`` pixels (masked, the zero-filled border). Why the light and not the
    bright stars' positions: crowding hides even bright stars in a dense core, from the aperture
    path most (on a simulated 1000x1000 frame with 15,000 stars, 18-20 mag stars within 30 px of
    the centre were 5 per cent complete), and artificial stars that follow them under-sample the
    core 2-6x and came out 0.06-0.13 more complete than the true stars at 18-22 mag; the light
    misses no star (that frame's light profile gave the true stars' radial distribution, within
    0.04 per 1-mag bin in completeness). The light is taken as round (a cluster's is nearly so):
    real faint stars do not know where the bright ones are, and positions drawn around the bright
    stars themselves put 8 per cent of the artificial stars in their wings."""
    total = float(np.sum(light))
    if not total > 0:
        raise ValueError("the frame shows no light above its sky to trace the cluster's profile")
    share = light / total
    out_x, out_y = np.empty(0), np.empty(0)
    while len(out_x) < n:  # a few rounds: distances whose circle misses the frame are drawn again
        wanted = n - len(out_x)
        ring = rng.choice(len(share), wanted, p=share)
        r = ring_width * np.sqrt(rng.uniform(ring**2, (ring + 1.0) ** 2))
        px, py, on = azimuths_on_frame(r, centre, shape, rng, bad)
        out_x, out_y = np.r_[out_x, px[on]], np.r_[out_y, py[on]]
    return out_x, out_y


def azimuths_on_frame(r: np.ndarray, centre: tuple[float, float], shape: tuple[int, int], rng: np.random.Generator,
                      bad: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions at distances ``r`` from ``centre``, each at an azimuth drawn uniformly until it
    falls on the frame and off ``bad`` pixels (AZIMUTH_TRIES at most): x, y, and True where it
    did (the others are to be drawn again at another distance)."""
    ny, nx = shape
    cx, cy = centre

    def usable(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        on = (px >= -0.5) & (px < nx - 0.5) & (py >= -0.5) & (py < ny - 0.5)
        if bad is not None:
            on[on] = ~bad[np.rint(py[on]).astype(np.intp), np.rint(px[on]).astype(np.intp)]
        return on

    theta = rng.uniform(0.0, 2.0 * math.pi, len(r))
    px, py = cx + r * np.cos(theta), cy + r * np.sin(theta)
    on = usable(px, py)
    for _ in range(AZIMUTH_TRIES):  # another azimuth at the same distance
        off = np.flatnonzero(~on)
        if len(off) == 0:
            break
        theta = rng.uniform(0.0, 2.0 * math.pi, len(off))
        px[off], py[off] = cx + r[off] * np.cos(theta), cy + r[off] * np.sin(theta)
        on[off] = usable(px[off], py[off])
    return px, py, on


def default_magnitude_range(mag: np.ndarray, saturated: np.ndarray,
                            mag_err: np.ndarray | None = None) -> tuple[float, float]:
    """The artificial stars' magnitudes by default: from the brightest unsaturated star 0.5 mag
    brighter to the faintest detection 1.5 mag fainter (the completeness falls to 0 in it).
    Given ``mag_err``, the faintest detection measured at 3 sigma or better: a noise peak
    measured at 32 mag would otherwise stretch the range over magnitudes nothing reaches."""
    mag = np.asarray(mag, float)
    usable = np.isfinite(mag) & ~np.asarray(saturated, bool)
    if not usable.any():
        raise ValueError("no unsaturated star with a magnitude to set the artificial stars' range by")
    detected = np.isfinite(mag)
    if mag_err is not None and (np.asarray(mag_err) <= POGSON / 3.0).any():
        detected &= np.asarray(mag_err) <= POGSON / 3.0
    return float(mag[usable].min() - 0.5), float(mag[detected].max() + 1.5)


def add_artificial_stars(data: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: EPSF,
                         electrons_per_unit: float, rng: np.random.Generator, level: float = 0.0,
                         saturation: float | None = None) -> None:
    """Add (in place) the stars' light drawn with ``psf`` (``flux`` in image units) with its
    photon noise: Poisson in electrons, through ``electrons_per_unit``. The frame's own noise is
    already in it; only the artificial stars' shot noise is added. Each star is drawn out to
    where its light falls below ``level`` (image units; 0: the PSF's reach), and only the pixels
    they touch are visited (a HUGS frame is not copied per pass). Pixels the light lifts above
    ``saturation`` (image units; None: no limit) stop there, as the detector's do: an
    artificial star brighter than the saturation limit, or on a bright neighbour, saturates
    as a real one would (unclipped, 1389 of 12,000 artificial stars on a simulated crowded
    frame were measured as if a real star of their brightness could be). A pixel already
    above it is left as it was."""
    radii = footprint_radii(psf, np.asarray(flux, float), level, 1.0)
    star, flat, dx, dy = star_footprints(data.shape, np.asarray(x, float), np.asarray(y, float), radii)
    pixels, at = np.unique(flat, return_inverse=True)
    light = np.bincount(at, weights=np.asarray(flux, float)[star] * psf.evaluate(dx, dy), minlength=len(pixels))
    electrons = rng.poisson(np.maximum(light, 0.0) * electrons_per_unit)
    values = data.reshape(-1)[pixels]
    lifted = values + (electrons / electrons_per_unit).astype(data.dtype)
    if saturation is not None:
        lifted = np.where(lifted > saturation, np.maximum(values, saturation), lifted)
    data.reshape(-1)[pixels] = lifted


def recovered_stars(x_in: np.ndarray, y_in: np.ndarray, mag_in: np.ndarray, x_out: np.ndarray, y_out: np.ndarray,
                    mag_out: np.ndarray, x_real: np.ndarray, y_real: np.ndarray, mag_real: np.ndarray,
                    radius: float, max_delta_mag: float) -> np.ndarray:
    """For each artificial star, the index of the measured star that recovers it, -1 where none:
    a measured star within ``radius`` of the artificial star and within ``max_delta_mag`` of its
    magnitude, and new: not a star of the frame's own catalogue (x_real, y_real, mag_real) as it
    was, i.e. none of those within ``radius`` and ``max_delta_mag`` of it (a bright artificial
    star on a faint real one is found; the real star measured where an artificial one fell
    near it is not). One to one: a measured star recovers at most one artificial star."""
    match = np.full(len(x_in), -1, np.intp)
    if len(x_in) == 0 or len(x_out) == 0:
        return match
    new = np.ones(len(x_out), bool)
    if len(x_real):
        pairs = cKDTree(np.column_stack([x_out, y_out])).sparse_distance_matrix(
            cKDTree(np.column_stack([x_real, y_real])), radius, output_type="ndarray")
        same = np.abs(np.asarray(mag_out)[pairs["i"]] - np.asarray(mag_real)[pairs["j"]]) <= max_delta_mag
        new[pairs["i"][same]] = False
    candidates = np.flatnonzero(new & np.isfinite(mag_out))
    if len(candidates) == 0:
        return match
    pairs = cKDTree(np.column_stack([x_in, y_in])).sparse_distance_matrix(
        cKDTree(np.column_stack([x_out[candidates], y_out[candidates]])), radius, output_type="ndarray")
    artificial, measured, distance = pairs["i"], candidates[pairs["j"]], pairs["v"]
    close_in_mag = np.abs(mag_out[measured] - mag_in[artificial]) <= max_delta_mag
    artificial, measured, distance = artificial[close_in_mag], measured[close_in_mag], distance[close_in_mag]
    # nearest pairs first: each measured star goes to its nearest artificial star, then each
    # artificial star takes its nearest of those (at the 5 per cent densities of artificial
    # stars, two of them wanting one measured star within a pixel is rare: the farther loses)
    order = np.argsort(distance, kind="stable")
    artificial, measured = artificial[order], measured[order]
    first = np.sort(np.unique(measured, return_index=True)[1])
    artificial, measured = artificial[first], measured[first]
    first = np.unique(artificial, return_index=True)[1]
    match[artificial[first]] = measured[first]
    return match


def radial_zones(radius: np.ndarray, n_zones: int = ZONES) -> np.ndarray:
    """Edges (px, n_zones + 1 of them, the first 0 and the last inf) of radial zones holding
    equal numbers of the given radii."""
    inner = np.quantile(radius, np.arange(1, n_zones) / n_zones) if len(radius) else np.zeros(n_zones - 1)
    return np.r_[0.0, inner, np.inf]


def completeness_curve(mag_in: np.ndarray, recovered: np.ndarray, delta_mag: np.ndarray, radius: np.ndarray,
                       bin_width: float = 0.5, zone_edges: np.ndarray | None = None) -> Table:
    """Per magnitude bin and radial zone (zone 0: all; 1...: from the centre out): the artificial
    stars injected, the fraction recovered with its 68.3 per cent (Wilson) binomial interval, and
    the recovered stars' median delta mag (measured - injected) and robust scatter (1.4826 MAD).
    NaN where a bin has no star or none recovered. ``radius``: each star's distance (px) from the
    cluster's centre; ``zone_edges`` as from :func:`radial_zones` (its default)."""
    mag_in, recovered = np.asarray(mag_in, float), np.asarray(recovered, bool)
    edges_mag = np.arange(math.floor(mag_in.min() / bin_width) * bin_width,
                          mag_in.max() + bin_width, bin_width) if len(mag_in) else np.zeros(1)
    zone_edges = radial_zones(radius) if zone_edges is None else np.asarray(zone_edges, float)
    rows = []
    zones = [(0, 0.0, np.inf)] + [(k + 1, zone_edges[k], zone_edges[k + 1]) for k in range(len(zone_edges) - 1)]
    for zone, r_in, r_out in zones:
        in_zone = (radius >= r_in) & (radius < r_out)
        for low, high in zip(edges_mag[:-1], edges_mag[1:]):
            in_bin = in_zone & (mag_in >= low) & (mag_in < high)
            n, k = int(in_bin.sum()), int((in_bin & recovered).sum())
            found = delta_mag[in_bin & recovered]
            median = float(np.median(found)) if k else math.nan
            scatter = float(1.4826 * np.median(np.abs(found - median))) if k > 1 else math.nan
            fraction, (lower, upper) = ((k / n, binom_conf_interval(k, n, 0.683, interval="wilson"))
                                        if n else (math.nan, (math.nan, math.nan)))
            rows.append((zone, r_in, r_out, 0.5 * (low + high), low, high, n, k, fraction, float(lower),
                         float(upper), median, scatter))
    names = ("zone", "r_in", "r_out", "mag", "mag_low", "mag_high", "injected", "recovered", "completeness",
             "completeness_low", "completeness_high", "delta_mag", "delta_mag_scatter")
    table = Table(rows=rows, names=names)
    for name in ("r_in", "r_out"):
        table[name].unit = u.pix
    for name in ("mag", "mag_low", "mag_high", "delta_mag", "delta_mag_scatter"):
        table[name].unit = u.mag
    table.meta["zone_edges_px"] = [float(edge) for edge in zone_edges]
    return table


def fleming(mag: np.ndarray, plateau: float, alpha: float, m_half: float) -> np.ndarray:
    """Fleming et al. (1995)'s completeness function: ``plateau`` for bright stars, falling to
    half of it at ``m_half``, ``alpha`` (1/mag) setting how fast."""
    t = alpha * (np.asarray(mag, float) - m_half)
    return 0.5 * plateau * (1.0 - t / np.sqrt(1.0 + t * t))


def fit_fleming(mag_in: np.ndarray, recovered: np.ndarray) -> tuple[float, float, float]:
    """(plateau, alpha, m_half) of :func:`fleming` by maximum likelihood on the artificial stars
    one by one (each recovered or not: Bernoulli), no binning. NaNs when there are too few
    (fewer than 20) or none lost or none found."""
    mag_in, recovered = np.asarray(mag_in, float), np.asarray(recovered, bool)
    if len(mag_in) < 20 or recovered.all() or not recovered.any():
        return math.nan, math.nan, math.nan

    def cost(p: np.ndarray) -> float:
        fraction = np.clip(fleming(mag_in, 1.0 / (1.0 + math.exp(-p[0])), math.exp(p[1]), p[2]), 1e-12, 1 - 1e-12)
        return -float(np.sum(np.where(recovered, np.log(fraction), np.log1p(-fraction))))

    # a start from the data: the plateau of the brightest fifth, the median magnitude lost
    plateau = min(max(recovered[mag_in <= np.quantile(mag_in, 0.2)].mean(), 0.05), 0.99)
    start = [math.log(plateau / (1.0 - plateau)), math.log(2.0), float(np.median(mag_in[~recovered]))]
    best = optimize.minimize(cost, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6,
                                                                          "maxiter": 2000})
    return 1.0 / (1.0 + math.exp(-best.x[0])), math.exp(best.x[1]), float(best.x[2])


def completeness_limit(plateau: float, alpha: float, m_half: float, level: float) -> float:
    """The magnitude where the fitted :func:`fleming` completeness falls to ``level`` (m50 with
    0.5, m90 with 0.9); NaN where it never reaches it (a crowded zone's plateau below it)."""
    if not level < plateau:  # (also NaN)
        return math.nan
    u = 1.0 - 2.0 * level / plateau  # t / sqrt(1 + t^2) at the level
    return float(m_half + u / math.sqrt(1.0 - u * u) / alpha)


def measure_artificial_pass(frame: np.ndarray, bad: np.ndarray, catalogue: dict[str, np.ndarray], psf_file: PSFFile,
                            x: np.ndarray, y: np.ndarray, flux: np.ndarray, params: PhotometryParameters,
                            psf_params: PSFParameters, electrons_per_unit: float, saturation: float | None,
                            rng: np.random.Generator, patch_radius: float,
                            catalogue_light: np.ndarray | None = None, noise: FrameNoise | None = None,
                            detect_through: np.ndarray | None = None) -> Measurements:
    """One artificial-star pass of the PSF path: the artificial stars (``flux``: total, image
    units) added to a copy of ``frame`` (as read, sky and all) with their photon noise, and the
    frame measured again as its catalogue was (:func:`clusterphot.psfphot.measure_frame_psf`:
    detection, fitting, residual passes, cuts, flags), with the PSF and correction to total of
    its PSF file (``psf_file``, :func:`clusterphot.psfio.read_psf`), but only around the
    artificial stars: the stars detected within ``patch_radius`` px of one are fitted; the
    catalogue's other stars (``catalogue``: x, y and total ``flux``) are held as the fit drew
    them, with its fitted sky (:func:`clusterphot.psfio.model_image`): a patch's fit then
    refines the frame's sky (the fitted sky cells' prior is 0) rather than starting it anew from
    the few pixels a small patch holds of a cell (in a cluster's core the cells hold the light
    of the stars too faint to detect, a hundred electrons per pixel and more). The pass's
    ``sky`` column is then only what the patch adds to that sky. A whole frame is not fitted
    again for a few hundred artificial stars. A frame measured in tiles: each artificial star is
    drawn, and each tile fitted, with its tile's PSF (interpolated over its zones, when the
    catalogue's were) and correction, as the catalogue's stars were (when the pass's tiles are the catalogue's: the same ``psf_params.tile``). ``catalogue_light``:
    the whole catalogue's model (:func:`clusterphot.psfio.model_image` of all its stars), drawn
    once for many passes; each pass then only takes away the stars near its artificial ones
    (drawing every star again cost a third of a pass on a 2000x2000 frame)."""
    psf, correction = psf_file.psf, psf_file.correction
    data = np.array(frame, dtype=np.float32)
    # each drawn with the PSF and correction of the tile whose stars it is among (a frame
    # measured in tiles: HST's PSF changes across the detector), one tile's stars at a time
    psf_flux = fitted_fluxes(psf_file, flux, x, y)  # a real star of that total flux has this PSF flux
    for members, drawn_with, _ in drawing_psfs(psf_file, x, y):
        add_artificial_stars(data, x[members], y[members], psf_flux[members], drawn_with,
                             electrons_per_unit, rng, psf_file.footprint_level, saturation)
    cx, cy = np.asarray(catalogue["x"], float), np.asarray(catalogue["y"], float)
    away = ~close_to(cx, cy, (x, y, patch_radius))
    ny, nx = data.shape
    flux_held = np.asarray(catalogue["flux"], float)
    if catalogue_light is None:
        held = model_image(psf_file, cx[away], cy[away], flux_held[away], (0, 0, nx, ny))
    else:
        held = catalogue_light - stars_image(psf_file, cx[~away], cy[~away], flux_held[~away], (0, 0, nx, ny))
    # with the catalogue's PSFs as it was fitted: interpolated between its tiles (or not) as they were
    pass_params = replace(psf_params, psf_rebuilds=0, interpolation_zone=psf_file.zone)
    return measure_frame_psf(data, bad, params, pass_params, electrons_per_unit, saturation,
                             psf=psf, catalogue_correction=correction, held_light=held, near=(x, y, patch_radius),
                             catalogue_tiles=psf_file.tiles, noise=noise, detect_through=detect_through,
                             psf_errors=psf_file.psf_errors,
                             held_stars=(cx[away], cy[away], fitted_fluxes(psf_file, flux_held[away], cx[away], cy[away])))


def psf_light_within(psf: EPSF, radius: float) -> float:
    """The fraction of a unit-flux star's light (as ``psf`` draws it) within a circular aperture
    of ``radius`` px centred on it."""
    half = int(math.ceil(radius)) + 1
    offsets = np.arange(-half, half + 1, dtype=float)
    dx, dy = np.meshgrid(offsets, offsets)
    stamp = psf.evaluate(dx, dy)
    return float(CircularAperture((half, half), r=radius).do_photometry(stamp, method="exact")[0][0])


def aperture_path_psf(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray, params: PhotometryParameters,
                      psf_params: PSFParameters, saturation: float | None, electrons_per_unit: float) -> EPSF:
    """The PSF of a frame measured with apertures, learned as the PSF path learns it from its
    bright isolated stars (the catalogue's, at x, y), to draw artificial stars with. ``data`` is
    used in place (sky-subtracted). FrameError (no file name) when there are too few such stars."""
    bad, sky, sky_level, _ = subtract_frame_sky(data, bad, params)
    saturated_above = None if saturation is None else params.saturation_fraction * saturation - sky_level
    peak = peak_values(data, x, y)
    chosen = select_psf_stars(x, y, peak, data.shape, sky, saturated_above, params.fwhm, psf_params)
    return learn_psf(data, bad, x, y, chosen, params.fwhm, psf_params, sky, electrons_per_unit)


def measure_artificial_pass_aperture(frame: np.ndarray, bad: np.ndarray, psf: EPSF, x: np.ndarray, y: np.ndarray,
                                     flux: np.ndarray, params: PhotometryParameters, electrons_per_unit: float,
                                     saturation: float | None, rng: np.random.Generator, patch_radius: float,
                                     catalogue_correction: float, noise: FrameNoise | None = None,
                                     detect_through: np.ndarray | None = None) -> Measurements:
    """One artificial-star pass of the aperture path: the artificial stars (``flux``: total, as
    the catalogue's are) drawn with ``psf`` (:func:`aperture_path_psf`) and their photon noise
    on a copy of ``frame``, and the frame measured again as its catalogue was
    (:func:`clusterphot.photometry.measure_frame`), the stars detected within ``patch_radius``
    px of an artificial star only, with the catalogue's aperture correction
    (``catalogue_correction``). Each artificial star puts within the aperture the light a real
    star of its total flux puts there (its total over the catalogue's correction): the learned
    PSF's far wings are less sure than the correction measured on the frame's bright stars
    (on NGC 1261's PC frames they hold 5-11 per cent less light between the aperture and the
    correction's radius)."""
    data = np.array(frame, dtype=np.float32)
    in_aperture = psf_light_within(psf, params.aperture_radius)
    add_artificial_stars(data, x, y, np.asarray(flux, float) / (catalogue_correction * in_aperture), psf,
                         electrons_per_unit, rng, saturation=saturation)
    return measure_frame(data, bad, params, electrons_per_unit, saturation, near=(x, y, patch_radius),
                         catalogue_correction=catalogue_correction, noise=noise, detect_through=detect_through)
