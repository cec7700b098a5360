"""A frame's noise as its product states it: the ERR of a calibrated exposure, the WHT of a
drizzled product, and the correlation drizzling puts between neighbouring pixels.

Without them the noise of the background comes from the sky's measured scatter alone: one
number for the frame (the PSF fit) or per star from its annulus (apertures). The product's own
maps follow what that misses: a chip's two amplifiers' read noise, a hot or flat-amplified
pixel, a part of a mosaic with fewer exposures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from astropy.io import fits
from scipy import ndimage

from .frames import Frame, keyword
from .photometry import frame_sky_statistics

# the variance map's least value, as a fraction of the sky's: an ERR a calibration left at 0
# (or below the star's own photons, as a rounded ERR can be) must not weigh a pixel infinitely
MIN_VARIANCE_FRACTION = 0.05


@dataclass
class FrameNoise:
    """The background's noise of a frame, for the flux errors and the PSF fit's weights."""

    # per pixel, the variance of everything but the stars' photons (sky, read noise, dark,
    # flat field), image units^2; None: the sky's measured scatter stands for it
    background_variance: np.ndarray | None = None
    # drizzled: the correlation of neighbouring pixels' noise (drizzle_kernel); None: independent
    kernel: np.ndarray | None = None
    source: str = "the sky's scatter"

    @property
    def correlation(self) -> float:
        """R: the noise of a large area over its pixels' scatter times the root of its size."""
        return 1.0 if self.kernel is None else float(np.sqrt(self.kernel.sum()))

    def variance_factor(self, radius: float) -> float:
        """How much more variance a circular aperture of ``radius`` px holds than its pixels'
        variances add up to (1 for independent pixels; R squared for a large one)."""
        return 1.0 if self.kernel is None else aperture_variance_factor(self.kernel, radius)

    def as_meta(self) -> dict:
        return {"source": self.source, "correlation": self.correlation}


def drizzle_ratio(header: fits.Header) -> tuple[float | None, str]:
    """r = pixfrac / scale (scale: the output pixel over the input pixel) from the drizzle
    keywords (D001PIXF, D001SCAL, D001ISCL), and why; None for an image that was not drizzled,
    says too little, or was drizzled with another kernel than the square one the correlation
    is worked out for (D001KERN)."""
    pixfrac = keyword(header, "D001PIXF")
    if pixfrac is None:
        return None, "not drizzled (no D001PIXF)"
    kernel = str(keyword(header, "D001KERN", default="square")).lower()
    if kernel != "square":
        return None, f"drizzled with the {kernel} kernel (D001KERN): its pixels' correlation is not modelled"
    output_scale, input_scale = keyword(header, "D001SCAL"), keyword(header, "D001ISCL")
    if output_scale is None or input_scale is None:
        return None, "drizzled, but without D001SCAL and D001ISCL its scale is unknown: correlation not modelled"
    try:
        r = float(pixfrac) / (float(output_scale) / float(input_scale))
    except (TypeError, ValueError, ZeroDivisionError):
        return None, f"drizzle keywords unreadable (D001PIXF {pixfrac!r}, D001SCAL {output_scale!r})"
    if not (math.isfinite(r) and 0 < r < 20):
        return None, f"drizzle keywords out of range (pixfrac/scale {r})"
    return r, f"drizzled with pixfrac/scale {r:.3g} (D001PIXF, D001SCAL/D001ISCL)"


def drizzle_kernel(r: float, step: float = 1e-3) -> np.ndarray:
    """The correlation of a drizzled image's pixel noise with its neighbours' (1 at the centre),
    for drops ``r`` output pixels wide (pixfrac / scale) falling at random sub-pixel offsets:
    along each axis, a drop shares its value among the pixels it overlaps by their overlaps, so
    the covariance at a lag of L pixels is the autocorrelation, at L, of a box of width r
    convolved with a pixel. Summed, it is Fruchter & Hook's (2002, eq. 10-11) R squared
    (tested): 1.5 squared for pixfrac = scale."""
    x = np.arange(-(r + 2), r + 2 + step, step)
    drop = (np.abs(x) <= r / 2).astype(float)
    pixel = (np.abs(x) <= 0.5).astype(float)
    share = np.convolve(drop, pixel, mode="same") * step  # a pixel's share of a drop at offset x
    lags = np.arange(int(math.ceil(r + 1)) + 1)
    covariance = np.array([np.sum(share[: share.size - int(round(lag / step))] * share[int(round(lag / step)):])
                           for lag in lags])
    along_axis = covariance / covariance[0]
    along_axis = np.concatenate([along_axis[:0:-1], along_axis])  # lags -L..L
    return np.outer(along_axis, along_axis)


