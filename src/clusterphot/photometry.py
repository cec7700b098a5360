"""Per-frame photometry: detection, aperture fluxes with a local sky, aperture correction,
Pogson magnitudes with propagated errors, and quality flags.

Nothing here loops over stars in Python: local skies and peaks are gathered for all stars
at once from fixed pixel offsets, and photutils measures the apertures.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np
from astropy.stats import sigma_clip, sigma_clipped_stats
from astropy.table import vstack
from astropy.utils.exceptions import AstropyUserWarning
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.detection import DAOStarFinder
from photutils.detection.daofinder import _DAOStarFinderCatalog
from photutils.utils.exceptions import NoDetectionsWarning
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .config import length_in_pixels
from .errors import ConfigError, FrameError

if TYPE_CHECKING:  # annotations only: clusterphot.noise imports this module
    from .noise import FrameNoise

# Quality flags (bit values); a star can carry several.
FLAG_SATURATED = 1  # peak pixel at or above the saturation level
FLAG_EDGE = 2  # aperture touches a masked pixel or the frame's edge
FLAG_NONPOSITIVE_FLUX = 4  # net flux <= 0: no magnitude (NaN)
FLAG_BAD_SKY = 8  # too few valid pixels in the sky annulus: the frame's global sky used
FLAG_NEIGHBOUR = 16  # another detected star closer than twice the aperture radius
FLAG_DESCRIPTIONS = {
    FLAG_SATURATED: "saturated",
    FLAG_EDGE: "aperture touches masked pixels or the frame edge",
    FLAG_NONPOSITIVE_FLUX: "net flux <= 0, magnitude undefined (NaN)",
    FLAG_BAD_SKY: "too few valid sky pixels, global sky used",
    FLAG_NEIGHBOUR: "neighbour within 2 aperture radii",
}

POGSON = 2.5 / math.log(10.0)  # 1.0857: d(mag) = POGSON * d(flux) / flux


@dataclass(frozen=True)
class PhotometryParameters:
    """Everything that shapes a catalogue; recorded in its metadata."""

    # pixels, of the detection kernel; 'auto': measured from the frame's bright stars (clusterphot.fwhm)
    fwhm: float | str = "auto"
    threshold: float = 4.0  # detection threshold in units of the frame's sky sigma
    # 0 = local maxima over the kernel footprint, as DAOFIND itself: photutils 3 defaults to
    # 2.5 fwhm, which merges close pairs in crowded fields and is several times slower.
    min_separation: float = 0.0  # pixels
    sharpness_range: tuple[float, float] = (0.2, 1.0)
    roundness_range: tuple[float, float] = (-1.0, 1.0)
    # lengths: pixels, or multiples of the FWHM ('1.5 fwhm'), until in_pixels() turns them into pixels
    aperture_radius: float | str = 3.0
    annulus_radii: tuple[float | str, float | str] = (10.0, 15.0)  # sky annulus
    sky_sigma: float = 3.0  # sigma-clipping of the annulus
    min_sky_pixels: int = 20
    aperture_correction_radius: float | str = 9.0  # "total" flux radius
    aperture_correction_min_stars: int = 5
    aperture_correction_min_snr: float = 100.0
    saturation_fraction: float = 0.9  # flag a star whose peak reaches this fraction of saturation
    region: tuple[int, int, int, int] | None = None  # optional x0, x1, y0, y1 (pixels) to measure

    @property
    def is_in_pixels(self) -> bool:
        """Whether the FWHM is a number and every length pixels (as a frame is measured with)."""
        lengths = (self.fwhm, self.aperture_radius, *self.annulus_radii, self.aperture_correction_radius)
        return not any(isinstance(length, str) for length in lengths)

    def in_pixels(self, fwhm: float) -> PhotometryParameters:
        """These parameters with ``fwhm`` (px) as the kernel's FWHM and every length in pixels
        ('1.5 fwhm' is 1.5 x ``fwhm``): what a frame is measured with. ConfigError for a sky
        annulus whose inner radius is then not the smaller."""
        annulus = (length_in_pixels(self.annulus_radii[0], fwhm), length_in_pixels(self.annulus_radii[1], fwhm))
        if annulus[0] >= annulus[1]:
            raise ConfigError(f"config key 'photometry.annulus_radii': {list(self.annulus_radii)} is {annulus[0]:.2f} "
                              f"to {annulus[1]:.2f} px at a FWHM of {fwhm:.2f} px: the inner radius must be the smaller")
        aperture = length_in_pixels(self.aperture_radius, fwhm)
        total = length_in_pixels(self.aperture_correction_radius, fwhm)
        if not aperture < min(annulus[0], total):
            raise ConfigError(f"config key 'photometry.aperture_radius': {self.aperture_radius} is {aperture:.2f} px at a "
                              f"FWHM of {fwhm:.2f} px, not inside the sky annulus ({annulus[0]:.2f} px, "
                              f"'photometry.annulus_radii') and the aperture correction's radius ({total:.2f} px, "
                              "'photometry.aperture_correction_radius'): give those in FWHM too, or smaller")
        return replace(self, fwhm=float(fwhm), aperture_radius=aperture, annulus_radii=annulus,
                       aperture_correction_radius=total)

    def as_meta(self) -> dict:
        meta = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta.items()}

    @classmethod
    def from_meta(cls, meta: dict) -> PhotometryParameters:
        """The parameters that ``as_meta`` described (lists back to tuples)."""
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta.items()})


@dataclass(frozen=True)
class SkyStatistics:
    """Sigma-clipped statistics of a frame's valid pixels (image units)."""

    mean: float
    median: float
    std: float


