"""Fitting every star of a frame together with its PSF: one weighted sparse linear least-squares
solve per iteration, as DAOPHOT's ALLSTAR and crowdsource do.

The model of the frame is ``sum_k flux_k * psf(x - x_k, y - y_k) + sky``, with the sky a
constant per cell of ``sky_cell`` pixels. Linearised in small position corrections
(d_k = shift), the model of a pixel is

    flux_k * psf  -  (flux_k dx_k) * dpsf/dx  -  (flux_k dy_k) * dpsf/dy  + sky_cell

which is linear in (flux_k, flux_k dx_k, flux_k dy_k, sky_cell): one sparse design matrix with
a row per pixel near a star and three columns per star (one for stars held in place), solved in
one go with the noise model's weights. The PSF path holds every star in place in this solve and
moves them with :func:`position_corrections` (batched local fits to the residual): the shift
columns make the sparse LU fill in as a crowd gets denser. Nothing loops over stars in Python:
pixels, offsets and PSF values of all stars are arrays, and scipy.sparse builds and solves the
system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from .photometry import disk_offsets
from .psf import EPSF


@dataclass
class StarFit:
    """Per-star results of one simultaneous fit (image units, pixels)."""

    flux: np.ndarray
    flux_err: np.ndarray
    shift_x: np.ndarray  # position corrections (0 for stars whose position was held)
    shift_y: np.ndarray
    position_err: np.ndarray  # rms of the x and y errors, px (NaN where held)
    qfit: np.ndarray  # reduced chi^2 of the star's fitting pixels
    crowding: np.ndarray  # mag: how much brighter the star would seem were its neighbours not fitted
    n_pixels: np.ndarray  # fitting pixels qfit was taken over
    sky: np.ndarray  # the fitted sky at the star (image units per pixel)
    sky_image: np.ndarray | None  # the fitted sky of every pixel (0 where no star is near), float32
    sky_cells: np.ndarray  # the same per sky cell (cell_index's order, as a 2-D array of cells)
    star_image: np.ndarray | None  # every star's fitted light on the frame (their whole footprints), float32
    # without images (fit_stars' ``images`` False): the data less the fit on the fitted pixels,
    # 0 elsewhere, float32
    residual_image: np.ndarray | None = None


def pixel_footprints(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, radius: float,
                     square: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat pixel indices within ``radius`` of each star's nearest pixel (a disk, or with
    ``square`` the square the PSF is tabulated on), -1 off the frame, and those pixels' offsets
    (dx, dy) from the star. Shapes (n_stars, n_offsets)."""
    ny, nx = shape
    if square:
        r = int(math.floor(radius))
        oy, ox = (a.ravel() for a in np.mgrid[-r : r + 1, -r : r + 1])
    else:
        oy, ox = disk_offsets(radius)
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    # a few passes over the (stars x offsets) arrays: this runs on millions of pixels per fit
    flat = (yi * nx + xi)[:, None] + (oy * nx + ox)[None, :]
    edge, on_frame = near_edge_on_frame(shape, xi, yi, ox, oy)
    flat[edge] = np.where(on_frame, flat[edge], -1)
    return flat, (xi - x)[:, None] + ox[None, :], (yi - y)[:, None] + oy[None, :]


