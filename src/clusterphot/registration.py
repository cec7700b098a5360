"""Registering a frame's star positions onto a reference frame's pixel grid.

HST frames of one cluster in several filters are not on a common pixel grid (shifts of a pixel
or more, small rotations and scale changes), and their WCSs can disagree by about a pixel, so
raw x, y cannot be matched directly. The transform is solved from the stars themselves:

1. seed it with the WCSs when both frames have one (:func:`wcs_transform`);
2. find the remaining shift by voting over pairwise position differences of bright stars,
   which is robust to cosmic rays, unmatched stars and partial overlap;
3. refine by matching mutual nearest neighbours in a shrinking radius and least-squares
   fitting a shift, similarity or affine model with 3-sigma clipping.

Pixel coordinates are 0-based (numpy / astropy ``*_values`` convention). A transform maps a
frame's pixels to the reference frame's: ``(x', y') = matrix @ (x, y) + offset``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import RegistrationError
from .matching import match_one_to_one

MODELS = ("shift", "similarity", "affine")
# Fewest pairs for which each model is trusted; below it the fit falls back to a simpler one.
MODEL_MIN_PAIRS = {"shift": 1, "similarity": 6, "affine": 12}
CLIP_SIGMA = 3.0
COARSE_RADIUS = 3.0  # px; first matching radius after the voted shift
N_WCS_GRID = 21  # grid points per axis for the WCS affine fit


@dataclass(frozen=True, eq=False)
class Transform:
    """Maps a frame's pixel coordinates onto the reference frame's: (x', y') = matrix @ (x, y) + offset."""

    matrix: np.ndarray  # 2x2
    offset: np.ndarray  # 2
    rms: float = math.nan  # residual rms (px) of the pairs used in the final fit (nan if none)
    n_pairs: int = 0
    method: str = "identity"  # e.g. "identity", "wcs", "stars (shift)", "wcs+stars (affine)"

    def __post_init__(self):
        matrix = np.array(self.matrix, dtype=float).reshape(2, 2)
        offset = np.array(self.offset, dtype=float).reshape(2)
        matrix.flags.writeable = offset.flags.writeable = False
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "offset", offset)

    @classmethod
    def identity(cls) -> Transform:
        return cls(np.eye(2), np.zeros(2))

    def apply(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Reference-frame pixel positions of frame pixel positions x, y."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        (a, b), (c, d) = self.matrix
        return a * x + b * y + self.offset[0], c * x + d * y + self.offset[1]

    def then(self, other: Transform) -> Transform:
        """This transform followed by ``other``; fit statistics and method are ``other``'s."""
        return Transform(
            other.matrix @ self.matrix,
            other.matrix @ self.offset + other.offset,
            other.rms,
            other.n_pairs,
            other.method,
        )

    def inverse(self) -> Transform:
        """The transform from reference pixels back to the frame's."""
        matrix = np.linalg.inv(self.matrix)
        return Transform(matrix, -matrix @ self.offset, self.rms, self.n_pairs, f"inverse of {self.method}")

    @property
    def rotation_deg(self) -> float:
        """Rotation (degrees, counter-clockwise in x, y) of the closest similarity transform."""
        (a, b), (c, d) = self.matrix
        return math.degrees(math.atan2(c - b, a + d))

    @property
    def scale(self) -> float:
        """Mean linear scale factor, sqrt(|det matrix|)."""
        return math.sqrt(abs(np.linalg.det(self.matrix)))

    def as_meta(self) -> dict:
        """Plain lists and floats for JSON/YAML; rms is None when there was no fit."""
        return {
            "method": self.method,
            "matrix": self.matrix.tolist(),
            "offset": self.offset.tolist(),
            "shift": self.offset.tolist(),  # where the frame's origin lands, in reference px
            "rotation_deg": self.rotation_deg,
            "scale": self.scale,
            "rms": float(self.rms) if math.isfinite(self.rms) else None,
            "n_pairs": int(self.n_pairs),
        }

    def describe(self) -> str:
        """One line for a log: 'wcs+stars (affine): shift (+0.13, -0.16) px, rotation -0.0001 deg,
        scale 0.99997; rms 0.115 px over 730 pairs'."""
        dx, dy = self.offset
        fit = (f"rms {self.rms:.3f} px over {self.n_pairs} pairs" if math.isfinite(self.rms)
               else "no stars fitted")
        return (f"{self.method}: shift ({dx:+.2f}, {dy:+.2f}) px, rotation {self.rotation_deg:+.4f} deg, "
                f"scale {self.scale:.5f}; {fit}")

    @classmethod
    def from_meta(cls, meta: dict) -> "Transform":
        """The Transform that ``as_meta`` described."""
        rms = meta.get("rms")
        return cls(np.asarray(meta["matrix"], float), np.asarray(meta["offset"], float),
                   float("nan") if rms is None else float(rms), int(meta.get("n_pairs", 0)),
                   meta.get("method", "identity"))