@dataclass
class ApertureCorrection:
    """Ratio of total (large-aperture) to aperture flux, measured on bright isolated stars."""

    factor: float  # multiply aperture fluxes by this
    error: float  # standard error of the factor
    n_stars: int
    radius: float
    measured: bool
    note: str = ""

    @property
    def mag(self) -> float:
        """The correction in magnitudes (negative: stars get brighter)."""
        return -2.5 * math.log10(self.factor)

    def as_meta(self) -> dict:
        return {"factor": self.factor, "error": self.error, "mag": self.mag, "n_stars": self.n_stars,
                "radius": self.radius, "measured": self.measured, "note": self.note}


@dataclass
class Measurements:
    """Per-star arrays of one frame (image units), before calibration to magnitudes."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # total flux (aperture-corrected)
    flux_err: np.ndarray
    sky: np.ndarray  # per pixel
    sharpness: np.ndarray
    roundness: np.ndarray
    peak: np.ndarray
    flags: np.ndarray
    aperture_correction: ApertureCorrection
    sky_statistics: SkyStatistics
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)


def frame_sky_statistics(data: np.ndarray, bad: np.ndarray, sigma: float = 3.0,
                         max_samples: int = 250_000) -> SkyStatistics:
    """Sigma-clipped mean/median/std of the valid pixels (FrameError, without the file's name, if none).

    Frames of more than ``max_samples`` pixels are sampled on a regular grid (every k-th pixel
    along each axis): the median of a quarter of a million pixels is within 0.003 sigma of all
    of them, and clipping a 1000 x 1000 frame whole took a twentieth of the PSF path's time.
    """
    step = max(1, int(math.ceil(math.sqrt(data.size / max_samples))))
    sample = data[::step, ::step]
    valid = sample[~bad[::step, ::step]]
    if valid.size == 0:
        # the caller, who knows the file, puts its name in front
        raise FrameError("no valid pixels to estimate the sky: every pixel is masked (NaN, zero-filled "
                         "or outside the region measured)")
    mean, median, std = sigma_clipped_stats(valid, sigma=sigma, maxiters=10)
    return SkyStatistics(float(mean), float(median), float(std))


def detect_stars(sky_subtracted: np.ndarray, sky: SkyStatistics, params: PhotometryParameters,
                 strip_pixels: int = 2**22):
    """DAOStarFinder with every parameter set explicitly, on a sky-subtracted frame.

    Masked pixels must hold 0 (the sky): photutils' mask (photutils 3) does not keep pixels out
    of the convolution or out of the stars' measures, it only stops peaks on them -- and stars
    next to masked pixels are wanted (flagged). DAOFIND's sharpness uses the unconvolved pixels, hence
    the sky subtraction. Returns the photutils table (or None when nothing is found).

    The frame is searched in strips of about ``strip_pixels`` pixels (16 MB of float32):
    DAOStarFinder convolves the whole image it is given and takes a running maximum of the
    result, two more float32 copies of it (800 MB at 10k x 10k). Each strip is passed with a
    margin of rows above and below, masked so that only peaks on the strip's own rows are
    kept: every star is found once, in the same order as in the whole frame. A star's
    detection and measures depend only on pixels within two kernel radii of its peak (the
    convolution reaches one radius, the local-maximum test and the cutouts of the convolved
    image one more), so a margin of two radii gives the same stars and values as one search
    of the whole frame (y to the last bit or two, 1e-12 px: the strip's first row is added
    to DAOFIND's centroid afterwards).
    """
    finder = DAOStarFinder(
        threshold=params.threshold * sky.std,
        fwhm=params.fwhm,
        min_separation=params.min_separation,
        sharpness_range=tuple(params.sharpness_range),
        roundness_range=tuple(params.roundness_range),
        exclude_border=False,
    )
    ny, nx = sky_subtracted.shape
    # two kernel radii; with min_separation > 0 the peak test reaches that far instead of one radius
    margin = 2 * finder.kernel.y_radius + math.ceil(params.min_separation)
    rows_per_strip = max(strip_pixels // nx, 4 * margin)
    tables = []
    for r0 in range(0, ny, rows_per_strip):
        r1 = min(r0 + rows_per_strip, ny)
        lo, hi = max(r0 - margin, 0), min(r1 + margin, ny)
        in_margin = np.zeros((hi - lo, nx), bool)
        in_margin[: r0 - lo] = True
        in_margin[r1 - lo :] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)  # a strip without stars is no news
            found = dao_find(finder, sky_subtracted[lo:hi], in_margin)
        if found is not None:
            found["y_centroid"] += lo
            tables.append(found)
    if not tables:
        warnings.warn("No sources were found.", NoDetectionsWarning)
        return None
    found = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    found["id"] = np.arange(1, len(found) + 1)
    return found


def dao_find(finder: DAOStarFinder, data: np.ndarray, mask: np.ndarray):
    """``finder.find_stars(data, mask=mask)`` (a table, or None when nothing is found), its local
    maxima found by OpenCV's dilation instead of scipy's maximum filter: the same maxima (a
    maximum is exact) in a fourteenth of the time, where the filter was a third of DAOFIND's
    cost and detection a sixth of an artificial-star pass's. The convolution is scipy's, as
    photutils does it, and the stars' measures and cuts are photutils' own catalogue's
    (``_DAOStarFinderCatalog``, private: the runtime pins photutils, and a test compares this
    with ``find_stars`` itself). For a finder as :func:`detect_stars` makes it (no
    ``exclude_border``, ``n_brightest``, ``peak_max`` or ``xycoords``); with a ``min_separation``
    (a circular footprint, photutils' own fast search) it is ``find_stars``."""
    if finder.min_separation:
        return finder.find_stars(data, mask=mask)
    kernel = finder.kernel
    convolved = ndimage.convolve(data, kernel.data, mode="constant", cval=0.0)
    # photutils.detection.find_peaks with the kernel's footprint, outside the image 0
    largest = cv2.dilate(convolved, kernel.mask.astype(np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    y, x = np.nonzero((convolved == largest) & ~mask & (convolved > finder.threshold_eff))
    if len(x) == 0:
        warnings.warn("No sources were found.", NoDetectionsWarning)
        return None
    catalogue = _DAOStarFinderCatalog(data, convolved, np.column_stack([x, y]), finder.threshold, kernel,
                                      sharpness_range=finder.sharpness_range, roundness_range=finder.roundness_range)
    catalogue = catalogue.apply_all_filters()
    return None if catalogue is None else catalogue.to_table()


@functools.lru_cache(maxsize=256)
def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (dy, dx) offsets of the pixels whose centres lie within ``radius`` (read-only:
    they are cached, the PSF fit asks for the same few radii hundreds of times)."""
    r = int(math.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dx**2 + dy**2 <= radius**2
    dy, dx = dy[inside], dx[inside]
    dy.flags.writeable = dx.flags.writeable = False
    return dy, dx


def annulus_offsets(r_in: float, r_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (dy, dx) offsets of the pixels whose centres lie in r_in <= r <= r_out."""
    r = int(math.ceil(r_out))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    r2 = dx**2 + dy**2
    inside = (r2 >= r_in**2) & (r2 <= r_out**2)
    return dy[inside], dx[inside]


def gather(data: np.ndarray, bad: np.ndarray | None, xc: np.ndarray, yc: np.ndarray,
           dy: np.ndarray, dx: np.ndarray, fill=np.nan) -> np.ndarray:
    """Pixel values at integer centres plus offsets; ``fill`` where masked or off the frame.

    Shape (n_stars, n_offsets), the dtype of ``data``. Stars whose offsets all fall on the
    frame (nearly all) are read through flat indices in one step; the few near the edges
    are clipped.
    """
    ny, nx = data.shape
    reach = int(max(np.abs(dy).max(), np.abs(dx).max()))
    inside = (xc >= reach) & (xc < nx - reach) & (yc >= reach) & (yc < ny - reach)
    values = np.empty((len(xc), len(dy)), data.dtype)

    flat = (yc[inside] * nx + xc[inside])[:, None] + (dy * nx + dx)[None, :]
    part = np.take(data, flat)
    if bad is not None:
        part[np.take(bad, flat)] = fill
    values[inside] = part

    near_edge = ~inside
    if near_edge.any():
        yy = yc[near_edge, None] + dy[None, :]
        xx = xc[near_edge, None] + dx[None, :]
        unusable = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
        np.clip(yy, 0, ny - 1, out=yy)
        np.clip(xx, 0, nx - 1, out=xx)
        if bad is not None:
            unusable |= bad[yy, xx]
        part = data[yy, xx]
        part[unusable] = fill
        values[near_edge] = part
    return values


def local_sky(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
              params: PhotometryParameters, chunk: int = 20000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median sky, its per-pixel scatter and the number of pixels used, per star."""
    dy, dx = annulus_offsets(*params.annulus_radii)
    xc, yc = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    sky = np.empty(len(x), np.float64)
    sky_std = np.empty(len(x), np.float64)
    n_sky = np.empty(len(x), np.int64)
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        values = gather(data, bad, xc[part], yc[part], dy, dx)
        n_sky[part] = np.isfinite(values).sum(axis=1)
        # NaNs (masked or off-frame pixels) are ignored by the clipping; clipped pixels
        # come back as NaN (no masked-array overhead).
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
            clipped = sigma_clip(values, axis=1, sigma=params.sky_sigma, maxiters=3, masked=False, copy=False)
            sky[part] = np.nanmedian(clipped, axis=1)
            sky_std[part] = np.nanstd(clipped, axis=1)
    return sky, sky_std, n_sky


def peak_values(data: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Brightest pixel in the 3x3 box around each star (ignoring NaNs)."""
    dy, dx = disk_offsets(1.5)
    values = gather(data, None, np.rint(x).astype(np.intp), np.rint(y).astype(np.intp), dy, dx)
    with np.errstate(all="ignore"):
        return np.nanmax(np.where(np.isfinite(values), values, -np.inf), axis=1)


def touches_mask(bad: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """True where any pixel within ``radius`` (+1 for partial pixels) is masked or off the frame."""
    dy, dx = disk_offsets(radius + 1.0)
    xc, yc = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    return gather(bad, None, xc, yc, dy, dx, fill=True).any(axis=1)


def aperture_sums(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
                  radius: float, near_mask: np.ndarray | None = None) -> np.ndarray:
    """Exact-overlap circular aperture sums; masked pixels contribute nothing.

    Only apertures that touch the mask (``near_mask``, worked out here when not given) go
    through photutils' (slower) masked path.
    """
    positions = np.column_stack([x, y])
    sums = np.asarray(aperture_photometry(data, CircularAperture(positions, r=radius), method="exact")
                      ["aperture_sum"], dtype=np.float64)
    if near_mask is None:
        near_mask = touches_mask(bad, x, y, radius)
    if near_mask.any():
        masked = aperture_photometry(data, CircularAperture(positions[near_mask], r=radius), mask=bad,
                                     method="exact")
        sums[near_mask] = np.asarray(masked["aperture_sum"], dtype=np.float64)
    return sums


def flux_variance(net_flux: np.ndarray, area: float | np.ndarray, sky_std: np.ndarray,
                  n_sky: np.ndarray, electrons_per_unit: float, background: np.ndarray | None = None,
                  aperture_factor: float = 1.0, sky_factor: float = 1.0) -> np.ndarray:
    """Variance (image units^2) of an aperture flux with a local sky.

    Poisson noise of the star (through the gain), the background's noise over the aperture
    (``background``: the sum of a per-pixel background variance over it, from the product's
    ERR or WHT; else the sky's per-pixel scatter, sky photons + read noise, as measured in the
    annulus, times the area), and the error of the mean sky over the aperture area. A
    drizzled image's pixels scatter less than their sums do: the background in the aperture is
    scaled by ``aperture_factor``, the mean sky's error by ``sky_factor`` (a large annulus's:
    :meth:`clusterphot.noise.FrameNoise.variance_factor`).
    """
    poisson = np.clip(net_flux, 0.0, None) / electrons_per_unit
    in_aperture = area * sky_std**2 if background is None else background
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_sky = area**2 * sky_std**2 / np.maximum(n_sky, 1)
    return poisson + aperture_factor * in_aperture + sky_factor * mean_sky


def nearest_neighbour_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance from each star to its nearest detected neighbour (inf when alone)."""
    if len(x) < 2:
        return np.full(len(x), np.inf)
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return distance[:, 1]


def measure_aperture_correction(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
                                flux: np.ndarray, flux_err: np.ndarray, sky: np.ndarray,
                                flags: np.ndarray, nn_distance: np.ndarray,
                                params: PhotometryParameters) -> ApertureCorrection:
    """Median ratio of large-aperture to aperture flux over bright, isolated, unflagged stars."""
    r_big = params.aperture_correction_radius
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / flux_err
    candidates = np.flatnonzero(
        (flags == 0) & (snr > params.aperture_correction_min_snr) & (nn_distance > r_big + params.aperture_radius)
    )
    index = candidates[~touches_mask(bad, x[candidates], y[candidates], r_big)]
    if len(index) < params.aperture_correction_min_stars:
        return ApertureCorrection(1.0, float("nan"), len(index), r_big, False,
                                  f"only {len(index)} bright isolated stars; no correction applied")
    # Keep the brightest few hundred: more adds time, not precision.
    index = index[np.argsort(flux[index])[::-1][:300]]
    # the candidates were chosen clear of the mask out to r_big
    big = (aperture_sums(data, bad, x[index], y[index], r_big, near_mask=np.zeros(len(index), bool))
           - sky[index] * math.pi * r_big**2)
    ratio = big / flux[index]
    mean, median, std = sigma_clipped_stats(ratio, sigma=3.0, maxiters=10)
    n = len(ratio)
    if not np.isfinite(median) or median <= 0:
        return ApertureCorrection(1.0, float("nan"), n, r_big, False, "non-positive ratio; no correction applied")
    return ApertureCorrection(float(median), float(1.2533 * std / math.sqrt(n)), n, r_big, True)


def region_mask(shape: tuple[int, int], region: tuple[int, int, int, int] | None) -> np.ndarray | None:
    """True outside an optional x0, x1, y0, y1 region (half-open, 0-based pixels)."""
    if region is None:
        return None
    x0, x1, y0, y1 = region
    outside = np.ones(shape, bool)
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    return outside


def region_overlaps(shape: tuple[int, int], region: tuple[int, int, int, int] | None) -> bool:
    """Whether an optional x0, x1, y0, y1 region (as :func:`region_mask`) holds any pixel of the frame."""
    if region is None:
        return True
    x0, x1, y0, y1 = region
    ny, nx = shape
    return max(x0, 0) < min(x1, nx) and max(y0, 0) < min(y1, ny)


def plateau_labels(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Label (1, 2, ...) of the 8-connected group of pixels each pixel belongs to.

    ``rows``, ``cols``: the pixels, in row-major order (as ``np.nonzero`` gives them). The same
    groups as ``scipy.ndimage.label`` with a 3x3 structure, without a label image of the frame's
    size (400 MB of int32 at 10k x 10k, for a few thousand saturated pixels): neighbouring
    pixels are found by their flat index and joined as edges of a graph.
    """
    width = int(cols.max()) + 2  # wider than any column: a neighbour's flat index never wraps to another row
    flat = rows.astype(np.int64) * width + cols  # sorted, as the pixels are in row-major order
    first, second = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbouring pair once
        neighbour = flat + (dy * width + dx)
        j = np.minimum(np.searchsorted(flat, neighbour), flat.size - 1)
        linked = flat[j] == neighbour
        first.append(np.flatnonzero(linked))
        second.append(j[linked])
    first, second = np.concatenate(first), np.concatenate(second)
    graph = coo_matrix((np.ones(first.size, np.int8), (first, second)), shape=(flat.size, flat.size))
    _, labels = connected_components(graph, directed=False)
    return labels + 1


def merge_saturated_detections(data: np.ndarray, x: np.ndarray, y: np.ndarray, peak: np.ndarray,
                               level: float, grow: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One detection per saturated star, placed at the centre of its saturated plateau.

    A flat-topped saturated core has several local maxima for DAOFIND; all detections within
    ``grow`` pixels of the same plateau (8-connected saturated pixels) are one star. Returns
    the indices of the detections kept and their (possibly moved) x, y.
    """
    keep = np.arange(len(x))
    rows, cols = np.nonzero(data >= level)  # few pixels: work on them, not on the frame
    if rows.size == 0 or len(x) == 0:
        return keep, x, y
    pixel_region = plateau_labels(rows, cols)
    n_regions = int(pixel_region.max())
    distance, nearest = cKDTree(np.column_stack([cols, rows])).query(
        np.column_stack([x, y]), distance_upper_bound=grow)
    region = np.zeros(len(x), np.intp)
    found = np.isfinite(distance)
    region[found] = pixel_region[nearest[found]]
    on_plateau = np.flatnonzero(region > 0)
    if on_plateau.size == 0:
        return keep, x, y
    # brightest detection of each plateau first; the first of each region is the one kept
    order = on_plateau[np.lexsort((-peak[on_plateau], region[on_plateau]))]
    _, first = np.unique(region[order], return_index=True)
    kept_on_plateau = order[first]
    keep = np.sort(np.concatenate([np.flatnonzero(region == 0), kept_on_plateau]))
    n_pixels = np.bincount(pixel_region, minlength=n_regions + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_y = np.bincount(pixel_region, weights=rows, minlength=n_regions + 1) / n_pixels
        centre_x = np.bincount(pixel_region, weights=cols, minlength=n_regions + 1) / n_pixels
    x, y = x.copy(), y.copy()
    y[kept_on_plateau] = centre_y[region[kept_on_plateau]]
    x[kept_on_plateau] = centre_x[region[kept_on_plateau]]
    return keep, x[keep], y[keep]


def fill_from_neighbours(data: np.ndarray, fill: np.ndarray, known: np.ndarray, sigma: float = 1.5,
                         rows: int = 1024, min_weight: float = 1e-3) -> int:
    """Fill the ``fill`` pixels of sky-subtracted ``data`` (in place) with the Gaussian-weighted
    mean (``sigma`` px) of the ``known`` pixels around them, 0 (the sky) where their weight is
    below ``min_weight`` (of 1: a pixel amid known ones): a normalised convolution, by OpenCV's
    blur, in strips of ``rows`` rows (four float32 strips, not frames, at a time). Returns how
    many were filled. For finding stars through a masked pixel and for pictures only: no flux
    is measured on what it paints."""
    margin = int(math.ceil(4 * sigma))
    count = 0
    for start in range(0, data.shape[0], rows):
        stop = min(data.shape[0], start + rows)
        if not fill[start:stop].any():
            continue
        lo, hi = max(0, start - margin), min(data.shape[0], stop + margin)
        weight = (known[lo:hi] & ~fill[lo:hi]).astype(np.float32)
        values = np.nan_to_num(data[lo:hi], nan=0.0, posinf=0.0, neginf=0.0) * weight
        values = cv2.GaussianBlur(values, (0, 0), sigma)
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)
        np.divide(values, weight, out=values, where=weight > min_weight)
        values[weight <= min_weight] = 0.0
        mine = fill[start:stop]
        data[start:stop][mine] = values[start - lo : stop - lo][mine]
        count += int(mine.sum())
    return count


@contextlib.contextmanager
def find_stars_through(data: np.ndarray, bad: np.ndarray, through: np.ndarray | None) -> Iterator[None]:
    """While stars are looked for on the sky-subtracted ``data``, its masked pixels ``through``
    (single pixels and hits: a DQ's, cosmic rays) hold their neighbours' mean
    (:func:`fill_from_neighbours`) rather than the sky: a star whose centre lies on one is still
    found, and a hole's edge is no peak (on NGC 1261's F336W frame, with holes: every star with a
    masked centre lost, 600 detections more on their edges). Afterwards they are 0 again, and no
    flux or fit uses them."""
    if through is None or not through.any():
        yield
        return
    through = through & bad  # the pixels the measurement masks, and only those
    # only where known pixels are close around (the weight of a straight edge's about 3.5 px
    # away, for sigma 1.5 px): deeper inside an area with no data (a drizzled product's WHT of
    # 0, a chip gap) an extrapolated edge would be a ridge of false stars (11 in a simulated gap)
    fill_from_neighbours(data, through, ~bad, min_weight=0.02)
    try:
        yield
    finally:
        data[through] = 0.0


def subtract_frame_sky(data: np.ndarray, bad: np.ndarray, params: PhotometryParameters
                       ) -> tuple[np.ndarray, SkyStatistics, np.float32, np.ndarray | None]:
    """The frame made ready for measuring, in place: pixels outside ``photometry.region`` join the
    mask, the frame's median sky is subtracted and masked pixels set to 0. Returns the mask,
    the sky statistics, the level subtracted and the region's ``outside`` mask (None: no region)."""
    outside = region_mask(data.shape, params.region)
    if outside is not None:
        bad = bad | outside
    sky_stats = frame_sky_statistics(data, bad)
    sky_level = np.float32(sky_stats.median)
    data -= sky_level
    data[bad] = 0.0
    return bad, sky_stats, sky_level, outside


def centred_on_frame(x: np.ndarray, y: np.ndarray, shape: tuple[int, int],
                     outside: np.ndarray | None = None) -> np.ndarray:
    """True for detections centred on the frame (DAOFIND's centroid can wander off it for a peak
    on its very edge) and, given the region's ``outside`` mask, inside the region."""
    ny, nx = shape
    on_frame = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    if outside is not None:
        xi = np.clip(np.rint(x), 0, nx - 1).astype(np.intp)
        yi = np.clip(np.rint(y), 0, ny - 1).astype(np.intp)
        on_frame &= ~outside[yi, xi]
    return on_frame


def no_stars(correction: ApertureCorrection, sky: SkyStatistics) -> Measurements:
    """The measurements of a frame (or an artificial-star pass) where no star was found."""
    empty = np.zeros(0)
    return Measurements(empty, empty, empty, empty, empty, empty, empty, empty, np.zeros(0, np.int32), correction, sky)


def close_to(x: np.ndarray, y: np.ndarray, near: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    """True for positions within ``radius`` px of one of the positions ``near`` = (x, y, radius)."""
    near_x, near_y, radius = near
    if len(x) == 0 or len(near_x) == 0:
        return np.zeros(len(x), bool)
    distance, _ = cKDTree(np.column_stack([near_x, near_y])).query(np.column_stack([x, y]),
                                                                    distance_upper_bound=radius)
    return np.isfinite(distance)


def frame_parameters(data: np.ndarray, bad: np.ndarray, params: PhotometryParameters,
                     saturation: float | None) -> PhotometryParameters:
    """``params`` in pixels: as they are when they are, else at the FWHM given or, for
    ``fwhm: 'auto'``, measured from the frame's stars (2 px when it cannot be: see
    :func:`clusterphot.catalog.frame_fwhm`, which also logs and records it)."""
    if params.is_in_pixels:
        return params
    if params.fwhm != "auto":
        return params.in_pixels(float(params.fwhm))
    from .fwhm import DEFAULT_GUESS, measure_fwhm  # clusterphot.fwhm measures with this module's tools

    measured = measure_fwhm(data, bad, saturation, saturation_fraction=params.saturation_fraction)
    return params.in_pixels(measured.fwhm if measured.measured else DEFAULT_GUESS)


def measure_frame(data: np.ndarray, bad: np.ndarray, params: PhotometryParameters,
                  electrons_per_unit: float, saturation: float | None,
                  near: tuple[np.ndarray, np.ndarray, float] | None = None,
                  catalogue_correction: float | None = None, noise: FrameNoise | None = None,
                  detect_through: np.ndarray | None = None) -> Measurements:
    """Detect and measure all stars of a frame (fluxes in image units, aperture-corrected).

    ``data`` is used in place: it leaves sky-subtracted, with masked pixels set to 0. A
    second full-size copy would cost as much memory as the frame (400 MB at 10k x 10k).

    An artificial-star pass (:mod:`clusterphot.completeness`) measures only the stars detected
    within ``near`` = (x, y, radius) of the artificial stars, with the catalogue's aperture
    correction (``catalogue_correction``), not one measured again. ``noise``: the product's own
    (:func:`clusterphot.noise.frame_noise`) for the flux errors; the sky's scatter without it.
    ``detect_through``: masked pixels (a product's DQ, cosmic rays) that stars are looked for
    through (:func:`find_stars_through`).
    """
    params = frame_parameters(data, bad, params, saturation)
    bad, sky_stats, sky_level, outside = subtract_frame_sky(data, bad, params)
    with find_stars_through(data, bad, detect_through):
        found = detect_stars(data, sky_stats, params)
    if found is not None:
        found = found[centred_on_frame(np.asarray(found["x_centroid"]), np.asarray(found["y_centroid"]),
                                       data.shape, outside)]
    if found is None or len(found) == 0:
        return no_stars(ApertureCorrection(1.0, float("nan"), 0, params.aperture_correction_radius, False,
                                           "no stars"), sky_stats)
    x = np.asarray(found["x_centroid"], dtype=np.float64)
    y = np.asarray(found["y_centroid"], dtype=np.float64)
    # the saturation level, as a value of the sky-subtracted frame
    saturated_above = None if saturation is None else params.saturation_fraction * saturation - sky_level
    if saturated_above is not None:
        keep, x, y = merge_saturated_detections(data, x, y, np.asarray(found["peak"], dtype=np.float64),
                                                saturated_above,
                                                grow=params.fwhm + 1.0)
        found = found[keep]
    if near is not None:
        keep = close_to(x, y, near)
        x, y, found = x[keep], y[keep], found[keep]
    n = len(x)
    flags = np.zeros(n, np.int32)

    sky, sky_std, n_sky = local_sky(data, bad, x, y, params)
    bad_sky = (n_sky < params.min_sky_pixels) | ~np.isfinite(sky)
    sky[bad_sky] = 0.0  # the frame's sky, which has been subtracted
    sky_std[bad_sky] = sky_stats.std
    flags[bad_sky] |= FLAG_BAD_SKY

    edge = touches_mask(bad, x, y, params.aperture_radius)
    flags[edge] |= FLAG_EDGE
    area = np.full(n, math.pi * params.aperture_radius**2)
    if edge.any():
        # Only the unmasked part of an edge star's aperture holds flux and sky.
        apertures = CircularAperture(np.column_stack([x[edge], y[edge]]), r=params.aperture_radius)
        area[edge] = apertures.area_overlap(data, mask=bad)

    net = aperture_sums(data, bad, x, y, params.aperture_radius, near_mask=edge) - sky * area
    background = None
    if noise is not None and noise.background_variance is not None:
        # the product's background is the median sky's: a crowded core's local sky above it
        # (unresolved stars' light) adds its own photons, which the annulus scatter held
        background = aperture_sums(noise.background_variance, bad, x, y, params.aperture_radius, near_mask=edge)
        # (a drizzled image's pixels hold that light's noise divided by R^2, as the background's)
        background += area * np.clip(sky, 0.0, None) / electrons_per_unit / noise.correlation**2
    aperture_factor = 1.0 if noise is None else noise.variance_factor(params.aperture_radius)
    sky_factor = 1.0 if noise is None else noise.correlation**2
    variance = flux_variance(net, area, sky_std, n_sky, electrons_per_unit, background, aperture_factor, sky_factor)
    flux_err = np.sqrt(variance)

    peak = peak_values(data, x, y)
    if saturated_above is not None:
        flags[peak >= saturated_above] |= FLAG_SATURATED
    flags[net <= 0] |= FLAG_NONPOSITIVE_FLUX
    nn_distance = nearest_neighbour_distance(x, y)
    flags[nn_distance < 2 * params.aperture_radius] |= FLAG_NEIGHBOUR

    if catalogue_correction is None:
        correction = measure_aperture_correction(data, bad, x, y, net, flux_err, sky, flags, nn_distance, params)
    else:
        correction = ApertureCorrection(catalogue_correction, math.nan, 0, params.aperture_correction_radius, False,
                                        "the catalogue's, given")
    return Measurements(
        x=x, y=y,
        flux=net * correction.factor,
        flux_err=flux_err * correction.factor,
        sky=sky + sky_level,
        sharpness=np.asarray(found["sharpness"], dtype=np.float64),
        roundness=np.asarray(found["roundness1"], dtype=np.float64),
        peak=peak,
        flags=flags,
        aperture_correction=correction,
        sky_statistics=sky_stats,
    )


def magnitudes(flux: np.ndarray, flux_err: np.ndarray, zeropoint: float,
               exptime: float, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pogson magnitudes ``zeropoint - 2.5 log10(flux / exptime)`` and their errors.

    A non-positive flux has no magnitude: NaN (never the magnitude of ``abs(flux)``).
    """
    rate = flux if is_rate else flux / exptime
    positive = rate > 0
    mag = np.full(rate.shape, np.nan)
    mag_err = np.full(rate.shape, np.nan)
    mag[positive] = zeropoint - 2.5 * np.log10(rate[positive])
    mag_err[positive] = POGSON * flux_err[positive] / flux[positive]
    return mag, mag_err
