"""HST-like frames of a simulated old star cluster: the offline demo and the tests' ground truth.

One cluster is drawn per seed -- positions from a King (1962) profile, magnitudes from a
schematic old-population isochrone (MS, SGB, RGB, HB) -- and then observed in each filter
as a HUGS-like drizzled stack: Moffat PSF, sky, Poisson and read noise, clipping at the
detector full well, a zero-filled border, and a small sub-pixel misregistration between
filters with a WCS that is right to ~0.2 px.

Units: images in electrons per exposure (BUNIT='ELECTRONS'); magnitudes are AB;
pixel coordinates are 0-based with the pixel centre on the integer (photutils convention).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from clusterphot.filters import (
    DETECTORS,
    HST_PIVOT_WAVELENGTH,
    HUGS_CAMERA,
    HUGS_FILTERS,
    HUGS_PHOTFLAM,
    Detector,
)
from clusterphot.outputs import atomic_output

log = logging.getLogger(__name__)

__all__ = [
    "simulate_cluster",
    "write_simulated_cluster",
    "simulate_crowded_frame",
    "ab_zeropoint",
    "default_fwhm",
    "point_source_snr",
    "neighbour_flux",
]

PIXEL_SCALE = 0.04  # arcsec per pixel, as the HUGS drizzled stacks
REFERENCE_FILTER = "F606W"  # the band in which the isochrone's absolute magnitudes are given
MOFFAT_BETA = 2.5  # wings of HST PSFs are close to a Moffat with beta ~2.5
STAMP_RADIUS = 13  # px; 27x27 stamps hold all but ~0.3 per cent of a Moffat's light
N_PHASE = 8  # sub-pixel phases per pixel at which PSF stamps are precomputed
N_SUBSAMPLE = 9  # sub-samples per pixel side for pixel integration
DEFAULT_DATE_OBS = "2016-04-01"
DEFAULT_CENTER_RADEC = (250.0, -40.0)  # deg; an arbitrary spot, not a real cluster

# HUGS-like stack depths (s). Short enough in F606W/F814W that only the upper RGB and
# the HB saturate at the default distance modulus (the real ACS stacks saturate lower).
DEFAULT_EXPTIME: dict[str, float] = {
    "F275W": 1200.0,
    "F336W": 700.0,
    "F438W": 250.0,
    "F606W": 200.0,
    "F814W": 200.0,
}
# Zodiacal + earthshine sky (electrons / s / 0.04" pixel): dark in the UV, brighter in the red.
SKY_RATE: dict[str, float] = {
    "F275W": 0.002,
    "F336W": 0.006,
    "F438W": 0.025,
    "F606W": 0.08,
    "F814W": 0.07,
}

# Schematic isochrone of an old, metal-poor population: (absolute F606W mag, Teff / K)
# nodes along each phase. The turn-off is the bluest MS point, at M = 4.0.
MS_TRACK = (
    (4.0, 6400.0),
    (4.5, 6150.0),
    (5.5, 5550.0),
    (7.0, 4750.0),
    (9.0, 4000.0),
    (11.0, 3550.0),
    (13.5, 3100.0),
)
SGB_TRACK = ((4.0, 6400.0), (3.75, 5900.0), (3.4, 5300.0))
RGB_TRACK = ((3.4, 5300.0), (2.0, 4950.0), (0.5, 4450.0))  # tip 3.5 mag above the turn-off
HB_REFERENCE = (0.6, 5600.0)  # (M_F606W, Teff) of the red HB; the HB has constant luminosity
RED_HB_TEFF = (5100.0, 6000.0)
BLUE_HB_TEFF = (7500.0, 20000.0)  # the RR Lyrae gap in between is left empty
# Luminosity functions dN/dM ~ 10**(slope * M): both rise to fainter magnitudes.
MS_LF_SLOPE = 0.1
RGB_LF_SLOPE = 0.25
# Number fractions of the evolved phases; the rest is main sequence.
PHASE_FRACTIONS = {"SGB": 0.025, "RGB": 0.045, "HB": 0.012}
TEFF_SCATTER = 0.003  # relative; gives the sequences a ~0.01 mag intrinsic width

HC_OVER_K = 1.438777e8  # h c / k in Angstrom Kelvin


# --------------------------------------------------------------------------- photometry


def ab_zeropoint(photflam: float, photplam: float) -> float:
    """AB magnitude of a source giving 1 electron/s, from PHOTFLAM and PHOTPLAM (Angstrom)."""
    return float(-2.5 * np.log10(photflam) - 5.0 * np.log10(photplam) - 2.408)


def electrons_from_mag(mag: np.ndarray, zeropoint: float, exptime: float) -> np.ndarray:
    """Electrons collected in `exptime` seconds from sources of AB magnitude `mag`."""
    return exptime * 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - zeropoint))


def blackbody_ab_colour(teff: np.ndarray, wavelength: float, reference: float) -> np.ndarray:
    """AB colour m(wavelength) - m(reference) of blackbodies (monochromatic, at pivots).

    AB magnitudes measure f_nu, so the colour is -2.5 log10 of the ratio of B_nu.
    """
    teff = np.asarray(teff, dtype=float)
    b_nu = lambda lam: lam**-3 / np.expm1(HC_OVER_K / (lam * teff))  # noqa: E731
    return -2.5 * np.log10(b_nu(wavelength) / b_nu(reference))


def default_fwhm(filter_name: str) -> float:
    """PSF FWHM (px at 0.04"/px): ~1.8 px in the UV, ~2.4 px in F814W (diffraction, redder = broader)."""
    lam = _pivot(filter_name)
    return float(np.clip(1.8 + 0.6 * (lam - 2700.0) / (8050.0 - 2700.0), 1.8, 2.4))


def point_source_snr(
    flux: np.ndarray, sky: float, read_noise: float, fwhm: float, beta: float = MOFFAT_BETA
) -> np.ndarray:
    """Photon-noise limit on the S/N of isolated stars of `flux` electrons on a flat sky.

    The Cramer-Rao bound of a PSF fit that knows the star's position and the sky:
    var(flux) = 1 / sum(P**2 / (flux * P + sky + read_noise**2)) over the pixels of the centred,
    pixel-integrated PSF P (its sub-pixel phase changes the bound by under 0.3 per cent here).
    The familiar flux + NEA * (sky + read_noise**2), with the noise-equivalent area
    NEA = 1 / sum(P**2), is this bound only where the star or the sky dominates; between them it
    is below it (an S/N 100 star on the simulated F606W sky: by 6 per cent in the S/N).
    """
    psf = moffat_phase_stamps(fwhm, beta, n_phase=1)[0, 0].astype(float).ravel()
    psf = psf[psf > 0]
    flux = np.asarray(flux, dtype=float)
    background = sky + read_noise**2
    information = np.empty(flux.size)
    chunk = 8192  # stars at a time: a (stars x 729 pixels) float64 block of 48 MB
    for start in range(0, flux.size, chunk):
        f = flux.ravel()[start : start + chunk, None]
        information[start : start + chunk] = np.sum(psf**2 / (f * psf + background), axis=1)
    return (flux.ravel() * np.sqrt(information)).reshape(flux.shape)


def neighbour_flux(x: np.ndarray, y: np.ndarray, flux: np.ndarray, radius: float) -> np.ndarray:
    """For each true star, the flux of the other true stars within ``radius`` px of it: the
    benchmarks' and tests' measure of whether a star is isolated."""
    from scipy.spatial import cKDTree

    x, y, flux = (np.asarray(a, dtype=np.float64) for a in (x, y, flux))
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(radius, output_type="ndarray")
    neighbours = np.zeros(len(x))
    np.add.at(neighbours, pairs[:, 0], flux[pairs[:, 1]])
    np.add.at(neighbours, pairs[:, 1], flux[pairs[:, 0]])
    return neighbours


def _pivot(filter_name: str) -> float:
    try:
        return HST_PIVOT_WAVELENGTH[filter_name.upper()]
    except KeyError:
        raise ValueError(f"unknown HST filter {filter_name!r}") from None


def _camera(filter_name: str) -> tuple[str, str, Detector, float]:
    """(INSTRUME, DETECTOR, Detector, PHOTFLAM) of a band the simulator knows."""
    key = filter_name.upper()
    if key not in HUGS_CAMERA or key not in HUGS_PHOTFLAM:
        raise ValueError(f"cannot simulate {filter_name!r}: known bands are {', '.join(HUGS_FILTERS)}")
    instrument, detector = HUGS_CAMERA[key]
    return instrument, detector, DETECTORS[f"{instrument}/{detector}"], HUGS_PHOTFLAM[key]


# --------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class Cluster:
    """Stars of one simulated cluster on the reference pixel grid (before per-filter shifts)."""

    x: np.ndarray  # px, reference grid
    y: np.ndarray
    ra: np.ndarray  # deg
    dec: np.ndarray
    abs_mag: np.ndarray  # absolute AB magnitude in REFERENCE_FILTER
    teff: np.ndarray  # K
    phase: np.ndarray  # 'MS', 'SGB', 'RGB' or 'HB'


def king_cumulative(r: np.ndarray, core_radius: float, tidal_radius: float) -> np.ndarray:
    """Projected number of stars inside radius r of a King (1962) profile, up to a constant.

    Closed form of the integral of 2 pi r [1/sqrt(1 + (r/rc)^2) - 1/sqrt(1 + (rt/rc)^2)]^2.
    """
    x = np.minimum(np.asarray(r, dtype=float), tidal_radius) ** 2 / core_radius**2
    xt = (tidal_radius / core_radius) ** 2
    return np.log1p(x) - 4.0 * (np.sqrt(1.0 + x) - 1.0) / np.sqrt(1.0 + xt) + x / (1.0 + xt)


def sample_king_positions(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    center: tuple[float, float],
    core_radius: float,
    tidal_radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n (x, y) positions from a King profile around `center`, all inside the frame."""
    ny, nx = shape
    cx, cy = center
    corners_x, corners_y = np.array([-0.5, nx - 0.5]), np.array([-0.5, ny - 0.5])
    r_max = min(tidal_radius, float(np.hypot(np.abs(corners_x - cx).max(), np.abs(corners_y - cy).max())))
    # Inverse-CDF sampling of the radius, on a grid fine in the core and coarse in the halo.
    r_grid = np.concatenate([[0.0], np.geomspace(1e-3 * core_radius, r_max, 4096)])
    cdf = king_cumulative(r_grid, core_radius, tidal_radius)
    xs, ys, n_have = [], [], 0
    while n_have < n:
        batch = max(2 * (n - n_have), 1024)
        r = np.interp(rng.uniform(0.0, cdf[-1], batch), cdf, r_grid)
        theta = rng.uniform(0.0, 2.0 * np.pi, batch)
        x, y = cx + r * np.cos(theta), cy + r * np.sin(theta)
        inside = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
        xs.append(x[inside])
        ys.append(y[inside])
        n_have += int(inside.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _sample_lf(rng: np.random.Generator, n: int, bright: float, faint: float, slope: float) -> np.ndarray:
    """Magnitudes in [bright, faint] with dN/dM proportional to 10**(slope * M)."""
    lo, hi = 10.0 ** (slope * bright), 10.0 ** (slope * faint)
    return np.log10(lo + rng.uniform(size=n) * (hi - lo)) / slope


def _track_teff(track: Sequence[tuple[float, float]], mag: np.ndarray) -> np.ndarray:
    """Teff along a track at magnitudes `mag`, interpolated in log Teff."""
    m, t = np.array(sorted(track)).T
    return 10.0 ** np.interp(mag, m, np.log10(t))


def hb_abs_mag(teff: np.ndarray) -> np.ndarray:
    """Absolute F606W magnitude of HB stars: constant luminosity, so hotter HB stars
    (smaller, with more light in the UV) are fainter in the optical -- the blue tail bends down."""
    lam = _pivot(REFERENCE_FILTER)
    m_ref, t_ref = HB_REFERENCE
    # f_nu at fixed wavelength ~ R^2 B_nu(T), with R^2 ~ L / T^4
    per_luminosity = lambda t: 1.0 / (np.expm1(HC_OVER_K / (lam * t)) * t**4)  # noqa: E731
    return m_ref - 2.5 * np.log10(per_luminosity(np.asarray(teff, float)) / per_luminosity(t_ref))


def sample_population(
    rng: np.random.Generator, n: int, hb_blue_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute F606W magnitudes, Teff and phase of n stars of an old population (shuffled)."""
    counts = {phase: int(frac * n) for phase, frac in PHASE_FRACTIONS.items()}
    n_ms = n - sum(counts.values())

    ms_mag = _sample_lf(rng, n_ms, MS_TRACK[0][0], MS_TRACK[-1][0], MS_LF_SLOPE)
    ms_teff = _track_teff(MS_TRACK, ms_mag)

    # The SGB is nearly horizontal: sample uniformly along the track, not in magnitude.
    s = rng.uniform(size=counts["SGB"]) * (len(SGB_TRACK) - 1)
    sgb_m, sgb_t = np.array(SGB_TRACK).T
    nodes = np.arange(len(SGB_TRACK))
    sgb_mag = np.interp(s, nodes, sgb_m)
    sgb_teff = 10.0 ** np.interp(s, nodes, np.log10(sgb_t))

    rgb_mag = _sample_lf(rng, counts["RGB"], RGB_TRACK[-1][0], RGB_TRACK[0][0], RGB_LF_SLOPE)
    rgb_teff = _track_teff(RGB_TRACK, rgb_mag)

    n_blue = int(round(hb_blue_fraction * counts["HB"]))
    hb_teff = np.concatenate(
        [
            rng.uniform(*RED_HB_TEFF, counts["HB"] - n_blue),
            np.exp(rng.uniform(*np.log(BLUE_HB_TEFF), n_blue)),  # blue tail: uniform in log Teff
        ]
    )
    hb_mag = hb_abs_mag(hb_teff)

    mag = np.concatenate([ms_mag, sgb_mag, rgb_mag, hb_mag])
    teff = np.concatenate([ms_teff, sgb_teff, rgb_teff, hb_teff])
    phase = np.repeat(["MS", "SGB", "RGB", "HB"], [n_ms, counts["SGB"], counts["RGB"], counts["HB"]])
    # A small spread in Teff on the single-star sequences (not the HB, already spread).
    single = phase != "HB"
    teff[single] *= 1.0 + TEFF_SCATTER * rng.standard_normal(int(single.sum()))
    order = rng.permutation(n)  # so that ids do not run by phase
    return mag[order], teff[order], phase[order]


# --------------------------------------------------------------------------- WCS


def celestial_wcs(
    crpix: tuple[float, float], center_radec: tuple[float, float], rotation: float = 0.0
) -> WCS:
    """TAN WCS with 0.04"/px, `center_radec` at 0-based pixel `crpix`, y axis `rotation` deg E of N."""
    scale = PIXEL_SCALE / 3600.0
    pa = np.deg2rad(rotation)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]  # FITS pixels are 1-based
    wcs.wcs.crval = list(center_radec)
    # East is left (RA decreases with x) when north is up, as on the sky.
    wcs.wcs.cd = scale * np.array([[-np.cos(pa), np.sin(pa)], [np.sin(pa), np.cos(pa)]])
    wcs.wcs.radesys = "ICRS"
    return wcs


def _wcs_cards(wcs: WCS) -> list[tuple[str, object, str]]:
    """WCS keywords as HST writes them (CD matrix, not PC + CDELT)."""
    w = wcs.wcs
    cards = [
        ("WCSAXES", 2, "number of World Coordinate System axes"),
        ("CTYPE1", w.ctype[0], "the coordinate type for the first axis"),
        ("CTYPE2", w.ctype[1], "the coordinate type for the second axis"),
        ("CRPIX1", float(w.crpix[0]), "x-coordinate of reference pixel"),
        ("CRPIX2", float(w.crpix[1]), "y-coordinate of reference pixel"),
        ("CRVAL1", float(w.crval[0]), "first axis value at reference pixel"),
        ("CRVAL2", float(w.crval[1]), "second axis value at reference pixel"),
    ]
    for i in range(2):
        for j in range(2):
            cards.append((f"CD{i + 1}_{j + 1}", float(w.cd[i, j]), "partial of axis wrt pixel (deg)"))
    cards.append(("RADESYS", w.radesys, "reference frame of the celestial coordinates"))
    return cards


# --------------------------------------------------------------------------- rendering


def moffat_alpha(fwhm: float, beta: float = MOFFAT_BETA) -> float:
    """The Moffat profile's core width alpha (px) for a FWHM (px): (1 + (r/alpha)^2)^-beta is
    half its peak at r = FWHM/2."""
    return float(fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0)))