def fit_transform(x, y, x_ref, y_ref, model: str = "affine") -> Transform:
    """Least-squares transform of paired positions x, y onto x_ref, y_ref (no clipping)."""
    if model not in MODELS:
        raise ValueError(f"unknown transform model {model!r}; expected one of {MODELS}")
    src = np.column_stack([x, y]).astype(float)
    dst = np.column_stack([x_ref, y_ref]).astype(float)
    # Centre the coordinates so the fit is well conditioned on large frames.
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    u, v = (src - src_mean).T
    du, dv = (dst - dst_mean).T
    if model == "shift":
        matrix = np.eye(2)
    elif model == "similarity":
        # x' = a u - b v, y' = b u + a v: rotation and scale together.
        design = np.block([[u[:, None], -v[:, None]], [v[:, None], u[:, None]]])
        (a, b), *_ = np.linalg.lstsq(design, np.concatenate([du, dv]), rcond=None)
        matrix = np.array([[a, -b], [b, a]])
    else:
        solution, *_ = np.linalg.lstsq(np.column_stack([u, v]), np.column_stack([du, dv]), rcond=None)
        matrix = solution.T
    offset = dst_mean - matrix @ src_mean
    residual = np.hypot(*(dst - (src @ matrix.T + offset)).T)
    return Transform(matrix, offset, float(np.sqrt(np.mean(residual**2))), len(src), model)


def _fit_clipped(src: np.ndarray, dst: np.ndarray, model: str) -> tuple[Transform, np.ndarray]:
    """Fit with iterative 3-sigma clipping of residuals; returns the fit and the pairs kept."""
    keep = np.ones(len(src), dtype=bool)
    for _ in range(10):
        fit = fit_transform(*src[keep].T, *dst[keep].T, _usable_model(model, int(keep.sum())))
        residual = np.hypot(*(dst - np.column_stack(fit.apply(*src.T))).T)
        # A floor keeps noise-free (synthetic) pairs from being clipped on rounding errors.
        clipped = keep & (residual <= max(CLIP_SIGMA * fit.rms, 1e-3))
        if clipped.sum() == keep.sum() or not clipped.any():
            return fit, keep
        keep = clipped
    # Not converged in 10 rounds: fit the pairs that survived the last clip.
    return fit_transform(*src[keep].T, *dst[keep].T, _usable_model(model, int(keep.sum()))), keep


def _usable_model(model: str, n_pairs: int) -> str:
    """The requested model, or the most complex simpler one that n_pairs can constrain."""
    usable = [m for m in MODELS[: MODELS.index(model) + 1] if n_pairs >= MODEL_MIN_PAIRS[m]]
    return usable[-1] if usable else "shift"


def _brightest(mag, n: int) -> np.ndarray:
    """Indices of the n brightest stars; stars with NaN magnitudes only after all finite ones."""
    return np.argsort(np.asarray(mag, dtype=float), kind="stable")[:n]


