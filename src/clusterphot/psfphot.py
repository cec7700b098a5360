"""PSF photometry of a crowded frame (work in progress: not yet a choice of the workflow): a PSF learned from the frame's own stars, every star fitted
together with it, and passes of detection on the residual image for the stars hidden in their
neighbours' wings (the DAOPHOT/ALLSTAR scheme, with one sparse solve per iteration).

1. detect (DAOFIND, as the aperture path) and pick the PSF stars: bright, unsaturated, with no
   detected neighbour within ``isolation`` FWHM;
2. learn the effective PSF from them (:mod:`clusterphot.psf`);
3. fit all stars together (:mod:`clusterphot.psffit`), ``n_iter`` times, moving them; after each
   fit drop stars with a flux below ``min_snr`` sigma and merge pairs closer than
   ``merge_separation`` FWHM (one star fitted twice);
4. subtract the model, detect again on the residual, add the new stars and go back to 3,
   ``residual_passes`` times;
5. a last fit with the positions held gives the fluxes, their errors and the fit quality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from .errors import FrameError
from .photometry import (PhotometryParameters, SkyStatistics, detect_stars, nearest_neighbour_distance,
                         peak_values)
from .psf import EPSF, build_epsf
from .psffit import StarFit, fit_radius_for, fit_stars, merge_close_pairs, photon_variance, render, snr


@dataclass(frozen=True)
class PSFParameters:
    """How the PSF is learned and the stars fitted (pixels unless said otherwise)."""

    oversampling: int = 4  # PSF grid nodes per pixel
    max_psf_stars: int = 300  # the brightest this many suitable stars build the PSF
    min_psf_stars: int = 20  # fewer: the frame's PSF cannot be learned
    isolation: float = 3.0  # FWHM: a PSF star has no detected neighbour this close
    psf_radius: float = 6.0  # FWHM: half-size of the tabulated PSF (the wings of bright stars reach far)
    n_iter: int = 3  # fits per pass
    residual_passes: int = 2  # detections on the residual image
    min_snr: float = 3.0  # a fitted flux below this many sigma is dropped
    merge_separation: float = 0.4  # FWHM: closer stars are one
    sky_cell: int = 32  # the fitted sky is constant over cells of this size
    max_shift: float = 3.0  # a star moved further than this from where it was found is dropped
    psf_rebuilds: int = 1  # times the PSF is learned again with the neighbours subtracted
    psf_error: float = 0.01  # fraction of a star's light its learned PSF may get wrong, added to the noise

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
    passes: list  # per pass: stars fitted, new stars found


def select_psf_stars(x: np.ndarray, y: np.ndarray, peak: np.ndarray, shape: tuple[int, int],
                     sky: SkyStatistics, saturated_above: float | None, fwhm: float,
                     params: PSFParameters) -> np.ndarray:
    """Indices of the PSF stars: bright (peak over 20 sky sigma), unsaturated, isolated and far
    enough from the frame's edges for a whole stamp; the brightest ``max_psf_stars``."""
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
    chosen = np.flatnonzero(bright & isolated & clean & inside)
    return chosen[np.argsort(-peak[chosen])][: params.max_psf_stars]