def moffat_phase_stamps(
    fwhm: float,
    beta: float = MOFFAT_BETA,
    radius: int = STAMP_RADIUS,
    n_phase: int = N_PHASE,
    n_sub: int = N_SUBSAMPLE,
) -> np.ndarray:
    """Pixel-integrated Moffat stamps for a star at sub-pixel phases 0, 1/n_phase, ..., 1.

    Returns float32 (n_phase+1, n_phase+1, 2r+1, 2r+1): [py, px] is a star at
    (px/n_phase, py/n_phase) px from the centre of stamp pixel (r, r). Each stamp sums to 1.
    """
    alpha = moffat_alpha(fwhm, beta)
    phases = np.arange(n_phase + 1) / n_phase
    sub = (np.arange(n_sub) + 0.5) / n_sub - 0.5  # sample points inside a pixel
    offsets = np.arange(-radius, radius + 1)
    # d[p, j, s]: 1-D distance (px) of sub-sample s of stamp pixel j from a star at phase p
    d2 = ((offsets[None, :, None] + sub[None, None, :] - phases[:, None, None]) / alpha) ** 2
    size = 2 * radius + 1
    stamps = np.empty((n_phase + 1, n_phase + 1, size, size), dtype=np.float32)
    for py in range(n_phase + 1):
        r2 = d2[py][None, :, None, :, None] + d2[:, None, :, None, :]  # (px, i, j, s_y, s_x)
        pixel = ((1.0 + r2) ** -beta).mean(axis=(3, 4))
        stamps[py] = pixel / pixel.sum(axis=(1, 2), keepdims=True)
    return stamps


