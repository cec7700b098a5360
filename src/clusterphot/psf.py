"""The point-spread function of a frame, learned from its own bright stars.

An *effective* PSF (Anderson & King 2000, PASP 112, 1360): the fraction of a star's flux that
falls into a pixel whose centre lies (dx, dy) pixels from the star, tabulated on a grid finer
than the pixels (``oversampling`` nodes per pixel). Being an average of real pixels, it already
holds the pixel response, so a star's model is ``flux * psf(x_pixel - x_star, y_pixel - y_star)``
with no integration over pixels.

How it is built (:func:`build_epsf`), and why not with photutils' EPSFBuilder: it is the same
algorithm, but photutils 3.0 (our pin) normalises the result so that fluxes come out 2x the
photon-noise scatter (fixed only in 3.1, which needs Python 3.12) and takes 3.5-14 s per frame.
Here every step is a vectorised numpy operation over all stars at once:

1. cut stamps around bright, isolated, unsaturated stars; their pixels, divided by the star's
   flux after removing its sky, are samples of the effective PSF at known offsets;
2. average the samples falling on each grid node (sigma-clipped, so a cosmic ray or a faint
   neighbour does not bias it) and smooth (a quartic Savitzky-Golay filter about 1.2 FWHM
   wide, which keeps the peak's shape);
3. beyond 1.5 FWHM, replace the nodes by a Moffat profile fitted to the azimuthal medians of
   all samples (:func:`wing_profile`); the PSF carries it beyond its grid as its ``wing``, out
   to its ``reach``, so a saturated star's far wings are modelled, not left for the residual
   passes to take for stars;
4. refit every star's flux, position and sky with the new PSF, re-centre the PSF on its peak,
   and repeat.

A large frame gets one such PSF per tile (:func:`clusterphot.psfphot.measure_frame_psf`), and
then each star is fitted with the tiles' PSFs interpolated bilinearly to the centre of its zone
of its tile (:class:`PSFGrid`, as photutils' GriddedPSFModel interpolates; a zone's tables
replace the tile PSF's within its wing's start, :class:`PSFZones`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import FrameError
from .photometry import gather

# FWHM: the tabulated PSF holds out to WING_INNER, the fitted wing profile from WING_OUTER on
WING_INNER = 1.5
WING_OUTER = 2.5
WING_REACH = 4.0  # times the grid's radius: how far a PSF with a fitted wing holds a star's light
FINE_SAMPLING = 32  # per pixel: the spline's table for bilinear interpolation (EPSF._fine_tables)
WING_TABLE_SAMPLING = 64  # per px^2: the far wing's table (EPSF.far_wing_table)


def cubic_bspline(u: np.ndarray) -> np.ndarray:
    """The cubic B-spline basis function at ``u`` (in nodes), as ndimage's order-3 splines use it."""
    a = np.abs(u)
    return np.where(a < 1.0, 2.0 / 3.0 - a**2 + 0.5 * a**3, np.where(a < 2.0, (2.0 - a) ** 3 / 6.0, 0.0))


@functools.lru_cache(maxsize=8)
def fine_table_weights(size: int, oversampling: int, half: int) -> tuple[slice, np.ndarray]:
    """The cubic B-spline's weights (table offsets x grid nodes) that tabulate a grid of ``size``
    nodes out to ``half`` px (EPSF._fine_tables), and the nodes that have any (a table reaches a
    few nodes past ``half``; the grid's outer nodes have none). Cached: every PSF of a frame has
    the same grid, and a frame's zones (PSFGrid.zoned) each tabulate one (computing the weights
    was two thirds of a zone's time)."""
    centre = size // 2
    first, last = centre - half * oversampling - 2, centre + half * oversampling + 2
    offsets = np.arange(-half * FINE_SAMPLING, half * FINE_SAMPLING + 1) / FINE_SAMPLING
    u = centre + offsets[:, None] * oversampling - np.arange(first, last + 1)[None, :]
    weights = cubic_bspline(u)
    weights.setflags(write=False)
    return slice(first, last + 1), weights


def bilinear(tables: list[np.ndarray], row: np.ndarray, column: np.ndarray,
             table: np.ndarray | None = None) -> list[np.ndarray]:
    """``tables`` (all of one shape) interpolated bilinearly at fractional (row, column), which
    must lie within them, at least 0 and below their last row and column. The same as
    ndimage.map_coordinates(order=1); written out because the weights are then computed once for
    all the tables (the values, or both derivatives), which makes it twice as fast per table.
    Stacks of tables (n, rows, columns) with ``table`` (which one, per value; row's shape): each
    value from its own table of the stack, at no more cost than one table."""
    height, width = tables[0].shape[-2:]
    r0 = np.minimum(row.astype(np.intp), height - 2)  # floor: both are >= 0 (rounding at the edge)
    c0 = np.minimum(column.astype(np.intp), width - 2)
    fr, fc = row - r0, column - c0
    at = r0 * width + c0
    if table is not None:
        at += table * (height * width)
    values = []
    for table in tables:
        flat = table.ravel()
        # the neighbours through views shifted by one column and one row (no index arrays added)
        top = flat[at]
        top += (flat[1:][at] - top) * fc
        bottom = flat[width:][at]
        bottom += (flat[width + 1 :][at] - bottom) * fc
        top += (bottom - top) * fr
        values.append(top)
    return values