def refine(data: np.ndarray, variance: np.ndarray, usable: np.ndarray, x: np.ndarray, y: np.ndarray,
           found_at: tuple[np.ndarray, np.ndarray], origin: np.ndarray, psf: EPSF, fwhm: float,
           params: PSFParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n_iter`` fits moving every star, with ALLSTAR's housekeeping after each. Returns the
    kept stars' x, y, where they were found (x, y) and their origin pass."""
    fit_radius = fit_radius_for(fwhm)
    fx, fy = found_at
    for _ in range(params.n_iter):
        fit = fit_stars(data, variance, usable, x, y, psf, fit_radius, np.ones(len(x), bool), params.sky_cell)
        x = x + np.clip(fit.shift_x, -0.5, 0.5)
        y = y + np.clip(fit.shift_y, -0.5, 0.5)
        keep = (snr(fit.flux, fit.flux_err) >= params.min_snr) & (np.hypot(x - fx, y - fy) <= params.max_shift)
        index = np.flatnonzero(keep)
        index = index[merge_close_pairs(x[index], y[index], fit.flux[index], params.merge_separation * fwhm)]
        x, y, fx, fy, origin = x[index], y[index], fx[index], fy[index], origin[index]
    return x, y, fx, fy, origin


def rebuilt_psf(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray, fit: StarFit,
                model: np.ndarray, psf: EPSF, fwhm: float, sky: SkyStatistics, saturated_above: float | None,
                params: PSFParameters) -> EPSF:
    """The PSF learned again, from the frame with every other star and the sky subtracted: the
    PSF stars' stamps then hold their own light only (DAOPHOT's way to a clean PSF in a crowd)."""
    peak = peak_values(data, x, y)
    chosen = select_psf_stars(x, y, peak, data.shape, sky, saturated_above, fwhm, params)
    own = render(data.shape, x[chosen], y[chosen], fit.flux[chosen], psf)
    cleaned = data - model + own - fit.sky_image
    rebuilt, _, _ = build_epsf(cleaned, bad, x[chosen], y[chosen], fwhm, params.oversampling,
                               radius=int(np.ceil(params.psf_radius * fwhm)))
    return rebuilt


def psf_photometry(data: np.ndarray, bad: np.ndarray, sky: SkyStatistics, params: PhotometryParameters,
                   psf_params: PSFParameters, electrons_per_unit: float,
                   saturated_above: float | None, psf: EPSF | None = None) -> PSFPhotometry:
    """Every star of a sky-subtracted frame (masked pixels 0) by PSF fitting; the PSF is learned
    from the frame unless one is given (benchmarks give every method the true PSF)."""
    fwhm = params.fwhm
    found = detect_stars(data, sky, params)
    if found is None:
        raise FrameError("no stars detected")
    x = np.asarray(found["x_centroid"], dtype=np.float64)
    y = np.asarray(found["y_centroid"], dtype=np.float64)
    peak = np.asarray(found["peak"], dtype=np.float64)
    learn = psf is None
    chosen = select_psf_stars(x, y, peak, data.shape, sky, saturated_above, fwhm, psf_params)
    if learn and len(chosen) < psf_params.min_psf_stars:
        raise FrameError(
            f"only {len(chosen)} bright, isolated, unsaturated stars to learn the PSF from (at least "
            f"{psf_params.min_psf_stars} needed); lower photometry.psf.min_psf_stars or "
            "photometry.psf.isolation, or use photometry.method: aperture")
    if learn:
        psf, _, _ = build_epsf(data, bad, x[chosen], y[chosen], fwhm, psf_params.oversampling,
                               radius=int(np.ceil(psf_params.psf_radius * fwhm)), neighbours=(x, y))

    usable = ~bad
    if saturated_above is not None:
        usable &= data < saturated_above
    variance = photon_variance(data, sky.std**2, electrons_per_unit)
    origin = np.zeros(len(x), np.int32)
    found_at = (x.copy(), y.copy())
    passes = []
    for k in range(psf_params.residual_passes + 1):
        x, y, fx, fy, origin = refine(data, variance, usable, x, y, found_at, origin, psf, fwhm, psf_params)
        found_at = (fx, fy)
        fit = fit_stars(data, variance, usable, x, y, psf, fit_radius_for(fwhm), np.zeros(len(x), bool),
                        psf_params.sky_cell)
        model = render(data.shape, x, y, fit.flux, psf)
        variance = photon_variance(model, sky.std**2, electrons_per_unit, psf_params.psf_error if learn else 0.0)
        passes.append({"stars": int(len(x)), "new": int((origin == k).sum())})
        if k == psf_params.residual_passes:
            break
        if learn and k < psf_params.psf_rebuilds:
            psf = rebuilt_psf(data, bad, x, y, fit, model, psf, fwhm, sky, saturated_above, psf_params)
            # the fluxes and sky of the new PSF, before anything is looked for in the residual
            fit = fit_stars(data, variance, usable, x, y, psf, fit_radius_for(fwhm), np.zeros(len(x), bool),
                            psf_params.sky_cell)
            model = render(data.shape, x, y, fit.flux, psf)
            variance = photon_variance(model, sky.std**2, electrons_per_unit, psf_params.psf_error)
        # The residual scaled to the sky's noise: near a bright star the photon noise of its
        # subtracted light is many times the sky's, and DAOFIND's threshold (in sky sigma) would
        # take its ripples for stars.
        residual = (data - model - fit.sky_image) * (sky.std / np.sqrt(variance))
        residual[bad] = 0.0
        new = detect_stars(residual, sky, params)
        if new is None:
            break
        nx_, ny_ = np.asarray(new["x_centroid"], float), np.asarray(new["y_centroid"], float)
        distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([nx_, ny_]))
        fresh = distance > psf_params.merge_separation * 2 * fwhm
        x, y = np.r_[x, nx_[fresh]], np.r_[y, ny_[fresh]]
        found_at = (np.r_[found_at[0], nx_[fresh]], np.r_[found_at[1], ny_[fresh]])
        origin = np.r_[origin, np.full(int(fresh.sum()), k + 1, np.int32)]
    return PSFPhotometry(x, y, fit, psf, origin, peak_values(data, x, y), passes)
