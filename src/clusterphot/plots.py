"""Diagnostic figures: luminosity functions, detection maps, PSFs and CMDs, written as PNGs.

Every figure is saved atomically (a temporary file in the same folder, then a rename) and
closed afterwards, so a pipeline drawing hundreds of frames neither leaks memory nor leaves
half-written images behind.
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and safe inside Snakemake jobs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval  # noqa: E402
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Circle, Patch, Rectangle  # noqa: E402
from photutils.aperture import CircularAnnulus, CircularAperture  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from .catalog import float_column  # noqa: E402
from .completeness import fleming  # noqa: E402
from .outputs import atomic_output  # noqa: E402
from .psfio import PSFFile, fitted_fluxes, model_image, psf_for, render_stars  # noqa: E402

log = logging.getLogger(__name__)

LF_BINWIDTH = 0.25  # mag
IMAGE_PERCENTILE = 99.5  # of the valid pixels, sets the display range
IMAGE_STRETCH = AsinhStretch(a=0.05)  # a < 0.1 lifts faint stars out of the sky
DPI = 110
MIN_CROP_SIZE = 40  # pixels: the smallest crop that still shows an annulus whole
ANNULI_SHOWN = 12  # sky annuli drawn in a detection map's crop: more overlap into a yellow mesh
NO_DATA_COLOUR = "darkslateblue"  # masked and no-coverage pixels in the images
FLAGGED_COLOUR = "orange"  # stars with any flag set, in the detection maps
MIN_CORRECTED_COMPLETENESS = 0.5  # an LF bin less complete than this is not corrected
# mag: a star measured worse than this (S/N under about 2) is counted in an LF's legend, not
# drawn: a few such detections 5 mag below the rest had stretched the axis to 32 mag
LF_MAX_ERROR = 0.5
ZONE_COLOURS = ("black", "tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown")


def save_figure(fig: plt.Figure, path: str | Path, what: str = "") -> None:
    """Save ``fig`` atomically (a crash never leaves a half-written image) and log what it shows."""
    suffix = Path(path).suffix or ".png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format=suffix.lstrip("."))
    log.info("wrote %s%s", path, f": {what}" if what else "")


def magnitude_system(table: Table) -> str:
    """'AB', 'ST', 'VEGA' or 'instrumental': the metadata, else the unit of ``mag``."""
    system = table.meta.get("magnitude_system")
    if system:
        return str(system)
    unit = str(getattr(table["mag"], "unit", "") or "")  # e.g. 'mag(AB)'
    if "(" in unit:
        return unit[unit.index("(") + 1 : unit.rindex(")")]
    return "instrumental"


# --- luminosity function ---------------------------------------------------------------------


def luminosity_function_bins(mag: np.ndarray, binwidth: float = LF_BINWIDTH) -> np.ndarray:
    """Bin edges on a fixed grid (multiples of ``binwidth``), so frames compare bin by bin."""
    start = math.floor(mag.min() / binwidth) * binwidth
    stop = max(math.ceil(mag.max() / binwidth) * binwidth, start + binwidth)
    return np.arange(start, stop + binwidth / 2, binwidth)


def magnitude_or_none(value: float | None) -> str:
    """'24.16' for a log line, or 'none' (not reached, not fitted)."""
    return "none" if value is None or not np.isfinite(value) else f"{value:.2f}"


def stars(n: int) -> str:
    return f"{n} star" if n == 1 else f"{n} stars"


def plot_luminosity_function(table: Table, path: str | Path, cluster: str, filter_name: str,
                             curve: Table | None = None) -> None:
    """Counts per 0.25 mag of the stars measured to LF_MAX_ERROR or better, with a kernel density
    estimate scaled to stars per bin on the same axis; given the frame's completeness ``curve``
    (artificial stars), the counts corrected for completeness and the 50 per cent limit."""
    has_mag = "mag" in table.colnames
    mag = float_column(table["mag"]) if has_mag else np.zeros(0)
    mag_err = float_column(table["mag_err"]) if "mag_err" in table.colnames else np.zeros(len(mag))
    finite = np.isfinite(mag)
    measured = finite & ~(mag_err > LF_MAX_ERROR)  # a NaN error does not hide a magnitude
    system = magnitude_system(table) if has_mag else "instrumental"
    n_nan, n_poor = int((~finite).sum()), int((finite & ~measured).sum())

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")  # the CMDs' plain style
    try:
        ax.set_xlabel(f"{filter_name} ({system} mag)")
        ax.set_ylabel(f"Number of stars per {LF_BINWIDTH:g} mag")
        ax.set_title(f"{cluster} {filter_name}: luminosity function of {stars(int(measured.sum()))}")
        if not measured.any():
            note = (f"{stars(len(mag))} in the catalogue, none with a magnitude to {LF_MAX_ERROR:g} mag"
                    if len(mag) else "empty catalogue")
            ax.text(0.5, 0.5, f"no stars with a magnitude\n({note})", transform=ax.transAxes,
                    ha="center", va="center", fontsize=12)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            draw_luminosity_function(ax, mag[measured], n_nan, curve, n_poor)
        drawn = mag[measured]
        save_figure(fig, path, f"luminosity function of {stars(drawn.size)} with mag_err <= {LF_MAX_ERROR:g}"
                    + (f" ({drawn.min():.2f}-{drawn.max():.2f} {system} mag)" if drawn.size else "")
                    + f"; not drawn: {n_nan} without a magnitude, {n_poor} with larger errors; "
                    + ("no artificial-star test" if curve is None else
                       f"completeness-corrected, m50 {magnitude_or_none(curve.meta.get('m50'))}"))
    finally:
        plt.close(fig)


def stars_per_bin_density(mag: np.ndarray, grid: np.ndarray, binwidth: float = LF_BINWIDTH) -> np.ndarray:
    """A Gaussian kernel density estimate of ``mag`` (Scott's bandwidth) at ``grid``, in stars
    per ``binwidth``: drawn over the histogram on its own axis, its area over the bins is the
    number of stars, as the bars' is. (A density on a second axis, scaled on its own, had put
    its peak on the tallest bar: a plateau of 28 stars per bin read as 85.)"""
    from scipy.stats import gaussian_kde  # here: a second to import, only for LF jobs

    return gaussian_kde(mag)(grid) * len(mag) * binwidth


def completeness_at(curve: Table, mag: np.ndarray) -> np.ndarray:
    """The completeness of all zones together at ``mag``: the fitted Fleming et al. (1995)
    curve of the curve's metadata (smooth: the bins hold a few dozen artificial stars each), or
    where it could not be fitted, the binned values interpolated; NaN fainter than the
    artificial stars reached."""
    everything = curve[np.asarray(curve["zone"]) == 0]
    injected = np.asarray(everything["injected"]) > 0
    if not injected.any():
        return np.full(np.shape(mag), np.nan)
    faintest = float_column(everything["mag_high"])[injected].max()
    limit = (curve.meta.get("limits") or [{}])[0]
    shape = [limit.get(key, np.nan) for key in ("plateau", "alpha", "m_half")]
    if all(value is not None and np.isfinite(value) for value in shape):
        value = fleming(mag, *shape)
    else:
        centres, fraction = float_column(everything["mag"]), float_column(everything["completeness"])
        known = np.isfinite(fraction)
        value = np.interp(mag, centres[known], fraction[known]) if known.any() else np.full(np.shape(mag), np.nan)
    return np.where(np.asarray(mag) > faintest, np.nan, value)


def corrected_counts(mag: np.ndarray, edges: np.ndarray, curve: Table) -> np.ndarray:
    """Counts per bin divided by the completeness at the bin's centre, where it is at least
    MIN_CORRECTED_COMPLETENESS (below, a correction multiplies noise and spurious detections:
    NaN)."""
    counts, _ = np.histogram(mag, edges)
    fraction = completeness_at(curve, 0.5 * (edges[:-1] + edges[1:]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(fraction >= MIN_CORRECTED_COMPLETENESS, counts / fraction, np.nan)


def draw_luminosity_function(ax: plt.Axes, mag: np.ndarray, n_nan: int, curve: Table | None = None,
                             n_poor: int = 0) -> None:
    """Counts on ``ax`` (bars), the density in stars per bin on the same axis, one legend; with a
    completeness ``curve``, the corrected counts as a step line and m50 as a dashed line (the
    colours of the CMDs': black points, red errors, blue m50). ``n_poor``: stars left out for
    errors above LF_MAX_ERROR, said in the legend."""
    edges = luminosity_function_bins(mag)
    counts, _ = np.histogram(mag, edges)
    ax.stairs(counts, edges, fill=True, color="0.75")
    ax.stairs(counts, edges, color="0.35", linewidth=0.8)
    handles = [Patch(facecolor="0.75", edgecolor="0.35", label=f"{stars(len(mag))} measured to {LF_MAX_ERROR:g} mag")]
    top = counts.max()
    if curve is not None and not np.any(np.asarray(curve["injected"]) > 0):
        curve = None  # no artificial-star test could be run on the frame
    if curve is not None:
        corrected = corrected_counts(mag, edges, curve)
        ax.stairs(corrected, edges, color="tab:green", linewidth=1.8)
        handles.append(Line2D([], [], color="tab:green", linewidth=1.8,
                              label=f"corrected for completeness (where >= {MIN_CORRECTED_COMPLETENESS:.0%})"))
        if np.isfinite(corrected).any():
            top = max(top, np.nanmax(corrected))
        m50 = curve.meta.get("m50")
        if m50 is not None and np.isfinite(m50):
            ax.axvline(m50, color="tab:blue", linestyle="--", linewidth=1.2)
            handles.append(Line2D([], [], color="tab:blue", linestyle="--", label=f"50% complete: {m50:.2f} mag"))
    x_lo, x_hi = edges[0], edges[-1]
    if len(mag) > 1 and np.ptp(mag) > 0:  # a density needs at least two different magnitudes
        reach = 3.0 * np.std(mag) * len(mag) ** -0.2  # three of Scott's bandwidths: its tails whole
        x_lo, x_hi = x_lo - reach, x_hi + reach
        grid = np.linspace(x_lo, x_hi, 400)
        ax.plot(grid, stars_per_bin_density(mag, grid), color="tab:red", linewidth=1.5)
        handles.append(Line2D([], [], color="tab:red", label="kernel density, in stars per bin"))
    else:
        handles.append(Line2D([], [], linestyle="none", label="too few stars for a density estimate"))
    if n_poor:
        handles.append(Line2D([], [], linestyle="none", label=f"{stars(n_poor)} with errors above "
                                                              f"{LF_MAX_ERROR:g} mag (not drawn)"))
    handles.append(Line2D([], [], linestyle="none", label=f"{stars(n_nan)} without a magnitude (NaN)"))
    ax.set_ylim(0, top * 1.45)  # headroom for the legend
    ax.set_xlim(x_lo, x_hi)
    if np.ptp(mag) < 2.0:  # a lone bar should not fill the axis
        ax.set_xlim(np.median(mag) - 1.0, np.median(mag) + 1.0)
    ax.legend(handles=handles, loc="upper left", framealpha=0.9, fontsize="small")


# --- detection maps ----------------------------------------------------------------------------


def densest_region(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], size: int) -> tuple[int, int]:
    """Lower-left corner (x0, y0) of the ``size`` x ``size`` box holding the most stars.

    Stars are counted on a grid of size/4 pixel cells and summed over ``size``-wide windows,
    so a clump is found wherever it falls relative to the grid. The box stays inside the frame;
    with no stars it is centred.
    """
    ny, nx = shape
    width, height = min(size, nx), min(size, ny)
    good = np.isfinite(x) & np.isfinite(y)
    if not good.any():
        return (nx - width) // 2, (ny - height) // 2
    cell = max(1, size // 4)
    n_cells_x, n_cells_y = math.ceil(nx / cell), math.ceil(ny / cell)
    counts, _, _ = np.histogram2d(y[good], x[good], bins=(n_cells_y, n_cells_x),
                                  range=((-0.5, n_cells_y * cell - 0.5), (-0.5, n_cells_x * cell - 0.5)))
    window = ndimage.uniform_filter(counts, size=max(1, size // cell), mode="constant")
    iy, ix = np.unravel_index(np.argmax(window), window.shape)
    x_centre, y_centre = (ix + 0.5) * cell - 0.5, (iy + 0.5) * cell - 0.5
    x0 = int(np.clip(round(x_centre - width / 2), 0, nx - width))
    y0 = int(np.clip(round(y_centre - height / 2), 0, ny - height))
    return x0, y0


def image_norm(pixels: np.ndarray, bad: np.ndarray | None) -> ImageNormalize:
    """Asinh stretch between percentiles of the valid (finite, unmasked) pixels."""
    valid = np.isfinite(pixels)
    if bad is not None:
        valid &= ~bad
    values = pixels[valid]
    if values.size == 0:
        return ImageNormalize(vmin=0.0, vmax=1.0, stretch=IMAGE_STRETCH)
    return ImageNormalize(values, interval=PercentileInterval(IMAGE_PERCENTILE), stretch=IMAGE_STRETCH)


def show_image(ax: plt.Axes, pixels: np.ndarray, bad: np.ndarray | None,
               extent: tuple[float, float, float, float], norm=None):
    """Display pixels in frame coordinates; masked pixels in a colour of their own. ``norm``:
    the stretch (default :func:`image_norm` of these pixels). Returns the image."""
    norm = image_norm(pixels, bad) if norm is None else norm
    shown = pixels if bad is None else np.ma.masked_array(pixels, mask=bad)
    cmap = plt.get_cmap("gray").with_extremes(bad=NO_DATA_COLOUR)
    image = ax.imshow(shown, origin="lower", cmap=cmap, norm=norm, extent=extent, interpolation="nearest")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return image


def in_box(x: np.ndarray, y: np.ndarray, x0: int, y0: int, width: int, height: int,
           margin: float = 0.0) -> np.ndarray:
    """True for positions within ``margin`` pixels of the box of pixels [x0, x0+width) x [y0, y0+height)."""
    return ((x > x0 - 0.5 - margin) & (x < x0 + width - 0.5 + margin)
            & (y > y0 - 0.5 - margin) & (y < y0 + height - 0.5 + margin))


def draw_overview(ax: plt.Axes, data: np.ndarray, bad: np.ndarray | None, x: np.ndarray, y: np.ndarray,
                  aperture_radius: float, max_pixels: int, flagged: np.ndarray | None = None) -> None:
    """The whole frame, every stride-th pixel, with one marker per star (``flagged`` ones in
    FLAGGED_COLOUR)."""
    ny, nx = data.shape
    # An integer stride gives a view: no copy of a 10k x 10k frame.
    stride = max(1, math.ceil(max(ny, nx) / max_pixels))
    overview = data[::stride, ::stride]
    # Each shown pixel stands for the stride x stride block starting at its own position.
    show_image(ax, overview, None if bad is None else bad[::stride, ::stride],
               (-0.5, overview.shape[1] * stride - 0.5, -0.5, overview.shape[0] * stride - 0.5))
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    # Markers as large as the aperture on the page (a panel is ~5.5 inch), but never so
    # small that they vanish on a 10k-pixel frame.
    points_per_pixel = 5.5 * 72 / max(ny, nx)
    diameter = float(np.clip(2 * aperture_radius * points_per_pixel, 1.5, 6.0))
    flagged = np.zeros(len(x), bool) if flagged is None else flagged
    ax.scatter(x, y, s=diameter**2, marker="o", facecolors="none",
               edgecolors=np.where(flagged, FLAGGED_COLOUR, "red"), linewidths=0.4 if diameter < 3 else 0.7)
    shown = "all pixels" if stride == 1 else f"1 pixel in {stride} along each axis"
    ax.set_title(f"Whole frame ({shown}): {len(x)} stars", fontsize=10)


def annuli_subset(n: int, shown: int = ANNULI_SHOWN) -> np.ndarray:
    """Indices of the stars whose sky annuli a crop draws: all of up to ``shown``, else
    ``shown`` spread evenly through the list (a few dozen overlapping annuli are a mesh)."""
    return np.arange(n) if n <= shown else np.unique(np.linspace(0, n - 1, shown).round().astype(int))


def no_data_handle() -> Patch:
    return Patch(facecolor=NO_DATA_COLOUR, edgecolor="none", label="masked or no data")


def draw_crop(ax: plt.Axes, data: np.ndarray, bad: np.ndarray | None, x: np.ndarray, y: np.ndarray,
              x0: int, y0: int, width: int, height: int, aperture_radius: float,
              annulus_radii: tuple[float, float], flagged: np.ndarray | None = None) -> None:
    """A native-resolution crop with each star's aperture (red; ``flagged`` ones orange, dashed)
    and, thin and translucent, the sky annuli of a few of them (yellow), with a legend."""
    box = (slice(y0, y0 + height), slice(x0, x0 + width))
    show_image(ax, data[box], None if bad is None else bad[box],
               (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5))
    flagged = np.zeros(len(x), bool) if flagged is None else np.asarray(flagged, bool)
    # Stars just outside the crop get circles too: their apertures reach into it.
    near = np.flatnonzero(in_box(x, y, x0, y0, width, height, margin=aperture_radius))
    with_annulus = near[annuli_subset(len(near))]
    if len(with_annulus):
        CircularAnnulus(np.column_stack([x[with_annulus], y[with_annulus]]), r_in=annulus_radii[0],
                        r_out=annulus_radii[1]).plot(ax=ax, color="yellow", lw=0.6, alpha=0.5)
    for chosen, colour, style in ((near[~flagged[near]], "red", "-"), (near[flagged[near]], FLAGGED_COLOUR, "--")):
        if len(chosen):
            CircularAperture(np.column_stack([x[chosen], y[chosen]]), r=aperture_radius).plot(
                ax=ax, color=colour, lw=1.0, linestyle=style)
    inside = in_box(x, y, x0, y0, width, height)
    ax.set_title(f"Densest {width} x {height} px (cyan box): {int(inside.sum())} stars, "
                 f"{int((inside & flagged).sum())} flagged", fontsize=10)
    handles = [no_data_handle()]
    if len(near):
        handles = [Line2D([], [], color="red", label=f"aperture r = {aperture_radius:g} px"),
                   Line2D([], [], color=FLAGGED_COLOUR, linestyle="--", label="aperture of a flagged star"),
                   Line2D([], [], color="yellow", alpha=0.7,
                          label=f"sky annulus {annulus_radii[0]:g}-{annulus_radii[1]:g} px "
                                f"({len(with_annulus)} of {len(near)} shown)"), *handles]
    ax.legend(handles=handles, loc="upper right", fontsize="x-small", framealpha=0.8)


def crop_note(width: int, height: int, size: int, shape: tuple[int, int], max_stars: int) -> str:
    """Why a crop is smaller than ``plots.detection_crop`` asked ('' when it is not)."""
    if (width, height) == (min(size, shape[1]), min(size, shape[0])):
        return ""
    return f"crop shrunk from the configured {size} px: it held more than {max_stars} stars"


def crop_box(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], size: int,
             max_stars: int) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the crop around the densest detections.

    In a crowded core the box shrinks until it holds at most ``max_stars`` stars: each star
    costs a few milliseconds of drawing, and a thousand overlapping annuli show nothing anyway.
    """
    ny, nx = shape
    while True:
        x0, y0 = densest_region(x, y, shape, size)
        width, height = min(size, nx), min(size, ny)
        if size <= MIN_CROP_SIZE or in_box(x, y, x0, y0, width, height).sum() <= max_stars:
            return x0, y0, width, height
        size = max(MIN_CROP_SIZE, int(size * 0.8))


@dataclass
class PSFFitView:
    """What a detection map shows of a frame measured with PSF fitting."""

    model: Callable[[tuple[int, int, int, int]], np.ndarray]  # (x0, y0, width, height) -> the fit's
    # model of those pixels (stars and sky) in the frame's units
    fwhm: float  # of the PSF, pixels
    residual_pass: np.ndarray  # per star: found on the residual image
    sky_sigma: float  # the frame's sky noise, image units
    unit: str = ""


def draw_psf_crop(ax: plt.Axes, data: np.ndarray, bad: np.ndarray | None, x: np.ndarray, y: np.ndarray,
                  x0: int, y0: int, width: int, height: int, view: PSFFitView) -> None:
    """The native-resolution crop with each fitted star circled (radius one FWHM): red those
    DAOFIND found on the frame, cyan those found on a residual image."""
    box = (slice(y0, y0 + height), slice(x0, x0 + width))
    show_image(ax, data[box], None if bad is None else bad[box],
               (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5))
    near = in_box(x, y, x0, y0, width, height, margin=view.fwhm)
    for found_on_residual, colour in ((False, "red"), (True, "cyan")):
        chosen = near & (view.residual_pass == found_on_residual)
        if chosen.any():
            CircularAperture(np.column_stack([x[chosen], y[chosen]]), r=view.fwhm).plot(ax=ax, color=colour, lw=1.1)
    inside = in_box(x, y, x0, y0, width, height)
    ax.legend(handles=[no_data_handle()], loc="upper right", fontsize="x-small", framealpha=0.8)
    ax.set_title(f"Densest {width} x {height} px (cyan box): {int(inside.sum())} stars fitted\n"
                 f"circles r = FWHM ({view.fwhm:.2f} px): found on the frame (red), "
                 f"on a residual image (cyan: {int((inside & view.residual_pass).sum())})", fontsize=10)


def draw_model_panels(axes, data: np.ndarray, bad: np.ndarray | None, x0: int, y0: int, width: int,
                      height: int, view: PSFFitView) -> plt.cm.ScalarMappable:
    """Data, the fit's model and their difference for the crop: data and model on one stretch,
    the residual linear and symmetric, at least +-5 sky sigma."""
    box = (slice(y0, y0 + height), slice(x0, x0 + width))
    pixels = data[box]
    mask = np.zeros(pixels.shape, bool) if bad is None else bad[box]
    model = view.model((x0, y0, width, height))
    residual = np.ma.masked_array(pixels - model, mask=mask | ~np.isfinite(pixels))
    extent = (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5)
    norm = image_norm(pixels, mask)
    show_image(axes[0], pixels, mask, extent, norm)
    show_image(axes[1], model, None, extent, norm)
    # linear and symmetric: at least +-5 sky sigma (the noise shows), wider when the residuals
    # are (a poor fit in a crowd must not be a wall of saturated pixels)
    values = np.abs(residual.compressed())
    spread = float(np.percentile(values, 99)) if values.size else 0.0
    sigma = view.sky_sigma if view.sky_sigma > 0 else max(spread, 1.0) / 5.0
    limit = max(5.0 * sigma, spread)
    shown = show_image(axes[2], residual.data, residual.mask, extent, Normalize(-limit, limit))
    rms = float(np.ma.std(residual)) if residual.count() else float("nan")
    titles = ("Data", "Model: fitted stars + sky (same stretch)",
              f"Data - model (linear, +-{limit / sigma:.0f} sky sigma); rms {rms / sigma:.1f} sigma")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
    for ax in axes[1:]:
        ax.set_ylabel("")
    return shown


def plot_detections(data: np.ndarray, x: np.ndarray, y: np.ndarray, path: str | Path,
                    aperture_radius: float, annulus_radii: tuple[float, float], title: str,
                    bad: np.ndarray | None = None, max_pixels: int = 1500, crop_size: int = 150,
                    max_crop_stars: int = 200, psf_fit: PSFFitView | None = None,
                    flagged: np.ndarray | None = None) -> None:
    """Whole frame with the detections (left) and a native-resolution crop with apertures (right).

    ``x``, ``y`` are 0-based pixel positions; ``bad`` (optional) is True for unusable pixels.
    The crop is ``crop_size`` pixels square, smaller if that would hold more than
    ``max_crop_stars`` stars. With ``psf_fit`` (a frame measured with PSF fitting) the crop
    circles the fitted stars instead, and a row below shows the crop's data, model and residual.
    ``flagged`` (per star): stars with a flag set, marked apart. A crop smaller than asked says why.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ny, nx = data.shape
    x0, y0, width, height = crop_box(x, y, (ny, nx), crop_size, max_crop_stars)

    if psf_fit is None:
        fig, (ax_frame, ax_crop) = plt.subplots(1, 2, figsize=(13, 6.5), layout="constrained")
    else:
        fig = plt.figure(figsize=(13, 11.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=(6.5, 5.0))
        ax_frame, ax_crop = top.subplots(1, 2)
        model_axes = bottom.subplots(1, 3, sharex=True, sharey=True)
    try:
        note = crop_note(width, height, crop_size, (ny, nx), max_crop_stars)
        fig.suptitle(title + (f"\n({note})" if note else ""))
        draw_overview(ax_frame, data, bad, x, y, aperture_radius, max_pixels, flagged)
        ax_frame.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), width, height, fill=False,
                                     edgecolor="cyan", linewidth=1.2))
        if psf_fit is None:
            draw_crop(ax_crop, data, bad, x, y, x0, y0, width, height, aperture_radius, annulus_radii, flagged)
        else:
            draw_psf_crop(ax_crop, data, bad, x, y, x0, y0, width, height, psf_fit)
            shown = draw_model_panels(model_axes, data, bad, x0, y0, width, height, psf_fit)
            bottom.colorbar(shown, ax=model_axes, shrink=0.8, label=f"data - model ({psf_fit.unit})".replace(" ()", ""))
        n_flagged = 0 if flagged is None else int(np.count_nonzero(flagged))
        stride = max(1, math.ceil(max(ny, nx) / max_pixels))
        save_figure(fig, path, f"{stars(len(x))} ({n_flagged} flagged) on the {nx} x {ny} px frame"
                    + ("" if stride == 1 else f" shown 1 pixel in {stride}")
                    + f"; crop of {width} x {height} px at x {x0}, y {y0}" + (f" ({note})" if note else ""))
    finally:
        plt.close(fig)


# --- PSF ---------------------------------------------------------------------------------------

PSF_MOSAIC_STARS = 16  # residual stamps shown
PSF_LOG_FLOOR = 1e-4  # of the peak: the PSF image's and profile's lowest level shown
PSF_PROFILE_STARS = 1000  # at most this many PSF stars (the brightest) in the PSF figure


@dataclass
class PSFStarStamps:
    """The PSF stars' pixels around them: each star's own light (its neighbours and the fitted
    sky subtracted) over its fitted flux, and the data less the whole model, at offsets dx, dy."""

    ids: np.ndarray
    flux: np.ndarray  # fitted PSF flux
    normalised: np.ndarray  # (n, side, side), NaN where masked
    residual: np.ndarray  # (n, side, side) image units
    dx: np.ndarray  # (n, side, side) offsets of the pixels from the star
    dy: np.ndarray


def psf_star_stamps(psf_file: PSFFile, catalog: Table, data: np.ndarray, bad: np.ndarray | None,
                    half: int) -> PSFStarStamps:
    """Stamps of half-size ``half`` around the PSF file's PSF stars (those fully on the frame)."""
    ids = np.asarray(catalog["id"])
    x_all, y_all = float_column(catalog["x"]), float_column(catalog["y"])
    flux_all = float_column(catalog["flux"])
    row = {int(i): k for k, i in enumerate(ids)}
    index = np.array([row[int(i)] for i in psf_file.psf_star_ids if int(i) in row], dtype=np.intp)
    ny, nx = data.shape
    xi, yi = np.rint(x_all[index]).astype(int), np.rint(y_all[index]).astype(int)
    whole = (xi >= half) & (xi < nx - half) & (yi >= half) & (yi < ny - half) & (flux_all[index] > 0)
    # the brightest PSF_PROFILE_STARS: a frame fitted in tiles has a few hundred PSF stars per tile
    # (12,558 on a 10k x 10k frame), and a thousand draw the profile as well
    brightest = np.argsort(-flux_all[index[whole]])[:PSF_PROFILE_STARS]
    index, xi, yi = index[whole][brightest], xi[whole][brightest], yi[whole][brightest]
    side = 2 * half + 1
    normalised = np.full((len(index), side, side), np.nan)
    residual = np.full((len(index), side, side), np.nan)
    dx = np.zeros((len(index), side, side))
    dy = np.zeros((len(index), side, side))
    fit_flux = fitted_fluxes(psf_file, flux_all[index], x_all[index], y_all[index])
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    # each stamp's model from the stars that can reach it, not the whole catalogue: drawing 10^5
    # stars' footprints for each of 300 stamps took a HUGS frame's figure over 15 minutes
    reach = half * math.sqrt(2.0) + psf_file.psf.reach + 1.0
    neighbours = cKDTree(np.column_stack([x_all, y_all])).query_ball_point(
        np.column_stack([x_all[index], y_all[index]]), reach)
    for k, (i, cx, cy) in enumerate(zip(index, xi, yi)):  # at most PSF_PROFILE_STARS
        box = (cx - half, cy - half, side, side)
        pixels = data[cy - half : cy + half + 1, cx - half : cx + half + 1] - psf_file.sky_level
        near = np.asarray(neighbours[k], dtype=np.intp)
        model = model_image(psf_file, x_all[near], y_all[near], flux_all[near], box)
        own = render_stars(x_all[i : i + 1], y_all[i : i + 1], fit_flux[k : k + 1],
                           psf_for(psf_file, x_all[i], y_all[i]), box)
        usable = np.isfinite(pixels) if bad is None else np.isfinite(pixels) & ~bad[box[1] : box[1] + side,
                                                                                     box[0] : box[0] + side]
        normalised[k] = np.where(usable, (pixels - model + own) / fit_flux[k], np.nan)
        residual[k] = np.where(usable, pixels - model, np.nan)
        dx[k], dy[k] = cx + ox - x_all[i], cy + oy - y_all[i]
    return PSFStarStamps(ids[index], fit_flux, normalised, residual, dx, dy)


def ring_medians(r: np.ndarray, values: np.ndarray, edges: np.ndarray, spread: bool = False):
    """Centres of the rings between ``edges`` holding at least 5 values and the values' median
    there (and, with ``spread``, their 16th and 84th percentiles)."""
    which = np.digitize(r, edges) - 1
    rows = []
    for k in range(len(edges) - 1):  # a few dozen rings
        ring = values[which == k]
        if ring.size >= 5:
            rows.append((0.5 * (edges[k] + edges[k + 1]), np.median(ring), *np.percentile(ring, [16, 84])))
    columns = np.array(rows).reshape(-1, 4).T
    return tuple(columns) if spread else tuple(columns[:2])


def radial_profile(psf, radius: np.ndarray, n_angles: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PSF's mean, smallest and largest value over angles at each radius (pixels)."""
    angle = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    values = psf.evaluate(radius[:, None] * np.cos(angle)[None, :], radius[:, None] * np.sin(angle)[None, :])
    return values.mean(axis=1), values.min(axis=1), values.max(axis=1)


def profile_fwhm(psf) -> float:
    """The PSF's FWHM (px) from its azimuthally averaged profile, interpolated to where it falls
    to half its centre: the tiles' panel shows changes of a few hundredths of a pixel, finer
    than EPSF.fwhm's count of grid nodes above half the peak (steps of about 0.1 px)."""
    radius = np.linspace(0.0, psf.radius, 20 * int(math.ceil(psf.radius)) + 1)
    mean, _, _ = radial_profile(psf, radius)
    below = np.flatnonzero(mean < 0.5 * mean[0])
    if below.size == 0 or below[0] == 0:
        return float("nan")
    k = below[0]  # the profile crosses half its centre between radius[k - 1] and radius[k]
    return float(2 * np.interp(0.5 * mean[0], [mean[k], mean[k - 1]], [radius[k], radius[k - 1]]))


def draw_psf_image(ax: plt.Axes, fig, psf) -> None:
    """The PSF's grid on a log stretch, offsets in frame pixels, with its FWHM circled."""
    peak = float(psf.data.max())
    half = (psf.data.shape[0] // 2 + 0.5) / psf.oversampling
    shown = ax.imshow(np.clip(psf.data / peak, PSF_LOG_FLOOR, None), origin="lower", cmap="magma",
                      norm=LogNorm(vmin=PSF_LOG_FLOOR, vmax=1.0), extent=(-half, half, -half, half),
                      interpolation="nearest")
    ax.add_patch(Circle((0, 0), psf.fwhm / 2, fill=False, color="cyan", lw=1.0, ls="--"))
    ax.text(0.03, 0.97, f"dashed: FWHM = {psf.fwhm:.2f} px", transform=ax.transAxes, va="top", color="cyan",
            fontsize=9)
    ax.set_xlabel("x offset from the star (pixels)")
    ax.set_ylabel("y offset (pixels)")
    ax.set_title(f"PSF ({psf.oversampling}x oversampled grid, log stretch)", fontsize=10)
    fig.colorbar(shown, ax=ax, shrink=0.85, label="fraction of the peak")


def draw_psf_tiles(ax: plt.Axes, fig, psf_file: PSFFile) -> None:
    """A frame fitted in tiles: each tile's PSF FWHM on the frame (how the PSF changes across it),
    the tiles that had too few PSF stars of their own (the frame's PSF) hatched, and whether the
    stars were fitted with the tiles' PSFs interpolated between the tiles' centres."""
    tiles = psf_file.tiles
    columns = sorted({tile.core[0] for tile in tiles})
    rows = sorted({tile.core[1] for tile in tiles})
    nx, ny = max(tile.core[2] for tile in tiles), max(tile.core[3] for tile in tiles)
    fwhm = np.full((len(rows), len(columns)), np.nan)  # NaN: a tile without stars
    for tile in tiles:
        fwhm[rows.index(tile.core[1]), columns.index(tile.core[0])] = profile_fwhm(tile.psf)
    x_edges, y_edges = np.array(columns + [nx]) - 0.5, np.array(rows + [ny]) - 0.5
    shown = ax.pcolormesh(x_edges, y_edges, fwhm, cmap="viridis", shading="flat")
    for tile in tiles:
        x0, y0, x1, y1 = tile.core
        if not tile.own_psf:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, hatch="//", color="white",
                                   lw=0.0))
        if len(tiles) <= 36:  # the values, where they fit
            value = fwhm[rows.index(y0), columns.index(x0)]
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white")
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    how = (f"interpolated between tile centres,\nstars fitted with their {psf_file.zone}-px zone's PSF"
           if psf_file.zone > 0 else "each tile's PSF constant over it")
    ax.set_title(f"{len(tiles)} tiles' PSFs: {how}", fontsize=10)
    if not all(tile.own_psf for tile in tiles):
        ax.text(0.02, -0.16, "hatched: too few PSF stars, the frame's PSF", transform=ax.transAxes, fontsize=8)
    fig.colorbar(shown, ax=ax, shrink=0.85, label="FWHM of the azimuthal profile (pixels)")


def draw_psf_profile(ax: plt.Axes, ax_residual: plt.Axes, psf, stamps: PSFStarStamps) -> None:
    """The stars' normalised pixels against the PSF's radial profile (log), and below it the
    residual from the model in per cent of each star's peak, by radius."""
    peak = float(psf.evaluate(0.0, 0.0))
    r = np.hypot(stamps.dx, stamps.dy).ravel()
    values = stamps.normalised.ravel()
    good = np.isfinite(values)
    ax.scatter(r[good], np.clip(values[good], PSF_LOG_FLOOR * peak * 0.5, None), s=2, c="0.45", alpha=0.35,
               linewidths=0, rasterized=True, label=f"pixels of {len(stamps.ids)} PSF stars / fitted flux")
    edges = np.arange(0.0, psf.radius + 0.5, 0.5)
    centres, medians = ring_medians(r[good], values[good], edges)
    ax.plot(centres, np.where(medians > 0, medians, np.nan), "o", color="black", ms=3.5,
            label="their median per 0.5 px ring")
    radius = np.linspace(0.0, psf.radius, 200)
    mean, low, high = radial_profile(psf, radius)
    ax.fill_between(radius, np.clip(low, PSF_LOG_FLOOR * peak * 0.5, None), np.clip(high, PSF_LOG_FLOOR * peak * 0.5,
                    None), color="tab:orange", alpha=0.3, linewidth=0)
    ax.plot(radius, np.clip(mean, PSF_LOG_FLOOR * peak * 0.5, None), color="tab:orange", lw=2,
            label="PSF (mean and range over angles)")
    ax.axvline(psf.fwhm / 2, color="tab:blue", ls=":", lw=1, label=f"half the FWHM ({psf.fwhm / 2:.2f} px)")
    ax.set_yscale("log")
    ax.set_ylim(PSF_LOG_FLOOR * peak, 1.6 * peak)
    ax.set_xlim(0, psf.radius)
    ax.set_ylabel("fraction of the flux per pixel")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_title("Radial profile: PSF stars' pixels, neighbours and sky subtracted", fontsize=10)
    ax.tick_params(labelbottom=False)

    per_cent = (stamps.residual / (stamps.flux[:, None, None] * peak) * 100.0).ravel()
    good = np.isfinite(per_cent)
    ax_residual.scatter(r[good], per_cent[good], s=2, c="0.45", alpha=0.25, linewidths=0, rasterized=True)
    centres, median, lo, hi = ring_medians(r[good], per_cent[good], edges, spread=True)
    if centres.size:
        ax_residual.fill_between(centres, lo, hi, color="tab:red", alpha=0.2, linewidth=0, label="16-84 %")
        ax_residual.plot(centres, median, color="tab:red", lw=1.8, label="median per 0.5 px ring")
        bound = max(2.0, 1.3 * float(np.max(np.abs(np.r_[lo, hi]))))
        ax_residual.set_ylim(-bound, bound)
        ax_residual.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax_residual.axhline(0.0, color="black", lw=0.8)
    ax_residual.set_xlim(0, psf.radius)
    ax_residual.set_xlabel("distance from the star (pixels)")
    ax_residual.set_ylabel("data - model\n(% of the star's peak)")


def draw_residual_mosaic(fig, spec, stamps: PSFStarStamps, psf, n_show: int) -> None:
    """The brightest PSF stars' residual stamps (data - model, in per cent of each star's peak),
    one colour scale for all."""
    order = np.argsort(-stamps.flux)[:n_show]
    side = stamps.residual.shape[1]
    half_shown = min(side // 2, max(4, int(math.ceil(2.5 * psf.fwhm))))
    centre = side // 2
    cut = slice(centre - half_shown, centre + half_shown + 1)
    n_cols = int(math.ceil(math.sqrt(max(len(order), 1))))
    n_rows = int(math.ceil(max(len(order), 1) / n_cols))
    grid = spec.subgridspec(n_rows + 2, n_cols, height_ratios=[0.14] + [1.0] * n_rows + [0.12], hspace=0.08,
                            wspace=0.05)
    heading = fig.add_subplot(grid[0, :])
    heading.set_axis_off()
    heading.text(0.5, 0.0, f"Residuals of the {len(order)} brightest PSF stars (catalogue id)", ha="center",
                 va="bottom", fontsize=10, transform=heading.transAxes)
    if len(order) == 0:
        ax = fig.add_subplot(grid[1 : n_rows + 1, :])
        ax.text(0.5, 0.5, "no PSF star fully on the frame", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    peak = float(psf.evaluate(0.0, 0.0))
    values = [stamps.residual[k][cut, cut] / (stamps.flux[k] * peak) * 100.0 for k in order]
    limit = max(1.0, float(np.nanpercentile(np.abs(np.concatenate([v.ravel() for v in values])), 99)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.6")
    shown = None
    for n, (k, value) in enumerate(zip(order, values)):
        ax = fig.add_subplot(grid[1 + n // n_cols, n % n_cols])
        shown = ax.imshow(value, origin="lower", cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit),
                          interpolation="nearest")
        ax.text(0.04, 0.96, f"{stamps.ids[k]}", transform=ax.transAxes, va="top", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    cax = fig.add_subplot(grid[n_rows + 1, :])
    fig.colorbar(shown, cax=cax, orientation="horizontal",
                 label=f"data - model, % of the star's peak ({2 * half_shown + 1} px stamps)")


def plot_psf(psf_file: PSFFile, catalog: Table, data: np.ndarray, path: str | Path, cluster: str, filter_name: str,
             bad: np.ndarray | None = None, n_show: int = PSF_MOSAIC_STARS) -> None:
    """The PSF of a frame measured with PSF fitting, and how well it fits its own stars: the PSF
    image (log), its radial profile against the PSF stars' normalised pixels with the residuals
    by radius below, and the brightest PSF stars' residual stamps. A frame that fell back to
    aperture photometry gets a figure saying so, and why."""
    if psf_file.psf is None:
        title = f"{cluster} {filter_name}: measured with apertures"
        fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
        try:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{title}\n\n{psf_file.note or 'no PSF'}", ha="center", va="center", wrap=True,
                    transform=ax.transAxes, fontsize=11)
            save_figure(fig, path, f"{title}: {psf_file.note or 'no PSF'}")
        finally:
            plt.close(fig)
        return
    psf = psf_file.psf
    correction = (catalog.meta.get("aperture_correction") or {}).get("mag", float("nan"))
    tiled = bool(psf_file.tiles)  # a panel more: the tiles' PSFs over the frame
    which = "frame's PSF (the tiles' mean)" if tiled else "PSF"
    title = (f"{cluster} {filter_name}: {which} learned from {psf.n_stars} stars, FWHM {psf.fwhm:.2f} px; "
             f"correction to total {correction:+.3f} mag")
    stamps = psf_star_stamps(psf_file, catalog, data, bad, int(math.ceil(psf.radius)))
    fig = plt.figure(figsize=(22.5 if tiled else 17, 5.8), layout="constrained")
    try:
        fig.suptitle(title)
        spec = fig.add_gridspec(2, 4 if tiled else 3, width_ratios=(1.0, 1.15, 1.0, 1.1)[: 4 if tiled else 3],
                                height_ratios=(2.2, 1.0))
        draw_psf_image(fig.add_subplot(spec[:, 0]), fig, psf)
        ax_profile = fig.add_subplot(spec[0, 1])
        ax_residual = fig.add_subplot(spec[1, 1], sharex=ax_profile)
        draw_psf_profile(ax_profile, ax_residual, psf, stamps)
        draw_residual_mosaic(fig, spec[:, 2], stamps, psf, n_show)
        if tiled:
            draw_psf_tiles(fig.add_subplot(spec[:, 3]), fig, psf_file)
        save_figure(fig, path, title)
    finally:
        plt.close(fig)


# --- colour-magnitude diagram ----------------------------------------------------------------

CMD_DENSITY_THRESHOLD = 3000  # above this many stars, shade by density instead of points


def typical_errors(mag: np.ndarray, colour_err: np.ndarray, mag_err: np.ndarray,
                   binwidth: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median colour and magnitude errors in magnitude bins: (bin centres, colour err, mag err)."""
    edges = np.arange(np.floor(mag.min()), np.ceil(mag.max()) + binwidth, binwidth)
    index = np.digitize(mag, edges) - 1
    centres, c_err, m_err = [], [], []
    for i in range(len(edges) - 1):  # a handful of bins, not stars
        inside = index == i
        if inside.sum() >= 3:
            centres.append(0.5 * (edges[i] + edges[i + 1]))
            c_err.append(np.median(colour_err[inside]))
            m_err.append(np.median(mag_err[inside]))
    return np.array(centres), np.array(c_err), np.array(m_err)


def cmd_error_bars(centres: np.ndarray, c_err: np.ndarray, m_err: np.ndarray, x_lo: float, x_hi: float,
                   y_lo: float, y_hi: float) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """Where a CMD's column of typical error bars stands (x), and the axis limits (x, y; y from
    bright to faint) that hold the bars whole: a faint bin's colour error of half a magnitude
    ran off the left edge, the brightest bin's magnitude error off the top."""
    margin = 0.02 * (x_hi - x_lo)
    widest = c_err.max() if c_err.size else 0.0
    x = x_lo + margin + widest
    x_hi = max(x_hi, x + widest + margin)  # errors wider than the colours: the axis grows
    if centres.size:
        y_lo, y_hi = min(y_lo, (centres - m_err).min() - 0.1), max(y_hi, (centres + m_err).max() + 0.1)
    return x, (x_lo, x_hi), (y_lo, y_hi)


def cuts_title(kept: list[tuple[str, int]]) -> str:
    """'961 of 1404 matched stars (in both filters: mag_err <= 0.1 964, sharpness 0.2-1 964,
    unflagged 961)': each count what the cut leaves of the one before."""
    (_, matched), steps = kept[0], kept[1:]
    kept_here = steps[-1][1] if steps else matched
    chain = ", ".join(f"{name} {n}" for name, n in steps)
    return f"{kept_here} of {matched} matched stars" + (f" (in both filters: {chain})" if chain else "")


def colour_label(blue: str, red: str, blue_system: str, red_system: str) -> str:
    """A CMD's colour axis: 'F606W - F814W (AB mag)', or with zero points of two systems
    'B (VEGA mag) - F814W (AB mag)'."""
    if blue_system == red_system:
        return f"{blue} - {red} ({blue_system} mag)"
    return f"{blue} ({blue_system} mag) - {red} ({red_system} mag)"


def plot_cmd(colour: np.ndarray, mag: np.ndarray, colour_err: np.ndarray, mag_err: np.ndarray,
             path: str | Path, cluster: str, blue: str, red: str, band: str, system: str,
             kept: list[tuple[str, int]] | None = None, m50: float | None = None,
             colour_systems: tuple[str, str] | None = None) -> None:
    """Colour-magnitude diagram: (blue - red) against ``band``, brighter up.

    Up to a few thousand stars are drawn as points; more are shaded by density (log scale)
    so that the sequences stay visible at 10^5 stars. Typical error bars per magnitude bin
    stand on the left, inside the axes. ``kept``: what each quality cut left of the matched
    stars (:func:`clusterphot.quality.cuts_kept`), said under the title. ``system``: the
    magnitude band's; ``colour_systems``: the blue and red filters' (default both ``system``).
    """
    good = np.isfinite(colour) & np.isfinite(mag)
    colour, mag = colour[good], mag[good]
    colour_err, mag_err = colour_err[good], mag_err[good]
    fig, ax = plt.subplots(figsize=(6.4, 7.5), layout="constrained")
    try:
        if colour.size == 0:
            ax.text(0.5, 0.5, "no stars pass the quality cuts", ha="center", va="center",
                    transform=ax.transAxes)
        else:
            x_lo, x_hi = np.percentile(colour, [0.5, 99.5])
            y_lo, y_hi = np.percentile(mag, [0.0, 100.0])
            pad_x = 0.1 * max(x_hi - x_lo, 0.2)
            x_lo, x_hi = x_lo - 2 * pad_x, x_hi + pad_x
            y_lo, y_hi = y_lo - 0.3, y_hi + 0.3
            if m50 is not None and np.isfinite(m50):
                y_hi = max(y_hi, m50 + 0.3)
            centres, c_err, m_err = typical_errors(mag, colour_err, mag_err)
            bars_x, (x_lo, x_hi), (y_lo, y_hi) = cmd_error_bars(centres, c_err, m_err, x_lo, x_hi, y_lo, y_hi)
            if colour.size > CMD_DENSITY_THRESHOLD:
                image = ax.hexbin(colour, mag, gridsize=(150, 120), bins="log", mincnt=1, cmap="viridis",
                                  extent=(x_lo, x_hi, y_lo, y_hi), linewidths=0)
                fig.colorbar(image, ax=ax, label="stars per cell")
            else:
                ax.scatter(colour, mag, s=3, c="black", alpha=0.6, linewidths=0, rasterized=True)
            ax.errorbar(np.full(centres.size, bars_x), centres, xerr=c_err, yerr=m_err, fmt="none",
                        ecolor="tab:red", elinewidth=1.2, capsize=2, label="typical errors")
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(y_hi, y_lo)  # brighter stars up
            if m50 is not None and np.isfinite(m50):
                ax.axhline(m50, color="tab:blue", linestyle="--", linewidth=1.2,
                           label=f"{band} alone 50% complete ({m50:.2f}; before matching and cuts)")
            if centres.size or (m50 is not None and np.isfinite(m50)):
                ax.legend(loc="upper right", fontsize="small")
        ax.set_xlabel(colour_label(blue, red, *(colour_systems or (system, system))))
        ax.set_ylabel(f"{band} ({system} mag)")
        ax.set_title(f"{cluster}: {stars(int(colour.size))}" + ("" if kept is None else
                     "\n" + textwrap.fill(cuts_title(kept), 70)), fontsize="medium")
        save_figure(fig, path, f"{blue} - {red} against {band}: {stars(int(colour.size))}"
                    + ("" if kept is None else f", {cuts_title(kept)}")
                    + ("" if m50 is None or not np.isfinite(m50) else f"; {band} m50 {m50:.2f}"))
    finally:
        plt.close(fig)


# --- completeness ------------------------------------------------------------------------------


def zone_label(limit: dict) -> str:
    """'all' or 'r 120-340 px' for a zone of a completeness curve's ``limits``."""
    if limit["zone"] == 0:
        return "all"
    outer = "" if not np.isfinite(limit["r_out_px"]) else f"-{limit['r_out_px']:.0f}"
    return f"r {limit['r_in_px']:.0f}{outer} px" if outer else f"r > {limit['r_in_px']:.0f} px"


def plot_completeness(stars_table: Table, curve: Table, path: str | Path, cluster: str, filter_name: str) -> None:
    """Two panels from a frame's artificial stars: the completeness against the injected
    magnitude per radial zone (binomial 68 per cent intervals, the Fleming et al. 1995 fit,
    m50), and measured - injected magnitude of the recovered stars with its median and robust
    scatter per bin."""
    system = curve.meta.get("magnitude_system") or "instrumental"
    limits = curve.meta.get("limits") or []
    if len(stars_table) == 0:  # the test could not be run: say why
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        try:
            reason = curve.meta.get("skipped") or "artificial_stars.n_stars is 0"
            ax.text(0.5, 0.5, "no artificial-star test:\n" + "\n".join(textwrap.wrap(reason, 60)),
                    ha="center", va="center", transform=ax.transAxes, fontsize=11)
            ax.set_axis_off()
            ax.set_title(f"{cluster} {filter_name}: completeness unknown")
            save_figure(fig, path, f"no artificial-star test: {reason}")
        finally:
            plt.close(fig)
        return
    fig, (ax, ax_delta) = plt.subplots(2, 1, figsize=(7, 7.5), sharex=True, layout="constrained",
                                       gridspec_kw={"height_ratios": [3, 2]})
    try:
        for limit in limits:
            zone = limit["zone"]
            rows = curve[(np.asarray(curve["zone"]) == zone) & (np.asarray(curve["injected"]) > 0)]
            colour = ZONE_COLOURS[zone % len(ZONE_COLOURS)]
            mag, fraction = float_column(rows["mag"]), float_column(rows["completeness"])
            low, high = float_column(rows["completeness_low"]), float_column(rows["completeness_high"])
            m50 = limit.get("m50")
            label = zone_label(limit) + (f": m50 {m50:.2f}" if m50 is not None and np.isfinite(m50) else "")
            if zone == 0:  # its intervals only: the zones' would hide one another
                # (clipped at 0: the interval's ends can miss k/n by a rounding error at k = 0 or n)
                yerr = [np.maximum(fraction - low, 0.0), np.maximum(high - fraction, 0.0)]
                ax.errorbar(mag, fraction, yerr=yerr, fmt="o", color=colour, markersize=5, capsize=2,
                            linewidth=1.0, label=label + " (68% intervals)", zorder=3)
            else:
                ax.plot(mag, fraction, "o", color=colour, markersize=3.5, alpha=0.8, label=label, zorder=2)
            if np.isfinite(limit.get("m_half", np.nan)) and len(mag):
                grid = np.linspace(mag.min(), mag.max(), 200)
                ax.plot(grid, fleming(grid, limit["plateau"], limit["alpha"], limit["m_half"]), color=colour,
                        linewidth=1.5 if zone == 0 else 1.0, alpha=0.8)
        m50 = curve.meta.get("m50")
        if m50 is not None and np.isfinite(m50):
            ax.axvline(m50, color="0.3", linestyle="--", linewidth=1.0)
        ax.axhline(0.5, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_ylim(-0.03, 1.08)
        ax.set_ylabel("Completeness (fraction recovered)")
        ax.legend(loc="lower left", fontsize="small", title="zone from the centre", title_fontsize="small")
        recovered = np.asarray(stars_table["recovered"], bool)
        ax.set_title(f"{cluster} {filter_name}: {len(stars_table)} artificial stars, {recovered.sum()} recovered")

        mag_in = float_column(stars_table["mag_in"])[recovered]
        delta = float_column(stars_table["mag_out"])[recovered] - mag_in
        ax_delta.scatter(mag_in, delta, s=4, color="0.5", alpha=0.5, linewidths=0, rasterized=True,
                         label="recovered stars")
        everything = curve[(np.asarray(curve["zone"]) == 0) & (np.asarray(curve["recovered"]) > 1)]
        centre, median = float_column(everything["mag"]), float_column(everything["delta_mag"])
        scatter = float_column(everything["delta_mag_scatter"])
        ax_delta.plot(centre, median, color="black", linewidth=1.5, label="median")
        ax_delta.fill_between(centre, median - scatter, median + scatter, color="black", alpha=0.15,
                              label="robust scatter (1.48 MAD)")
        ax_delta.axhline(0.0, color="0.6", linewidth=0.8)
        max_delta = float((curve.meta.get("settings") or {}).get("max_delta_mag", 0.75))
        ax_delta.set_ylim(-max_delta, max_delta)
        ax_delta.set_ylabel("measured - injected (mag)")
        ax_delta.set_xlabel(f"{filter_name} injected ({system} mag)")
        ax_delta.legend(loc="upper left", fontsize="small")
        save_figure(fig, path, f"{len(stars_table)} artificial stars, {recovered.sum()} recovered; m50 "
                    + ", ".join(f"{zone_label(limit)} {magnitude_or_none(limit.get('m50'))}" for limit in limits))
    finally:
        plt.close(fig)