def aperture_variance_factor(kernel: np.ndarray, radius: float) -> float:
    """The variance of the sum of the pixels within ``radius`` of a pixel centre, over the sum
    of their variances, for pixel noise correlated by ``kernel``: the mean over the aperture's
    pixels of the kernel summed over the aperture."""
    half = int(math.ceil(radius))
    offsets = np.arange(-half, half + 1)
    inside = (np.hypot(*np.meshgrid(offsets, offsets)) <= radius).astype(float)
    return float(np.sum(ndimage.correlate(inside, kernel, mode="constant") * inside) / inside.sum())


def frame_noise(frame: Frame, bad: np.ndarray, electrons_per_unit: float, rows: int = 1024) -> FrameNoise:
    """The frame's :class:`FrameNoise` from what its product holds (``frame.error``, ERR;
    ``frame.weight``, WHT), freeing those arrays.

    ERR (a calibrated exposure: the pipeline's total noise per pixel) less the photons above the
    frame's median sky is the background's variance: read noise, dark, the median sky's
    photons, the flat field's amplification. The light above that median, the stars' and a
    crowded core's, the photometry counts itself (a star's from its flux, an aperture's local
    sky above the median from the sky it measures). WHT is taken only as relative: its
    convention varies (inverse variance, or exposure time: drizzle's ``final_wht_type``), and
    for a sky-limited background both make the variance proportional to 1/WHT, scaled here so
    that its median is the sky's measured scatter squared. Worked in strips of ``rows`` rows.
    """
    r, why = drizzle_ratio(frame.header)
    kernel = None if r is None else drizzle_kernel(r)
    drizzled = "" if frame.header.get("D001PIXF") is None else f"; {why}"
    error, weight = frame.error, frame.weight
    frame.error = frame.weight = None
    if error is None and weight is None:
        return FrameNoise(None, kernel, "the sky's scatter" + drizzled)
    sky = frame_sky_statistics(frame.data, bad)
    sky_variance = np.float32(sky.std**2)
    floor = np.float32(MIN_VARIANCE_FRACTION * sky.std**2)
    variance = np.empty(frame.shape, np.float32)
    ny = frame.shape[0]
    if error is not None:
        for start in range(0, ny, rows):
            lo, hi = max(0, start - 2), min(ny, start + rows + 2)
            block = np.square(error[lo:hi])
            # an ERR of 0 or NaN under a flagged pixel must not pass its nothing to the median
            block[~np.isfinite(block) | (block <= 0)] = sky_variance
            stars = frame.data[lo:hi] - np.float32(sky.median)
            np.maximum(stars, 0, out=stars)
            np.nan_to_num(stars, copy=False, nan=0.0, posinf=0.0)
            block -= stars / np.float32(electrons_per_unit)  # their photons' variance, image units^2
            # ERR comes from each pixel's own counts: a sky pixel that fell low would weigh more,
            # and a fit would lean on the low ones (faint stars' pulls 1.4 on a simulated chip).
            # The median of 5x5 pixels keeps what varies over the chip (amplifiers, flat field)
            # and drops the pixel's own luck; OpenCV's, in a twentieth of scipy's time.
            block = cv2.medianBlur(block, 5)
            variance[start : min(ny, start + rows)] = block[start - lo : start - lo + min(rows, ny - start)]
        del error
        source = "ERR, less the photons above the median sky, 5x5 median"
    else:
        step = max(1, int(math.ceil(math.sqrt(weight.size / 250_000))))  # a grid of the weights, as the sky's
        sample = weight[::step, ::step][~bad[::step, ::step]]
        sample = sample[sample > 0]
        typical = float(np.median(sample)) if sample.size else 1.0
        for start in range(0, ny, rows):
            block = weight[start : start + rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.float32(sky.std**2 * typical) / block
            values[~np.isfinite(values) | (block <= 0)] = np.float32(1e6) * sky_variance  # no exposure: no weight
            variance[start : start + rows] = values
        del weight
        source = "WHT as relative weights, scaled to the sky's scatter"
    np.maximum(variance, floor, out=variance)
    return FrameNoise(variance, kernel, source + drizzled)
