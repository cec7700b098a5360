"""Diagnostic figures: luminosity functions and detection maps, written as PNGs.

Every figure is saved atomically (a temporary file in the same folder, then a rename) and
closed afterwards, so a pipeline drawing hundreds of frames neither leaks memory nor leaves
half-written images behind.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and safe inside Snakemake jobs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from astropy.table import Table  # noqa: E402
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from photutils.aperture import CircularAnnulus, CircularAperture  # noqa: E402
from scipy import ndimage  # noqa: E402

from .catalog import float_column  # noqa: E402
from .outputs import atomic_output

LF_BINWIDTH = 0.25  # mag
IMAGE_PERCENTILE = 99.5  # of the valid pixels, sets the display range
IMAGE_STRETCH = AsinhStretch(a=0.05)  # a < 0.1 lifts faint stars out of the sky
DPI = 110
MIN_CROP_SIZE = 40  # pixels: the smallest crop that still shows an annulus whole


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` atomically: a crash never leaves a half-written image."""
    suffix = Path(path).suffix or ".png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format=suffix.lstrip("."))


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


def stars(n: int) -> str:
    return f"{n} star" if n == 1 else f"{n} stars"


def plot_luminosity_function(table: Table, path: str | Path, cluster: str, filter_name: str) -> None:
    """Histogram of the finite magnitudes (counts per 0.25 mag) with a KDE on a twin axis."""
    has_mag = "mag" in table.colnames
    mag = float_column(table["mag"]) if has_mag else np.zeros(0)
    finite = mag[np.isfinite(mag)]
    system = magnitude_system(table) if has_mag else "instrumental"
    n_nan = len(mag) - len(finite)

    with sns.axes_style("whitegrid"):  # light background for the HTML report
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        try:
            ax.set_xlabel(f"{filter_name} ({system} mag)")
            ax.set_ylabel(f"Number of stars per {LF_BINWIDTH:g} mag")
            ax.set_title(f"{cluster} {filter_name}: luminosity function of {stars(len(finite))}")
            if len(finite) == 0:
                note = f"{stars(n_nan)} in the catalogue, none with a magnitude" if n_nan else "empty catalogue"
                ax.text(0.5, 0.5, f"no stars with a magnitude\n({note})", transform=ax.transAxes,
                        ha="center", va="center", fontsize=12)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                draw_luminosity_function(ax, finite, n_nan)
            save_figure(fig, path)
        finally:
            plt.close(fig)


def draw_luminosity_function(ax: plt.Axes, mag: np.ndarray, n_nan: int) -> None:
    """Counts on ``ax``, the KDE on a twin axis, one legend for both."""
    hist_colour, kde_colour = sns.color_palette("deep")[0], sns.color_palette("deep")[3]
    sns.histplot(x=mag, bins=luminosity_function_bins(mag), color=hist_colour, ax=ax)
    handles = [Patch(facecolor=hist_colour, alpha=0.75, label=f"{stars(len(mag))} with a magnitude")]
    # A density needs at least two different magnitudes.
    if len(mag) > 1 and np.ptp(mag) > 0:
        density_ax = ax.twinx()
        sns.kdeplot(x=mag, color=kde_colour, ax=density_ax)
        density_ax.set_ylabel("Density")
        density_ax.set_ylim(0, density_ax.get_ylim()[1] * 1.3)  # headroom for the legend
        density_ax.grid(False)  # one grid (the counts') is enough
        handles.append(Line2D([], [], color=kde_colour, label="kernel density estimate"))
    else:
        handles.append(Line2D([], [], linestyle="none", label="too few stars for a density estimate"))
    handles.append(Line2D([], [], linestyle="none", label=f"{stars(n_nan)} without a magnitude (NaN)"))
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
    if np.ptp(mag) < 2.0:  # a lone bar should not fill the axis
        ax.set_xlim(np.median(mag) - 1.0, np.median(mag) + 1.0)
    ax.legend(handles=handles, loc="upper left", framealpha=0.9)


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
               extent: tuple[float, float, float, float]) -> None:
    """Display pixels in frame coordinates; masked pixels in a colour of their own."""
    norm = image_norm(pixels, bad)
    shown = pixels if bad is None else np.ma.masked_array(pixels, mask=bad)
    cmap = plt.get_cmap("gray").with_extremes(bad="darkslateblue")
    ax.imshow(shown, origin="lower", cmap=cmap, norm=norm, extent=extent, interpolation="nearest")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")


def in_box(x: np.ndarray, y: np.ndarray, x0: int, y0: int, width: int, height: int,
           margin: float = 0.0) -> np.ndarray:
    """True for positions within ``margin`` pixels of the box of pixels [x0, x0+width) x [y0, y0+height)."""
    return ((x > x0 - 0.5 - margin) & (x < x0 + width - 0.5 + margin)
            & (y > y0 - 0.5 - margin) & (y < y0 + height - 0.5 + margin))