def near_edge_on_frame(shape: tuple[int, int], xi: np.ndarray, yi: np.ndarray, ox: np.ndarray,
                       oy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stars (indices) at pixels (xi, yi) whose offsets (ox, oy) reach past the frame's edge,
    and for those alone which of their pixels are on the frame, shape (n_edge, n_offsets): the
    others' are all on it, and checking only these saves four passes over every footprint."""
    ny, nx = shape
    reach_x, reach_y = int(np.abs(ox).max(initial=0)), int(np.abs(oy).max(initial=0))
    edge = np.flatnonzero((xi < reach_x) | (xi >= nx - reach_x) | (yi < reach_y) | (yi >= ny - reach_y))
    px, py = xi[edge, None] + ox[None, :], yi[edge, None] + oy[None, :]
    return edge, (px >= 0) & (px < nx) & (py >= 0) & (py < ny)


def footprint_radii(psf: EPSF, flux: np.ndarray | None, level: float, smallest: float | np.ndarray) -> np.ndarray:
    """Each star's PSF footprint radius (whole px): out to where its light falls below ``level``
    (image units per pixel), at least ``smallest``, at most the PSF's reach. A faint star's
    model then covers a few pixels instead of the bright stars' 29x29: the fit's size, and its
    solve's fill-in, scale with the light that matters, not with the PSF's tabulated size."""
    largest = int(math.floor(psf.reach))
    if flux is None or level <= 0:
        return np.full(0 if flux is None else len(flux), largest)
    radius = np.arange(largest + 1)
    envelope = psf.envelope(radius)  # the PSF's largest value at each radius and beyond
    reach = np.searchsorted(-envelope, -level / np.maximum(np.abs(flux), 1e-30), side="right")
    return np.clip(reach, np.ceil(smallest).astype(np.intp), largest)


def star_footprints(shape: tuple[int, int], x: np.ndarray, y: np.ndarray,
                    radii: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of every star's footprint (a disk of its radius around its nearest pixel) on
    the frame, as flat arrays: star index, flat pixel index, dx, dy. Stars are handled in groups
    of equal radius (a handful), never one by one."""
    parts = []
    for radius in np.unique(radii):
        members = np.flatnonzero(radii == radius)
        flat, dx, dy = pixel_footprints(shape, x[members], y[members], radius + 0.5)
        on = flat >= 0
        parts.append((np.broadcast_to(members[:, None], flat.shape)[on], flat[on], dx[on], dy[on]))
    if not parts:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*parts))


@dataclass
class FarWings:
    """Every star's far wing (beyond its PSF's ``wing_start``, out to its footprint's radius)
    drawn on the frame, with the positions, fluxes and radii it was drawn with.

    Why: a bright star's far wing reaches 30-50 px, three quarters of all the pixels the stars'
    models cover, and it is not fitted (:func:`fit_stars` holds it). Drawing every star's anew
    for every fit cost a quarter of the PSF path's time; only the stars that moved or whose flux
    changed are redrawn (:func:`update_far_wings`), on the dense benchmark frame a third of
    them per fit once the first fits have settled."""

    light: np.ndarray  # (ny, nx) float64, image units
    x: np.ndarray  # where each star's far wing was drawn
    y: np.ndarray
    flux: np.ndarray
    radius: np.ndarray  # -1: never drawn


def no_far_wings(shape: tuple[int, int], n: int, held_light: np.ndarray | None = None) -> FarWings:
    """Nothing drawn yet, for ``n`` stars; the frame starts with ``held_light`` (image units;
    light of stars that are not fitted, kept as it is) or 0."""
    light = np.zeros(shape) if held_light is None else np.asarray(held_light, dtype=np.float64).copy()
    return FarWings(light, np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, -1, np.intp))


def add_far_wing_light(light: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, radii: np.ndarray,
                       psf: EPSF) -> None:
    """Add (in place) to ``light`` (a frame, float64) the stars' light beyond the PSF's
    ``wing_start`` and within their footprints.

    Drawing far wings is most of what the PSF path spends per pixel, so this is
    :func:`star_footprints` and :meth:`EPSF.wing_value` taken apart: only the ring of offsets
    beyond the wing's start, only the wing (looked up in its table), in float32 (a far wing is
    below 1e-3 of its star's light)."""
    nx = light.shape[1]
    start = psf.wing_start
    reaches = (radii + 0.5 > start) & (flux != 0)
    if not np.isfinite(start) or not reaches.any():
        return
    x, y, flux, radii = x[reaches], y[reaches], flux[reaches], radii[reaches]
    flats, values = [], []
    for radius in np.unique(radii):  # a handful of groups of stars, never one by one
        members = radii == radius
        oy, ox = disk_offsets(radius + 0.5)
        ring = ox**2 + oy**2 > (start - 1.0) ** 2  # nearer the star's nearest pixel is within start of it
        oy, ox = oy[ring], ox[ring]
        xi, yi = np.rint(x[members]).astype(np.intp), np.rint(y[members]).astype(np.intp)
        dx = (xi - x[members]).astype(np.float32)[:, None] + ox.astype(np.float32)
        dy = (yi - y[members]).astype(np.float32)[:, None] + oy.astype(np.float32)
        r2 = dx * dx + dy * dy
        use = (r2 > start**2) & (r2 <= psf.reach**2)
        edge, on_frame = near_edge_on_frame(light.shape, xi, yi, ox, oy)
        use[edge] &= on_frame
        wing = psf.far_wing_value(r2[use])
        flats.append(((yi * nx + xi)[:, None] + (oy * nx + ox))[use])
        values.append(np.broadcast_to(flux[members].astype(np.float32)[:, None], use.shape)[use] * wing)
    flat, value = np.concatenate(flats), np.concatenate(values).astype(np.float64)
    if flat.size > light.size // 4:  # a frame's worth: one histogram (bincount) is faster
        light += np.bincount(flat, weights=value, minlength=light.size).reshape(light.shape)
    else:  # a few stars redrawn: only their pixels touched (a histogram would sweep the frame twice)
        np.add.at(light.reshape(-1), flat, value)


def update_far_wings(wings: FarWings, x: np.ndarray, y: np.ndarray, flux: np.ndarray, radii: np.ndarray,
                     psf: EPSF, tolerance: float, relative: float = 0.01) -> None:
    """Redraw (in place) the far wings of the stars whose flux or position changed since they
    were drawn by enough to change their far wing by more than ``tolerance`` (image units per
    pixel) and by more than ``relative`` of itself somewhere (and those never drawn, or moved
    by half a pixel): most stars settle after a fit or two, and a learned PSF's wing is itself
    uncertain by a few per cent."""
    if not np.isfinite(psf.wing_start):
        return
    start = psf.wing_start
    alpha, beta, _ = psf.wing
    edge = float(psf.envelope(np.array([start]))[0])  # the far wing's largest value
    slope = 2.0 * beta * start / (alpha**2 + start**2)  # its steepest logarithmic slope (1/px) out there
    shift = np.hypot(x - wings.x, y - wings.y)
    change = edge * (np.abs(flux - wings.flux) + np.abs(flux) * slope * shift)
    stale = (change > np.maximum(tolerance, relative * edge * np.abs(flux))) | (wings.radius < 0) | (shift > 0.5)
    if not stale.any():
        return
    # where only the flux changed, drawn with the difference; the others erased with what they
    # were drawn with and drawn with what they are now; all in one pass
    in_place = stale & (x == wings.x) & (y == wings.y) & (radii == wings.radius)
    moved = stale & ~in_place
    both_x, both_y = np.r_[x[in_place], wings.x[moved], x[moved]], np.r_[y[in_place], wings.y[moved], y[moved]]
    both_flux = np.r_[flux[in_place] - wings.flux[in_place], -wings.flux[moved], flux[moved]]
    both_radii = np.r_[radii[in_place], wings.radius[moved], radii[moved]]
    add_far_wing_light(wings.light, both_x, both_y, both_flux, both_radii, psf)
    wings.x[stale], wings.y[stale], wings.flux[stale], wings.radius[stale] = x[stale], y[stale], flux[stale], radii[stale]


def kept_far_wings(wings: FarWings, kept: np.ndarray, psf: EPSF, n_new: int = 0) -> FarWings:
    """The far wings of the stars ``kept`` (indices), the others' erased from ``wings.light`` (in
    place), with room for ``n_new`` stars after them (nothing drawn)."""
    gone = np.ones(len(wings.x), bool)
    gone[kept] = False
    if gone.any():
        add_far_wing_light(wings.light, wings.x[gone], wings.y[gone], -wings.flux[gone], wings.radius[gone], psf)
    new = np.zeros(n_new)
    return FarWings(wings.light, np.r_[wings.x[kept], new], np.r_[wings.y[kept], new], np.r_[wings.flux[kept], new],
                    np.r_[wings.radius[kept], np.full(n_new, -1, np.intp)])


def fit_stars(image: np.ndarray, variance: np.ndarray, usable: np.ndarray, x: np.ndarray, y: np.ndarray,
              psf: EPSF, fit_radius: float | np.ndarray, move: np.ndarray, sky_cell: int = 32,
              n_neighbours: int = 6, sky_prior_pixels: float = 50.0, radii: np.ndarray | None = None,
              free_positions: np.ndarray | None = None, covariance: bool = True,
              far_wings: FarWings | None = None, covariance_of: np.ndarray | None = None,
              images: bool = True, quality_radius: float | np.ndarray | None = None) -> StarFit:
    """Fluxes, position corrections and a cellular sky of all stars at once.

    ``image``: the frame (image units); ``variance``: its per-pixel noise variance; ``usable``:
    False where a pixel must not enter the fit (masked, saturated). Pixels within
    ``fit_radius`` (one for all, or per star) of a star are fitted; each star's PSF covers its
    whole footprint, so the wings
    of bright stars are part of their neighbours' model. ``move``: stars whose position is
    fitted (the rest keep theirs: too faint to centre). ``radii``: each star's footprint
    (:func:`footprint_radii`; default the PSF's whole reach). ``free_positions``: stars held
    here whose positions were fitted all the same (by :func:`position_corrections`): their flux
    errors include their positions' uncertainty, as if they had moved in this fit; a blended
    pair's fluxes trade light through their positions. ``covariance`` False: each flux error is
    its own parameter's alone, 1 / sqrt(its normal matrix diagonal), no position errors (for
    the S/N cuts between iterations, where the neighbours' share is not worth its time).
    ``far_wings``: the stars' far wings as drawn (:func:`update_far_wings`): held, not fitted;
    each star's model then ends at its PSF's ``wing_start`` from where its far wing was drawn.
    ``covariance_of`` (bool per star): with ``covariance``, only these stars' errors are worked
    out, the others' are NaN (a fit again after a few stars were dropped: only their neighbours'
    errors change, and the blocks are a fit's largest cost after the solve).
    ``images`` False: no ``star_image`` and ``sky_image`` (None) but a ``residual_image``, all a
    fit that only moves the stars needs (three frame-sized arrays fewer per fit).
    ``quality_radius`` (one for all, or per star; at most ``fit_radius``): the pixels ``qfit`` is
    taken over (default: all the fitting pixels), so that a star fitted further keeps a qfit
    that means what the others' does.
    """
    ny, nx = image.shape
    n = len(x)
    # the fitted pixels: near a star, and usable
    fit_radius = np.broadcast_to(np.asarray(fit_radius, dtype=np.float64), (n,))
    is_fitted = np.zeros(ny * nx, bool)
    for radius in np.unique(fit_radius):
        fit_flat, _, _ = pixel_footprints(image.shape, x[fit_radius == radius], y[fit_radius == radius], radius)
        is_fitted[fit_flat[fit_flat >= 0]] = True
    is_fitted &= usable.ravel()
    pixels = np.flatnonzero(is_fitted)
    if pixels.size == 0:  # no stars (a tile's all dropped), or none with a usable pixel
        return no_fit(image, n, sky_cell, far_wings, images)
    row_of = np.full(ny * nx, -1, np.int64)
    row_of[pixels] = np.arange(pixels.size)

    # every star's PSF on the fitted pixels within its footprint
    if radii is None:
        radii = np.full(n, int(math.floor(psf.reach)))
    # Far wings held: beyond where the PSF is its wing's formula, a star's light on the fitted
    # pixels is drawn (``far_wings``, with the fluxes of a fit before), subtracted from the data
    # rather than fitted. A star's flux is measured by its core; its far wing (a bright star's
    # reaches 50 px) adds little but thousands of entries to the design matrix, whose product
    # with itself is the fit's largest cost.
    # (``far_wings.light`` may also hold light not of these stars, e.g. an artificial-star pass's
    # stars outside its patches: it is held even when the PSF has no wing to split off)
    holds_light = far_wings is not None
    holds_wings = holds_light and np.isfinite(psf.wing_start)
    if holds_wings:
        radii = np.minimum(radii, int(math.ceil(psf.wing_start)) + 1)
    star, flat, dx, dy = star_footprints(image.shape, x, y, radii)
    if holds_wings:
        # split where the far wing was drawn (a star has moved a little since): every pixel is
        # then in the star's model once, in its fitted core or in its drawn wing
        near = ((dx + (x - far_wings.x)[star]) ** 2 + (dy + (y - far_wings.y)[star]) ** 2 <= psf.wing_start**2)
        star, flat, dx, dy = star[near], flat[near], dx[near], dy[near]
    rows = row_of[flat]
    keep = rows >= 0
    # the PSF on the whole footprints (for the stars' image), the fitted pixels' part for the fit;
    # a PSF that changes over the frame: each star's zone's
    star_zone = psf.zone_of(x, y)
    zone = None if star_zone is None else star_zone[star]
    p_all = psf.evaluate(dx, dy, zone=zone)
    all_star, all_flat = star, flat
    star, rows, dx, dy, p = star[keep], rows[keep], dx[keep], dy[keep], p_all[keep]
    zone = None if zone is None else zone[keep]
    fixed = far_wings.light.ravel()[pixels] if holds_light else np.zeros(pixels.size)
    free = move if free_positions is None else (move | free_positions)  # stars with shift columns
    moving_entry = free[star]
    gx, gy = np.zeros(p.size), np.zeros(p.size)
    if moving_entry.any():  # gradients only where a position is free (none when all are held)
        gx[moving_entry], gy[moving_entry] = psf.gradient(dx[moving_entry], dy[moving_entry],
                                                          None if zone is None else zone[moving_entry])

    # columns: flux of every star, then the shifts of the stars whose position is free, then
    # the sky cells
    n_free = int(np.count_nonzero(free))
    shift_column = np.full(n, -1, np.int64)
    shift_column[free] = n + 2 * np.arange(n_free)
    cell = cell_index(pixels // nx, pixels % nx, sky_cell, nx)
    cells, cell_column = np.unique(cell, return_inverse=True)
    n_columns = n + 2 * n_free + cells.size
    sky_column = n + 2 * n_free + cell_column

    moving = shift_column[star] >= 0
    entry_rows = np.concatenate([rows, rows[moving], rows[moving], np.arange(pixels.size)])
    entry_columns = np.concatenate([star, shift_column[star][moving], shift_column[star][moving] + 1, sky_column])
    entry_values = np.concatenate([p, -gx[moving], -gy[moving], np.ones(pixels.size)])
    design = sparse.csr_matrix((entry_values, (entry_rows, entry_columns)), shape=(pixels.size, n_columns))

    weight = 1.0 / variance.ravel()[pixels]
    data = image.ravel()[pixels].astype(np.float64) - fixed
    # each pixel's row scaled by its weight in place (a diagonal matrix product makes a copy
    # and a conversion), and the transpose made row-major first: the same normal matrix in
    # 15 per cent less time, the product being a fit's largest cost
    weighted = design.copy()
    weighted.data *= np.repeat(weight, np.diff(design.indptr))
    normal = design.T.tocsr() @ weighted
    rhs = design.T @ (weight * data)
    # A whisper of ridge: a star with no usable pixel, or two on one spot, leaves the system
    # singular; this keeps it solvable without moving any well-determined value.
    # A prior on each sky cell: 0 (the frame's sky was subtracted), as sure as ``sky_prior_pixels``
    # pixels of sky would make it. A cell that holds only the edges of a few stars' footprints
    # would otherwise trade its sky for their fluxes freely; a cell full of fitted pixels is
    # hardly moved by it.
    prior = np.zeros(n_columns)
    prior[n_columns - cells.size :] = sky_prior_pixels * weight.max()  # the sky-only pixels weight
    normal = (normal + sparse.diags(1e-9 * normal.diagonal() + 1e-30 + prior)).tocsc()
    # the shifts of stars held in this fit stay out of the solve (they are in the errors only)
    held = np.zeros(n_columns, bool)
    held_stars = free & ~move
    held[shift_column[held_stars]] = True
    held[shift_column[held_stars] + 1] = True
    solved = np.flatnonzero(~held)
    solution = np.zeros(n_columns)
    solution[solved] = spsolve(normal[solved][:, solved].tocsc(), rhs[solved])
    flux = solution[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift_x = np.where(move & (flux > 0), solution[np.maximum(shift_column, 0)] / flux, 0.0)
        shift_y = np.where(move & (flux > 0), solution[np.maximum(shift_column, 0) + 1] / flux, 0.0)
    model = design @ solution
    residual = data - model

    w = weight[rows]
    # the sky of the cell each star is in
    centre = pixel_footprints(image.shape, x, y, 0.0)[0][:, 0]
    centre_row = np.where(centre >= 0, row_of[np.maximum(centre, 0)], -1)
    star_sky = np.where(centre_row >= 0, sky_column[np.maximum(centre_row, 0)], -1)
    if covariance:
        flux_err, position_err = covariance_errors(normal, n, free, shift_column, star_sky, flux, n_neighbours,
                                                   covariance_of)
    else:
        flux_err, position_err = 1.0 / np.sqrt(normal.diagonal()[:n]), np.full(n, np.nan)

    # per-star fit quality on its fitting pixels (within quality_radius), and the light of its
    # neighbours there
    quality_radius = fit_radius if quality_radius is None else np.broadcast_to(np.asarray(quality_radius, float), (n,))
    # within the radius of the star and of its nearest pixel (the disk pixel_footprints gives
    # it): the same pixels however far this star and its neighbours were fitted
    step_x = np.rint(dx + (x - np.rint(x))[star])  # whole-pixel offsets from the nearest pixel
    step_y = np.rint(dy + (y - np.rint(y))[star])
    fitting = ((dx**2 + dy**2) <= quality_radius[star] ** 2) & ((step_x**2 + step_y**2) <= quality_radius[star] ** 2)
    chi2 = np.bincount(star[fitting], weights=(w * residual[rows] ** 2)[fitting], minlength=n)
    n_pixels = np.bincount(star[fitting], minlength=n)
    own = flux[star] * p
    others = model[rows] + fixed[rows] - own - solution[sky_column[rows]]
    # neighbours' light in the star's own flux units (PSF-weighted, as the fit sees it), over the
    # pixels qfit is taken on: a star fitted further has its crowding as the others have theirs
    contamination = (np.bincount(star[fitting], weights=(w * p * others)[fitting], minlength=n)
                     / np.maximum(np.bincount(star[fitting], weights=(w * p * p)[fitting], minlength=n), 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        qfit = chi2 / np.maximum(n_pixels - 1, 1)
        crowding = np.where(flux > 0, 2.5 * np.log10(1.0 + np.maximum(contamination, 0.0) / flux), np.nan)
    sky_at_star = np.where(star_sky >= 0, solution[np.maximum(star_sky, 0)], np.nan)
    # the sky of every pixel: its cell's value where the cell was fitted
    cell_values = np.zeros(-(-ny // sky_cell) * -(-nx // sky_cell))
    cell_values[cells] = solution[n_columns - cells.size :]
    sky_cells = cell_values.reshape(-(-ny // sky_cell), -(-nx // sky_cell))
    if not images:
        residual_image = np.zeros(ny * nx, np.float32)
        residual_image[pixels] = residual
        return StarFit(flux, flux_err, shift_x, shift_y, position_err, qfit, crowding, n_pixels, sky_at_star, None,
                       sky_cells, None, residual_image.reshape(ny, nx))
    sky_image = cell_image(cell_values, sky_cell, image.shape)
    star_image = np.bincount(all_flat, weights=flux[all_star] * p_all, minlength=ny * nx).reshape(ny, nx)
    if holds_light:
        star_image += far_wings.light
    return StarFit(flux, flux_err, shift_x, shift_y, position_err, qfit, crowding, n_pixels, sky_at_star,
                   sky_image.astype(np.float32), sky_cells, star_image.astype(np.float32))


def no_fit(image: np.ndarray, n: int, sky_cell: int, far_wings: FarWings | None, images: bool) -> StarFit:
    """:func:`fit_stars`' result when no pixel is fitted (no stars, or none with a usable pixel):
    every value of the ``n`` stars NaN, no sky, the stars' image the light held. (Among stars
    that have pixels, one without any gets the solve's ridge instead: flux 0, error ~1e15.)"""
    ny, nx = image.shape
    sky_cells = np.zeros((-(-ny // sky_cell), -(-nx // sky_cell)))
    flux, flux_err, position_err, qfit, crowding, sky = (np.full(n, np.nan) for _ in range(6))
    per_star = (flux, flux_err, np.zeros(n), np.zeros(n), position_err, qfit, crowding, np.zeros(n, np.int64), sky)
    if not images:  # the residual: nothing fitted, so 0 everywhere
        return StarFit(*per_star, None, sky_cells, None, np.zeros(image.shape, np.float32))
    held = np.zeros(image.shape, np.float32) if far_wings is None else far_wings.light.astype(np.float32)
    return StarFit(*per_star, np.zeros(image.shape, np.float32), sky_cells, held)


def covariance_errors(normal: sparse.spmatrix, n: int, free: np.ndarray, shift_column: np.ndarray,
                      star_sky: np.ndarray, flux: np.ndarray, n_neighbours: int,
                      wanted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each star's flux error and position error (px, NaN where its position was held) from the
    inverse of the normal matrix restricted to the star's flux and shifts, its ``n_neighbours``
    most coupled neighbours' fluxes and shifts, and its sky cell: a blended pair's fluxes are
    anti-correlated, and each is less certain than alone, and a fitted sky trades light with
    the stars on it. (The whole inverse would be dense; these blocks hold what matters.)
    ``wanted`` (bool per star): only these stars' errors, the others' NaN."""
    rows = np.arange(n) if wanted is None else np.flatnonzero(wanted)
    # every star's own columns: its flux and, if it moves, its two shifts (-1: none)
    own = np.stack([np.arange(n), np.where(free, shift_column, -1), np.where(free, shift_column + 1, -1)], 1)
    neighbours = strongest_neighbours(normal, n, n_neighbours, rows)
    of_neighbours = np.where(neighbours[:, :, None] >= 0, own[np.maximum(neighbours, 0)], -1)
    index = np.concatenate([own[rows], of_neighbours.reshape(len(rows), -1), star_sky[rows, None]], axis=1)
    # only the inverse's first three columns (the star's own) are wanted: solved for, not inverted
    blocks = dense_blocks(normal, index)
    unit = np.zeros(blocks.shape[:2] + (3,))
    unit[:, [0, 1, 2], [0, 1, 2]] = 1.0
    inverse = np.linalg.solve(blocks, unit)
    flux_err, position_err = np.full(n, np.nan), np.full(n, np.nan)
    flux_err[rows] = np.sqrt(np.maximum(inverse[:, 0, 0], 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        position_err[rows] = np.where(free[rows], np.sqrt(np.maximum(inverse[:, 1, 1] + inverse[:, 2, 2], 0.0) / 2)
                                      / np.abs(flux[rows]), np.nan)
    return flux_err, position_err


def position_corrections(residual: np.ndarray, variance: np.ndarray, usable: np.ndarray, x: np.ndarray,
                         y: np.ndarray, flux: np.ndarray, psf: EPSF, fit_radius: float,
                         max_step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Each star's position correction from the residual image (data minus every star's model
    and the sky) on its own fitting pixels: the batched 3x3 least squares of (flux, flux dx,
    flux dy) against the star's PSF and its gradients, its neighbours held fixed.

    Why not in the global solve: with two shift columns per star its normal matrix fills in
    under sparse LU as a crowd gets denser (4 s for 5000 stars of a cluster core against 0.1 s
    for the fluxes alone), while a star's position hardly depends on its neighbours' positions
    once their light is subtracted; iterating the two (as ALLSTAR does) converges in a few steps.
    Steps are clipped to ``max_step`` px."""
    flat, dx, dy = pixel_footprints(residual.shape, x, y, fit_radius)
    on = flat >= 0
    on[on] = usable.ravel()[flat[on]]
    index = np.maximum(flat, 0)
    r = np.where(on, residual.ravel()[index], 0.0)
    w = np.where(on, 1.0 / variance.ravel()[index], 0.0)
    zone = psf.zone_of(x, y)
    zone = None if zone is None else zone[:, None]
    p = psf.evaluate(dx, dy, zone=zone)
    gx, gy = psf.gradient(dx, dy, zone)
    f = np.maximum(flux, 0.0)[:, None]
    # the star's own light is in the model: fit the residual plus it, with the linearised shift
    pixels = r + f * p
    basis = np.stack([p, -gx, -gy], axis=-1)
    normal = np.einsum("np,npi,npj->nij", w, basis, basis) + 1e-12 * np.eye(3)
    rhs = np.einsum("np,npi,np->ni", w, basis, pixels)
    solution = np.linalg.solve(normal, rhs[..., None])[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        step_x = np.where(solution[:, 0] > 0, solution[:, 1] / solution[:, 0], 0.0)
        step_y = np.where(solution[:, 0] > 0, solution[:, 2] / solution[:, 0], 0.0)
    return np.clip(np.nan_to_num(step_x), -max_step, max_step), np.clip(np.nan_to_num(step_y), -max_step, max_step)


def strongest_neighbours(normal: sparse.spmatrix, n: int, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """For each of the first ``n`` columns (the stars' fluxes), or of those among them in ``rows``,
    the ``k`` other flux columns most coupled to it in the normal matrix (-1 where a star has
    fewer neighbours), shape (len(rows), k)."""
    rows = np.arange(n) if rows is None else rows
    fluxes = sparse.coo_matrix(normal.tocsr()[rows][:, :n])
    off = rows[fluxes.row] != fluxes.col
    row, col, value = fluxes.row[off], fluxes.col[off], fluxes.data[off]
    diagonal = np.maximum(normal.diagonal()[:n], 1e-300)
    coupling = np.abs(value) / np.sqrt(diagonal[rows[row]] * diagonal[col])
    order = np.lexsort((-coupling, row))
    row, col = row[order], col[order]
    rank = np.arange(row.size) - np.searchsorted(row, row)  # position within its row
    chosen = rank < k
    neighbours = np.full((len(rows), k), -1, np.int64)
    neighbours[row[chosen], rank[chosen]] = col[chosen]
    return neighbours


def dense_blocks(normal: sparse.spmatrix, index: np.ndarray) -> np.ndarray:
    """The (n, p, p) dense sub-matrices of ``normal`` on each row's columns ``index`` (n, p);
    an index of -1 stands for a dummy parameter (1 on the diagonal, 0 elsewhere)."""
    matrix = normal.tocsr()
    rows = np.broadcast_to(index[:, :, None], index.shape + index.shape[1:])
    columns = np.broadcast_to(index[:, None, :], rows.shape)
    real = (rows >= 0) & (columns >= 0)
    blocks = np.zeros(rows.shape)
    blocks[real] = np.asarray(matrix[rows[real], columns[real]]).ravel()  # scipy's lookup, in C++
    dummy = index < 0
    blocks[:, np.arange(index.shape[1]), np.arange(index.shape[1])] += dummy
    return blocks


def render(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: EPSF,
           radii: np.ndarray | None = None, chunk: int = 20000) -> np.ndarray:
    """The frame's stars as ``psf`` draws them (float32), for residual images; ``radii`` as
    for :func:`fit_stars` (default the PSF's whole reach). A PSF with zones: each star its zone's."""
    if radii is None:
        radii = np.full(len(x), int(math.floor(psf.reach)))
    model = np.zeros(shape[0] * shape[1], np.float64)
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        star, flat, dx, dy = star_footprints(shape, x[part], y[part], radii[part])
        zone = psf.zone_of(x[part], y[part])
        values = psf.evaluate(dx, dy, wing_table=True, zone=None if zone is None else zone[star])
        model += np.bincount(flat, weights=flux[part][star] * values, minlength=model.size)
    return model.reshape(shape).astype(np.float32)


def merge_close_pairs(x: np.ndarray, y: np.ndarray, flux: np.ndarray, separation: float) -> np.ndarray:
    """Indices of the stars to keep when two lie closer than ``separation``: the brighter of each
    pair (ALLSTAR's rule: such a pair is one star fitted twice; the next fit gives it the pair's flux)."""
    keep = np.ones(len(x), bool)
    if len(x) < 2:
        return np.flatnonzero(keep)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(separation, output_type="ndarray")
    if len(pairs) == 0:
        return np.flatnonzero(keep)
    keep[np.where(flux[pairs[:, 0]] < flux[pairs[:, 1]], pairs[:, 0], pairs[:, 1])] = False  # the fainter
    return np.flatnonzero(keep)


def photon_variance(model: np.ndarray, sky_variance: float, electrons_per_unit: float,
                    psf_error: float = 0.0) -> np.ndarray:
    """Noise variance per pixel (image units^2): the sky's (photons and read noise, as measured)
    plus the Poisson noise of the stars' light, through the gain, plus ``psf_error`` (a fraction)
    of the stars' light for what a learned PSF gets wrong: near a bright star that, not the
    photons, limits how well the model fits."""
    light = np.maximum(model, 0.0)
    return sky_variance + light / electrons_per_unit + (psf_error * light) ** 2


def cell_index(rows: np.ndarray, columns: np.ndarray, cell: int, nx: int) -> np.ndarray:
    """The index of the ``cell`` x ``cell`` block (counted row by row from pixel (0, 0)) that each
    pixel falls in, on a frame ``nx`` pixels wide."""
    return (rows // cell) * -(-nx // cell) + columns // cell


def cell_image(values: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """Per-cell values (one per :func:`cell_index`) spread over the pixels of a frame of ``shape``."""
    ny, nx = shape
    blocks = np.asarray(values).reshape(-(-ny // cell), -(-nx // cell))
    return np.repeat(np.repeat(blocks, cell, 0), cell, 1)[:ny, :nx]


def noise_excess(residual: np.ndarray, variance: np.ndarray, fitted: np.ndarray, size: int) -> np.ndarray:
    """Per pixel, how much more the residual scatters than the noise model says: the mean of
    residual**2 / variance over the fitted pixels of the ``size`` x ``size`` box around it, at
    least 1 (1 where the box holds fewer than ``size`` fitted pixels). float32.

    What it measures in a cluster is the confusion noise of the stars too faint to detect, and
    near a bright star what its learned PSF gets wrong: light the model does not hold, which
    the photon noise knows nothing about. Scaling a star's variance by it gives it the errors
    its scatter shows (DAOPHOT and DOLPHOT leave that out). A box a few fitting radii wide keeps
    it local: a bright star's imperfect subtraction is charged to its near neighbours, not to
    every star of a sky cell."""
    use = fitted.astype(np.float32)
    chi2 = np.zeros(residual.shape, np.float32)
    np.divide(residual**2, variance, out=chi2, where=fitted)
    count = ndimage.uniform_filter(use, size, mode="constant")  # compiled moving means
    total = ndimage.uniform_filter(chi2, size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(count * size**2 >= size, total / count, 1.0)
    return np.maximum(excess, 1.0).astype(np.float32)


def snr(flux: np.ndarray, flux_err: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux_err > 0, flux / flux_err, 0.0)


def fit_radius_for(fwhm: float) -> float:
    """DAOPHOT's choice, about one FWHM, and never under 1.5 px (an undersampled HST PSF)."""
    return max(1.5, 1.0 * fwhm) if math.isfinite(fwhm) else 1.5
