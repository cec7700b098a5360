"""The PSF's FWHM measured from a frame's own bright, isolated, unsaturated stars
(``photometry.fwhm: auto``).

The stars are the frame's brightest local maxima (no convolution: a 10k x 10k frame is searched
in strips with OpenCV's dilation). Each is fitted with a circular Gaussian by photutils'
``fit_2dgaussian`` for its centre and flux, their cut-outs laid side by side in one small mosaic
(so the fit needs neither the whole frame sky-subtracted, a second copy of it, nor a Python
loop), and the FWHM is that of their pooled radial profile: the width of the pixel-convolved
PSF, as the effective PSF of ``method: psf`` has it, not the Gaussian's, which HST's wings widen.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from astropy.stats import sigma_clipped_stats

from .photometry import annulus_offsets, frame_sky_statistics, gather, nearest_neighbour_distance, touches_mask

log = logging.getLogger(__name__)

DEFAULT_GUESS = 2.0  # px: where the measurement starts (ACS/WFC's and WFC3/UVIS's PSF are about this)
MIN_STARS = 5  # fewer measured stars: no FWHM from the frame
MAX_STARS = 100  # the brightest this many suitable stars are fitted: more add time, not precision
PEAK_SNR = (10.0, 5.0)  # sigma of the sky: a star's peak pixel at least the first; neighbours counted from the second
BOX_HALF = 1.0  # FWHM: half the side of the box each star is fitted in
SKY_RING = (2.5, 4.0)  # FWHM: each star's own sky, between these radii
ROUNDS = 4  # a guess far from the measured FWHM is measured again with that as the guess


@dataclass(frozen=True)
class FWHMMeasurement:
    """The FWHM (px) of a frame's stars: of ``n_stars``' pooled profile, its scatter from star to
    star (1.4826 MAD of their Gaussian fits, scaled), and the Gaussian fits' median; NaN with a
    ``note`` when too few stars could be measured."""

    fwhm: float
    scatter: float
    n_stars: int
    note: str = ""
    gaussian: float = math.nan  # the median FWHM of a Gaussian fitted to each star

    @property
    def measured(self) -> bool:
        return math.isfinite(self.fwhm)

    def as_meta(self) -> dict:
        return {"measured": self.fwhm if self.measured else None,
                "scatter": self.scatter if self.measured else None, "n_stars": self.n_stars,
                "gaussian": self.gaussian if math.isfinite(self.gaussian) else None, "note": self.note}


def bright_peaks(data: np.ndarray, bad: np.ndarray, level: float, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the local maxima (5 x 5 px) of ``data`` above ``level``, masked pixels left out;
    the frame in strips of ``rows`` rows, so that the dilated copy is a strip's, not the frame's."""
    kernel = np.ones((5, 5), np.uint8)
    xs, ys = [], []
    for start in range(0, data.shape[0], rows):
        lo, hi = max(0, start - 2), min(data.shape[0], start + rows + 2)
        strip = np.where(bad[lo:hi], -np.inf, data[lo:hi]).astype(np.float32, copy=False)
        strip[~np.isfinite(strip)] = -np.inf
        largest = cv2.dilate(strip, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
        y, x = np.nonzero((strip == largest) & (strip > level))
        keep = (y + lo >= start) & (y + lo < start + rows)
        xs.append(x[keep])
        ys.append(y[keep] + lo)
    return np.concatenate(xs), np.concatenate(ys)


def fit_gaussians(stamps: np.ndarray, guess: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """photutils' ``fit_2dgaussian`` (a circular Gaussian, its FWHM free) of each star in
    ``stamps`` (n, side, side; sky-subtracted, NaN where masked), the star near each stamp's centre
    pixel: the stamps laid in a row, one fit each, in one call. Returns each star's x, y (in its
    stamp), flux and Gaussian FWHM."""
    from photutils.psf import fit_2dgaussian  # here: a second to import, only when measuring

    n, side, _ = stamps.shape
    mosaic = stamps.transpose(1, 0, 2).reshape(side, n * side)
    centre = side // 2
    xypos = np.column_stack([np.arange(n) * side + centre, np.full(n, centre)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a star the fit cannot converge on is left out below
        fit = fit_2dgaussian(mosaic, xypos=xypos, fwhm=guess, fix_fwhm=False, fit_shape=side).results
    x = np.asarray(fit["x_fit"], float) - np.arange(n) * side
    return x, np.asarray(fit["y_fit"], float), np.asarray(fit["flux_fit"], float), np.asarray(fit["fwhm_fit"], float)


def profile_fwhm(stamps: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, step: float = 0.15) -> float:
    """The FWHM of the stars' pooled radial profile: every pixel at its distance from its star's
    fitted centre, over the star's flux, the median per ``step`` px ring, and twice the radius
    where that falls to half its value at the centre. Stars at many sub-pixel phases sample the
    pixel-convolved profile finely, as the effective PSF of ``method: psf`` does (its FWHM in the
    PSF file): unlike a Gaussian's FWHM, which HST's stronger wings make 10-20 per cent larger."""
    n, side, _ = stamps.shape
    offsets = np.arange(side, dtype=float)
    dx = offsets[None, None, :] - x[:, None, None]
    dy = offsets[None, :, None] - y[:, None, None]
    radius = np.hypot(dx, dy).ravel()
    value = (stamps / flux[:, None, None]).ravel()
    good = np.isfinite(value)
    ring = (radius[good] / step).astype(np.intp)
    order = np.argsort(ring, kind="stable")
    ring, value, radius = ring[order], value[good][order], radius[good][order]
    starts = np.flatnonzero(np.diff(ring, prepend=-1))
    medians = np.array([np.median(part) for part in np.split(value, starts[1:])])  # a few dozen rings
    radii = (ring[starts] + 0.5) * step
    # the value at the centre: few pixels fall that close, so the profile's core, a + b r^2 over
    # every pixel within a third of the first guess at the FWHM, is fitted and taken at r = 0
    first = np.flatnonzero(medians <= 0.5 * medians.max())
    if medians.max() <= 0 or first.size == 0:
        return math.nan
    core = radius < max(0.5, radii[first[0]] * 2 / 3)
    centre = float(np.polyfit(radius[core] ** 2, value[core], 1)[1]) if core.sum() >= 5 else medians[0]
    below = np.flatnonzero((medians <= 0.5 * centre) & (radii > 0.5 * step))
    if centre <= 0 or below.size == 0 or below[0] == 0:
        return math.nan
    k = below[0]  # half the centre's value between rings k - 1 and k
    r0, r1, v0, v1 = radii[k - 1], radii[k], medians[k - 1], medians[k]
    return float(2.0 * (r0 + (v0 - 0.5 * centre) / (v0 - v1) * (r1 - r0)))


def measure_fwhm_once(data: np.ndarray, bad: np.ndarray, sky_median: float, sky_std: float,
                      saturated_above: float | None, guess: float) -> FWHMMeasurement:
    """One measurement: the brightest isolated, unsaturated peaks, each fitted with a Gaussian in a
    box of about two ``guess`` a side (less its own sky) for its centre and flux, and the FWHM of
    their pooled profile."""
    half = max(2, int(math.ceil(BOX_HALF * guess)))
    x, y = bright_peaks(data, bad, sky_median + PEAK_SNR[1] * sky_std)
    peak = data[y, x] - sky_median
    isolated = nearest_neighbour_distance(x.astype(float), y.astype(float)) > 2 * half + 2
    suitable = isolated & (peak > PEAK_SNR[0] * sky_std)
    if saturated_above is not None:
        suitable &= peak < saturated_above
    index = np.flatnonzero(suitable)
    index = index[~touches_mask(bad, x[index], y[index], half + 1)]
    index = index[np.argsort(peak[index])[::-1][:MAX_STARS]]
    if len(index) < MIN_STARS:
        return FWHMMeasurement(math.nan, math.nan, len(index),
                               f"only {len(index)} bright isolated unsaturated stars (at least {MIN_STARS} needed)")
    # each star's own sky, the median of a ring 2.5-4 FWHM out: in a cluster's core the
    # unresolved stars' light lies above the frame's sky and would widen the profile
    ring_dy, ring_dx = annulus_offsets(SKY_RING[0] * guess, SKY_RING[1] * guess)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a ring all masked: that star's sky is NaN
        local_sky = np.nanmedian(gather(data, bad, x[index], y[index], ring_dy, ring_dx), axis=1)
    local_sky = np.where(np.isfinite(local_sky), local_sky, sky_median)
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    stamps = (gather(data, bad, x[index], y[index], dy.ravel(), dx.ravel()).astype(np.float64)
              - local_sky[:, None]).reshape(len(index), 2 * half + 1, 2 * half + 1)
    xs, ys, flux, gaussian = fit_gaussians(stamps, guess)
    # failed fits, hot pixels and stars fitted away from their peak
    good = (np.isfinite(gaussian) & (gaussian > 0.5) & (gaussian < 2 * half) & (flux > 0)
            & (np.abs(xs - half) < 1) & (np.abs(ys - half) < 1))
    if good.sum() < MIN_STARS:
        return FWHMMeasurement(math.nan, math.nan, int(good.sum()), f"only {good.sum()} of the Gaussian fits converged")
    _, gaussian_median, _ = sigma_clipped_stats(gaussian[good], sigma=3.0, maxiters=5)
    # the stars whose Gaussian agrees with the rest: a blend or a galaxy stays out of the profile
    scatter = 1.4826 * float(np.median(np.abs(gaussian[good] - gaussian_median)))
    typical = good & (np.abs(gaussian - gaussian_median) <= max(3 * scatter, 0.02 * gaussian_median))
    fwhm = profile_fwhm(stamps[typical], xs[typical], ys[typical], flux[typical])
    if not math.isfinite(fwhm):
        return FWHMMeasurement(math.nan, math.nan, int(typical.sum()), "the stars' profile has no half maximum")
    return FWHMMeasurement(fwhm, scatter * fwhm / gaussian_median, int(typical.sum()), "",
                           float(gaussian_median))


def measure_fwhm(data: np.ndarray, bad: np.ndarray, saturation: float | None, guess: float = DEFAULT_GUESS,
                 saturation_fraction: float = 0.9) -> FWHMMeasurement:
    """The FWHM (px) of a frame's stars (``data`` as read: its sky is measured and subtracted
    here, the frame left as it is; ``saturation`` in its units, None when unknown). A guess
    more than 25 per cent off is measured again from the result, so a ground-based frame's
    4-8 px stars are found from the 2 px start."""
    sky = frame_sky_statistics(data, bad)
    # a peak at this fraction of the saturation level is saturated (photometry.saturation_fraction)
    saturated_above = None if saturation is None else saturation_fraction * saturation - sky.median
    result = FWHMMeasurement(math.nan, math.nan, 0, "not measured")
    for _ in range(ROUNDS):
        result = measure_fwhm_once(data, bad, sky.median, sky.std, saturated_above, guess)
        if result.measured and abs(result.fwhm - guess) <= 0.25 * guess:
            break
        # stars much wider than the box fail to fit: a wider guess, a wider box
        guess = result.fwhm if result.measured else 2.0 * guess
    return result