@dataclass(frozen=True)
class EPSF:
    """An effective PSF on a grid of ``oversampling`` nodes per pixel, the star at the central node."""

    data: np.ndarray  # (n, n), n = 2 * radius * oversampling + 1; see core_normalised
    oversampling: int
    n_stars: int = 0  # stars it was built from (0: given, not built)
    # the wings beyond the grid: (alpha, beta, ln amplitude) of a Moffat profile (wing_profile),
    # or None: the PSF ends with its grid
    wing: tuple[float, float, float] | None = None
    # px: from here out the grid holds the wing itself (with_model_wings), and the wing's formula
    # gives the PSF (a cubic spline costs ten times as much); None: the grid's last pixel
    wing_from: float | None = None
    # a PSF that changes over the image it is evaluated on (PSFGrid.zoned): each zone's own
    # tables; None: the same PSF everywhere. Only the core, within ``wing_start``, changes: the
    # wing beyond is this PSF's
    zones: PSFZones | None = field(default=None, repr=False, compare=False)
    _splines: tuple = field(init=False, repr=False, compare=False)
    _fine: list = field(init=False, repr=False, compare=False)  # [tables or None], once computed

    def __post_init__(self):
        data = np.asarray(self.data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != data.shape[1] or data.shape[0] % 2 == 0:
            raise ValueError(f"an ePSF grid must be square with an odd side, not {data.shape}")
        object.__setattr__(self, "data", data)
        # Cubic-spline coefficients of the values and of their derivatives, computed once:
        # evaluating them at any offset is then a local 4x4 sum (ndimage.map_coordinates).
        gy, gx = np.gradient(data)
        splines = tuple(ndimage.spline_filter(a, order=3, mode="constant") for a in (data, gx, gy))
        object.__setattr__(self, "_splines", splines)
        object.__setattr__(self, "_fine", [])  # tabulated at its first evaluation (5 MB)

    def _fine_tables(self) -> tuple[np.ndarray, ...] | None:
        """The cubic splines of the values and derivatives tabulated FINE_SAMPLING times per pixel
        out to a pixel past ``wing_start`` (None without a wing: the spline then holds out to the
        grid's edge), for bilinear interpolation: a fit evaluates the PSF at millions of pixels,
        and a cubic spline's 16 coefficients per pixel cost 2.5 times as much as a table's four,
        for a difference below 1e-4 of the peak. Tabulated exactly, as the separable product of
        the cubic B-spline's weights with the coefficients (B C B^T)."""
        if self.wing is None:
            return None
        half = math.ceil(self.wing_start) + 1
        centre = self.data.shape[0] // 2
        if half * self.oversampling + 3 > centre:  # the table would reach the grid's edge
            return None
        nodes, weights = fine_table_weights(self.data.shape[0], self.oversampling, half)
        return tuple(weights @ coefficients[nodes, nodes] @ weights.T for coefficients in self._splines)

    def zone_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """The zone (its tables' index in ``zones``) of stars at (x, y), pixels of the image the
        PSF is evaluated on; None for a PSF that is the same everywhere."""
        if self.zones is None:
            return None
        return self.zones.of(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))

    @property
    def radius(self) -> float:
        """Half-size of the tabulated PSF in pixels: beyond it the PSF is its ``wing`` (or 0)."""
        return (self.data.shape[0] // 2) / self.oversampling

    @property
    def reach(self) -> float:
        """How far (px) the PSF holds a star's light: WING_REACH times the grid's radius with a
        wing (a saturated star's light is above the sky's noise far beyond its grid), the grid's
        radius without."""
        return WING_REACH * self.radius if self.wing is not None else self.radius

    @property
    def wing_start(self) -> float:
        """Where (px) the wing's formula takes over from the grid: ``wing_from``, at most the
        grid's last pixel (inf without a wing)."""
        if self.wing is None:
            return math.inf
        last = self.radius - 1.0
        return last if self.wing_from is None else min(self.wing_from, last)

    def _beyond_grid(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Offsets where the wing, not the grid, gives the PSF."""
        if self.wing is None:
            return np.zeros(np.shape(dx), bool)
        return dx**2 + dy**2 > self.wing_start**2

    def _wing(self, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The wing's value and its derivatives in dx and dy."""
        alpha, beta, _ = self.wing
        r2 = dx**2 + dy**2
        value = self.wing_value(r2)
        slope = -2.0 * beta * value / (alpha**2 + r2)  # d value / d (r**2) times 2
        return value, slope * dx, slope * dy

    def light_beyond(self, radius: float) -> float:
        """The fraction of a star's flux (in the PSF's units) beyond ``radius`` px out to its
        ``reach``: the integral of its Moffat wing (0 without a wing). With the light within
        an aperture of that radius it makes the star's total: an aperture correction to 9 px
        leaves out about 1 per cent of the light."""
        if self.wing is None or radius >= self.reach:
            return 0.0
        alpha, beta, log_amplitude = self.wing
        inner, outer = 1.0 + (radius / alpha) ** 2, 1.0 + (self.reach / alpha) ** 2
        scale = math.exp(log_amplitude) * math.pi * alpha**2
        if abs(beta - 1.0) < 1e-9:
            return scale * math.log(outer / inner)
        return scale * (inner ** (1.0 - beta) - outer ** (1.0 - beta)) / (beta - 1.0)

    def wing_value(self, r2: np.ndarray) -> np.ndarray:
        """The wing's value at squared radii ``r2`` (px^2), in ``r2``'s precision (the far wings
        are drawn in float32), its derivatives not computed."""
        alpha, beta, log_amplitude = self.wing
        return np.exp(log_amplitude - beta * np.log1p(r2 / alpha**2))

    @cached_property
    def far_wing_table(self) -> np.ndarray:
        """The wing's value (float32) at squared radii 0, 1/64, 2/64, ... px^2 out to ``reach``,
        for drawing far wings by lookup at the nearest entry: four times faster than the
        formula (a logarithm and an exponential per pixel), and off by at most 0.2 per cent of
        the wing where it falls fastest, a wing itself uncertain by a few per cent."""
        r2 = np.arange(int(math.ceil(self.reach**2 * WING_TABLE_SAMPLING)) + 2) / WING_TABLE_SAMPLING
        return self.wing_value(r2).astype(np.float32)

    def far_wing_value(self, r2: np.ndarray) -> np.ndarray:
        """The wing at squared radii ``r2`` (px^2, float32, within ``reach``) from
        ``far_wing_table``."""
        at = r2 * np.float32(WING_TABLE_SAMPLING)
        at += np.float32(0.5)
        return np.take(self.far_wing_table, at.astype(np.int32))

    def _nodes(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        centre = self.data.shape[0] // 2
        return np.stack([np.asarray(dy) * self.oversampling + centre, np.asarray(dx) * self.oversampling + centre])

    def evaluate(self, dx: np.ndarray, dy: np.ndarray, wing_table: bool = False,
                 zone: np.ndarray | None = None) -> np.ndarray:
        """The fraction of a star's flux in pixels offset (dx, dy) from it (0 beyond ``reach``).
        ``wing_table``: the wing from ``far_wing_table`` (within 0.1 per cent of its formula, but
        in steps: for drawing model images, not for fits and derivatives). ``zone``: for a PSF
        with ``zones``, the zone of each offset's star (:meth:`zone_of`, broadcast to dx)."""
        dx, dy = np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
        zone = None if zone is None else np.broadcast_to(zone, dx.shape)
        beyond = self._beyond_grid(dx, dy)
        if not beyond.any():
            return self._spline((0,), dx, dy, zone)[0]
        values = np.zeros(dx.shape)
        values[~beyond] = self._spline((0,), dx[~beyond], dy[~beyond], None if zone is None else zone[~beyond])[0]
        r2 = dx**2 + dy**2
        if not wing_table:
            values[beyond] = self._wing(dx[beyond], dy[beyond])[0]
            return np.where(r2 <= self.reach**2, values, 0.0)
        # as far wings are drawn: a model of a frame's stars is mostly wing pixels, and the
        # formula's logarithm and exponential were half of drawing it
        wing = beyond & (r2 <= self.reach**2)
        values[wing] = self.far_wing_value(r2[wing].astype(np.float32))
        return values

    def gradient(self, dx: np.ndarray, dy: np.ndarray, zone: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """d psf / d dx and d psf / d dy at the offsets (per pixel); ``zone`` as for :meth:`evaluate`."""
        dx, dy = np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
        zone = None if zone is None else np.broadcast_to(zone, dx.shape)
        beyond = self._beyond_grid(dx, dy)
        gx, gy = self._spline((1, 2), dx[~beyond], dy[~beyond], None if zone is None else zone[~beyond])
        gx, gy = gx * self.oversampling, gy * self.oversampling
        if not beyond.any():
            return gx.reshape(dx.shape), gy.reshape(dx.shape)
        grad_x, grad_y = np.zeros(dx.shape), np.zeros(dx.shape)
        grad_x[~beyond], grad_y[~beyond] = gx, gy
        _, grad_x[beyond], grad_y[beyond] = self._wing(dx[beyond], dy[beyond])
        return grad_x, grad_y

    def _spline(self, which: tuple[int, ...], dx, dy, zone: np.ndarray | None = None) -> list[np.ndarray]:
        """The splines ``which`` (0: values, 1 and 2: d/dx and d/dy per node) at the offsets: from
        the table (bilinear), made at the first evaluation (8 ms), for a PSF with a wing; from the
        spline's coefficients for one without. Always the same of the two for a PSF: it had been
        the spline for its first 100,000 offsets and the table after, and a star drawn before
        and after differed by 1e-4 of its peak, enough to move an artificial star's fit by two
        of its errors and a residual detection across its threshold. With ``zones`` and
        ``zone``, each offset from its zone's table (zones exist only where the table does)."""
        dx, dy = np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
        if not self._fine:
            self._fine.append(self._fine_tables())
        tables = self._fine[0]
        if tables is not None and dx.size:
            half = (tables[0].shape[0] // 2) / FINE_SAMPLING
            if max(np.abs(dx).max(), np.abs(dy).max()) < half:
                if zone is not None and self.zones is not None:
                    return bilinear([self.zones.tables[k] for k in which], (dy + half) * FINE_SAMPLING,
                                    (dx + half) * FINE_SAMPLING, zone)
                return bilinear([tables[k] for k in which], (dy + half) * FINE_SAMPLING, (dx + half) * FINE_SAMPLING)
        nodes = self._nodes(dx.ravel(), dy.ravel())
        return [ndimage.map_coordinates(self._splines[k], nodes, order=3, mode="constant", cval=0.0,
                                        prefilter=False).reshape(dx.shape) for k in which]

    def envelope(self, radius: np.ndarray) -> np.ndarray:
        """The PSF's largest absolute value at or beyond each radius (px): decreasing, so a
        star's light is below a level everywhere beyond the radius where this falls below it."""
        size = self.data.shape[0]
        v, u = np.mgrid[:size, :size] - size // 2
        node_radius = np.hypot(u, v) / self.oversampling
        order = np.argsort(node_radius.ravel())[::-1]
        outer_max = np.maximum.accumulate(np.abs(self.data.ravel()[order]))[::-1]  # max at >= radius
        radii_sorted = node_radius.ravel()[order][::-1]
        # the PSF is evaluated on pixels up to 0.5*sqrt(2) px from the footprint's radius
        inner = np.maximum(np.asarray(radius, float) - 0.71, 0.0)
        at = np.searchsorted(radii_sorted, inner)
        on_grid = outer_max[np.minimum(at, outer_max.size - 1)]
        if self.wing is None:
            return np.where(inner <= self.radius, on_grid, 0.0)
        # the wing falls monotonically: beyond the grid its value at the radius is its largest
        wing = self._wing(inner, np.zeros_like(inner))[0]
        return np.where(inner < self.wing_start, np.maximum(on_grid, wing),
                        np.where(inner <= self.reach, wing, 0.0))

    @property
    def fwhm(self) -> float:
        """Full width at half maximum (px), from the area of the pixel-phase-0 PSF above half its peak."""
        os = self.oversampling
        peak = self.data.max()
        above = (self.data >= 0.5 * peak).sum() / os**2
        return float(2.0 * math.sqrt(above / math.pi))


@dataclass(frozen=True)
class PSFZones:
    """A PSF's zones (:meth:`PSFGrid.zoned`): those of the tile with core ``core`` (frame
    pixels; :func:`zone_layout`), on an image whose pixel (0, 0) is the frame's ``origin``, and
    their tables (the layout of ``EPSF._fine_tables``, stacked in :func:`zone_index`'s order:
    values, d/dx, d/dy)."""

    core: tuple[int, int, int, int]
    zone: int  # px: the zones' largest side
    origin: tuple[int, int]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray]  # each (zones, m, m)

    def of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The zone of positions (x, y) on the image; beyond the zones, the nearest (a tile's margin)."""
        return zone_index(self.core, self.zone, x + self.origin[0], y + self.origin[1])


def axis_weights(centres: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of a grid with nodes at ``centres`` (increasing): the nodes below and above
    each ``value`` and the upper one's weight: linear between them, and beyond the end nodes
    (half a tile, along a frame's edges) the line through the last two carried on. Held constant
    there instead (photutils' GriddedPSFModel does), the outer half-tiles' stars of
    bench/varying_psf.py came out 6 mmag off, the PSF changing on where the grid stops."""
    if len(centres) == 1:
        zero = np.zeros(np.shape(value), np.intp)
        return zero, zero, np.zeros(np.shape(value))
    lower = np.clip(np.searchsorted(centres, value) - 1, 0, len(centres) - 2)
    weight = (value - centres[lower]) / (centres[lower + 1] - centres[lower])
    return lower, lower + 1, weight


@dataclass(frozen=True)
class PSFGrid:
    """A frame's PSF as it changes across it: the PSFs of its tiles (a regular grid of tiles,
    :func:`clusterphot.psfphot.tile_boxes`), each taken to hold at its tile's centre, and between
    the centres the four around a point interpolated bilinearly (photutils' GriddedPSFModel does
    the same); beyond the outermost centres, along the frame's edges, extrapolated linearly
    (:func:`axis_weights`).

    Why: one PSF per tile is the tile's stars' average, too broad on one side of a tile and too
    narrow on the other when the PSF changes across it (``make bench-varying-psf``: bright
    stars drifting by 11 mmag across a 1024-px tile)."""

    centres_x: np.ndarray  # px, increasing: the tiles' columns
    centres_y: np.ndarray  # the tiles' rows
    source: np.ndarray  # (rows, columns): the tile (index into ``psfs``) whose PSF each node holds
    psfs: tuple[EPSF, ...]

    @classmethod
    def from_tiles(cls, cores: list[tuple[int, int, int, int]], psfs: list[EPSF],
                   own: list[bool] | None = None) -> PSFGrid:
        """The grid of the tiles with these cores (x0, y0, x1, y1; any order) and PSFs. A node
        whose tile learned no PSF of its own (``own`` False: too few PSF stars, it had the
        frame's) or is not among them (no stars) holds the PSF of the nearest tile that learned
        one: the frame's average there would pull its neighbours' stars towards it (a narrow
        strip along the frame's edge, or a sparse corner). ValueError when none learned one."""
        own = np.ones(len(cores), bool) if own is None else np.asarray(own, bool)
        if not own.any():
            raise ValueError("no tile learned a PSF of its own: there is nothing to interpolate")
        centre_x = np.array([(core[0] + core[2]) / 2 - 0.5 for core in cores])  # pixel i spans i - 0.5 to i + 0.5
        centre_y = np.array([(core[1] + core[3]) / 2 - 0.5 for core in cores])
        columns, rows = np.unique(centre_x), np.unique(centre_y)
        learned = np.flatnonzero(own)
        node_y, node_x = np.meshgrid(rows, columns, indexing="ij")
        # every node's nearest learned tile (a few hundred nodes by a few hundred tiles at most)
        distance = np.hypot(node_x[..., None] - centre_x[learned], node_y[..., None] - centre_y[learned])
        source = learned[np.argmin(distance, axis=-1)]
        return cls(columns, rows, source, tuple(psfs))

    def weights(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The four tiles around each position (frame pixels) as (row, column) and their bilinear
        weights (summing to 1), each of shape (n, 4)."""
        x, y = np.atleast_1d(np.asarray(x, np.float64)), np.atleast_1d(np.asarray(y, np.float64))
        left, right, along_x = axis_weights(self.centres_x, x)
        below, above, along_y = axis_weights(self.centres_y, y)
        rows = np.stack([below, below, above, above], axis=1)
        columns = np.stack([left, right, left, right], axis=1)
        weights = np.stack([(1 - along_x) * (1 - along_y), along_x * (1 - along_y),
                            (1 - along_x) * along_y, along_x * along_y], axis=1)
        return rows, columns, weights

    def interpolate(self, values: list[float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-tile values (one per tile given to :meth:`from_tiles`, each tile's correction to
        total) interpolated at positions (x, y) as the PSFs are, node by node from the same tiles."""
        table = np.asarray(values, dtype=np.float64)[self.source]
        rows, columns, weights = self.weights(x, y)
        return (weights * table[rows, columns]).sum(axis=1)

    def grid_at(self, x: float, y: float) -> np.ndarray:
        """The PSF's grid (EPSF.data's layout) at frame position (x, y): its four nearest tiles' mixed."""
        rows, columns, weights = self.weights(x, y)
        grid = np.zeros(self.psfs[0].data.shape)
        for row, column, weight in zip(rows[0], columns[0], weights[0]):
            if weight != 0:
                grid += weight * self.psfs[self.source[row, column]].data
        return grid

    def interpolates(self, base: EPSF) -> bool:
        """Whether a tile's PSF ``base`` can change with the grid: the grids have one layout, and
        ``base`` has a wing (the tables that zones replace exist only with one)."""
        shapes = {psf.data.shape for psf in self.psfs} | {base.data.shape}
        oversampling = {psf.oversampling for psf in self.psfs} | {base.oversampling}
        return len(shapes) == 1 and len(oversampling) == 1 and base.wing is not None

    def zone_psf(self, base: EPSF, centre: tuple[float, float]) -> EPSF:
        """The grid's PSF at ``centre`` (frame pixels), with ``base``'s wing from its
        ``wing_start`` out, blended into it over the pixel before: a fit draws a bright star's
        far wing (beyond ``wing_start``) with ``base``'s formula, and the tiles' grids there hold
        each its own wing; unblended, the model stepped at ``wing_start`` by up to 0.4 sky
        sigma around the bright stars of a frame whose PSF widens by a quarter across it."""
        grid = self.grid_at(*centre)
        if base.wing is not None:
            grid = with_model_wings(grid, base.oversampling, base.wing, base.wing_start - 1.0, base.wing_start)
        return EPSF(grid, base.oversampling, base.n_stars, base.wing, base.wing_from)

    def zoned(self, base: EPSF, core: tuple[int, int, int, int], zone: int,
              origin: tuple[int, int] = (0, 0)) -> EPSF:
        """``base`` (a tile's PSF) changing over the tile whose core is ``core`` (frame pixels): the
        core cut into zones of at most ``zone`` px (:func:`zone_layout`), each with the grid's PSF
        at its centre; stars beyond the core (its margin) take the nearest zone's. ``origin``:
        the frame pixel of the image the PSF will be evaluated on (a tile's box's corner, or
        (0, 0) for the frame). The zones depend on the core alone: every caller draws a star
        with the same PSF.

        ``base`` as it is when :meth:`interpolates` it not."""
        if zone <= 0 or not self.interpolates(base):
            return base
        nx, ny, _, _ = zone_layout(core, zone)
        tables = []
        for index in range(nx * ny):  # a few zones per tile (16 of 256 px in a 1024-px tile)
            zone_tables = self.zone_psf(base, zone_centre(core, zone, index))._fine_tables()
            if zone_tables is None:
                return base
            tables.append(zone_tables)
        stacked = tuple(np.stack(parts) for parts in zip(*tables))
        return replace(base, zones=PSFZones(tuple(core), zone, tuple(origin), stacked))


def zone_layout(core: tuple[int, int, int, int], zone: int) -> tuple[int, int, float, float]:
    """A tile's core (x0, y0, x1, y1) cut into equal zones of at most ``zone`` px: how many
    across and down, and their width and height (px)."""
    x0, y0, x1, y1 = core
    nx, ny = max(1, math.ceil((x1 - x0) / zone)), max(1, math.ceil((y1 - y0) / zone))
    return nx, ny, (x1 - x0) / nx, (y1 - y0) / ny


def zone_index(core: tuple[int, int, int, int], zone: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The zone of ``core`` (:func:`zone_layout`, counted row by row) that holds each position
    (x, y) (frame pixels), or the nearest one (a star in the tile's margin, or moved past the
    frame's edge)."""
    nx, ny, width, height = zone_layout(core, zone)
    column = np.clip(np.floor((np.asarray(x, np.float64) - core[0] + 0.5) / width), 0, nx - 1).astype(np.intp)
    row = np.clip(np.floor((np.asarray(y, np.float64) - core[1] + 0.5) / height), 0, ny - 1).astype(np.intp)
    return row * nx + column


def zone_centre(core: tuple[int, int, int, int], zone: int, index: int) -> tuple[float, float]:
    """The centre (frame pixels) of zone ``index`` of ``core`` (:func:`zone_index`)."""
    nx, _, width, height = zone_layout(core, zone)
    row, column = divmod(int(index), nx)
    return core[0] - 0.5 + (column + 0.5) * width, core[1] - 0.5 + (row + 0.5) * height


def psf_stamps(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
               radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel values (NaN where masked or off the frame) in square stamps of half-size ``radius``
    around each star's nearest pixel, and the pixels' offsets from the star (dx, dy).

    Shapes (n_stars, n_pixels). The offsets are those of the pixels' centres from the star's
    position, so a star exactly on a pixel centre has offsets that are whole numbers.
    """
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    oy, ox = oy.ravel(), ox.ravel()
    values = gather(data, bad, xi, yi, oy, ox).astype(np.float64)
    dx = (xi - x)[:, None] + ox[None, :]
    dy = (yi - y)[:, None] + oy[None, :]
    return values, dx, dy


def fit_stamps(psf: EPSF, values: np.ndarray, dx: np.ndarray, dy: np.ndarray, sky: np.ndarray,
               fit_radius: float, n_iter: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each stamp's flux and position correction by least squares with ``psf`` on the pixels
    within ``fit_radius`` of the star (its core: the wings hold more of the neighbours' light
    than of its own), the sky given; all stamps at once (a batch of 3x3 normal equations),
    ``n_iter`` Gauss-Newton steps. Returns flux, shift_x, shift_y; the new position is the old
    one plus the shift. (One step is the default: :func:`build_epsf` calls it once per
    iteration, so the stars' positions converge with the PSF; three steps each changed
    nothing on the benchmark frames but the time.)"""
    n = values.shape[0]
    shift_x, shift_y = np.zeros(n), np.zeros(n)
    # only the stamp's columns that can come within the fit radius (the stars move < 1 px):
    # evaluating the PSF on the whole stamp would cost 20 times as much for nothing
    reach = np.hypot(dx, dy).min(axis=0) <= fit_radius + 1.5
    values, dx, dy = values[:, reach], dx[:, reach], dy[:, reach]
    pixels = values - sky[:, None]
    flux = np.zeros(n)
    for _ in range(n_iter):
        ex, ey = dx - shift_x[:, None], dy - shift_y[:, None]
        use = np.isfinite(pixels) & (ex**2 + ey**2 <= fit_radius**2)
        p = psf.evaluate(ex, ey)
        gx, gy = psf.gradient(ex, ey)
        # model = f p, linearised in the shift: f p - (f sx') gx - (f sy') gy
        basis = np.stack([p, -gx, -gy], axis=-1) * use[..., None]
        normal = np.einsum("npi,npj->nij", basis, basis)
        rhs = np.einsum("npi,np->ni", basis, np.where(use, pixels, 0.0))
        solution = np.linalg.solve(normal + 1e-12 * np.eye(3), rhs[..., None])[..., 0]
        flux = solution[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            step_x = np.clip(np.where(flux > 0, solution[:, 1] / flux, 0.0), -0.5, 0.5)
            step_y = np.clip(np.where(flux > 0, solution[:, 2] / flux, 0.0), -0.5, 0.5)
        shift_x, shift_y = shift_x + step_x, shift_y + step_y
    return flux, shift_x, shift_y


def ring_sky(values: np.ndarray, radius: int) -> np.ndarray:
    """Each square stamp's sky: the median of its outermost ring of pixels."""
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    border = ((np.abs(ox) == radius) | (np.abs(oy) == radius)).ravel()
    return np.nanmedian(values[:, border], axis=1)


def neighbour_pixels(dx: np.ndarray, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                     others_x: np.ndarray, others_y: np.ndarray, radius: float) -> np.ndarray:
    """True for stamp pixels within ``radius`` of another detected star: their light is not the
    star's own, so they stay out of the PSF."""
    stamp_reach = np.sqrt(np.max(dx**2 + dy**2)) + radius
    # (star, neighbour) pairs close enough to touch the star's stamp; the star's own detection
    # (within a pixel of it: PSF stars have no neighbour within several FWHM) is not a neighbour
    pairs = cKDTree(np.column_stack([x, y])).sparse_distance_matrix(
        cKDTree(np.column_stack([others_x, others_y])), stamp_reach, output_type="coo_matrix")
    not_self = pairs.data > 1.0
    star, other = pairs.row[not_self], pairs.col[not_self]
    near = np.zeros(dx.shape, bool)
    # pixel offsets from each neighbour: (pixel - star) - (neighbour - star)
    ox = dx[star] - (others_x[other] - x[star])[:, None]
    oy = dy[star] - (others_y[other] - y[star])[:, None]
    hit = ox**2 + oy**2 <= radius**2
    pair, pixel = np.nonzero(hit)
    near[star[pair], pixel] = True
    return near


def stack_samples(values: np.ndarray, dx: np.ndarray, dy: np.ndarray, size: int, oversampling: int,
                  clip: float = 3.0, n_clip: int = 3,
                  errors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean of the samples falling on each node of a (size, size) grid, and the
    number of samples kept per node. Samples are the normalised pixel values; a sample belongs
    to the node nearest its offset. ``errors`` (each sample's noise): the mean is weighted by
    1 / error, and a sample is clipped where (sample - mean) / error is over ``clip`` times the
    node's rms of those. Samples with an error that is not finite and positive are left out."""
    centre = size // 2
    u = np.rint(dx * oversampling).astype(np.intp) + centre
    v = np.rint(dy * oversampling).astype(np.intp) + centre
    use = np.isfinite(values) & (u >= 0) & (u < size) & (v >= 0) & (v < size)
    if errors is not None:
        use &= np.isfinite(errors) & (errors > 0)
    node = (v * size + u)[use]
    sample = values[use]
    error = np.ones(sample.size) if errors is None else errors[use]
    weight = 1.0 / error  # the sample's S/N (build_epsf says why not its inverse variance)
    nodes = size * size

    def weighted_mean(keep):
        total = np.bincount(node[keep], weights=(weight * sample)[keep], minlength=nodes)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / np.bincount(node[keep], weights=weight[keep], minlength=nodes)

    keep = np.ones(sample.size, bool)
    for _ in range(n_clip):
        # each sample's deviation in units of its own error; the node's rms of those sets the clip
        deviation = np.abs(sample - weighted_mean(keep)[node]) / error
        square = np.bincount(node[keep], weights=deviation[keep] ** 2, minlength=nodes)
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt(square / np.bincount(node[keep], minlength=nodes))
        keep = deviation <= clip * rms[node] + 1e-12
    count = np.bincount(node[keep], minlength=nodes)
    mean = np.where(count > 0, weighted_mean(keep), np.nan)
    return mean.reshape(size, size), count.reshape(size, size)


def savgol_kernel(window: int, order: int = 4) -> np.ndarray:
    """The Savitzky-Golay smoothing kernel: the weights that give the value at a window's centre
    of the least-squares polynomial of ``order`` through its ``window`` points.

    Written out (as scipy.signal.savgol_coeffs computes it, which a test checks) because
    importing scipy.signal costs every photometry and plot job about a second."""
    half = window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    vandermonde = offsets[:, None] ** np.arange(order + 1)[None, :]
    return np.linalg.pinv(vandermonde)[0]


def fill_and_smooth(grid: np.ndarray, window: int) -> np.ndarray:
    """Nodes without samples filled from their neighbours (normalised Gaussian smoothing), then a
    separable quartic Savitzky-Golay smoothing (:func:`savgol_kernel`) that keeps the peak's shape."""
    empty = ~np.isfinite(grid)
    if empty.any():
        weight = ndimage.gaussian_filter((~empty).astype(float), 1.5, mode="constant")
        filled = ndimage.gaussian_filter(np.where(empty, 0.0, grid), 1.5, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(empty, np.where(weight > 0, filled / weight, 0.0), grid)
    if window >= 3:
        kernel = savgol_kernel(window)
        grid = ndimage.convolve1d(grid, kernel, axis=0, mode="constant", cval=0.0)
        grid = ndimage.convolve1d(grid, kernel, axis=1, mode="constant", cval=0.0)
    return grid


def recentred(grid: np.ndarray, oversampling: int, fwhm: float) -> np.ndarray:
    """The grid shifted so that its light-weighted centre within one FWHM lies on the central
    node: the PSF, not the stars, defines where a star 'is', and this keeps it from drifting
    from one iteration to the next."""
    size = grid.shape[0]
    centre = size // 2
    v, u = np.mgrid[:size, :size] - centre
    core = (u**2 + v**2 <= (fwhm * oversampling) ** 2) & (grid > 0)
    weight = np.where(core, grid, 0.0)
    cu, cv = (weight * u).sum() / weight.sum(), (weight * v).sum() / weight.sum()
    return ndimage.shift(grid, (-cv, -cu), order=3, mode="constant", cval=0.0)


def wing_radii(fwhm: float) -> tuple[float, float]:
    """Where the fitted wing profile starts to replace the tabulated PSF, and where it has
    replaced it (px): from WING_INNER FWHM, but never within 3 px, where an undersampled PSF
    (WFPC2's PC, FWHM 1.4 px) still has its diffraction shoulder."""
    inner = max(WING_INNER * fwhm, 3.0)
    return inner, inner + (WING_OUTER - WING_INNER) * fwhm


def normalisation_radius(fwhm: float) -> float:
    """Radius (px) within which a learned PSF holds unit flux: 2 FWHM, at least 3 px."""
    return max(3.0, 2.0 * fwhm)


def core_normalised(grid: np.ndarray, oversampling: int, radius: float) -> np.ndarray:
    """The grid scaled so that the light within ``radius`` of the star is 1.

    Not the whole grid: in a crowd the stamps' outer parts hold a pedestal of unresolved light
    and of neighbours' wings, and 0.1 per cent of the peak over a 29x29-px grid is 10 per cent of
    the flux; a whole-grid normalisation would take it out of the core (the PSF grows broader
    at every iteration). The fluxes are then "within ``radius``", and the correction to total
    (measured on the PSF stars with their neighbours subtracted) takes them to total.
    """
    size = grid.shape[0]
    v, u = np.mgrid[:size, :size] - size // 2
    core = np.hypot(u, v) <= radius * oversampling
    return grid * (oversampling**2 / grid[core].sum())


def wing_profile(normalised: np.ndarray, dx: np.ndarray, dy: np.ndarray, inner: float,
                 outer: float, fwhm: float) -> tuple[float, float, float] | None:
    """The azimuthal profile of the wings between ``inner`` and ``outer`` px as a Moffat
    profile, ``psf = amplitude * (1 + (r / alpha)**2) ** -beta``, returned as (alpha, beta,
    ln amplitude): a power law far out (as a diffraction-limited PSF's wings are, r**-3 for
    HST's) that flattens towards the core.

    Fitted to the median of each half-pixel ring of the stars' normalised samples (robust
    against the faint neighbours every wing holds in a crowd), each weighted by its precision,
    together with a constant: every star's sky was taken from its stamp's border, where its own
    wing still lies, so every normalised sample is low by the same fraction of the PSF. For each
    (alpha, beta) of a grid (alpha 0.3-3 FWHM, beta 0.8-6), amplitude and constant are a weighted
    linear fit; the best pair is kept. None when fewer than four rings have enough samples, or
    no fit has a positive amplitude."""
    r = np.hypot(dx, dy)
    use = np.isfinite(normalised) & (r >= inner) & (r < outer)
    ring = np.floor((r[use] - inner) / 0.5).astype(np.intp)
    sample, radius = normalised[use], r[use]
    by_ring = np.lexsort((sample, ring))  # rings contiguous, samples sorted within each
    ring, sample, radius = ring[by_ring], sample[by_ring], radius[by_ring]
    starts = np.flatnonzero(np.r_[True, np.diff(ring) > 0])
    counts = np.diff(np.r_[starts, ring.size])
    medians = sample[starts + counts // 2]
    # each ring's spread (interquartile range), for the weight of its median: the error of a
    # median is about 1.25 sigma / sqrt(n)
    spread = (sample[starts + (3 * counts) // 4] - sample[starts + counts // 4]) / 1.349
    centres = np.add.reduceat(radius, starts) / counts
    enough = (spread > 0) & (counts >= 8)
    if enough.sum() < 4:
        return None
    r_ring, median = centres[enough], medians[enough]
    weight = counts[enough] / (1.25 * spread[enough]) ** 2
    # every (alpha, beta) pair at once: shape (n_alpha, n_beta, n_rings); a few hundred tiny fits
    alpha = fwhm * np.geomspace(0.3, 3.0, 25)[:, None, None]
    beta = np.linspace(0.8, 6.0, 53)[None, :, None]
    shape = np.exp(-beta * np.log1p((r_ring / alpha) ** 2))
    # weighted least squares of median = amplitude * shape + constant, by the 2x2 normal equations
    sw, su, suu = weight.sum(), (weight * shape).sum(-1), (weight * shape**2).sum(-1)
    sm, sum_ = (weight * median).sum(), (weight * shape * median).sum(-1)
    determinant = suu * sw - su**2
    with np.errstate(divide="ignore", invalid="ignore"):
        amplitude = (sum_ * sw - su * sm) / determinant
        constant = (suu * sm - su * sum_) / determinant
    chi2 = (weight * (median - amplitude[..., None] * shape - constant[..., None]) ** 2).sum(-1)
    chi2 = np.where(np.isfinite(chi2) & (amplitude > 0), chi2, np.inf)
    best = np.unravel_index(np.argmin(chi2), chi2.shape)
    if not np.isfinite(chi2[best]):
        return None
    return float(alpha.ravel()[best[0]]), float(beta.ravel()[best[1]]), float(np.log(amplitude[best]))


def with_model_wings(grid: np.ndarray, oversampling: int, profile: tuple[float, float, float] | None,
                     inner: float, outer: float) -> np.ndarray:
    """The grid with its wings beyond ``inner`` px replaced by the fitted ``profile``
    (:func:`wing_profile`), blended linearly from the tabulated values at ``inner`` to the model
    at ``outer``.

    Why: a few dozen stars measure the core well, but beyond about 2 FWHM their pixels hold
    less of their own light than of the sky's noise and their neighbours'; a per-node average
    there is noise (even negative), and it is what neighbours' subtraction and the residual
    passes see around every bright star. The azimuthal profile of all samples is far better
    determined than any single node. What is lost: non-azimuthal structure in the far wings
    (diffraction spikes)."""
    if profile is None or not np.all(np.isfinite(profile)):
        return grid
    alpha, beta, log_amplitude = profile
    size = grid.shape[0]
    v, u = np.mgrid[:size, :size] - size // 2
    r = np.hypot(u, v) / oversampling
    model = np.exp(log_amplitude - beta * np.log1p((r / alpha) ** 2))
    blend = np.clip((r - inner) / (outer - inner), 0.0, 1.0)
    return (1.0 - blend) * grid + blend * model


def build_epsf(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float,
               oversampling: int = 4, radius: int | None = None, n_iter: int = 4, min_stars: int = 10,
               neighbours: tuple[np.ndarray, np.ndarray] | None = None,
               sky_subtracted: bool = False, initial: EPSF | None = None, sky_variance: float | None = None,
               electrons_per_unit: float = 1.0) -> tuple[EPSF, np.ndarray, np.ndarray]:
    """The effective PSF of a sky-subtracted frame from the stars at (x, y): bright, isolated,
    unsaturated stars chosen by the caller. Returns the PSF and the stars' refined positions.
    ``neighbours``: (x, y) of every detected star; pixels near another one are left out.
    ``sky_subtracted``: the frame holds only the PSF stars' light (their neighbours and the sky
    subtracted with a model), so no sky is estimated around them. ``initial``: a PSF learned
    before, to be refined: the stars are first fitted with it and its nodes corrected (step 4's
    refinement), not stacked anew from the nodes nearest each sample (one such iteration then
    does what four do from scratch); it must be on the same grid (``radius``, ``oversampling``).

    ``sky_variance`` (image units^2 per pixel) and ``electrons_per_unit``: the refinement weighs
    each sample by its S/N (its star's flux over its noise, the sky's and the star's photons at
    the PSF's value there) and clips it in units of its own noise; without, all alike. Why: the
    PSF stars span two decades in flux, and an equal-weight mean takes most of its noise from
    the faintest. On 27 sparse simulated frames (``bench/isolated_stars.py``) isolated bright
    stars scatter 1.14 times their photon limit with equal weights, 1.10 with these (and with the
    true PSF). Not the inverse variance (the S/N squared), although it did as well there (1.09):
    in a crowd the few brightest PSF stars then decide the wings, and on a crowded frame the
    artificial stars drawn with a PSF so learned scattered 1.6 times the real stars at 23 mag
    (the aperture path, tests/test_completeness.py).

    ``radius`` (px) is the half-size of the tabulated PSF (default 4 FWHM, at least 6 px).
    Raises FrameError (without the file's name) when fewer than ``min_stars`` stars are given.
    """
    if len(x) < min_stars:
        raise FrameError(f"only {len(x)} bright isolated unsaturated stars to learn the PSF from "
                         f"(at least {min_stars} needed)")
    radius = radius or max(6, int(math.ceil(4.0 * fwhm)))
    size = 2 * radius * oversampling + 1
    if initial is not None and initial.data.shape != (size, size):
        raise ValueError(f"the initial PSF's grid is {initial.data.shape}, not ({size}, {size})")
    x, y = np.asarray(x, dtype=np.float64).copy(), np.asarray(y, dtype=np.float64).copy()

    # Smoothing: a quartic Savitzky-Golay filter about 1.2 FWHM wide (the configured FWHM;
    # odd, at least 7 nodes: a quartic through 5 is no smoothing at all). A few hundred
    # stars put only a dozen samples on each node of a 4x oversampled grid; a narrower
    # (half-FWHM) quadratic filter left node-to-node noise of 2 per cent of the peak, which
    # the fluxes of bright stars followed with their pixel phase (3.5x their photon noise
    # on the benchmark's frames, 1.15x with this one); a quartic keeps the peak's shape under
    # the wider window. Not the stars' own FWHM: on the real NGC 1261 PC frames the
    # narrower window it gives left the PSF noisier, and the colour scatter of the faint
    # main sequence 16 per cent larger; stars much narrower than configured get a PSF a
    # little broader than theirs.
    window = max(7, 2 * int(round(0.6 * fwhm * oversampling)) + 1)

    def stamps(x, y):
        values, dx, dy = psf_stamps(data, bad, x, y, radius)
        if neighbours is not None:
            values[neighbour_pixels(dx, dy, x, y, *neighbours, radius=2.0 * fwhm)] = np.nan
        # the sky from the stamp's outermost ring, its neighbours' pixels left out
        sky = np.zeros(len(x)) if sky_subtracted else ring_sky(values, radius)
        return values, dx, dy, sky

    values, dx, dy, sky = stamps(x, y)
    flux = np.nansum(values - sky[:, None], axis=1)  # a first flux: the stamp's sum above its sky
    fit_radius = max(1.5, 1.5 * fwhm)
    psf = initial
    if initial is not None:
        flux, shift_x, shift_y = fit_stamps(initial, values, dx, dy, sky, fit_radius)
        x, y = x + shift_x, y + shift_y
        values, dx, dy, sky = stamps(x, y)
    for iteration in range(n_iter):
        last = iteration == n_iter - 1
        good = np.isfinite(flux) & (flux > 0) & np.isfinite(sky)
        normalised = (values[good] - sky[good, None]) / flux[good, None]
        if psf is None:
            grid, _ = stack_samples(normalised, dx[good], dy[good], size, oversampling)
        else:
            # Anderson & King's refinement: stack the samples' residuals from the current PSF,
            # evaluated at each sample's exact offset, so that giving a sample to its nearest
            # node (up to 1/8 px off at 4x oversampling) no longer blurs the PSF.
            model = psf.evaluate(dx[good], dy[good])
            errors = None
            if sky_variance is not None and np.isfinite(sky_variance) and sky_variance > 0:
                # each normalised sample's noise: the sky's and its star's photons there
                star_flux = flux[good, None]
                errors = np.sqrt(np.maximum(star_flux * model, 0.0) / electrons_per_unit + sky_variance) / star_flux
            correction, _ = stack_samples(normalised - model, dx[good], dy[good], size, oversampling,
                                          errors=errors)
            grid = psf.data + np.nan_to_num(correction)
        grid = fill_and_smooth(grid, window)
        inner, outer = wing_radii(fwhm)
        # the wing only at the end: the stars' fits in between use their cores alone
        profile = wing_profile(normalised, dx[good], dy[good], inner, radius, fwhm) if last else None
        grid = with_model_wings(grid, oversampling, profile, inner, outer)
        grid = recentred(grid, oversampling, fwhm)
        normalised_grid = core_normalised(grid, oversampling, normalisation_radius(fwhm))
        if profile is not None:  # the wing scaled with the grid
            alpha, beta, log_amplitude = profile
            profile = (alpha, beta, log_amplitude + math.log(normalised_grid.sum() / grid.sum()))
        # the wing's formula from half a pixel past the blend (the re-centring moved the grid's
        # wing by a fraction of a node, which the formula does not follow: a fraction of a
        # per cent of the wing there)
        psf = EPSF(normalised_grid, oversampling, n_stars=int(good.sum()), wing=profile, wing_from=outer + 0.5)
        if last:  # the positions it was built from
            break
        flux, shift_x, shift_y = fit_stamps(psf, values, dx, dy, sky, fit_radius)
        x, y = x + shift_x, y + shift_y
        values, dx, dy, sky = stamps(x, y)
    return psf, x, y