def vote_shift(x, y, x_ref, y_ref, max_shift: float) -> tuple[np.ndarray, int]:
    """Most common offset (ref - frame) among all star pairs within max_shift, and its votes.

    True pairs pile up at the frame's shift while pairs involving cosmic rays or stars missing
    from the other list spread evenly over the search box, so the peak of a 1-px histogram of
    pairwise differences is the shift even with many spurious stars on both sides.
    """
    frame = np.column_stack([x, y])
    ref = np.column_stack([x_ref, y_ref])
    # Chebyshev distance (p=inf): every pair with |dx|, |dy| <= max_shift.
    pairs = cKDTree(frame).sparse_distance_matrix(cKDTree(ref), max_distance=max_shift, p=np.inf, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(2), 0
    dx = ref[pairs["j"], 0] - frame[pairs["i"], 0]
    dy = ref[pairs["j"], 1] - frame[pairs["i"], 1]

    n_bins = 2 * math.ceil(max_shift) + 1
    half = n_bins / 2
    counts, _, _ = np.histogram2d(dx, dy, bins=n_bins, range=[[-half, half], [-half, half]])
    # Smoothing stops a shift on a bin edge (or smeared by rotation) splitting its votes.
    smoothed = ndimage.gaussian_filter(counts, sigma=1.0, mode="constant")
    ix, iy = np.unravel_index(np.argmax(smoothed), smoothed.shape)
    peak = np.array([ix, iy]) + 0.5 - half
    near = (np.abs(dx - peak[0]) <= 2.0) & (np.abs(dy - peak[1]) <= 2.0)
    if not near.any():  # a smoothed peak between isolated votes: no better estimate
        return peak, 0
    return np.array([np.median(dx[near]), np.median(dy[near])]), int(near.sum())


def _refine(
    frame: np.ndarray, ref: np.ndarray, start: Transform, model: str, radii
) -> tuple[Transform, np.ndarray, np.ndarray]:
    """Alternate one-to-one matching within each radius and a clipped fit; returns the last fit and its pairs."""
    fit = start
    i_kept = j_kept = np.empty(0, dtype=np.intp)
    for radius in radii:
        x, y = fit.apply(*frame.T)
        i, j, _ = match_one_to_one(x, y, *ref.T, radius)
        if len(i) < MODEL_MIN_PAIRS["shift"]:
            break
        fit, keep = _fit_clipped(frame[i], ref[j], model)
        i_kept, j_kept = i[keep], j[keep]
    return fit, i_kept, j_kept


def solve_transform(
    x,
    y,
    mag,
    x_ref,
    y_ref,
    mag_ref,
    initial: Transform | None = None,
    model: str = "affine",
    max_shift: float = 20.0,
    n_bright: int = 500,
    tolerance: float = 1.0,
    min_pairs: int = 6,
) -> Transform:
    """Transform of a frame's star positions onto the reference frame's pixel grid.

    ``initial`` (e.g. from :func:`wcs_transform`) is applied first; the stars then fix the
    remaining shift (searched within ``max_shift`` px) and the ``model`` ("shift",
    "similarity" or "affine") on top of it, falling back to a simpler model when there are few
    pairs. The result maps the frame's original pixels to reference pixels; its rms and
    n_pairs describe the final clipped fit (pairs matched within ``tolerance`` px).
    Raises :class:`RegistrationError` when fewer than ``min_pairs`` stars match.
    """
    if model not in MODELS:
        raise ValueError(f"unknown transform model {model!r}; expected one of {MODELS}")
    initial = initial if initial is not None else Transform.identity()
    x, y, mag = (np.asarray(a, dtype=float) for a in (x, y, mag))
    x_ref, y_ref, mag_ref = (np.asarray(a, dtype=float) for a in (x_ref, y_ref, mag_ref))
    usable = np.isfinite(x) & np.isfinite(y)
    usable_ref = np.isfinite(x_ref) & np.isfinite(y_ref)
    # Positions after the initial transform; everything below fits a correction to these.
    frame = np.column_stack(initial.apply(x[usable], y[usable]))
    ref = np.column_stack([x_ref[usable_ref], y_ref[usable_ref]])
    mag, mag_ref = mag[usable], mag_ref[usable_ref]

    def failure(n_matched: int) -> RegistrationError:
        return RegistrationError(
            f"only {n_matched} stars matched (need {min_pairs}) between {len(frame)} frame stars and "
            f"{len(ref)} reference stars, searching shifts up to {max_shift} px after the "
            f"{initial.method} transform; check the frames overlap, or raise max_shift"
        )

    if len(frame) < min_pairs or len(ref) < min_pairs:
        raise failure(0)

    bright = _brightest(mag, n_bright)
    bright_ref = _brightest(mag_ref, n_bright)
    # The votes are not a match count (a rotation smears the peak), so only matching decides.
    shift, _ = vote_shift(*frame[bright].T, *ref[bright_ref].T, max_shift)
    coarse = Transform(np.eye(2), shift, method="shift")

    radii = np.geomspace(max(COARSE_RADIUS, tolerance), tolerance, 4)
    fit, i, _ = _refine(frame[bright], ref[bright_ref], coarse, model, radii)
    if len(i) >= MODEL_MIN_PAIRS["shift"]:
        # Fainter stars add pairs (and leverage at the frame edges) once the bright ones pin
        # the transform down; keep them only if they do.
        fit_all, i_all, _ = _refine(frame, ref, fit, model, [tolerance, tolerance])
        if len(i_all) >= len(i):
            fit, i = fit_all, i_all
    if len(i) < min_pairs:
        raise failure(len(i))

    stars = f"stars ({fit.method})"
    method = stars if initial.method == "identity" else f"{initial.method}+{stars}"
    return initial.then(Transform(fit.matrix, fit.offset, fit.rms, len(i), method))


def _celestial(wcs):
    """The celestial part of a WCS (HST frames may carry extra axes)."""
    return wcs.celestial if getattr(wcs, "has_celestial", False) else wcs


def wcs_transform(wcs_frame, wcs_reference, shape: tuple[int, int]) -> Transform:
    """Affine transform frame pixel -> sky -> reference pixel, fitted on a grid covering the frame.

    ``shape`` is the frame's (ny, nx). The rms is the departure of the WCS mapping from an
    affine one (distortion), in reference pixels.
    """
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, N_WCS_GRID), np.linspace(0, ny - 1, N_WCS_GRID))
    gx, gy = gx.ravel(), gy.ravel()
    world = _celestial(wcs_frame).pixel_to_world_values(gx, gy)
    rx, ry = _celestial(wcs_reference).world_to_pixel_values(*world)
    ok = np.isfinite(rx) & np.isfinite(ry)
    if ok.sum() < 3:
        raise RegistrationError(
            f"the frame's WCS maps only {int(ok.sum())} of {len(gx)} grid points onto the reference "
            "frame's WCS; the two WCSs do not describe overlapping skies"
        )
    fit = fit_transform(gx[ok], gy[ok], rx[ok], ry[ok], "affine")
    return Transform(fit.matrix, fit.offset, fit.rms, int(ok.sum()), "wcs")