def moffat_wing(fwhm: float, beta: float = MOFFAT_BETA) -> tuple[float, float, float]:
    """The simulator's Moffat as a PSF wing (:class:`clusterphot.psf.EPSF`'s ``wing``): alpha (px),
    beta and ln amplitude, the profile of a star of unit flux per pixel far from its centre."""
    alpha = moffat_alpha(fwhm, beta)
    return float(alpha), float(beta), float(np.log((beta - 1.0) / (np.pi * alpha**2)))


def moffat_epsf_grid(fwhm: float, oversampling: int = 4) -> np.ndarray:
    """The exact effective PSF of the simulator's Moffat stars on a grid of ``oversampling``
    nodes per pixel, the star at the central node (as :class:`clusterphot.psf.EPSF` holds it):
    each node is the fraction of a star's flux in a pixel at that offset, taken from the stamps
    of a star at the node's sub-pixel phase. For tests and benchmarks that give the true PSF."""
    stamps = moffat_phase_stamps(fwhm, n_phase=oversampling)  # [py, px]: star at (px, py) / oversampling
    r = stamps.shape[-1] // 2
    size = 2 * (r - 1) * oversampling + 1  # every node falls on some phase's stamp
    centre = size // 2
    grid = np.zeros((size, size))
    rows, cols = np.mgrid[0 : 2 * r + 1, 0 : 2 * r + 1]
    for py in range(oversampling):  # oversampling**2 phases, not stars
        for px in range(oversampling):
            # stamp pixel (row, col) lies (col - r - px/os, row - r - py/os) px from the star
            u = centre + (cols - r) * oversampling - px
            v = centre + (rows - r) * oversampling - py
            inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
            grid[v[inside], u[inside]] = stamps[py, px][inside]
    return grid


