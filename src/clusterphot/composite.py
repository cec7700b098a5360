"""Colour composites of a cluster: a Lupton et al. (2004) RGB and a weighted-mean RGB.

How a composite is made, and why:

1. Each filter's frame is sky-subtracted and divided by a percentile of its valid pixels, so
   that the filters are on a common scale (the sky is black in every channel).
2. It is resampled onto the reference frame's pixel grid with the transform solved from the
   stars for the cross-match, so a star lands on the same pixel in every filter (no colour
   fringes). One output pixel is one reference pixel.
3. The frames are mixed into red, green and blue channels with per-filter weights (by default
   from the pivot wavelengths: the reddest filter to red, the bluest to blue).
4. Optional Gaussian smoothing acts on each channel in the image plane only, never across
   the colour axis.
5. The images are built with row 0 of the FITS frame at the bottom, as a FITS viewer shows
   it, and written with OpenCV in its BGR order so that red stays red.
6. Where not every filter covers the sky (a frame shifted or rotated against the reference,
   a chip gap), the pixels are grey, their channels' mean: a star seen in only some filters
   would otherwise take their colour and pass for a blue or red one.
7. The previews (the report's pictures) carry a legend of filters to colours and, when the
   reference frame has a WCS, a scale bar and north and east arrows; the full-resolution
   images are left as they are, pixels only.

Memory: the three channels are float32 arrays of the reference frame's size, and frames are
read and resampled one at a time; the 8- or 16-bit images are filled in strips of rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
from astropy.visualization import ManualInterval, make_lupton_rgb
from scipy import ndimage

from .channels import CHANNELS
from .cosmicrays import apply_cosmic_ray_mask
from .errors import FrameError
from .frames import bad_pixel_mask, read_frame
from .outputs import atomic_output
from .photometry import fill_from_neighbours, frame_sky_statistics
from .registration import Transform

log = logging.getLogger(__name__)

BIT_DEPTHS = {8: np.uint8, 16: np.uint16}
STRIP_PIXELS = 2_000_000  # pixels per strip when mapping channels to an image
PERCENTILE_SAMPLES = 4_000_000  # valid pixels sampled (on a regular grid) for the normalisation


@dataclass(frozen=True)
class CompositeParameters:
    """How channels are normalised, smoothed and stretched (see the config's ``rgb`` section)."""

    percentile: float = 99.5  # this percentile of each filter's sky-subtracted valid pixels becomes 1
    smooth_sigma: float = 0.0  # px; Gaussian smoothing of each channel, 0 = none
    stretch: float = 0.5  # Lupton: linear stretch (in normalised units)
    Q: float = 8.0  # Lupton: asinh softening
    minimum: float = 0.0  # Lupton: normalised value mapped to black
    bit_depth: int = 8  # 8 or 16 bits per channel in the full-resolution PNGs
    preview_size: int = 1200  # px, longest side of the downsampled previews


@dataclass(frozen=True)
class FrameInput:
    """One filter's frame for a composite, and how to read it."""

    filter_name: str
    path: str | Path
    hdu: int | str | list | None = None  # index, EXTNAME or [EXTNAME, EXTVER]
    plane: int | None = None
    dq_bits: int | None = None  # an HST product's DQ bits to paint over (frames.read_frame)
    cosmic_ray_mask: str | Path | None = None  # the workflow's cosmic-ray mask file


# --- one frame onto the reference grid --------------------------------------------------------


def normalisation(data: np.ndarray, bad: np.ndarray, percentile: float) -> tuple[float, float]:
    """(sky, scale): the sigma-clipped median sky, and the ``percentile`` of the sky-subtracted
    valid pixels (sampled on a regular grid on large frames, as the sky is)."""
    sky = frame_sky_statistics(data, bad).median
    step = max(1, int(math.ceil(math.sqrt(data.size / PERCENTILE_SAMPLES))))
    sample = data[::step, ::step][~bad[::step, ::step]]
    scale = float(np.percentile(sample, percentile)) - sky
    return sky, scale


def normalised_frame(frame: FrameInput, percentile: float) -> tuple[np.ndarray, dict]:
    """The frame as float32 with sky 0 and the percentile at 1 (NaN where no data), and what was done."""
    image = read_frame(frame.path, hdu=frame.hdu, plane=frame.plane, dq_bits=frame.dq_bits)
    if frame.cosmic_ray_mask is not None:
        apply_cosmic_ray_mask(image, frame.cosmic_ray_mask)
    data = image.data
    bad = bad_pixel_mask(data)
    # cosmic rays and DQ-flagged pixels would be specks of one colour: painted over from their
    # neighbours, for the picture only (photometry masks them), and left out of the sky and the
    # percentile (NGC 1261's F336W hits would darken it 1.7x). Grown by a pixel: a hit's faint
    # edge, below L.A.Cosmic's threshold, would still show as a speck.
    painted = np.zeros(data.shape, bool)
    if image.product_mask is not None:
        painted = cv2.dilate(image.product_mask.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~bad
    try:
        sky, scale = normalisation(data, bad | painted, percentile)
    except FrameError as error:  # raised without the file's name
        raise FrameError(f"{frame.path}: {error}") from None
    if not (np.isfinite(scale) and scale > 0):
        raise FrameError(f"{frame.path}: the {percentile} percentile of the valid pixels is not above the sky "
                         f"({sky:.4g}); the frame has no signal to show (raise rgb.percentile)")
    data -= np.float32(sky)
    data /= np.float32(scale)
    count = fill_from_neighbours(data, painted, ~bad)
    data[bad] = np.nan
    return data, {"path": str(frame.path), "shape": list(data.shape), "sky": sky, "scale": scale,
                  "painted_pixels": count, "wcs": image.wcs}


def resample_onto_reference(data: np.ndarray, transform: Transform, shape: tuple[int, int]) -> np.ndarray:
    """The frame resampled (bilinear) onto the reference grid of ``shape``; NaN outside the frame.

    ``transform`` maps the frame's pixels to the reference's. Bilinear interpolation keeps
    every value within its neighbours' range (no ringing around stars) and needs no
    float64 spline copy of the frame.
    """
    inverse = transform.inverse()  # reference (x, y) -> frame (x, y)
    swap = np.array([[0, 1], [1, 0]])  # numpy indexes (row, column) = (y, x)
    return ndimage.affine_transform(
        data, swap @ inverse.matrix @ swap, offset=swap @ inverse.offset, output_shape=shape,
        output=np.float32, order=1, mode="constant", cval=np.nan, prefilter=False,
    )


def add_weighted(target: np.ndarray, source: np.ndarray, weight: float, rows: int = 1024) -> None:
    """target += weight * source in strips of rows, with no-data (NaN) pixels adding nothing."""
    for start in range(0, source.shape[0], rows):
        strip = source[start : start + rows] * np.float32(weight)
        np.nan_to_num(strip, copy=False, nan=0.0)
        target[start : start + rows] += strip


def build_channels(frames: Sequence[FrameInput], transforms: Mapping[str, Transform], reference: str,
                   weights: Mapping[str, Mapping[str, float]], params: CompositeParameters
                   ) -> tuple[np.ndarray, dict, np.ndarray, object]:
    """The (3, ny, nx) float32 red, green, blue channels on the reference grid, per-filter
    provenance, where every filter covers the grid (bool; a frame's masked pixels inside its
    footprint count as covered) and the reference frame's celestial WCS (or None).

    Frames are read, normalised and resampled one at a time; the reference frame is read
    first, as it fixes the grid.
    """
    by_filter = {f.filter_name: f for f in frames}
    order = [reference] + [f for f in by_filter if f != reference]
    channels = covered = wcs = None
    provenance = {}
    for name in order:
        data, info = normalised_frame(by_filter[name], params.percentile)
        frame_wcs = info.pop("wcs")
        if channels is None:
            shape = data.shape
            channels = np.zeros((3, *shape), dtype=np.float32)
            covered, wcs = np.ones(shape, bool), frame_wcs
        if name != reference:
            data = resample_onto_reference(data, transforms[name], shape)
        covered &= ndimage.binary_fill_holes(np.isfinite(data))  # its footprint, holes and all
        for k, channel in enumerate(CHANNELS):
            weight = weights[channel].get(name, 0.0)
            if weight:
                add_weighted(channels[k], data, weight)
        del data
        info["transform"] = transforms.get(name, Transform.identity()).as_meta()
        info["weights"] = {c: weights[c][name] for c in CHANNELS if name in weights[c]}
        provenance[name] = info
        log.info("%s: sky %.4g, scale %.4g, onto %s by %s", name, info["sky"], info["scale"], reference,
                 info["transform"]["method"])
    if params.smooth_sigma > 0:
        for k in range(3):  # in the image plane of each channel, never across colours
            channels[k] = ndimage.gaussian_filter(channels[k], params.smooth_sigma, output=np.float32)
    return channels, provenance, covered, wcs


# --- channels to images -----------------------------------------------------------------------


def to_integer(values: np.ndarray, dtype) -> np.ndarray:
    """Values in [0, 1] rounded to the full range of an unsigned integer type."""
    top = np.iinfo(dtype).max
    return np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)


def lupton_strip(red: np.ndarray, green: np.ndarray, blue: np.ndarray, params: CompositeParameters) -> np.ndarray:
    """astropy's Lupton et al. (2004) mapping of channel strips to floats in [0, 1] (rows, cols, 3)."""
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 where all channels are 0: black
        return make_lupton_rgb(red, green, blue, interval=ManualInterval(vmin=params.minimum, vmax=None),
                               stretch=params.stretch, Q=params.Q, output_dtype=float)


def weighted_strip(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """The weighted means themselves, linearly: 0 (sky) is black, 1 (the percentile) is full."""
    return np.stack([red, green, blue], axis=-1)


def render(channels: np.ndarray, params: CompositeParameters,
           covered: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Lupton, weighted) RGB images as displayed: (ny, nx, 3) unsigned integers, top row first;
    grey (each pixel its channels' mean) where ``covered`` is False.

    Row 0 of the reference frame is the bottom row of the image, as a FITS viewer shows it
    with the origin at the lower left. Both images are filled strip by strip; the mappings
    act on each pixel alone, so the strips join without seams.
    """
    dtype = BIT_DEPTHS[params.bit_depth]
    _, ny, nx = channels.shape
    lupton = np.empty((ny, nx, 3), dtype=dtype)
    weighted = np.empty((ny, nx, 3), dtype=dtype)
    # Views in which row y of the FITS frame is row y: writing through them flips the image.
    lupton_fits, weighted_fits = lupton[::-1], weighted[::-1]
    rows = max(1, STRIP_PIXELS // nx)
    for start in range(0, ny, rows):
        red, green, blue = (np.nan_to_num(c[start : start + rows], nan=0.0) for c in channels)
        partial = None if covered is None else ~covered[start : start + rows]
        for image, strip in ((lupton_fits, lupton_strip(red, green, blue, params)),
                             (weighted_fits, weighted_strip(red, green, blue))):
            if partial is not None and partial.any():
                strip[partial] = strip[partial].mean(axis=-1, keepdims=True)
            image[start : start + rows] = to_integer(strip, dtype)
    return lupton, weighted


def preview(image: np.ndarray, max_size: int) -> np.ndarray:
    """The image shrunk by pixel-area averaging so its longest side is at most ``max_size``."""
    ny, nx = image.shape[:2]
    factor = max_size / max(ny, nx)
    if factor >= 1:
        return image
    size = (max(1, round(nx * factor)), max(1, round(ny * factor)))  # OpenCV wants (width, height)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def write_png(rgb: np.ndarray, path: str | Path) -> None:
    """Write an RGB image (top row first) as PNG, atomically.

    OpenCV expects blue, green, red order; the conversion here is what keeps red red.
    """
    with atomic_output(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the PNG")


@dataclass(frozen=True)
class CompositeOutputs:
    """Where the composite's images go."""

    lupton: str | Path
    weighted: str | Path
    lupton_preview: str | Path
    weighted_preview: str | Path


def make_composites(frames: Sequence[FrameInput], transforms: Mapping[str, Transform], reference: str,
                    weights: Mapping[str, Mapping[str, float]], params: CompositeParameters,
                    outputs: CompositeOutputs) -> dict:
    """Build the channels, write both composites and their previews; return the provenance."""
    if params.bit_depth not in BIT_DEPTHS:
        raise ValueError(f"rgb.bit_depth must be 8 or 16, not {params.bit_depth}")
    channels, provenance, covered, wcs = build_channels(frames, transforms, reference, weights, params)
    shape = list(channels.shape[1:])
    lupton, weighted = render(channels, params, covered)
    del channels, covered  # the largest arrays; the images are all that is left to write
    legend = channel_legend(weights)
    for image, path, small in ((lupton, outputs.lupton, outputs.lupton_preview),
                               (weighted, outputs.weighted, outputs.weighted_preview)):
        write_png(image, path)
        shrunk = to_8bit(preview(image, params.preview_size))
        write_png(annotated(shrunk, legend, wcs, shrunk.shape[1] / shape[1], shape), small)
        shrink = shape[1] / shrunk.shape[1]  # 1: the preview is the picture itself
        log.info("wrote %s (%d x %d px) and its preview %s (%d x %d px, %s)", path, shape[1], shape[0], small,
                 shrunk.shape[1], shrunk.shape[0], "full resolution" if shrink == 1 else f"shrunk {shrink:.2f}x")
    return {
        "reference_filter": reference,
        "shape": shape,
        "orientation": "FITS row 0 at the bottom (origin lower left); one PNG pixel per reference pixel",
        "partial_coverage": "grey where not every filter covers the sky",
        "preview_size": params.preview_size,
        "preview_shrunk_by": shrink,
        "channels": {c: dict(weights[c]) for c in CHANNELS},
        "parameters": {k: getattr(params, k) for k in params.__dataclass_fields__},
        "filters": provenance,
    }


# --- the previews' legend, scale bar and compass ---------------------------------------------------

CHANNEL_COLOURS = {"red": (255, 90, 90), "green": (110, 230, 110), "blue": (120, 160, 255)}
SCALE_BARS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)  # arcsec
MIN_ANNOTATED = 200  # px: a smaller preview is left bare (no room for text)


def channel_legend(weights: Mapping[str, Mapping[str, float]]) -> list[tuple[str, tuple[int, int, int]]]:
    """'R  F814W', 'G  F606W', 'B  F275W + F336W' with each channel's colour: which filters make it."""
    return [(f"{channel[0].upper()}  {' + '.join(sorted(weights[channel], key=str))}", CHANNEL_COLOURS[channel])
            for channel in CHANNELS if weights.get(channel)]


def north_east(wcs, x: float, y: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit vectors (dx, dy on the FITS frame, y up) towards north and east at pixel (x, y), and
    the pixel scale there (arcsec per pixel, along north)."""
    ra, dec = wcs.all_pix2world([[x, y]], 0)[0]
    step = 1.0 / 3600.0  # one arcsec
    north = wcs.all_world2pix([[ra, dec + step]], 0)[0] - (x, y)
    east = wcs.all_world2pix([[ra + step / math.cos(math.radians(dec)), dec]], 0)[0] - (x, y)
    return north / np.hypot(*north), east / np.hypot(*east), 1.0 / float(np.hypot(*north))


def scale_bar_arcsec(arcsec_per_pixel: float, width: int) -> float:
    """The longest of SCALE_BARS no longer than a fifth of ``width`` pixels (the shortest if none)."""
    fits = [length for length in SCALE_BARS if length / arcsec_per_pixel <= width / 5]
    return fits[-1] if fits else SCALE_BARS[0]


def annotated(image: np.ndarray, legend: list, wcs, shrink: float, shape) -> np.ndarray:
    """A copy of an 8-bit preview (top row first) with the filters' legend at the lower left and,
    with a WCS, a scale bar at the lower right and north and east arrows at the upper right
    (``shrink``: preview pixels per reference pixel; ``shape``: the reference frame's)."""
    ny, nx = image.shape[:2]
    if min(nx, ny) < MIN_ANNOTATED:
        return image
    out = np.ascontiguousarray(image).copy()  # cv2 draws in place, in the array's own order (RGB)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, nx / 1600)
    line = int(round(26 * size / 0.6))
    for k, (text, colour) in enumerate(reversed(legend)):  # the blue line lowest
        y = ny - 10 - k * line
        cv2.putText(out, text, (10, y), font, size, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (10, y), font, size, colour, 1, cv2.LINE_AA)
    if wcs is None:
        return out
    north, east, arcsec = north_east(wcs, shape[1] / 2.0, shape[0] / 2.0)
    length = scale_bar_arcsec(arcsec / shrink, nx)
    bar = int(round(length / (arcsec / shrink)))
    label = f'{length:g}"' if length < 60 else f"{length / 60:g}'"
    x1, y1 = nx - 15, ny - 15
    cv2.line(out, (x1 - bar, y1), (x1, y1), (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(out, label, (x1 - bar, y1 - 8), font, size, (255, 255, 255), 1, cv2.LINE_AA)
    centre, arm = np.array([nx - 20 - 0.08 * nx, 20 + 0.08 * nx]), 0.07 * nx
    for vector, name in ((north, "N"), (east, "E")):
        tip = centre + arm * np.array([vector[0], -vector[1]])  # the preview's y runs down
        cv2.arrowedLine(out, tuple(int(v) for v in centre), tuple(int(v) for v in tip), (255, 255, 255), 2,
                        cv2.LINE_AA, tipLength=0.2)
        where = centre + 1.3 * arm * np.array([vector[0], -vector[1]])
        cv2.putText(out, name, (int(where[0]) - 6, int(where[1]) + 6), font, size, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def to_8bit(image: np.ndarray) -> np.ndarray:
    """An 8-bit copy of a 16-bit image (previews are always 8-bit); 8-bit images as they are."""
    if image.dtype == np.uint8:
        return image
    return np.rint(image / 257.0).astype(np.uint8)
