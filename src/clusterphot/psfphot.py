"""PSF photometry of a crowded frame (``photometry.method: psf``): a PSF learned from the
frame's own stars, every star fitted together with it, and passes of detection on the residual
image for the stars hidden in their neighbours' wings (the DAOPHOT/ALLSTAR scheme, with one
sparse solve per iteration).

1. detect (DAOFIND, as the aperture path) and pick the PSF stars: bright, unsaturated, with no
   detected neighbour within ``isolation`` FWHM nor a brighter-than-2-per-cent one within the
   PSF's radius;
2. learn the effective PSF from them (:mod:`clusterphot.psf`);
3. fit all stars' fluxes and the sky together (:mod:`clusterphot.psffit`, each star's model out
   to where its light falls below ``footprint_level`` sky sigma; its far wing, beyond about 2.5
   FWHM, drawn with its last flux and held), then move every star by a local fit to the
   residual, ``n_iter`` times; after each fit drop stars below ``min_snr`` sigma and merge
   pairs closer than ``merge_separation`` FWHM (one star fitted twice);
4. refine the PSF on the frame with every other star subtracted (``psf_rebuilds``);
5. subtract the model, detect again on the residual (scaled to the local noise), add the new
   stars and go back to 3, ``residual_passes`` times;
6. a last fit with the positions held (bright stars that outshine their neighbours fitted out to
   ``wide_fit_radius``, :func:`wide_fitting_radii`) gives the fluxes, their errors (the fit's covariance; the
   fainter parts of a blend then below ``min_snr`` are dropped and the rest fitted again) and
   the fit quality; the PSF stars, their neighbours subtracted, give the correction from PSF
   flux to total (their light within the correction's aperture, and the PSF's wing beyond).

A frame 1.5 ``tile`` pixels wide or high goes through all of this tile by tile
(:func:`measure_frame_psf`): each tile with a margin of its neighbours' stars, and its own PSF
when its own part has enough PSF stars (a grid of PSFs over the frame, as HST's PSF changes
across a detector); memory then grows with a tile, not the frame. Once every tile has its PSF,
each is fitted again with the tiles' PSFs interpolated over its zones
(:func:`refit_with_interpolated_psfs`; ``interpolation_zone``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
from photutils.utils.exceptions import NoDetectionsWarning
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import FrameError
from .noise import FrameNoise
from .photometry import (FLAG_EDGE, FLAG_NEIGHBOUR, FLAG_NONPOSITIVE_FLUX, FLAG_SATURATED, ApertureCorrection,
                         Measurements, PhotometryParameters, SkyStatistics, aperture_sums, centred_on_frame, close_to,
                         detect_stars, find_stars_through, frame_parameters, local_sky, merge_saturated_detections, nearest_neighbour_distance, no_stars,
                         peak_values, subtract_frame_sky, touches_mask)
from .psf import EPSF, PSFGrid, build_epsf, psf_stamps
from .psffit import (FarWings, StarFit, fit_radius_for, fit_stars, footprint_radii, kept_far_wings,
                     merge_close_pairs, no_far_wings, noise_excess, photon_variance, pixel_footprints,
                     position_corrections, render, snr, star_footprints, update_far_wings)


PSF_ERROR_RING = 0.5  # px: the width of the rings psf_error_profile measures in
# A star's far wing is redrawn when it would change by more than this fraction of the footprint
# level (psffit.update_far_wings): a fiftieth of the sky's sigma at the default level.
WING_TOLERANCE = 0.1
# A PSF star whose fit's qfit is above this many times the median of the PSF stars nearest it
# in flux (this many) teaches the PSF nothing (well_fitted_psf_stars)
PSF_STAR_MAX_QFIT_RATIO = 2.5
PSF_STAR_PEERS = 15


@dataclass(frozen=True)
class PSFParameters:
    """How the PSF is learned and the stars fitted (pixels unless said otherwise)."""

    oversampling: int = 4  # PSF grid nodes per pixel
    max_psf_stars: int = 300  # the brightest this many suitable stars build the PSF
    min_psf_stars: int = 20  # fewer: the frame's PSF cannot be learned
    isolation: float = 3.0  # FWHM: a PSF star has no detected neighbour this close
    psf_radius: float = 6.0  # FWHM: half-size of the tabulated PSF (the wings of bright stars reach far)
    n_iter: int = 2  # fits per pass
    residual_passes: int = 2  # detections on the residual image
    # a fitted flux below this many sigma is dropped: 3.5, not 3, because on the benchmark's
    # 10k frame the fits of S/N 3-3.5 were 207 spurious stars to 33 real ones (spurious
    # 1.10 -> 0.72 per cent), and the dense and sparse frames lost 0 and 3 of their 4275 and 971
    min_snr: float = 3.5
    merge_separation: float = 0.4  # FWHM: closer stars are one
    sky_cell: int = 32  # the fitted sky is constant over cells of this size
    # fainter stars keep their detected position: 5, not 10, since the residual passes find the
    # faint stars in bright stars' wings (detection_variance), where DAOFIND places them off by
    # a pixel or so; held there, they were the spurious stars (more than 1 px from a true one):
    # 1.2-1.6 per cent of the stars found on four dense benchmark-like frames, 0.7-1.0 moved
    move_snr: float = 5.0
    max_shift: float = 3.0  # a star moved further than this from where it was found goes back there, held
    psf_rebuilds: int = 1  # times the PSF is learned again with the neighbours subtracted
    psf_error: float = 0.0  # fraction of a star's light its learned PSF may get wrong, added to the noise
    # (0: the learned PSF is within 1 per cent in the core, and noise_excess widens the errors
    # where the residual shows more)
    footprint_level: float = 0.2  # sky sigma: a star's model reaches out to where its light falls below this
    # what the residual passes may take for a star is measured on the PSF stars' residual
    # (psf_error_profile); where too few PSF stars are there to measure it, this fraction of the
    # subtracted light is taken instead
    residual_psf_error: float = 0.1
    max_qfit: float = 5.0  # a star whose fit's reduced chi^2 (over one fitting radius) is above this is flagged
    # FWHM: the last fit takes a bright star's pixels out to this radius when its own light
    # reaches past it and no neighbour's outshines it there (wide_fitting_radii; 0: never)
    wide_fit_radius: float = 1.75
    tile: int = 1024  # px: a frame 1.5 times larger is measured in tiles this size, each with its own PSF if it can
    # px: a frame measured in tiles is fitted again with its tiles' PSFs interpolated between
    # their centres, each star with its zone's (zones this size at most); 0: each tile's PSF
    # constant over it (PSFGrid; a 1024-px tile's stars drifted by 11 mmag across it on
    # bench/varying_psf.py's frame without)
    interpolation_zone: int = 256

    def as_meta(self) -> dict:
        return asdict(self)


@dataclass
class PSFPhotometry:
    """What the PSF path found: positions, the final fit, and how."""

    x: np.ndarray
    y: np.ndarray
    fit: StarFit
    psf: EPSF
    found_in_pass: np.ndarray  # 0: first detection; k: the k-th residual pass
    peak: np.ndarray
    sharpness: np.ndarray  # DAOFIND's, where the star was detected
    roundness: np.ndarray
    n_iter: np.ndarray  # fits the star took part in
    psf_stars: np.ndarray  # indices of the stars the PSF was (last) learned from
    passes: list  # per pass: stars fitted, new stars found
    psf_errors: np.ndarray  # (residual passes run, rings): psf_error_profile per pass (see Tile)


@dataclass
class Tile:
    """One tile of a frame measured in tiles: its own pixels, the PSF its stars were fitted with
    (learned from its stars, or the frame's), and its correction from PSF flux to total."""

    core: tuple[int, int, int, int]  # x0, y0, x1, y1: the pixels whose stars it measured
    psf: EPSF
    own_psf: bool  # learned from the tile's stars (False: the frame's PSF)
    correction: float = 1.0
    # per residual pass, its PSF's error per ring around a star (psf_error_profile; a row of NaN:
    # too few PSF stars to measure it, residual_psf_error taken), which an artificial-star pass repeats
    psf_errors: np.ndarray | None = None


def select_psf_stars(x: np.ndarray, y: np.ndarray, peak: np.ndarray, shape: tuple[int, int],
                     sky: SkyStatistics, saturated_above: float | None, fwhm: float,
                     params: PSFParameters, core: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Indices of the PSF stars: bright (peak over 20 sky sigma), unsaturated, isolated and far
    enough from the frame's edges for a whole stamp (and on the pixels of ``core``, a tile's
    own part of the frame, when given); the brightest ``max_psf_stars``."""
    radius = params.psf_radius * fwhm
    ny, nx = shape
    bright = peak > 20.0 * sky.std
    if saturated_above is not None:
        bright &= peak < 0.8 * saturated_above  # and clear of non-linearity
    isolated = nearest_neighbour_distance(x, y) > params.isolation * fwhm
    # and no detected neighbour within the PSF's radius brighter than 2 per cent of the star:
    # in a cluster's core every star has some, and their wings would become the PSF's
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(radius, output_type="ndarray")
    brightest_neighbour = np.zeros(len(x))
    if len(pairs):
        np.maximum.at(brightest_neighbour, pairs[:, 0], peak[pairs[:, 1]])
        np.maximum.at(brightest_neighbour, pairs[:, 1], peak[pairs[:, 0]])
    clean = brightest_neighbour < 0.02 * peak
    inside = (x > radius + 1) & (x < nx - radius - 2) & (y > radius + 1) & (y < ny - radius - 2)
    if core is not None:
        inside &= in_core(x, y, core)
    chosen = np.flatnonzero(bright & isolated & clean & inside)
    return chosen[np.argsort(-peak[chosen])][: params.max_psf_stars]


def well_fitted_psf_stars(chosen: np.ndarray, qfit: np.ndarray, flux: np.ndarray, min_stars: int) -> np.ndarray:
    """The PSF stars among ``chosen`` (in their order) whose fit's ``qfit`` is at most
    PSF_STAR_MAX_QFIT_RATIO times the median of the PSF_STAR_PEERS PSF stars nearest them in
    ``flux`` (of every star); when fewer than ``min_stars`` would be left, the ``min_stars``
    closest to their peers. Why: a PSF star with a companion no detection separated (a pair
    within a pixel or two, which isolation from the detected stars cannot see) fits the PSF
    badly, and its stamp would teach the PSF its companion. Against stars of its own flux,
    because a learned PSF's small errors raise the qfit of the brightest stars most (on the
    real NGC 1261 PC frames the bright stars' median qfit is 7-12)."""
    if len(chosen) == 0:
        return chosen
    by_flux = chosen[np.argsort(flux[chosen], kind="stable")]
    # (mirrored at the ends: the brightest star is compared with the stars below it, not with itself)
    peers = ndimage.median_filter(qfit[by_flux], size=PSF_STAR_PEERS, mode="mirror")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(peers > 0, qfit[by_flux] / peers, np.inf)
    keep = by_flux[ratio <= PSF_STAR_MAX_QFIT_RATIO]
    if len(keep) < min_stars:
        keep = by_flux[np.argsort(ratio, kind="stable")[:min_stars]]
    return chosen[np.isin(chosen, keep)]


def fitted_psf_stars(x: np.ndarray, y: np.ndarray, peak: np.ndarray, shape: tuple[int, int], fit: StarFit,
                     sky: SkyStatistics, saturated_above: float | None, fwhm: float, params: PSFParameters,
                     core: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The PSF stars among fitted stars (``peak``: the frame's, at x, y): :func:`select_psf_stars`,
    less those that fit worse than their flux peers (:func:`well_fitted_psf_stars`)."""
    chosen = select_psf_stars(x, y, peak, shape, sky, saturated_above, fwhm, params, core)
    return well_fitted_psf_stars(chosen, fit.qfit, fit.flux, params.min_psf_stars)


def learn_psf(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray, chosen: np.ndarray, fwhm: float,
              psf_params: PSFParameters, sky: SkyStatistics, electrons_per_unit: float) -> EPSF:
    """The effective PSF from the ``chosen`` stars among the detections (x, y) (the others'
    pixels left out), on the grid ``psf_params`` asks for, each pixel weighted by its S/N (from
    the sky's scatter and the star's photons); FrameError (no file name) when fewer than
    ``min_psf_stars`` are chosen."""
    psf, _, _ = build_epsf(data, bad, x[chosen], y[chosen], fwhm, psf_params.oversampling,
                           radius=int(np.ceil(psf_params.psf_radius * fwhm)), neighbours=(x, y),
                           min_stars=psf_params.min_psf_stars, sky_variance=sky.std**2,
                           electrons_per_unit=electrons_per_unit)
    return psf


def too_few_psf_stars(n: int, params: PSFParameters) -> FrameError:
    """The error for a frame with only ``n`` stars to learn its PSF from: what to set."""
    return FrameError(f"only {n} bright, isolated, unsaturated stars to learn the PSF from (at least "
                      f"{params.min_psf_stars} needed); lower photometry.psf.min_psf_stars or "
                      "photometry.psf.isolation, or measure such frames with apertures: "
                      "photometry.psf.fallback: aperture, or photometry.method: aperture "
                      "(clusterphot measure: --fallback aperture, or --method aperture)")


def fitting_radii(fwhm: float, saturated: np.ndarray) -> np.ndarray:
    """Each star's fitting radius: about one FWHM (DAOPHOT's), and 2.5 times that for a
    saturated star, whose core pixels are left out: its flux and position come from its wings."""
    return np.where(saturated, 2.5, 1.0) * fit_radius_for(fwhm)


def refine(data: np.ndarray, variance: np.ndarray, usable: np.ndarray, x: np.ndarray, y: np.ndarray,
           flux: np.ndarray, saturated: np.ndarray, held: np.ndarray, found_x: np.ndarray, found_y: np.ndarray,
           psf: EPSF, fwhm: float, level: float, params: PSFParameters, wings: FarWings,
           final: bool = False, electrons_per_unit: float = 1.0,
           correlation_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray, FarWings]:
    """``n_iter`` fits moving every star, with ALLSTAR's housekeeping after each: stars below
    ``min_snr``, or merged into a brighter one closer than ``merge_separation`` FWHM, are
    dropped. A star that wanders further than ``max_shift`` from where it was found (a blend the
    PSF cannot describe drifts off its light) goes back there and is ``held`` from then on: its
    light stays in the model. ``flux``: a first guess, for the stars' footprints; ``level``:
    where a footprint ends (image units); ``wings``: the stars' far wings as drawn (redrawn here
    where they moved or changed). Returns the new x, y, the last fit's fluxes, whether each star
    moved in the last step, ``held``, the indices (into the input) of the stars kept, and their
    far wings. ``final``: the last pass, whose last step's S/N cut takes each flux's covariance
    with its most coupled neighbour (a degenerate pair, two stars fitted to one's light, each
    seems certain alone). The S/N cuts take a drizzled frame's correlated noise
    (``correlation_factor``, :func:`correlated_errors`)."""
    index = np.arange(len(x))
    held = held.copy()
    for step in range(params.n_iter):
        pairs = final and step == params.n_iter - 1
        fit_radius = fitting_radii(fwhm, saturated[index])
        radii = footprint_radii(psf, flux, level, fit_radius + 1)
        update_far_wings(wings, x, y, flux, radii, psf, WING_TOLERANCE * level)
        # only the residual on each star's fitting pixels is wanted here, to move the stars
        fit = fit_stars(data, variance, usable, x, y, psf, fit_radius, np.zeros(len(x), bool), params.sky_cell,
                        n_neighbours=1, radii=radii, covariance=pairs, far_wings=wings, images=False)
        residual = fit.residual_image
        step_x, step_y = np.zeros(len(x)), np.zeros(len(x))
        for radius in np.unique(fit_radius):  # the saturated stars, centred on their wings
            group = fit_radius == radius
            step_x[group], step_y[group] = position_corrections(residual, variance, usable, x[group], y[group],
                                                                fit.flux[group], psf, radius)
        # a faint star's "correction" is mostly noise, and it would wander off over the
        # iterations: DAOFIND's centroid is as good
        flux_err = correlated_errors(fit.flux, fit.flux_err, electrons_per_unit, correlation_factor)
        moves = (snr(fit.flux, flux_err) >= params.move_snr) & ~held
        x, y = x + np.where(moves, step_x, 0.0), y + np.where(moves, step_y, 0.0)
        wandered = np.hypot(x - found_x[index], y - found_y[index]) > params.max_shift
        x, y = np.where(wandered, found_x[index], x), np.where(wandered, found_y[index], y)
        held |= wandered
        moves &= ~wandered
        kept = np.flatnonzero(snr(fit.flux, flux_err) >= params.min_snr)
        kept = kept[merge_close_pairs(x[kept], y[kept], fit.flux[kept], params.merge_separation * fwhm)]
        x, y, index, flux, moved, held = x[kept], y[kept], index[kept], fit.flux[kept], moves[kept], held[kept]
        wings = kept_far_wings(wings, kept, psf)
    return x, y, flux, moved, held, index, wings


def wide_fitting_radii(x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: EPSF, fit_radius: np.ndarray,
                       footprint: np.ndarray, wide: float, background_variance: np.ndarray | float,
                       electrons_per_unit: float, held_light: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Each star's fitting radius for the last fit: ``wide`` px for a bright star that outshines
    its neighbours there, ``fit_radius`` for the others (and for a star already fitted further,
    a saturated one). Bright: at the wide disk's edge its own photons' variance is above the
    background's (``background_variance``, image units squared, per pixel or one for all), and
    its model reaches past the edge (``footprint`` at least ``wide`` + 1 px). Outshines: on no
    pixel of its wide disk is the light of others, above its lowest value there, above its own
    at the disk's edge; others' light being the other stars' PSFs (out to the PSF's
    ``wing_start``, as the fit draws them; those that cannot reach a twentieth of the star's
    own light on the disk left out) plus ``held_light`` (the frame's shape: light held, not
    fitted, as drawn: the far wings, an artificial-star pass's other stars and fitted sky).
    Both counted pixel by pixel, so that a star beside a fitted neighbour and one beside the
    same neighbour held get the same radius. ``wide`` is at most the PSF's ``wing_start`` less 1 px. A star with
    pixels not ``usable`` (masked) within ``fit_radius`` keeps it: its flux then rests on its
    outer pixels, where the learned PSF is least sure, and a wider disk would lean on them more
    (a star whose centre a hot pixel hid came out 50 per cent bright fitted wide, 34 narrow).

    Why: within one FWHM lies only about two thirds of a star's light, and a bright star's
    photon-limited error from those pixels alone is about 1.2 times what all of them give:
    isolated bright stars on the benchmark's sparse frame scattered 1.22 times the photon limit
    even with the true PSF given. Fitted out to 1.75 FWHM, on 27 simulated sparse frames their
    PSF learned, they scatter 1.17 times it all together (1.29 narrow), frame by frame 0.90-1.42
    (the benchmark's frame, the best of the 27: 0.90); the brightest (S/N 300-900) are off by
    what the learned PSF gets wrong, a few tenths of a per cent, not by their photons. The
    narrow disk stays where a neighbour's light would enter the wide one: there the fit would
    trade the neighbour's model errors for the star's flux. Only the last fit: the positions
    are settled, and the PSF was rebuilt from fits of one radius (a first pass of wide fits
    moved the rebuilt PSF's wings by 5-10 per cent on a crowded frame). Only the bright: a faint
    star's wide pixels hold mostly the background's noise, which they add to its flux with
    whatever light of undetected stars lies there (on the NGC 1261 PC frames, wide fits of
    every star that outshone its neighbours widened the faint main sequence's colours by 6 per
    cent)."""
    radii = np.asarray(fit_radius, dtype=np.float64).copy()
    # past the PSF's wing_start a star's own far wing, held, would count as another's light
    wide = min(wide, psf.wing_start - 1.0)
    if wide <= 0 or len(x) == 0:
        return radii
    # the star's light at the edge: the PSF's envelope there, its largest value on the pixels
    # whose centres lie from 0.71 px inside the edge out (about twice the profile at the edge)
    own_at_edge = np.abs(flux) * psf.envelope(np.array([wide]))[0]
    if np.ndim(background_variance):  # the product's own noise, per pixel: at each star
        ny, nx = np.shape(background_variance)
        background_variance = background_variance[np.clip(np.rint(y), 0, ny - 1).astype(np.intp),
                                                  np.clip(np.rint(x), 0, nx - 1).astype(np.intp)]
    photon_dominated = own_at_edge / electrons_per_unit > background_variance
    chosen = np.flatnonzero((flux > 0) & (radii < wide) & (footprint >= wide + 1.0) & photon_dominated)
    if len(chosen) == 0:
        return radii
    # (touches_mask adds a pixel for partial pixels; the fit takes whole ones, those within the radius)
    chosen = chosen[~touches_mask(~usable, x[chosen], y[chosen], float(radii[chosen].max()) - 1.0)]
    if len(chosen) == 0:
        return radii
    # others' light on each chosen star's disk: what is held there, plus its neighbours' cores
    disk, dx, dy = pixel_footprints(held_light.shape, x[chosen], y[chosen], wide)
    n_disk = disk.shape[1]
    others = np.where(disk >= 0, held_light.ravel()[np.maximum(disk, 0)], 0.0).ravel()
    reach = min(psf.wing_start, psf.radius)
    pairs = cKDTree(np.column_stack([x[chosen], y[chosen]])).sparse_distance_matrix(
        cKDTree(np.column_stack([x, y])), wide + reach + 1.0, output_type="ndarray")
    star, neighbour, distance = pairs["i"], pairs["j"], pairs["v"]
    # only neighbours whose light could reach a twentieth of the star's own at the edge
    # somewhere on its disk: in a crowded core the pairs times the disk's pixels ran to
    # gigabytes
    most = np.abs(flux[neighbour]) * psf.envelope(np.maximum(distance - wide, 0.0))
    keep = (neighbour != chosen[star]) & (most > 0.05 * own_at_edge[chosen][star])
    star, neighbour = star[keep], neighbour[keep]
    for block in range(0, len(star), 20_000):  # 20,000 pairs x ~50 pixels at a time
        s_, n_ = star[block : block + 20_000], neighbour[block : block + 20_000]
        ox = dx[s_] + (x[chosen][s_] - x[n_])[:, None]  # the disk's pixels from the neighbour
        oy = dy[s_] + (y[chosen][s_] - y[n_])[:, None]
        inside = ox**2 + oy**2 <= reach**2
        light = np.zeros(ox.shape)
        light[inside] = psf.evaluate(ox[inside], oy[inside])
        light *= np.abs(flux[n_])[:, None]
        at = s_[:, None] * n_disk + np.arange(n_disk)[None, :]
        others += np.bincount(at.ravel(), weights=light.ravel(), minlength=others.size)
    others = others.reshape(len(chosen), n_disk)
    # above its lowest value on the disk (pixels on the frame): a level the same across it (the
    # fitted sky an artificial-star pass holds with its other stars, a far star's wing) is the
    # sky's for the fit, not a neighbour's light
    on_frame = disk >= 0
    lowest = np.where(on_frame, others, np.inf).min(axis=1)
    outshines = np.where(on_frame, others, -np.inf).max(axis=1) - lowest <= own_at_edge[chosen]
    radii[chosen[outshines]] = wide
    return radii


def weak_blend_members(x: np.ndarray, y: np.ndarray, flux: np.ndarray, weak: np.ndarray,
                       radius: float) -> np.ndarray:
    """The ``weak`` stars (below the S/N cut) with a brighter star within ``radius`` px: the
    parts of a blend to drop. The brightest of a blend stays, weak or not (it takes its
    partners' light back when fitted again); dropping every weak part would lose the star."""
    drop = np.zeros(len(x), bool)
    if weak.any() and len(x) > 1:
        pairs = cKDTree(np.column_stack([x, y])).query_pairs(radius, output_type="ndarray")
        if len(pairs):
            fainter = np.where(flux[pairs[:, 0]] < flux[pairs[:, 1]], pairs[:, 0], pairs[:, 1])
            drop[fainter[weak[fainter]]] = True
    return drop


def rebuilt_psf(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray, fit: StarFit,
                model: np.ndarray, radii: np.ndarray, psf: EPSF, fwhm: float, sky: SkyStatistics, saturated_above: float | None,
                params: PSFParameters, electrons_per_unit: float,
                core: tuple[int, int, int, int] | None = None) -> tuple[EPSF, np.ndarray]:
    """The PSF refined, on the frame with every other star and the sky subtracted: the
    PSF stars' stamps then hold their own light only (DAOPHOT's way to a clean PSF in a crowd).
    Returns the PSF and the indices of the stars it was learned from."""
    chosen = fitted_psf_stars(x, y, peak_values(data, x, y), data.shape, fit, sky, saturated_above, fwhm, params, core)
    if len(chosen) < params.min_psf_stars:  # fewer than the first time: keep the PSF there is
        return psf, chosen
    radius = int(np.ceil(params.psf_radius * fwhm))
    # each drawn as far as the fit drew it, but no further than its square stamp's corners
    stamp = np.minimum(radii[chosen], int(math.ceil(math.sqrt(2.0) * radius)) + 1)
    own = render(data.shape, x[chosen], y[chosen], fit.flux[chosen], psf, stamp)
    # The sky from each stamp's outer ring, not the fitted cellular sky: that one has taken up
    # whatever wing light the current PSF lacks, and subtracting it would make every rebuilt
    # PSF's wings fainter than the last.
    cleaned = data - model + own
    # one refinement of the PSF there is (the stars' positions are the fit's, good to a few
    # hundredths of a pixel): as accurate as learning it anew in four iterations, at a third of
    # the time
    rebuilt, _, _ = build_epsf(cleaned, bad, x[chosen], y[chosen], fwhm, params.oversampling,
                               radius=radius, min_stars=params.min_psf_stars, initial=psf, n_iter=1,
                               sky_variance=sky.std**2, electrons_per_unit=electrons_per_unit)
    return rebuilt, chosen


def detections(image: np.ndarray, sky: SkyStatistics, params: PhotometryParameters,
               saturated_above: float | None) -> dict[str, np.ndarray]:
    """DAOFIND's stars on ``image`` as arrays (x, y, peak, sharpness, roundness), one detection
    per saturated star, only those centred on the frame; empty arrays when there are none."""
    names = ("x", "y", "peak", "sharpness", "roundness")
    found = detect_stars(image, sky, params)
    if found is None or len(found) == 0:
        return {name: np.zeros(0) for name in names}
    stars = {name: np.asarray(found[column], dtype=np.float64) for name, column in
             zip(names, ("x_centroid", "y_centroid", "peak", "sharpness", "roundness1"))}
    keep = centred_on_frame(stars["x"], stars["y"], image.shape)
    stars = {name: value[keep] for name, value in stars.items()}
    if saturated_above is not None and len(stars["x"]):
        keep, x, y = merge_saturated_detections(image, stars["x"], stars["y"], stars["peak"], saturated_above,
                                                grow=params.fwhm + 1.0)
        stars = {name: value[keep] for name, value in stars.items()}
        stars["x"], stars["y"] = x, y
    return stars


def errors_with_confusion(fit: StarFit, excess: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Scale the fit's errors (in place) by the noise excess at each star
    (:func:`clusterphot.psffit.noise_excess`): as if the fit had weighted its pixels by the
    variance their residual shows, which moves no flux but widens its covariance."""
    ny, nx = excess.shape
    scale = np.sqrt(excess[np.clip(np.rint(y), 0, ny - 1).astype(np.intp), np.clip(np.rint(x), 0, nx - 1).astype(np.intp)])
    fit.flux_err = fit.flux_err * scale
    fit.position_err = fit.position_err * scale


def psf_error_rings(params: PSFParameters, fwhm: float) -> int:
    """The rings PSF_ERROR_RING px wide in which :func:`psf_error_profile` measures a PSF's
    errors: out to the PSF's tabulated radius, ``psf_radius`` FWHM."""
    return int(params.psf_radius * fwhm / PSF_ERROR_RING) + 1


def psf_error_profile(residual: np.ndarray, variance: np.ndarray, usable: np.ndarray, x: np.ndarray,
                      y: np.ndarray, flux: np.ndarray, radius: float) -> np.ndarray:
    """What a learned PSF gets wrong around its stars, from their residual (``x``, ``y``,
    ``flux``: isolated, well-fitted stars, the PSF stars): per ring PSF_ERROR_RING px wide from the
    star out to ``radius`` px, the rms of the residual in excess of its noise (``variance``), as a
    fraction of the star's flux per pixel; 0 where the residual scatters no more than its noise.

    Per ring, the median over the stars weighted by their flux squared: the brightest show the
    PSF's errors above their photons, the faint ones mostly noise; and a median, because a few
    stars have a neighbour too faint to detect in each ring, whose light is not the PSF's error
    (the mean then grew outwards, to 0.05 per cent of the flux per pixel at 6 px on a crowded
    simulated frame, and hid the faint stars there from the residual passes). Measured on the
    stars the PSF was learned from, it is a little low: the PSF holds a little of their noise."""
    half = int(math.ceil(radius)) + 1  # (the stamp around the nearest pixel: one more holds the last ring)
    values, dx, dy = psf_stamps(residual, ~usable, x, y, half)
    noise, _, _ = psf_stamps(variance, ~usable, x, y, half)
    distance = np.hypot(dx, dy)
    use = np.isfinite(values) & np.isfinite(noise) & (distance <= radius)
    n_rings = int(radius / PSF_ERROR_RING) + 1
    # each star's excess in each ring: (mean residual^2 - mean variance) / flux^2
    star = np.nonzero(use)[0]
    cell = star * n_rings + (distance[use] / PSF_ERROR_RING).astype(np.intp)
    size = len(x) * n_rings
    count = np.bincount(cell, minlength=size)
    excess = np.bincount(cell, weights=(values**2 - noise)[use], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = (excess / count).reshape(len(x), n_rings) / flux[:, None] ** 2
    weight = np.where(count.reshape(len(x), n_rings) > 0, flux[:, None] ** 2, 0.0)
    profile = np.zeros(n_rings)
    for ring in range(n_rings):  # a dozen rings, each the weighted median of its stars'
        has = weight[:, ring] > 0
        if has.any():  # (the value below which half the weight lies)
            profile[ring] = np.quantile(fraction[has, ring], 0.5, weights=weight[has, ring], method="inverted_cdf")
    return np.sqrt(np.clip(profile, 0.0, None))


def padded_psf_errors(errors: list[np.ndarray]) -> np.ndarray:
    """Tiles' residual passes' PSF errors (:attr:`Tile.psf_errors`, each (passes, rings)) as one
    (tile, pass, ring) array: a tile whose passes stopped early (nothing new found) repeats its
    last row, as a pass beyond them takes it; one that ran none is NaN."""
    n_passes = max(len(e) for e in errors)
    cube = np.full((len(errors), n_passes, max(e.shape[1] for e in errors)), np.nan)
    for k, e in enumerate(errors):
        if len(e):
            cube[k, : len(e), : e.shape[1]] = e
            cube[k, len(e) :, : e.shape[1]] = e[-1]
    return cube


def pooled_psf_errors(errors: list[np.ndarray]) -> np.ndarray | None:
    """The median of tiles' residual passes' PSF errors, per pass and ring (NaN where none measured
    them), for the tiles with too few PSF stars of their own to measure theirs; None without any."""
    cube = padded_psf_errors(errors) if errors else np.zeros((0, 0, 0))
    if cube.size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (all NaN: none measured them there)
        return np.nanmedian(cube, axis=0)


def psf_error_variance(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray, radii: np.ndarray,
                       profile: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """The variance (image units squared, float32) the errors of every star's model add to each
    pixel: the sum over the stars of (flux x ``profile`` at the pixel's distance, as
    :func:`psf_error_profile` gives it)^2, out to each star's footprint (``radii``) or the
    profile's end. A few thousand stars at a time (:func:`clusterphot.psffit.render`'s reason)."""
    variance = np.zeros(shape[0] * shape[1])
    # (footprints are disks around the nearest pixel: one pixel more holds the last ring whole)
    reach = np.minimum(radii, int(math.ceil(len(profile) * PSF_ERROR_RING)) + 1)
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        star, flat, dx, dy = star_footprints(shape, x[part], y[part], reach[part])
        ring = (np.hypot(dx, dy) / PSF_ERROR_RING).astype(np.intp)
        inside = ring < len(profile)
        error = np.maximum(flux[part], 0.0)[star[inside]] * profile[ring[inside]]
        variance += np.bincount(flat[inside], weights=error**2, minlength=variance.size)
    return variance.reshape(shape).astype(np.float32)


def detection_variance(light: np.ndarray, usable: np.ndarray, model: np.ndarray, pixel_variance: np.ndarray | float,
                       electrons_per_unit: float, x: np.ndarray, y: np.ndarray, flux: np.ndarray, radii: np.ndarray,
                       psf_stars: np.ndarray, fwhm: float, params: PSFParameters,
                       profile: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The variance a residual pass scales the residual (``light``) by before it looks for stars
    in it: the photon noise of the sky and of the stars' subtracted light (``model``), plus what
    the learned PSF gets wrong, :func:`psf_error_profile` (``profile``, an artificial-star pass:
    its catalogue's; None: measured here on ``psf_stars``, the well-fitted PSF stars, out to the
    PSF's tabulated radius, ``psf_radius`` FWHM). With fewer than ``min_psf_stars`` of those
    (or a profile of NaN), ``residual_psf_error`` of the subtracted light instead. Returns the
    variance and the profile (NaN: the fraction was taken).

    Why measured: a fixed fraction of the subtracted light is too much where the PSF is good and
    too little where it is not. On the simulated crowded frames the learned PSF is right to a
    few hundredths of a per cent of the flux per pixel, and a tenth of the light hid the
    companions within 2 px of bright stars (the six pulls-test frames' bins: 1.21-1.34 times
    their errors, 0.87-1.20 measured). The real WFPC2 PC PSF (NGC 1261, F555W) is wrong by 0.5
    per cent of the flux per pixel at the star, 0.1 at 3.5 px, 0.05 at 6 px: beyond 2 px more
    than a tenth of its light (the residual passes then found 180 stars within 8 px of one 30
    times brighter, 21 measured)."""
    photons = photon_variance(model, pixel_variance, electrons_per_unit)
    if profile is None:
        profile = np.full(psf_error_rings(params, fwhm), np.nan)
        if len(psf_stars) >= params.min_psf_stars:
            profile = psf_error_profile(light, photons, usable, x[psf_stars], y[psf_stars], flux[psf_stars],
                                        params.psf_radius * fwhm)
    if not np.all(np.isfinite(profile)):
        return photon_variance(model, pixel_variance, electrons_per_unit, params.residual_psf_error), profile
    return photons + psf_error_variance(light.shape, x, y, flux, radii, profile), profile


def psf_photometry(data: np.ndarray, bad: np.ndarray, sky: SkyStatistics, params: PhotometryParameters,
                   psf_params: PSFParameters, electrons_per_unit: float,
                   saturated_above: float | None, psf: EPSF | None = None, psf_is_true: bool = False,
                   found: dict[str, np.ndarray] | None = None,
                   core: tuple[int, int, int, int] | None = None, held_light: np.ndarray | None = None,
                   near: tuple[np.ndarray, np.ndarray, float] | None = None,
                   background: np.ndarray | None = None, correlation_factor: float = 1.0,
                   psf_errors: np.ndarray | None = None,
                   held_stars: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> PSFPhotometry:
    """Every star of a sky-subtracted frame (masked pixels 0) by PSF fitting; the PSF is learned
    from the frame unless one is given: a frame's PSF for one of its tiles (learned again from
    the tile's stars when it has enough), or with ``psf_is_true`` the exact PSF (benchmarks give
    every method the true PSF; no allowance is then made for what a learned PSF gets wrong).
    ``found``: the frame's :func:`detections`, when the caller has them. ``core``: a tile's own
    pixels (x0, y0, x1, y1) in its box: only stars there teach it the PSF.

    For artificial-star passes: ``held_light`` (the frame's shape, image units), the light of
    stars not fitted here, subtracted in every fit and counted in the noise; ``near`` (x, y,
    radius): only the detections (on the frame and on the residual images) within radius px of
    one of these positions are fitted; ``psf_errors``, the catalogue's :attr:`Tile.psf_errors`:
    each residual pass looks for stars as the catalogue's did (its row, or the last), rather
    than with the errors the PSF stars of the patches show; ``held_stars`` (x, y, PSF flux), the
    stars whose light ``held_light`` is: the errors of their models count in the residual
    passes as the fitted stars' do (as they did in the catalogue's, which fitted them).

    The noise: ``background`` (data's shape, image units^2), the background's variance per pixel
    from the product (:mod:`clusterphot.noise`), else the sky's scatter; the fit weighs its
    pixels by it plus the stars' photons, and the residual images are scaled to it per pixel.
    A drizzled image's correlated pixels (``correlation_factor``) enter the fit's errors, and
    its S/N cuts, through :func:`correlated_errors`."""
    fwhm = params.fwhm
    if found is None:
        found = detections(data, sky, params, saturated_above)
    if near is not None:
        found = {name: value[close_to(found["x"], found["y"], near)] for name, value in found.items()}
    if len(found["x"]) == 0:
        raise FrameError("no stars detected")
    # per-star arrays, kept in step as stars are dropped and added (a refit's ``found`` carries
    # the pass each star was found in and the fits it has had)
    n_found = len(found["x"])
    stars = dict(found, found_x=found["x"].copy(), found_y=found["y"].copy(),
                 found_in_pass=found.get("found_in_pass", np.zeros(n_found, np.int32)).copy(),
                 n_iter=found.get("n_iter", np.zeros(n_found, np.int32)).copy())
    learn = psf is None
    approximate = not psf_is_true  # a learned PSF: its errors enter the noise model
    chosen = select_psf_stars(found["x"], found["y"], found["peak"], data.shape, sky, saturated_above, fwhm,
                              psf_params, core)
    if learn and len(chosen) < psf_params.min_psf_stars:
        raise too_few_psf_stars(len(chosen), psf_params)
    if learn:
        psf = learn_psf(data, bad, found["x"], found["y"], chosen, fwhm, psf_params, sky, electrons_per_unit)

    usable = ~bad
    if saturated_above is not None:
        usable &= data < saturated_above
    pixel_variance = sky.std**2 if background is None else background
    variance = photon_variance(data, pixel_variance, electrons_per_unit)
    level = psf_params.footprint_level * sky.std
    stars["saturated"] = (np.zeros(len(stars["x"]), bool) if saturated_above is None
                          else stars["peak"] >= saturated_above)
    stars["flux"] = stars["peak"] / float(psf.evaluate(0.0, 0.0))  # a first guess, for the footprints
    stars["held"] = np.zeros(len(stars["x"]), bool)
    wings = no_far_wings(data.shape, len(stars["x"]), held_light)
    passes = []
    profiles = []  # per residual pass, the PSF's errors it looked for stars with
    held_x, held_y, held_flux = (np.zeros(0),) * 3 if held_stars is None else held_stars
    drawn = np.isfinite(held_flux) & (held_flux > 0)
    if near is not None:  # only those whose errors reach the pixels DAOFIND reads near the stars looked for
        reach = psf_error_rings(psf_params, fwhm) * PSF_ERROR_RING + 2 * fwhm
        drawn &= close_to(held_x, held_y, (near[0], near[1], near[2] + reach))
    held_x, held_y, held_flux = held_x[drawn], held_y[drawn], held_flux[drawn]
    held_radii = footprint_radii(psf, held_flux, level, fit_radius_for(fwhm) + 1)
    nothing_new = False
    for k in range(psf_params.residual_passes + 1):
        # only the last fit's errors are kept; a residual with nothing new in it makes the next
        # pass the last (its fit, with the covariance, the wide radii and the residual's excess,
        # gives the errors; an artificial-star pass's patches often hold nothing new)
        last = k == psf_params.residual_passes or nothing_new
        x, y, flux, moved, held, kept, wings = refine(data, variance, usable, stars["x"], stars["y"], stars["flux"],
                                                      stars["saturated"], stars["held"], stars["found_x"],
                                                      stars["found_y"], psf, fwhm, level, psf_params, wings,
                                                      last, electrons_per_unit, correlation_factor)
        stars = {name: value[kept] for name, value in stars.items()}
        stars["x"], stars["y"], stars["held"] = x, y, held
        stars["n_iter"] += psf_params.n_iter
        fit_radius = fitting_radii(fwhm, stars["saturated"])
        radii = footprint_radii(psf, flux, level, fit_radius + 1)
        quality_radius = fit_radius  # qfit over one fitting radius, whatever the fit took
        update_far_wings(wings, x, y, flux, radii, psf, WING_TOLERANCE * level)
        if last:
            fit_radius = wide_fitting_radii(x, y, flux, psf, fit_radius, radii, psf_params.wide_fit_radius * fwhm,
                                            pixel_variance, electrons_per_unit, wings.light, usable)
        fit = fit_stars(data, variance, usable, x, y, psf, fit_radius, np.zeros(len(x), bool), psf_params.sky_cell,
                        radii=radii, free_positions=moved, covariance=last, far_wings=wings,
                        quality_radius=quality_radius)
        flux_err = correlated_errors(fit.flux, fit.flux_err, electrons_per_unit, correlation_factor)
        weak = (weak_blend_members(x, y, fit.flux, snr(fit.flux, flux_err) < psf_params.min_snr,
                                   2 * fit_radius_for(fwhm)) if last else np.zeros(len(x), bool))
        if weak.any():
            # The S/N cuts between fits took each flux's error alone; with its neighbours'
            # covariance a degenerate blend (stars fitted to one's light, each with a part of
            # it) falls below min_snr: drop those, and fit once more so their light goes back
            # to the star that holds it
            keep = np.flatnonzero(~weak)
            # Only the stars whose footprints or fitting pixels reach a dropped star's pixels see
            # their normal matrix, so their errors, change: the others keep theirs (the blocks of
            # every star cost as much as the fit again; a few stars are dropped per tile)
            reach = float(radii.max() + fit_radius.max() + 1.0)
            near_dropped = close_to(x[keep], y[keep], (x[weak], y[weak], reach))
            kept_flux_err, kept_position_err = fit.flux_err[keep], fit.position_err[keep]
            stars = {name: value[keep] for name, value in stars.items()}
            x, y, moved, flux = stars["x"], stars["y"], moved[keep], fit.flux[keep]
            wings = kept_far_wings(wings, keep, psf)  # the others' as they were held in the fit
            quality_radius = fitting_radii(fwhm, stars["saturated"])
            radii = footprint_radii(psf, flux, level, quality_radius + 1)
            # the radii chosen anew only near the dropped stars: elsewhere a star keeps the
            # radius its error (kept from the fit before) was worked out with
            fit_radius = np.where(near_dropped, wide_fitting_radii(x, y, flux, psf, quality_radius, radii,
                                                                   psf_params.wide_fit_radius * fwhm, pixel_variance,
                                                                   electrons_per_unit, wings.light, usable),
                                  fit_radius[keep])
            fit = fit_stars(data, variance, usable, x, y, psf, fit_radius, np.zeros(len(x), bool),
                            psf_params.sky_cell, radii=radii, free_positions=moved, covariance=True, far_wings=wings,
                            covariance_of=near_dropped, quality_radius=quality_radius)
            fit.flux_err = np.where(near_dropped, fit.flux_err, kept_flux_err)
            fit.position_err = np.where(near_dropped, fit.position_err, kept_position_err)
            stars["n_iter"] += 1
        stars["flux"] = fit.flux
        model = fit.star_image
        passes.append({"stars": int(len(x)), "new": int((stars["found_in_pass"] == k).sum())})
        if last:
            passes[-1]["dropped_by_covariance"] = int(weak.sum())
            # the far wings redrawn with this fit's fluxes, each where it was drawn (the fit split
            # every star's pixels between its core and its drawn wing there): the model a PSF
            # file gives back
            drawn = wings.light.copy()
            update_far_wings(wings, wings.x, wings.y, fit.flux, radii, psf, WING_TOLERANCE * level)
            model += (wings.light - drawn).astype(np.float32)
            # five fitting radii each way: near a star's own residual, but over enough stars of a
            # crowd that the blends the fit cannot see (a companion within a pixel, whose light
            # the star takes) are charged to their share
            box = 2 * int(math.ceil(5 * fit_radius_for(fwhm))) + 1
            excess = noise_excess(data - model - fit.sky_image, variance, usable & (model > 0), box)
            # a drizzled frame's correlated background first (the fit weighed pixels alone,
            # and its residuals' excess is per pixel too), then the excess on top
            fit.flux_err = correlated_errors(fit.flux, fit.flux_err, electrons_per_unit, correlation_factor)
            errors_with_confusion(fit, excess, x, y)
            # (NaN for a tile whose stars were all dropped: nothing fitted, no excess)
            passes[-1]["median_noise_excess"] = float(np.median(excess[model > 0])) if (model > 0).any() else math.nan
            break
        variance = photon_variance(model, pixel_variance, electrons_per_unit,
                                   psf_params.psf_error if approximate else 0.0)
        if approximate and k < psf_params.psf_rebuilds:
            psf, _ = rebuilt_psf(data, bad, x, y, fit, model, radii, psf, fwhm, sky, saturated_above, psf_params,
                                 electrons_per_unit, core)
            # the fluxes and sky of the new PSF, before anything is looked for in the residual
            radii = footprint_radii(psf, fit.flux, level, fit_radius + 1)
            wings = no_far_wings(data.shape, len(x), held_light)  # drawn anew with the new PSF
            update_far_wings(wings, x, y, fit.flux, radii, psf, WING_TOLERANCE * level)
            fit = fit_stars(data, variance, usable, x, y, psf, fit_radius, np.zeros(len(x), bool),
                            psf_params.sky_cell, radii=radii, covariance=False, far_wings=wings)
            stars["flux"] = fit.flux
            model = fit.star_image
            variance = photon_variance(model, pixel_variance, electrons_per_unit, psf_params.psf_error)
        # The residual scaled to the sky's noise: near a bright star the photon noise of its
        # subtracted light is many times the sky's, and what a learned PSF gets wrong (as its
        # stars' residual shows it, detection_variance) can be more still; DAOFIND's threshold
        # (in sky sigma) would take those ripples for stars.
        light = data - model - fit.sky_image
        if approximate:
            if psf_errors is not None and len(psf_errors):
                given = psf_errors[min(k, len(psf_errors) - 1)]
            elif near is not None:  # a pass without its catalogue's (a PSF file from before PSFERR): as it had
                given = np.full(psf_error_rings(psf_params, fwhm), np.nan)
            else:
                given = None
            teachers = (fitted_psf_stars(x, y, peak_values(data, x, y), data.shape, fit, sky, saturated_above, fwhm,
                                         psf_params, core)
                        if given is None else np.zeros(0, np.intp))
            variance_now, profile = detection_variance(light, usable, model, pixel_variance, electrons_per_unit,
                                                       np.r_[x, held_x], np.r_[y, held_y], np.r_[fit.flux, held_flux],
                                                       np.r_[radii, held_radii], teachers, fwhm, psf_params, given)
            profiles.append(profile)
        else:
            variance_now = photon_variance(model, pixel_variance, electrons_per_unit)
        residual = light * (sky.std / np.sqrt(variance_now))
        residual[bad] = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)  # a residual without new stars is no news
            new = detections(residual, sky, params, None)
        if near is not None:
            new = {name: value[close_to(new["x"], new["y"], near)] for name, value in new.items()}
        if len(new["x"]) == 0:
            nothing_new = True
            continue
        distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([new["x"], new["y"]]))
        fresh = distance > psf_params.merge_separation * 2 * fwhm
        n_new = int(fresh.sum())
        new = {name: value[fresh] for name, value in new.items()}
        new["peak"] = peak_values(data, new["x"], new["y"])  # of the frame, not of the residual
        new["saturated"] = np.zeros(n_new, bool)  # found in a wing: not saturated
        new["held"] = np.zeros(n_new, bool)
        new["flux"] = np.maximum(peak_values(light, new["x"], new["y"]), 0.0) / float(psf.evaluate(0.0, 0.0))
        new.update(found_x=new["x"].copy(), found_y=new["y"].copy(),
                   found_in_pass=np.full(n_new, k + 1, np.int32), n_iter=np.zeros(n_new, np.int32))
        stars = {name: np.r_[stars[name], new[name]] for name in stars}
        wings = kept_far_wings(wings, np.arange(len(x)), psf, n_new)
    x, y = stars["x"], stars["y"]
    stars["n_iter"] += 1  # the last fit, positions held
    # the PSF stars among the final stars (for the correction to total flux and the QA figure)
    peak = peak_values(data, x, y)
    chosen = fitted_psf_stars(x, y, peak, data.shape, fit, sky, saturated_above, fwhm, psf_params, core)
    return PSFPhotometry(x, y, fit, psf, stars["found_in_pass"], peak, stars["sharpness"],
                         stars["roundness"], stars["n_iter"], chosen, passes,
                         np.array(profiles, np.float64).reshape(len(profiles), -1) if profiles
                         else np.zeros((0, psf_error_rings(psf_params, fwhm))))


# Flags only the PSF path sets (the aperture path's bits keep their meaning).
FLAG_POOR_FIT = 32  # qfit above PSFParameters.max_qfit: the PSF does not describe the star
FLAG_RESIDUAL_DETECTION = 64  # found on the residual image, in a brighter star's wing
PSF_FLAG_DESCRIPTIONS = {
    FLAG_POOR_FIT: "poor PSF fit (qfit above photometry.psf.max_qfit)",
    FLAG_RESIDUAL_DETECTION: "found on the residual image (in a neighbour's wing)",
}


def total_over_psf_flux(cleaned: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
                        flux: np.ndarray, psf: EPSF, params: PhotometryParameters,
                        background: np.ndarray) -> np.ndarray:
    """For each PSF star clear of the mask, its total light over its PSF flux: the light within
    ``aperture_correction_radius`` on a frame holding only its own light (its neighbours
    subtracted) less its ``background`` per pixel (image units; NaN counts as 0), plus the PSF's
    wing beyond it (:meth:`EPSF.light_beyond`: the measured aperture alone left the fluxes about
    1 per cent short of the total)."""
    r_big = params.aperture_correction_radius
    clear = ~touches_mask(bad, x, y, r_big) & (flux > 0)
    big = aperture_sums(cleaned, bad, x[clear], y[clear], r_big, near_mask=np.zeros(int(clear.sum()), bool))
    big = big - np.nan_to_num(np.asarray(background, dtype=np.float64))[clear] * math.pi * r_big**2
    return big / flux[clear] + psf.light_beyond(r_big)


def psf_aperture_correction(ratios: np.ndarray, params: PhotometryParameters) -> ApertureCorrection:
    """Total over PSF flux: the median of the PSF stars' :func:`total_over_psf_flux`. The learned
    PSF is normalised within its own radius; this puts the fluxes on the same "total" scale as
    the aperture path's."""
    r_big = params.aperture_correction_radius
    n = len(ratios)
    if n < params.aperture_correction_min_stars:
        return ApertureCorrection(1.0, float("nan"), n, r_big, False,
                                  f"only {n} PSF stars clear of the mask; no correction applied")
    median = float(np.median(ratios))
    spread = 1.4826 * float(np.median(np.abs(ratios - median)))
    return ApertureCorrection(median, 1.2533 * spread / math.sqrt(n), n, r_big, True, "PSF flux to total")


def tile_margin(psf_params: PSFParameters, fwhm: float) -> int:
    """Pixels of its neighbours fitted around each tile: twice the PSF's radius, in whole sky
    cells (so that tiles' cells are the frame's). A star in a tile's core is then fitted with
    every neighbour whose light reaches it."""
    cell = psf_params.sky_cell
    return int(math.ceil(2 * psf_params.psf_radius * fwhm / cell)) * cell


def tile_boxes(shape: tuple[int, int], tile: int, margin: int) -> list[tuple[tuple[int, int, int, int],
                                                                            tuple[int, int, int, int]]]:
    """The frame's tiles as (core, box), each (x0, y0, x1, y1): cores of ``tile`` px cover the
    frame once, those along its far edges up to half a tile smaller or larger (a remainder
    narrower than half a tile joins its neighbour: a strip of a few dozen pixels has too few PSF
    stars, and as a node of the tiles' grid of PSFs it would hold its neighbour's PSF at its
    centre, not the PSF there); each box is its core and ``margin`` px around it, within the
    frame. One tile when the frame is less than 1.5 ``tile`` wide and high."""
    ny, nx = shape

    def starts(size: int) -> list[int]:
        edges = list(range(0, size, tile))
        if len(edges) > 1 and size - edges[-1] < tile / 2:
            edges.pop()
        return edges + [size]

    x_edges, y_edges = starts(nx), starts(ny)
    tiles = []
    for y0, y1 in zip(y_edges[:-1], y_edges[1:]):  # a few dozen tiles, not stars
        for x0, x1 in zip(x_edges[:-1], x_edges[1:]):
            core = (x0, y0, x1, y1)
            box = (max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, nx), min(y1 + margin, ny))
            tiles.append((core, box))
    return tiles


def in_core(x: np.ndarray, y: np.ndarray, core: tuple[float, float, float, float]) -> np.ndarray:
    """True for positions on the pixels of ``core`` (pixel i spans i - 0.5 to i + 0.5)."""
    x0, y0, x1, y1 = core
    return (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)


def in_box(core: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A tile's core in the pixels of its box."""
    return core[0] - box[0], core[1] - box[1], core[2] - box[0], core[3] - box[1]


def tile_of(x: np.ndarray, y: np.ndarray, cores: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Which tile (index into ``cores``, which cover a frame) measured a star at (x, y): the one
    whose core holds it, a tile on the frame's edge also the stars the fit moved just past it."""
    nx, ny = max(core[2] for core in cores), max(core[3] for core in cores)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    index = np.full(x.shape, -1, np.intp)
    for k, (x0, y0, x1, y1) in enumerate(cores):  # a few dozen tiles
        owned = (-np.inf if x0 == 0 else x0, -np.inf if y0 == 0 else y0,
                 np.inf if x1 == nx else x1, np.inf if y1 == ny else y1)
        index[in_core(x, y, owned)] = k
    return index


def tile_detections(data: np.ndarray, tiles: list, sky: SkyStatistics, params: PhotometryParameters,
                    saturated_above: float | None) -> tuple[list[dict], dict[str, np.ndarray]]:
    """DAOFIND on every tile's box (in the box's pixels), and the frame's detections: each star
    from the tile whose core holds it (in the frame's pixels)."""
    in_boxes, frame = [], []
    for core, (bx0, by0, bx1, by1) in tiles:
        found = detections(data[by0:by1, bx0:bx1], sky, params, saturated_above)
        in_boxes.append(found)
        mine = in_core(found["x"] + bx0, found["y"] + by0, core)
        frame.append(dict({name: value[mine] for name, value in found.items()},
                          x=found["x"][mine] + bx0, y=found["y"][mine] + by0))
    return in_boxes, {name: np.concatenate([part[name] for part in frame]) for name in frame[0]}


def mean_psf(psfs: list[EPSF]) -> EPSF:
    """The PSFs (on one grid) averaged, each weighted by the stars it was learned from: the
    frame's PSF from its tiles' (each learned with its neighbours subtracted, so cleaner than
    one learned from the whole frame's detections at once). The wings' parameters are averaged
    the same way."""
    weights = np.array([max(psf.n_stars, 1) for psf in psfs], float)
    grid = np.average(np.stack([psf.data for psf in psfs]), axis=0, weights=weights)
    wings = [(psf.wing, w) for psf, w in zip(psfs, weights) if psf.wing is not None]
    wing = None
    if wings:
        wing = tuple(float(v) for v in np.average([w for w, _ in wings], axis=0, weights=[w for _, w in wings]))
    wing_from = max(psf.wing_start for psf in psfs) if wing is not None else None
    return EPSF(grid, psfs[0].oversampling, n_stars=int(sum(psf.n_stars for psf in psfs)), wing=wing,
                wing_from=wing_from)


@dataclass
class TileResult:
    """One tile's stars (those of its core, frame pixels) and what the frame needs from it."""

    tile: Tile
    stars: dict  # per-star arrays: x, y, flux, flux_err, sky, qfit, crowding, peak, sharpness, ...
    psf_stars: np.ndarray  # indices into ``stars`` of its PSF stars
    ratios: np.ndarray  # their total over PSF flux (total_over_psf_flux)
    sky_cells: np.ndarray  # the fitted sky of the core's cells
    passes: list
    model: np.ndarray | None  # stars plus sky on the core's pixels, when asked for


def psf_star_ratios(tile_data: np.ndarray, tile_bad: np.ndarray, result: PSFPhotometry, sky: SkyStatistics,
                    params: PhotometryParameters, psf_params: PSFParameters) -> np.ndarray:
    """Total over PSF flux of a tile's PSF stars (:func:`total_over_psf_flux`), each on the
    tile with every other star and its own background subtracted."""
    fit, chosen = result.fit, result.psf_stars
    # each drawn as far as the fit drew it, but no further than the correction's aperture needs
    # (a PSF star's whole footprint reaches 30-50 px: ten times the pixels)
    radii = footprint_radii(result.psf, fit.flux[chosen], psf_params.footprint_level * sky.std,
                            fit_radius_for(params.fwhm) + 1)
    radii = np.minimum(radii, int(math.ceil(params.aperture_correction_radius)) + 1)
    own = render(tile_data.shape, result.x[chosen], result.y[chosen], fit.flux[chosen], result.psf, radii)
    # The background under each PSF star from its own annulus on the frame with every star
    # subtracted, not the frame's median nor the fitted cellular sky: in a crowd the median is
    # raised by the light of the stars too faint to detect, unevenly, and a fitted cell trades
    # its level with the stars' fluxes. With either, the correction came out 1-3 per cent low
    # (bright stars +0.010 to +0.028 mag too faint on simulated crowded frames; -0.002 to
    # -0.003 with the annulus).
    stars_subtracted = tile_data - fit.star_image
    background, _, _ = local_sky(stars_subtracted, tile_bad, result.x[chosen], result.y[chosen], params)
    return total_over_psf_flux(stars_subtracted + own, tile_bad, result.x[chosen], result.y[chosen],
                               fit.flux[chosen], result.psf, params, background)


def correlated_errors(flux: np.ndarray, flux_err: np.ndarray, electrons_per_unit: float,
                      variance_factor: float) -> np.ndarray:
    """A drizzled frame's PSF fluxes' errors: the fit weighed its pixels as independent (so its
    qfit and its residuals' excess compare with what one pixel scatters), and the part of each
    fit's error that is not the star's own photons (flux / gain) is the background's, which over
    the star's pixels is ``variance_factor`` times larger (:meth:`clusterphot.noise.FrameNoise.variance_factor`
    over a FWHM). Taken before the residuals' excess widens the errors (and with ``psf_error``
    at its default 0, nothing else is in them)."""
    if variance_factor == 1.0:
        return flux_err
    photons = np.clip(flux, 0.0, None) / electrons_per_unit
    background = np.clip(flux_err**2 - photons, 0.0, None)
    return np.sqrt(photons + variance_factor * background)


def measure_tile(data: np.ndarray, bad: np.ndarray, cores: list, core: tuple, box: tuple, found: dict,
                 sky: SkyStatistics,
                 params: PhotometryParameters, psf_params: PSFParameters, electrons_per_unit: float,
                 saturated_above: float | None, psf: EPSF | None, psf_is_true: bool, keep_model: bool,
                 held_light: np.ndarray | None = None,
                 near: tuple[np.ndarray, np.ndarray, float] | None = None,
                 measure_correction: bool = True, background: np.ndarray | None = None,
                 correlation_factor: float = 1.0, psf_errors: np.ndarray | None = None,
                 held_stars: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> TileResult:
    """:func:`psf_photometry` on a tile's box (the frame's pixels, viewed, not copied), keeping the
    stars of its core (:func:`tile_of`; ``cores``: every tile's); ``psf`` None: learned from the
    core's stars. ``held_light`` (the frame's) and ``near`` (frame pixels) as for
    :func:`psf_photometry`. ``measure_correction`` False (an artificial-star pass, which takes
    the catalogue's): no PSF stars' ratios of total to PSF flux (``ratios`` empty).
    ``background`` (the frame's) and ``correlation_factor``: the noise, ``psf_errors`` and
    ``held_stars`` (frame pixels), as for :func:`psf_photometry`."""
    bx0, by0, bx1, by1 = box
    tile_data, tile_bad = data[by0:by1, bx0:bx1], bad[by0:by1, bx0:bx1]
    own_core = in_box(core, box)
    tile_held = None if held_light is None else held_light[by0:by1, bx0:bx1]
    tile_near = None if near is None else (near[0] - bx0, near[1] - by0, near[2])
    tile_background = None if background is None else background[by0:by1, bx0:bx1]
    tile_held_stars = None
    if held_stars is not None:  # those whose errors reach the box
        reach = psf_error_rings(psf_params, params.fwhm) * PSF_ERROR_RING + 1
        inside = in_core(held_stars[0], held_stars[1], (bx0 - reach, by0 - reach, bx1 + reach, by1 + reach))
        tile_held_stars = (held_stars[0][inside] - bx0, held_stars[1][inside] - by0, held_stars[2][inside])
    result = psf_photometry(tile_data, tile_bad, sky, params, psf_params, electrons_per_unit, saturated_above,
                            psf=psf, psf_is_true=psf_is_true, found=found, core=own_core, held_light=tile_held,
                            near=tile_near, background=tile_background, correlation_factor=correlation_factor,
                            psf_errors=psf_errors, held_stars=tile_held_stars)
    fit = result.fit
    keep = tile_of(result.x + bx0, result.y + by0, cores) == cores.index(core)
    stars = {"x": result.x + bx0, "y": result.y + by0, "flux": fit.flux, "flux_err": fit.flux_err, "sky": fit.sky,
             "qfit": fit.qfit, "crowding": fit.crowding, "peak": result.peak, "sharpness": result.sharpness,
             "roundness": result.roundness, "n_iter": result.n_iter, "found_in_pass": result.found_in_pass}
    # the correction to total from the core's PSF stars, each on the tile with every other star
    # and its own background subtracted
    chosen = result.psf_stars
    ratios = (psf_star_ratios(tile_data, tile_bad, result, sky, params, psf_params) if measure_correction
              else np.zeros(0))
    cell = psf_params.sky_cell  # boxes start on cell boundaries: the box's cells are the frame's
    cx0, cy0, cx1, cy1 = own_core
    sky_cells = fit.sky_cells[cy0 // cell : -(-cy1 // cell), cx0 // cell : -(-cx1 // cell)]
    model = fit.star_image[cy0:cy1, cx0:cx1] + fit.sky_image[cy0:cy1, cx0:cx1] if keep_model else None
    # the tile's PSF without the tables its fit evaluated (5 MB, and its zones' 80; a hundred
    # tiles keep theirs)
    return TileResult(Tile(core, replace(result.psf, zones=None), psf is None, psf_errors=result.psf_errors),
                      {name: value[keep] for name, value in stars.items()},
                      np.cumsum(keep)[chosen] - 1, ratios, sky_cells, result.passes, model)


def tile_grid(tiles: list[Tile]) -> PSFGrid:
    """The grid of a frame's tiles' PSFs (:class:`clusterphot.psf.PSFGrid`), from the tiles that
    measured stars (a catalogue's, as its PSF file keeps them)."""
    return PSFGrid.from_tiles([tile.core for tile in tiles], [tile.psf for tile in tiles],
                              [tile.own_psf for tile in tiles])


def star_corrections(tiles: list[Tile], frame_correction: float, x: np.ndarray, y: np.ndarray,
                     interpolated: bool) -> np.ndarray:
    """Each star's correction from PSF flux to total: its tile's (``frame_correction`` beyond the
    tiles), or with ``interpolated`` the tiles' interpolated at its position as their PSFs were
    (:func:`tile_grid`). Why interpolated too: each PSF is normalised within a radius, and the
    light beyond it changes with the PSF; one correction per tile left the stars of
    bench/varying_psf.py drifting by 2 mmag across a tile even with the PSFs interpolated."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if not tiles:
        return np.full(x.shape, frame_correction)
    corrections = [tile.correction for tile in tiles]
    if not interpolated:
        return np.array(corrections + [frame_correction])[tile_of(x, y, [tile.core for tile in tiles])]  # -1: the frame's
    return tile_grid(tiles).interpolate(corrections, x, y).reshape(x.shape)


def refit_with_interpolated_psfs(results: dict[int, TileResult], tiles: list, zone: int, measure,
                                 grid: PSFGrid | None = None) -> None:
    """Every tile fitted again (``results``, in place, by tile index) with its tiles' PSFs
    interpolated over its zones (:meth:`clusterphot.psf.PSFGrid.zoned`): once each tile has
    learned its own PSF (its stars, found and fitted, are kept), its stars, and its neighbours'
    in its margin, are fitted again, without new detections or new PSFs. A tile's own record
    (its PSF, learned or the frame's) and its passes stay the first fit's; each tile's
    correction to total is measured again with the PSFs its stars now have.

    Why a second fit and not the PSFs interpolated from the start: a tile's PSF is learned with
    its neighbours fitted and subtracted, so every PSF exists only once every tile has been
    fitted. ``measure``: :func:`measure_frame_psf`'s, ``measure(k, psf, found, refit=True)``.
    ``grid``: the tiles' grid of PSFs (an artificial-star pass: its catalogue's; default the
    tiles' of ``results``); each tile's zones from its own PSF in it."""
    first = {k: results[k] for k in sorted(results)}
    grid = tile_grid([part.tile for part in first.values()]) if grid is None else grid
    # the first fit's stars of the whole frame, in its pixels, and what a refit carries over
    stars = {name: np.concatenate([part.stars[name] for part in first.values()])
             for name in ("x", "y", "peak", "sharpness", "roundness", "found_in_pass", "n_iter")}
    for k, part in first.items():  # a few dozen tiles
        core, (bx0, by0, bx1, by1) = tiles[k]
        inside = in_core(stars["x"], stars["y"], (bx0, by0, bx1, by1))
        found = {name: value[inside] for name, value in stars.items()}
        found["x"], found["y"] = found["x"] - bx0, found["y"] - by0
        if not inside.any():
            continue
        measure(k, grid.zoned(part.tile.psf, core, zone, (bx0, by0)), found, refit=True)  # (its base: as first fitted)
        results[k].tile = part.tile
        refit = {name: value for name, value in results[k].passes[-1].items() if name != "new"}  # (none looked for)
        results[k].passes = part.passes + [{"refit with interpolated PSFs": refit}]


def measure_frame_psf(data: np.ndarray, bad: np.ndarray, params: PhotometryParameters,
                      psf_params: PSFParameters, electrons_per_unit: float,
                      saturation: float | None, keep_model: bool = False,
                      true_psf: EPSF | None = None, psf: EPSF | None = None,
                      catalogue_correction: float | None = None, held_light: np.ndarray | None = None,
                      near: tuple[np.ndarray, np.ndarray, float] | None = None,
                      catalogue_tiles: list[Tile] | None = None, noise: FrameNoise | None = None,
                      detect_through: np.ndarray | None = None, psf_errors: np.ndarray | None = None,
                      held_stars: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Measurements:
    """Detect and measure all stars of a frame by PSF fitting (fluxes in image units, corrected
    to total), the PSF path's counterpart of :func:`clusterphot.photometry.measure_frame`.

    A frame at least 1.5 ``psf_params.tile`` wide or high is measured tile by tile, each tile with its
    neighbours' stars around it (:func:`tile_margin`), keeping the stars of its core: memory
    then scales with a tile, not the frame, and each tile with ``min_psf_stars`` PSF stars of
    its own gets its own PSF (HST's PSF changes across a detector); the others get the frame's,
    the average of those (or, when no tile has enough, one learned from the whole frame's).

    ``data`` is used in place: it leaves sky-subtracted, masked pixels 0. ``extra`` holds the
    per-star ``qfit``, ``crowding`` (mag), ``n_iter``, ``found_in_pass``, and the frame's
    ``psf``, ``tiles`` (a :class:`Tile` each; empty for a frame measured whole;
    ``aperture_correction`` is then the frame PSF's, and each star's flux has its tile's
    correction), ``psf_stars`` (indices of the stars that give the correction to total),
    ``passes`` (per pass, or per tile and pass: stars, new), ``psf_errors`` (a frame measured
    whole: :attr:`Tile.psf_errors`; in tiles None, each tile has its own), ``sky_cells`` (the fitted sky per
    ``sky_cell`` block, above the subtracted level), ``footprint_level`` (image units),
    ``footprint_smallest`` (px): how far each star was drawn
    (:func:`clusterphot.psffit.footprint_radii`), and with ``keep_model`` the ``model`` (stars
    plus fitted sky, float32, the frame's shape: ``data - model`` is the residual image).
    ``true_psf``: every star is fitted with it, nothing learned (benchmarks, tests).

    An artificial-star pass measures the frame again as its catalogue was measured, but only
    around the artificial stars (:mod:`clusterphot.completeness`): ``psf``, the catalogue's
    (learned) PSF, used on every tile and not learned again (give ``psf_params`` no rebuilds);
    ``catalogue_correction``, the catalogue's correction to total, not measured again; ``held_light``
    (frame-sized, image units, sky-subtracted) the light of the catalogue's stars away from the
    artificial ones, subtracted and counted in the noise, not fitted; ``near`` = (x, y, radius):
    only stars detected within radius px of these positions are fitted (none: no stars, not an
    error); ``catalogue_tiles``, the catalogue's tiles: a tile of the pass with the same pixels
    is fitted with that tile's PSF and correction, and its residual passes look for stars with
    that tile's ``psf_errors`` (:attr:`Tile.psf_errors`), as its stars were; ``psf_errors``, a
    frame measured whole: the catalogue's (``extra``'s); ``held_stars`` (x, y, PSF flux), the
    stars whose light ``held_light`` is. ``noise``: the product's
    own (:func:`clusterphot.noise.frame_noise`); the sky's scatter without it. ``detect_through``:
    masked pixels that stars are looked for through (:func:`clusterphot.photometry.find_stars_through`).
    Raises FrameError (without the file's name) when there are no stars or too few PSF stars.
    """
    params = frame_parameters(data, bad, params, saturation)
    bad, sky_stats, sky_level, _ = subtract_frame_sky(data, bad, params)
    saturated_above = None if saturation is None else params.saturation_fraction * saturation - sky_level
    fwhm, cell = params.fwhm, psf_params.sky_cell
    tile = max(cell, psf_params.tile // cell * cell)  # whole sky cells
    tiles = tile_boxes(data.shape, tile, tile_margin(psf_params, fwhm))
    cores = [core for core, _ in tiles]
    with find_stars_through(data, bad, detect_through):
        found_in_box, frame_found = tile_detections(data, tiles, sky_stats, params, saturated_above)
    if near is not None:  # an artificial-star pass: only the stars near the artificial ones
        found_in_box = [{name: value[close_to(found["x"] + box[0], found["y"] + box[1], near)]
                         for name, value in found.items()} for found, (_, box) in zip(found_in_box, tiles)]
        frame_found = {name: value[close_to(frame_found["x"], frame_found["y"], near)]
                       for name, value in frame_found.items()}
    if len(frame_found["x"]) == 0 and near is not None:  # a pass whose artificial stars were all lost
        return no_stars(ApertureCorrection(catalogue_correction or 1.0, math.nan, 0,
                                           params.aperture_correction_radius, False, "no stars detected"), sky_stats)
    if len(frame_found["x"]) == 0:
        raise FrameError("no stars detected")
    # an artificial-star pass: each tile as the catalogue's tile of the same pixels was fitted
    own_tiles = {tuple(tile.core): tile for tile in catalogue_tiles or []}

    def own_psf_stars(k: int) -> int:
        (core, (bx0, by0, bx1, by1)), found = tiles[k], found_in_box[k]
        return len(select_psf_stars(found["x"], found["y"], found["peak"], (by1 - by0, bx1 - bx0), sky_stats,
                                    saturated_above, fwhm, psf_params, in_box(core, tiles[k][1])))

    with_stars = [k for k, ((core, box), found) in enumerate(zip(tiles, found_in_box))
                  if in_core(found["x"] + box[0], found["y"] + box[1], core).any()]
    given = true_psf is not None or psf is not None
    learners = [] if given else [k for k in with_stars if own_psf_stars(k) >= psf_params.min_psf_stars]
    results = {}

    def measure(k: int, tile_psf: EPSF | None, found: dict | None = None, refit: bool = False,
                tile_psf_errors: np.ndarray | None = None) -> None:
        core, box = tiles[k]
        tile_params = replace(psf_params, residual_passes=0, psf_rebuilds=0) if refit else psf_params
        results[k] = measure_tile(data, bad, cores, core, box, found_in_box[k] if found is None else found, sky_stats,
                                  params, tile_params,
                                  electrons_per_unit, saturated_above, tile_psf, true_psf is not None, keep_model,
                                  held_light, near, catalogue_correction is None,
                                  None if noise is None else noise.background_variance,
                                  1.0 if noise is None else noise.variance_factor(fwhm), tile_psf_errors, held_stars)

    for k in learners:
        measure(k, None)
    frame_psf = true_psf if true_psf is not None else psf
    # a tile with too few PSF stars of its own looks for stars in its residual with the errors of
    # the tiles that learned their PSFs (the frame's PSF is their average); a cluster's core,
    # where faint companions matter most, is often such a tile
    frame_psf_errors = psf_errors
    if psf_errors is None and len(tiles) > 1:
        frame_psf_errors = pooled_psf_errors([results[k].tile.psf_errors for k in learners])
    if frame_psf is None and learners and len(tiles) > 1:
        frame_psf = mean_psf([results[k].tile.psf for k in learners])
    elif frame_psf is None and not learners:
        chosen = select_psf_stars(frame_found["x"], frame_found["y"], frame_found["peak"], data.shape, sky_stats,
                                  saturated_above, fwhm, psf_params)
        if len(chosen) < psf_params.min_psf_stars:
            raise too_few_psf_stars(len(chosen), psf_params)
        frame_psf = learn_psf(data, bad, frame_found["x"], frame_found["y"], chosen, fwhm, psf_params, sky_stats,
                              electrons_per_unit)
    zone = psf_params.interpolation_zone if len(tiles) > 1 and true_psf is None else 0
    # an artificial-star pass of a catalogue whose tiles' PSFs were interpolated: the same PSFs
    # (it is measured as the catalogue was: each tile with its PSF, then fitted again with the
    # PSFs interpolated; fitted with the interpolated PSFs from the start, the residual passes
    # found other faint stars than the catalogue's, and its real stars came back 1.7 mmag brighter)
    catalogue_grid = tile_grid(catalogue_tiles) if catalogue_tiles and zone > 0 else None
    for k in with_stars:
        if k not in results:
            catalogue_tile = own_tiles.get(tuple(cores[k]))
            if catalogue_tile is None:
                measure(k, frame_psf, tile_psf_errors=frame_psf_errors)
            else:
                measure(k, catalogue_tile.psf, tile_psf_errors=catalogue_tile.psf_errors)
    refit = zone > 0 and (len(learners) > 1 or catalogue_grid is not None)  # (one learned PSF: nothing to interpolate)
    if refit:
        refit_with_interpolated_psfs(results, tiles, zone, measure, catalogue_grid)
    done = [results[k] for k in sorted(results)]  # the tiles' order, row by row

    stars = {name: np.concatenate([part.stars[name] for part in done]) for name in done[0].stars}
    starts = np.cumsum([0] + [len(part.stars["x"]) for part in done])
    sky_cells = np.zeros((-(-data.shape[0] // cell), -(-data.shape[1] // cell)), np.float32)
    model = np.zeros(data.shape, np.float32) if keep_model else None
    for part in done:
        cx0, cy0, cx1, cy1 = part.tile.core
        sky_cells[cy0 // cell : -(-cy1 // cell), cx0 // cell : -(-cx1 // cell)] = part.sky_cells
        if model is not None:
            model[cy0:cy1, cx0:cx1] = part.model

    # The correction to total: each PSF is normalised within a radius, and how much of a star's
    # light lies beyond it depends on the PSF; a tile with its own PSF gets its own correction
    # (from its PSF stars, when there are enough), the others share the frame PSF's.
    if catalogue_correction is not None:  # an artificial-star pass: the catalogue's, as it was measured
        correction = ApertureCorrection(catalogue_correction, math.nan, 0, params.aperture_correction_radius, False,
                                        "the catalogue's, given")
        for part in done:
            catalogue_tile = own_tiles.get(tuple(part.tile.core))
            part.tile.correction = catalogue_correction if catalogue_tile is None else catalogue_tile.correction
    else:
        shared = [part.ratios for part in done if not part.tile.own_psf]
        pooled = np.concatenate(shared if sum(len(r) for r in shared) >= params.aperture_correction_min_stars
                                else [part.ratios for part in done])
        correction = psf_aperture_correction(pooled, params)
        for part in done:
            own = part.tile.own_psf and len(part.ratios) >= params.aperture_correction_min_stars and len(tiles) > 1
            part.tile.correction = psf_aperture_correction(part.ratios, params).factor if own else correction.factor
    # (an artificial-star pass: the catalogue's tiles, as its stars were corrected, not only the
    # tiles this pass fitted: the grid's nodes are the catalogue's)
    factor = star_corrections(catalogue_tiles if catalogue_grid is not None else [part.tile for part in done],
                              correction.factor, stars["x"], stars["y"], refit)

    x, y = stars["x"], stars["y"]
    flags = np.zeros(len(x), np.int32)
    if saturated_above is not None:
        flags[stars["peak"] >= saturated_above] |= FLAG_SATURATED
    flags[touches_mask(bad, x, y, fit_radius_for(fwhm))] |= FLAG_EDGE
    flags[stars["flux"] <= 0] |= FLAG_NONPOSITIVE_FLUX
    flags[nearest_neighbour_distance(x, y) < 2 * fit_radius_for(fwhm)] |= FLAG_NEIGHBOUR
    flags[stars["qfit"] > psf_params.max_qfit] |= FLAG_POOR_FIT
    flags[stars["found_in_pass"] > 0] |= FLAG_RESIDUAL_DETECTION

    extra = {"qfit": stars["qfit"], "crowding": stars["crowding"], "n_iter": stars["n_iter"],
             "found_in_pass": stars["found_in_pass"],
             "psf": frame_psf if frame_psf is not None else done[0].tile.psf,
             "tiles": [part.tile for part in done] if len(tiles) > 1 else [],
             "psf_stars": np.concatenate([start + part.psf_stars for start, part in zip(starts, done)]),
             "passes": done[0].passes if len(tiles) == 1 else [{"tile": list(part.tile.core), "passes": part.passes}
                                                                for part in done],
             "sky_cells": sky_cells,
             # a frame measured whole: its residual passes' PSF errors (in tiles: each tile's own)
             "psf_errors": done[0].tile.psf_errors if len(tiles) == 1 else None,
             "interpolation_zone": zone if refit else 0,
             "footprint_level": psf_params.footprint_level * sky_stats.std,
             "footprint_smallest": fit_radius_for(fwhm) + 1}
    if model is not None:
        extra["model"] = model
    return Measurements(
        x=x, y=y,
        flux=stars["flux"] * factor,
        flux_err=stars["flux_err"] * factor,
        sky=stars["sky"] + sky_level,
        sharpness=stars["sharpness"],
        roundness=stars["roundness"],
        peak=stars["peak"],
        flags=flags,
        aperture_correction=correction,
        sky_statistics=sky_stats,
        extra=extra,
    )