def add_stars(
    canvas: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    stamps: np.ndarray,
    chunk: int = 2048,
) -> None:
    """Add stars of `flux` at canvas pixel positions (x, y), in place.

    Each star's stamp is bilinearly interpolated between precomputed sub-pixel phases
    (which keeps its centroid exactly at (x, y)) and renormalised to sum to 1, so all of
    its flux lands in the canvas. The canvas must extend >= stamp radius + 1 beyond all stars.
    """
    n_phase = stamps.shape[0] - 1
    radius = stamps.shape[-1] // 2
    offsets = np.arange(-radius, radius + 1)
    width = canvas.shape[1]
    flat = canvas.reshape(-1)  # a view: canvas is C-contiguous
    for start in range(0, len(x), chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        ix, iy = np.floor(xs).astype(np.intp), np.floor(ys).astype(np.intp)
        px, py = (xs - ix) * n_phase, (ys - iy) * n_phase
        jx = np.minimum(px.astype(np.intp), n_phase - 1)
        jy = np.minimum(py.astype(np.intp), n_phase - 1)
        tx = (px - jx).astype(np.float32)[:, None, None]
        ty = (py - jy).astype(np.float32)[:, None, None]
        stamp = (1 - ty) * ((1 - tx) * stamps[jy, jx] + tx * stamps[jy, jx + 1])
        stamp += ty * ((1 - tx) * stamps[jy + 1, jx] + tx * stamps[jy + 1, jx + 1])
        scale = flux[start : start + chunk] / stamp.sum(axis=(1, 2), dtype=np.float64)
        stamp *= scale.astype(np.float32)[:, None, None]
        rows = (iy[:, None] + offsets) * width
        cols = ix[:, None] + offsets
        np.add.at(flat, (rows[:, :, None] + cols[:, None, :]).ravel(), stamp.ravel())


def _apply_noise(
    rng: np.random.Generator, image: np.ndarray, read_noise: float, block_rows: int = 256
) -> None:
    """Poisson noise on star + sky, then Gaussian read noise, in place, a block of rows at a time
    (rng.poisson returns int64 and wants float64: blocks bound that memory)."""
    for r0 in range(0, image.shape[0], block_rows):
        block = image[r0 : r0 + block_rows]
        block[...] = rng.poisson(block)
        block += read_noise * rng.standard_normal(block.shape, dtype=np.float32)


def _add_cosmic_rays(rng: np.random.Generator, image: np.ndarray, n: int) -> None:
    """Sharp hits of 1-3 pixels (a short track), 300-5000 electrons each, in place."""
    ny, nx = image.shape
    directions = np.array([(0, 1), (1, 0), (1, 1), (1, -1)])
    y0, x0 = rng.integers(0, ny, n), rng.integers(0, nx, n)
    length = rng.integers(1, 4, n)
    step = directions[rng.integers(0, 4, n)]
    charge = np.exp(rng.uniform(np.log(300.0), np.log(5000.0), n))
    for k in range(3):
        hit = length > k
        yy = np.clip(y0[hit] + k * step[hit, 0], 0, ny - 1)
        xx = np.clip(x0[hit] + k * step[hit, 1], 0, nx - 1)
        np.add.at(image, (yy, xx), (charge[hit] / length[hit]).astype(np.float32))


def _border_widths(
    rng: np.random.Generator, shape: tuple[int, int], border: int | Sequence[int] | None
) -> tuple[int, int, int, int]:
    """Zero-border widths (left, right, bottom, top) in px; random 16-48 px per side when None."""
    if border is None:
        ny, nx = shape
        caps = (nx // 8, nx // 8, ny // 8, ny // 8)  # keep most of a small test frame
        return tuple(int(min(w, c)) for w, c in zip(rng.integers(16, 49, 4), caps, strict=True))
    if np.isscalar(border):
        return (int(border),) * 4
    left, right, bottom, top = (int(b) for b in border)
    return left, right, bottom, top


def _per_filter(
    value: float | Mapping[str, float] | None, filter_name: str, default: Callable[[], float]
) -> float:
    """A parameter given as one number, as {filter: number}, or None for the default."""
    if value is None:
        return float(default())
    if isinstance(value, Mapping):
        return float(value[filter_name]) if filter_name in value else float(default())
    return float(value)


def _filter_rng(seed: int, filter_name: str) -> np.random.Generator:
    """Generator for one filter's draws: independent of which other filters are simulated."""
    return np.random.default_rng([seed, zlib.crc32(filter_name.encode())])


# --------------------------------------------------------------------------- frames


def simulate_cluster(
    name: str,
    seed: int,
    filters: Sequence[str] = HUGS_FILTERS,
    shape: tuple[int, int] = (1024, 1024),
    n_stars: int = 6000,
    distance_modulus: float = 15.0,
    core_radius: float = 80.0,
    *,
    tidal_radius: float | None = None,
    center: tuple[float, float] | None = None,
    center_radec: tuple[float, float] = DEFAULT_CENTER_RADEC,
    rotation: float = 0.0,
    hb_blue_fraction: float = 0.5,
    exptime: float | Mapping[str, float] | None = None,
    sky: float | Mapping[str, float] | None = None,
    fwhm: float | Mapping[str, float] | None = None,
    read_noise: float | None = None,
    border: int | Sequence[int] | None = None,
    max_shift: float = 0.7,
    wcs_error: float = 0.15,
    n_cosmic_rays: int = 0,
    noise: bool = True,
    date_obs: str = DEFAULT_DATE_OBS,
) -> dict[str, tuple[fits.HDUList, Table]]:
    """Simulate one cluster observed in `filters`: {filter: (HDUList, truth Table)}.

    The stars (positions, magnitudes, ids) depend on `seed` only; each filter's shift,
    WCS error, border and noise depend on `seed` and the filter name, so a filter's frame
    is the same whichever other filters are simulated with it.

    name: target name (OBJECT).  shape: (ny, nx) px.  n_stars: stars inside the frame.
    distance_modulus: apparent (m - M), the same in all bands (no reddening law).
    core_radius, tidal_radius: King radii in px (tidal default 30 core radii, c ~ 1.5).
    center: cluster centre (x, y) on the reference grid, default the frame centre.
    center_radec: its (RA, Dec) in deg.  rotation: PA of the y axis, deg E of N.
    exptime, sky (electrons per pixel), fwhm (px): a number, {filter: number} or None for
    the defaults DEFAULT_EXPTIME, SKY_RATE * exptime and default_fwhm().
    read_noise: electrons, default the detector's.  border: zero-border width(s) in px,
    int or (left, right, bottom, top); None draws 16-48 px per side and filter.
    max_shift: largest |dx|, |dy| (px) of a filter's misregistration.  wcs_error: largest
    error (px) of the header WCS.  noise: False gives the noise-free expectation
    (no Poisson or read noise; cosmic rays and clipping still apply).
    """
    ny, nx = shape
    tidal_radius = 30.0 * core_radius if tidal_radius is None else tidal_radius
    center = ((nx - 1) / 2.0, (ny - 1) / 2.0) if center is None else center
    filters = [f.upper() for f in filters]
    cameras = {f: _camera(f) for f in filters}  # fail early on an unknown band

    cluster = _draw_cluster(
        seed, shape, n_stars, center, center_radec, rotation, core_radius, tidal_radius, hb_blue_fraction
    )
    frames = {}
    for filter_name in filters:
        instrument, detector_name, detector, photflam = cameras[filter_name]
        t_exp = _per_filter(exptime, filter_name, lambda f=filter_name: DEFAULT_EXPTIME[f])
        frames[filter_name] = _observe(
            cluster,
            filter_name,
            rng=_filter_rng(seed, filter_name),
            shape=shape,
            center=center,
            center_radec=center_radec,
            rotation=rotation,
            instrument=instrument,
            detector_name=detector_name,
            detector=detector,
            photflam=photflam,
            exptime=t_exp,
            sky=_per_filter(sky, filter_name, lambda f=filter_name, t=t_exp: SKY_RATE[f] * t),
            fwhm=_per_filter(fwhm, filter_name, lambda f=filter_name: default_fwhm(f)),
            read_noise=detector.read_noise if read_noise is None else float(read_noise),
            border=border,
            max_shift=max_shift,
            wcs_error=wcs_error,
            n_cosmic_rays=n_cosmic_rays,
            noise=noise,
            date_obs=date_obs,
            meta={
                "name": name,
                "seed": int(seed),
                "distance_modulus": float(distance_modulus),
                "core_radius": float(core_radius),
                "tidal_radius": float(tidal_radius),
                "n_stars": int(n_stars),
            },
        )
    return frames


def _draw_cluster(
    seed: int,
    shape: tuple[int, int],
    n_stars: int,
    center: tuple[float, float],
    center_radec: tuple[float, float],
    rotation: float,
    core_radius: float,
    tidal_radius: float,
    hb_blue_fraction: float,
) -> Cluster:
    rng = np.random.default_rng(seed)
    x, y = sample_king_positions(rng, n_stars, shape, center, core_radius, tidal_radius)
    abs_mag, teff, phase = sample_population(rng, n_stars, hb_blue_fraction)
    ra, dec = celestial_wcs(center, center_radec, rotation).pixel_to_world_values(x, y)
    return Cluster(x=x, y=y, ra=ra, dec=dec, abs_mag=abs_mag, teff=teff, phase=phase)


def _observe(
    cluster: Cluster,
    filter_name: str,
    *,
    rng: np.random.Generator,
    shape: tuple[int, int],
    center: tuple[float, float],
    center_radec: tuple[float, float],
    rotation: float,
    instrument: str,
    detector_name: str,
    detector: Detector,
    photflam: float,
    exptime: float,
    sky: float,
    fwhm: float,
    read_noise: float,
    border: int | Sequence[int] | None,
    max_shift: float,
    wcs_error: float,
    n_cosmic_rays: int,
    noise: bool,
    date_obs: str,
    meta: dict,
) -> tuple[fits.HDUList, Table]:
    """One filter's frame and truth table of an already drawn cluster."""
    ny, nx = shape
    photplam = _pivot(filter_name)
    zeropoint = ab_zeropoint(photflam, photplam)
    full_well = float(detector.full_well)

    # Misregistration: this filter's pixel grid is offset from the reference grid.
    shift = rng.uniform(-max_shift, max_shift, 2)
    x, y = cluster.x + shift[0], cluster.y + shift[1]
    # The header WCS is off by up to `wcs_error` px, as after a good but imperfect alignment.
    err_r, err_phi = wcs_error * np.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * np.pi)
    wcs_offset = err_r * np.array([np.cos(err_phi), np.sin(err_phi)])
    header_wcs = celestial_wcs(
        (center[0] + shift[0] + wcs_offset[0], center[1] + shift[1] + wcs_offset[1]), center_radec, rotation
    )
    widths = _border_widths(rng, shape, border)

    mag = cluster.abs_mag + meta["distance_modulus"]
    mag = mag + blackbody_ab_colour(cluster.teff, photplam, _pivot(REFERENCE_FILTER))
    flux = electrons_from_mag(mag, zeropoint, exptime)

    # Stars on a canvas padded by the stamp radius, so stamps need no clipping at the edges.
    pad = STAMP_RADIUS + 2
    canvas = np.zeros((ny + 2 * pad, nx + 2 * pad), dtype=np.float32)
    add_stars(canvas, x + pad, y + pad, flux, moffat_phase_stamps(fwhm))
    image = canvas[pad:-pad, pad:-pad] + np.float32(sky)  # the noise-free expectation
    del canvas

    # Saturated: the noise-free pixel under the star's centre (its peak, plus neighbours') is
    # above full well. Stars shifted just off the frame use the nearest edge pixel.
    near_x = np.clip(np.floor(x + 0.5).astype(np.intp), 0, nx - 1)
    near_y = np.clip(np.floor(y + 0.5).astype(np.intp), 0, ny - 1)
    saturated = image[near_y, near_x] > full_well

    if noise:
        _apply_noise(rng, image, read_noise)
    if n_cosmic_rays:
        _add_cosmic_rays(rng, image, n_cosmic_rays)
    np.minimum(image, np.float32(full_well), out=image)  # flat-topped saturated stars
    left, right, bottom, top = widths
    image[:bottom] = 0.0  # drizzled stacks are zero where no exposure covers the sky
    image[ny - top :] = 0.0
    image[:, :left] = 0.0
    image[:, nx - right :] = 0.0

    in_x, in_y = np.floor(x + 0.5), np.floor(y + 0.5)
    in_footprint = (in_x >= left) & (in_x < nx - right) & (in_y >= bottom) & (in_y < ny - top)

    hdul = _make_hdulist(
        image,
        header_wcs,
        meta["name"],
        filter_name,
        instrument,
        detector_name,
        detector,
        photflam,
        photplam,
        exptime,
        read_noise,
        rotation,
        date_obs,
    )
    truth = Table(
        {
            "id": np.arange(1, len(x) + 1),
            "x": x * u.pix,
            "y": y * u.pix,
            "ra": cluster.ra * u.deg,
            "dec": cluster.dec * u.deg,
            "flux": flux * u.electron,
            "mag": mag * u.mag,
            "phase": cluster.phase,
            "saturated": saturated,
            "in_footprint": in_footprint,
            "teff": cluster.teff * u.K,
        }
    )
    truth["mag"].description = f"true AB magnitude in {filter_name}"
    truth["flux"].description = "electrons in the exposure, before noise and saturation"
    truth["saturated"].description = "noise-free pixel under the centre (star, neighbours, sky) > full well"
    truth["in_footprint"].description = "centre falls on exposed (non-border) pixels"
    truth.meta.update(meta)
    truth.meta.update(
        {
            "filter": filter_name,
            "instrument": instrument,
            "detector": detector_name,
            "exptime": float(exptime),
            "shift": [float(s) for s in shift],
            "wcs_error": [float(e) for e in wcs_offset],
            "psf_model": "Moffat",
            "psf_fwhm": float(fwhm),
            "psf_beta": MOFFAT_BETA,
            "sky": float(sky),
            "read_noise": float(read_noise),
            "full_well": full_well,
            "zeropoint_ab": zeropoint,
            "border": {"left": left, "right": right, "bottom": bottom, "top": top},
            "center": [float(center[0] + shift[0]), float(center[1] + shift[1])],
            "noise": bool(noise),
            "n_cosmic_rays": int(n_cosmic_rays),
        }
    )
    return hdul, truth


def _make_hdulist(
    image: np.ndarray,
    wcs: WCS,
    name: str,
    filter_name: str,
    instrument: str,
    detector_name: str,
    detector: Detector,
    photflam: float,
    photplam: float,
    exptime: float,
    read_noise: float,
    rotation: float,
    date_obs: str,
) -> fits.HDUList:
    """Empty primary with the observation keywords + SCI extension with photometry and WCS.
    No SATURATE keyword: like real HST stacks, readers must fall back on the detector's full well."""
    primary = fits.PrimaryHDU()
    primary.header.extend(
        [
            ("TELESCOP", "HST", "telescope used to acquire data"),
            ("INSTRUME", instrument, "identifier for instrument used to acquire data"),
            ("DETECTOR", detector_name, "detector in use"),
            ("FILTER", filter_name, "element selected from filter wheel"),
            ("EXPTIME", float(exptime), "exposure duration (seconds)"),
            ("DATE-OBS", date_obs, "UT date of start of observation (yyyy-mm-dd)"),
            ("OBJECT", name, "target name"),
            ("TARGNAME", name, "proposer's target name"),
            ("CCDGAIN", float(detector.gain), "commanded gain of CCD (electrons/DN)"),
            ("READNSE", float(read_noise), "read noise (electrons)"),
            ("ORIGIN", "clusterphot.simulate", "simulated frame, not an observation"),
        ]
    )
    sci = fits.ImageHDU(data=image, name="SCI", ver=1)
    sci.header.extend(
        [
            ("BUNIT", "ELECTRONS", "brightness units"),
            ("PHOTFLAM", float(photflam), "inverse sensitivity, ergs/cm2/A/e-"),
            ("PHOTPLAM", float(photplam), "Pivot wavelength (Angstroms)"),
            ("PHOTZPT", -21.1, "ST magnitude zero point"),
            ("ORIENTAT", float(rotation), "position angle of image y axis (deg. e of n)"),
            *_wcs_cards(wcs),
        ]
    )
    return fits.HDUList([primary, sci])


def simulate_crowded_frame(
    shape: tuple[int, int] = (4000, 4000),
    n_stars: int = 60000,
    seed: int = 1,
    filter_name: str = "F606W",
    **kwargs,
) -> tuple[fits.HDUList, Table]:
    """One crowded frame for benchmarks: the cluster centre mid-field, core radius 5 per cent
    of the frame, `n_stars` stars. Other keywords go to simulate_cluster."""
    kwargs.setdefault("name", "crowded")
    kwargs.setdefault("core_radius", 0.05 * min(shape))
    frames = simulate_cluster(seed=seed, filters=(filter_name,), shape=shape, n_stars=n_stars, **kwargs)
    return frames[filter_name.upper()]


# --------------------------------------------------------------------------- files


def write_simulated_cluster(
    outdir: Path | str, name: str, seed: int, filters: Sequence[str] = HUGS_FILTERS, **kwargs
) -> list[Path]:
    """Simulate a cluster and write {outdir}/{filter}.fits and {filter}_truth.ecsv per filter.

    Returns the written paths (FITS and truth, filter by filter). Keywords go to simulate_cluster.
    """
    outdir = Path(outdir)
    paths = []
    for filter_name, (hdul, truth) in simulate_cluster(name, seed, filters, **kwargs).items():
        fits_path, truth_path = outdir / f"{filter_name}.fits", outdir / f"{filter_name}_truth.ecsv"
        write_simulated_frame(hdul, truth, fits_path, truth_path)
        paths += [fits_path, truth_path]
    return paths


def write_simulated_frame(hdul: fits.HDUList, truth: Table, fits_path: Path | str, truth_path: Path | str) -> None:
    """Write one filter's simulated frame (with checksums) and its true star list, atomically."""
    with atomic_output(fits_path) as tmp:
        hdul.writeto(tmp, overwrite=True, checksum=True)
    with atomic_output(truth_path) as tmp:
        truth.write(tmp, format="ascii.ecsv", overwrite=True)
    meta = truth.meta
    ny, nx = next(hdu.data.shape for hdu in hdul if hdu.data is not None and hdu.data.ndim == 2)
    dx, dy = meta.get("shift") or (np.nan, np.nan)
    log.info("wrote %s: %s %s, %d x %d px, %g s, %d stars (%d on exposed pixels), Moffat FWHM %.2f px, sky %.3g e-, "
             "shift (%+.2f, %+.2f) px; the true stars in %s", fits_path, meta.get("instrument"), meta.get("filter"),
             nx, ny, meta.get("exptime", np.nan), len(truth), int(np.count_nonzero(truth["in_footprint"])),
             meta.get("psf_fwhm", np.nan), meta.get("sky", np.nan), dx, dy, truth_path)