def draw_overview(ax: plt.Axes, data: np.ndarray, bad: np.ndarray | None, x: np.ndarray, y: np.ndarray,
                  aperture_radius: float, max_pixels: int) -> None:
    """The whole frame, every stride-th pixel, with one marker per star."""
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
    ax.scatter(x, y, s=diameter**2, marker="o", facecolors="none", edgecolors="red",
               linewidths=0.4 if diameter < 3 else 0.7)
    shown = "all pixels" if stride == 1 else f"1 pixel in {stride} along each axis"
    ax.set_title(f"Whole frame ({shown}): {len(x)} stars", fontsize=10)


def draw_crop(ax: plt.Axes, data: np.ndarray, bad: np.ndarray | None, x: np.ndarray, y: np.ndarray,
              x0: int, y0: int, width: int, height: int, aperture_radius: float,
              annulus_radii: tuple[float, float]) -> None:
    """A native-resolution crop with each star's aperture (red) and sky annulus (yellow)."""
    box = (slice(y0, y0 + height), slice(x0, x0 + width))
    show_image(ax, data[box], None if bad is None else bad[box],
               (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5))
    # Stars just outside the crop get circles too: their apertures reach into it.
    near = in_box(x, y, x0, y0, width, height, margin=aperture_radius)
    if near.any():
        positions = np.column_stack([x[near], y[near]])
        CircularAnnulus(positions, r_in=annulus_radii[0], r_out=annulus_radii[1]).plot(
            ax=ax, color="yellow", lw=1.0, alpha=0.9)
        CircularAperture(positions, r=aperture_radius).plot(ax=ax, color="red", lw=1.2)
    n_inside = int(in_box(x, y, x0, y0, width, height).sum())
    ax.set_title(f"Densest {width} x {height} px (cyan box): {n_inside} stars\n"
                 f"aperture r = {aperture_radius:g} px (red), "
                 f"sky annulus {annulus_radii[0]:g}-{annulus_radii[1]:g} px (yellow)", fontsize=10)


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


def plot_detections(data: np.ndarray, x: np.ndarray, y: np.ndarray, path: str | Path,
                    aperture_radius: float, annulus_radii: tuple[float, float], title: str,
                    bad: np.ndarray | None = None, max_pixels: int = 1500, crop_size: int = 150,
                    max_crop_stars: int = 200) -> None:
    """Whole frame with the detections (left) and a native-resolution crop with apertures (right).

    ``x``, ``y`` are 0-based pixel positions; ``bad`` (optional) is True for unusable pixels.
    The crop is ``crop_size`` pixels square, smaller if that would hold more than
    ``max_crop_stars`` stars.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ny, nx = data.shape
    x0, y0, width, height = crop_box(x, y, (ny, nx), crop_size, max_crop_stars)

    fig, (ax_frame, ax_crop) = plt.subplots(1, 2, figsize=(13, 6.5), layout="constrained")
    try:
        fig.suptitle(title)
        draw_overview(ax_frame, data, bad, x, y, aperture_radius, max_pixels)
        ax_frame.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), width, height, fill=False,
                                     edgecolor="cyan", linewidth=1.2))
        draw_crop(ax_crop, data, bad, x, y, x0, y0, width, height, aperture_radius, annulus_radii)
        save_figure(fig, path)
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


def plot_cmd(colour: np.ndarray, mag: np.ndarray, colour_err: np.ndarray, mag_err: np.ndarray,
             path: str | Path, cluster: str, blue: str, red: str, band: str, system: str,
             n_matched: int | None = None) -> None:
    """Colour-magnitude diagram: (blue - red) against ``band``, brighter up.

    Up to a few thousand stars are drawn as points; more are shaded by density (log scale)
    so that the sequences stay visible at 10^5 stars. Typical error bars per magnitude bin
    stand on the left.
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
            if colour.size > CMD_DENSITY_THRESHOLD:
                image = ax.hexbin(colour, mag, gridsize=(150, 120), bins="log", mincnt=1, cmap="viridis",
                                  extent=(x_lo, x_hi, y_lo - 0.2, y_hi + 0.2), linewidths=0)
                fig.colorbar(image, ax=ax, label="stars per cell")
            else:
                ax.scatter(colour, mag, s=3, c="black", alpha=0.6, linewidths=0, rasterized=True)
            centres, c_err, m_err = typical_errors(mag, colour_err, mag_err)
            ax.errorbar(np.full(centres.size, x_lo + pad_x), centres, xerr=c_err, yerr=m_err, fmt="none",
                        ecolor="tab:red", elinewidth=1.2, capsize=2, label="typical errors")
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(y_hi + 0.3, y_lo - 0.3)  # brighter stars up
            if centres.size:
                ax.legend(loc="upper right", fontsize="small")
        ax.set_xlabel(f"{blue} - {red} ({system} mag)")
        ax.set_ylabel(f"{band} ({system} mag)")
        matched = "" if n_matched is None else f" of {n_matched} matched"
        ax.set_title(f"{cluster}: {stars(int(colour.size))}{matched}")
        save_figure(fig, path)
    finally:
        plt.close(fig)
