"""Reading a frame: its pixels, bad-pixel mask, units, exposure and keywords.

Every problem is raised as :class:`FrameError` with the file's name in the message, so the
workflow can stop with one line a user can act on instead of a traceback.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .errors import FrameError
from .filters import detector_for

if TYPE_CHECKING:  # the config's dataclass, for the annotation only
    from .config import FrameSettings

log = logging.getLogger(__name__)

# Smaller than this along either axis, an image cannot hold a star with its aperture and sky
# annulus: it is a wrong HDU or a collapsed axis, not a frame.
MIN_FRAME_PIXELS = 16
# No exposure or stack, from HST or the ground, is this long (11.6 days): a larger EXPTIME
# is a wrong keyword or a typo, and every magnitude would be off by 2.5 log10 of the error.
MAX_PLAUSIBLE_EXPTIME = 1e6  # s

# Units a frame can be in, by BUNIT. `per_second` frames are count rates; the rest are
# totals over EXPTIME. COUNTS are A/D units (DN): electrons = DN * gain.
UNIT_ALIASES: dict[str, tuple[str, bool]] = {
    "ELECTRONS": ("electron", False),
    "ELECTRON": ("electron", False),
    "E-": ("electron", False),
    "ELECTRONS/S": ("electron", True),
    "ELECTRONS/SEC": ("electron", True),
    "ELECTRON/S": ("electron", True),
    "E-/S": ("electron", True),
    "COUNTS": ("count", False),
    "COUNT": ("count", False),
    "DN": ("count", False),
    "ADU": ("count", False),
    "COUNTS/S": ("count", True),
    "COUNTS/SEC": ("count", True),
    "DN/S": ("count", True),
}


# Data-quality bits of HST calibrated products (flc/flt DQ extensions) whose pixels are left out
# of every measurement: Reed-Solomon error (1), fill value (2), bad detector pixel (4), aperture
# feature (8), hot pixel (16), bad column or bias structure (128), sink pixel or charge trap
# (1024), A-to-D saturation (2048), cosmic ray found by AstroDrizzle (4096) or by the
# CR-SPLIT combination (8192), as ACS's and WFC3/UVIS's DQ definitions give them. Kept: unstable
# and warm pixels (32, 64: dark-subtracted, usable), full-well saturation (256: the saturation
# level flags those stars), flat-field edges (512), ghosts (16384).
DEFAULT_DQ_BITS = 1 | 2 | 4 | 8 | 16 | 128 | 1024 | 2048 | 4096 | 8192


# What an HST product keeps beside its SCI images: never a frame to measure
COMPANION_EXTENSIONS = {"DQ": "data quality flags", "ERR": "the pixels' errors", "WHT": "drizzle weights",
                        "CTX": "drizzle context", "SAMP": "samples", "TIME": "exposure times"}


@dataclass
class Frame:
    """One image with what photometry needs to know about it."""

    path: Path
    data: np.ndarray  # float32, 2-D
    header: fits.Header  # primary keywords overlaid by the image extension's
    wcs: WCS | None
    hdu_index: int
    # True where the product itself says a pixel is not to be used (its DQ bits, a drizzled
    # WHT of 0); None when the file has neither
    product_mask: np.ndarray | None = None
    # the product's noise beside the image, read when asked for (read_frame's with_noise): a
    # calibrated exposure's ERR (sigma, image units), a drizzled product's WHT (clusterphot.noise)
    error: np.ndarray | None = None
    weight: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def mask_also(self, mask: np.ndarray) -> None:
        """Add ``mask`` (True: not to be used, e.g. cosmic rays) to the product's mask."""
        self.product_mask = mask if self.product_mask is None else self.product_mask | mask

    def bad_pixels(self) -> np.ndarray:
        """:func:`bad_pixel_mask` of the pixels, with the product's own mask (not grown: a hot
        pixel or a cosmic ray is one pixel, not an edge)."""
        bad = bad_pixel_mask(self.data)
        if self.product_mask is not None:
            bad |= self.product_mask
        return bad


def product_mask(hdul: fits.HDUList, index: int, shape: tuple[int, ...], path: Path,
                 dq_bits: int, rows: int = 256, weight: np.ndarray | None = None) -> np.ndarray | None:
    """The pixels an HST product marks unusable beside its image HDU ``index``: the chip's DQ
    extension (same EXTVER) having any of ``dq_bits``, and a drizzled product's WHT of 0 (no
    exposure, or every exposure rejected there; ``weight``: the WHT already read, not read
    again). None when the file has neither (FrameError, naming the file and the extension, for
    one of another shape). Read ``rows`` rows at a time: a 10k x 10k DQ array is 200 MB."""
    image = hdul[index]
    if image.name != "SCI":
        return None
    mask = None
    for name, version in (("DQ", image.ver), ("WHT", image.ver)):
        try:
            companion = hdul[(name, version)]
        except KeyError:
            continue
        if not companion.is_image or tuple(companion.shape) != tuple(shape):
            raise FrameError(f"{path}: {name},{version} has shape {tuple(companion.shape)}, not the SCI image's "
                             f"{tuple(shape)}: the file is not one product")
        if mask is None:
            mask = np.zeros(shape, bool)
        for r0 in range(0, shape[0], rows):
            values = companion.section[r0 : r0 + rows] if weight is None or name == "DQ" else weight[r0 : r0 + rows]
            if name == "DQ":
                mask[r0 : r0 + rows] |= (np.asarray(values).astype(np.int64) & dq_bits) != 0
            else:
                mask[r0 : r0 + rows] |= values == 0
    return mask


def companion_image(hdul: fits.HDUList, index: int, name: str, rows: int) -> np.ndarray | None:
    """The ``name`` (ERR, WHT) extension beside the SCI image HDU ``index`` (same EXTVER) as
    float32, read ``rows`` rows at a time; None when there is none (its shape is checked by the
    caller)."""
    image = hdul[index]
    if image.name != "SCI" or (name, image.ver) not in hdul:
        return None
    companion = hdul[(name, image.ver)]
    values = np.empty(companion.shape, np.float32)
    for r0 in range(0, values.shape[0], rows):
        values[r0 : r0 + rows] = companion.section[r0 : r0 + rows]
    return values


def _first_image_hdu(hdul: fits.HDUList, path: Path) -> int:
    """The first HDU holding an image of the sky: not an HST product's DQ, ERR, WHT or CTX."""
    # the shape comes from the header: looking at hdu.data would read the pixels
    images = [index for index, hdu in enumerate(hdul) if hdu.is_image and len(hdu.shape) >= 2 and all(hdu.shape)]
    sky = [index for index in images if hdul[index].name not in COMPANION_EXTENSIONS]
    if sky:
        return sky[0]
    if images:
        names = ", ".join(sorted({hdul[index].name for index in images}))
        raise FrameError(f"{path}: no image of the sky: its image HDUs are {image_hdus(hdul)}, only {names} "
                         "extensions (a product's companions) and no SCI")
    raise FrameError(f"{path}: no image data in any HDU (found {len(hdul)} HDUs without an image)")


def merged_header(primary: fits.Header, extension: fits.Header) -> fits.Header:
    """Primary keywords overlaid by the extension's (HST puts EXPTIME in one, PHOTFLAM in the other)."""
    header = fits.Header()
    structural = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION",
                  "PCOUNT", "GCOUNT", "HISTORY", "COMMENT", ""}
    for source in (primary, extension):
        for card in source.cards:
            if card.keyword not in structural:
                header[card.keyword] = (card.value, card.comment)
    return header


def wcs_error_text(error: Exception) -> str:
    """An astropy/WCSLIB error as one line: its type and WCSLIB's explanation, not its C source lines."""
    lines = [line.strip() for line in str(error).splitlines()]
    detail = " ".join(line for line in lines if line and not line.startswith("ERROR "))
    return f"{type(error).__name__}: {detail or ' '.join(lines)}"


def celestial_wcs(header: fits.Header, source: str = "header") -> WCS | None:
    """The celestial WCS of a header, or None when it has none usable.

    A header without CTYPE1 has no WCS, which is fine; a WCS that cannot be set up is dropped
    with a warning naming ``source`` (the file), since its stars get no ra/dec.
    """
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as error:  # a broken WCS is the same as none for photometry
            log.warning("%s: the WCS cannot be used (%s); ra and dec will be NaN",
                        source, wcs_error_text(error))
            return None
    return wcs if wcs.has_celestial else None


def image_hdus(hdul: fits.HDUList) -> str:
    """The file's image HDUs for a message: index and (EXTNAME, EXTVER) of each."""
    found = [f"{k} ({h.name},{h.ver})" if h.name else str(k) for k, h in enumerate(hdul)
             if h.is_image and len(h.shape) >= 2]
    return ", ".join(found) or "none"


def read_frame(path: str | Path, hdu: int | str | list | tuple | None = None, plane: int | None = None,
               block_pixels: int = 2**20, dq_bits: int | None = None, with_noise: bool = False) -> Frame:
    """Read the first image HDU (or the one named) of a FITS file as float32.

    ``hdu``: an index, an EXTNAME, or [EXTNAME, EXTVER] (an flc file's second chip: ["SCI", 2]).
    A 3-D cube needs ``plane`` (0-based index along the first FITS axis). An HST product's DQ
    bits (``dq_bits``, DEFAULT_DQ_BITS when None) and a drizzled WHT of 0 give the frame's
    ``product_mask`` (:func:`product_mask`). ``with_noise``: also the product's ERR or WHT
    (``Frame.error``, ``Frame.weight``; for :func:`clusterphot.noise.frame_noise`).

    The pixels are read a block of rows (about ``block_pixels``) at a time into one native
    float32 array: a memory-mapped file would keep the file's pages in this process's memory
    next to the float32 copy, twice the frame's size at the peak (800 MB at 10k x 10k). Small
    blocks (4 MB) also keep the C allocator from holding on to memory after they are freed
    (it would keep later arrays up to the largest block's size on its own heap).
    """
    path = Path(path)
    if not path.exists():
        raise FrameError(f"{path}: file does not exist")
    try:
        hdul = fits.open(path, memmap=False)  # reads the headers; pixels only when asked for
    except OSError as err:
        raise FrameError(f"{path}: not a readable FITS file ({err})") from None
    if isinstance(hdu, (list, tuple)):  # [EXTNAME, EXTVER], as YAML gives it
        hdu = (str(hdu[0]), int(hdu[1]))
    with hdul:
        try:
            index = _first_image_hdu(hdul, path) if hdu is None else hdul.index_of(hdu)
            image_hdu = hdul[index]
            shape = image_hdu.shape if image_hdu.is_image else ()
        except (KeyError, IndexError):
            wanted = f"[{hdu[0]}, {hdu[1]}]" if isinstance(hdu, tuple) else repr(hdu)
            raise FrameError(f"{path}: no HDU {wanted}; its image HDUs are {image_hdus(hdul)}: set 'hdu' for "
                             "this filter in the config to one of them") from None
        except (OSError, TypeError, ValueError) as err:
            raise FrameError(f"{path}: truncated or corrupt FITS data ({err})") from None
        if len(shape) == 0 or not all(shape):
            raise FrameError(f"{path}: HDU {index} has no image data")
        if image_hdu.name in COMPANION_EXTENSIONS:
            raise FrameError(f"{path}: HDU {index} is a {image_hdu.name} extension "
                             f"({COMPANION_EXTENSIONS[image_hdu.name]}), not an image of the sky; its image HDUs "
                             f"are {image_hdus(hdul)}: set 'hdu' for this filter in the config to a SCI one")
        if len(shape) == 3:
            if plane is None:
                raise FrameError(
                    f"{path}: image is a 3-D cube of shape {shape}; "
                    f"set 'plane' (0..{shape[0] - 1}) for this filter in the config"
                )
            if not 0 <= plane < shape[0]:
                raise FrameError(
                    f"{path}: plane {plane} does not exist: the cube has {shape[0]} planes "
                    f"(0..{shape[0] - 1}); set 'plane' for this filter in the config"
                )
            leading = (plane,)
        elif len(shape) == 2:
            leading = ()
        else:
            raise FrameError(f"{path}: image has {len(shape)} dimensions; expected 2")
        ny, nx = shape[-2:]
        if min(ny, nx) < MIN_FRAME_PIXELS:
            raise FrameError(
                f"{path}: image is {ny} x {nx} pixels (rows x columns); a frame must be at least "
                f"{MIN_FRAME_PIXELS} pixels along each axis to hold a star"
            )
        data = np.empty((ny, nx), dtype=np.float32)
        rows = max(1, block_pixels // nx)
        has_valid = False  # any finite, non-zero pixel
        try:
            for r0 in range(0, ny, rows):
                # astropy applies BSCALE/BZERO/BLANK; big-endian values are byte-swapped on the copy
                block = data[r0 : r0 + rows]
                block[...] = image_hdu.section[(*leading, slice(r0, r0 + rows))]
                has_valid = has_valid or bool(np.any(np.isfinite(block) & (block != 0)))
        except (OSError, TypeError, ValueError) as err:
            raise FrameError(f"{path}: truncated or corrupt FITS data ({err})") from None
        header = merged_header(hdul[0].header, image_hdu.header) if index else image_hdu.header.copy()
        try:
            rows = max(1, block_pixels // nx)
            error = weight = None
            if with_noise and not leading:
                error = companion_image(hdul, index, "ERR", rows)
                if error is not None and error.shape != (ny, nx):
                    raise FrameError(f"{path}: ERR,{hdul[index].ver} has shape {error.shape}, not the SCI image's "
                                     f"{(ny, nx)}: the file is not one product")
                weight = None if error is not None else companion_image(hdul, index, "WHT", rows)
            # the WHT's shape is checked there, before its zeros are taken from it
            masked = product_mask(hdul, index, (ny, nx), path, DEFAULT_DQ_BITS if dq_bits is None else dq_bits,
                                  rows, weight)
        except (OSError, TypeError, ValueError) as err:
            raise FrameError(f"{path}: truncated or corrupt DQ, ERR or WHT extension ({err})") from None
    if not has_valid:
        raise FrameError(f"{path}: image has no valid pixels (all NaN or all zero)")
    return Frame(path=path, data=data, header=header, wcs=celestial_wcs(header, str(path)),
                 hdu_index=index, product_mask=masked, error=error, weight=weight)


def read_configured_frame(path: str | Path, settings: FrameSettings, with_noise: bool = False) -> Frame:
    """:func:`read_frame` with what a filter's config says about reading it: its ``hdu``,
    ``plane`` and ``dq_bits`` (``settings``: :class:`clusterphot.config.FrameSettings`)."""
    return read_frame(path, hdu=settings.hdu, plane=settings.plane, dq_bits=settings.dq_bits, with_noise=with_noise)


def bad_pixel_mask(data: np.ndarray, grow: int = 2) -> np.ndarray:
    """True where a pixel cannot be used: non-finite, or part of a zero-filled (no-coverage) area.

    An isolated exact zero is kept (an integer image can have one on the sky); a zero with
    a zero neighbour along a row or column belongs to a no-coverage border or gap. The mask
    is grown by ``grow`` pixels so that apertures touching it are caught.
    """
    # In place where it can be: each full-size boolean is 100 MB at 10k x 10k.
    bad = np.isfinite(data)
    np.logical_not(bad, out=bad)
    zero = data == 0
    if zero.any():
        run = np.zeros_like(zero)  # a zero neighbour along the row or column
        run[:, 1:] |= zero[:, :-1]
        run[:, :-1] |= zero[:, 1:]
        run[1:, :] |= zero[:-1, :]
        run[:-1, :] |= zero[1:, :]
        run &= zero
        bad |= run
        del run
    del zero
    if grow > 0 and bad.any():
        # OpenCV's dilation, not ndimage.maximum_filter: the same mask (tested) in a twentieth
        # of the time, 2.9 of a 10k x 10k frame's 119 CPU s on the PSF path
        bad = cv2.dilate(bad.view(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).view(bool)
    return bad


def keyword(header: fits.Header, *names: str, default=None):
    """The first of ``names`` present (and not blank) in the header."""
    for name in names:
        value = header.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value.strip() if isinstance(value, str) else value
    return default


# A HUGS stack's name gives the exposure time it is normalised to: hlsp_hugs_..._stack-0370s.fits
HUGS_STACK_EXPOSURE = re.compile(r"^hlsp_hugs_.*_stack-(\d+)s(?:\.fits?)?(?:\.gz)?$", re.IGNORECASE)


def hugs_stack(header: fits.Header, names: list[str | None]) -> tuple[float, float] | None:
    """For a HUGS stack (one of ``names``, the file's or the name it was fetched by, says so):
    the exposure (s) its name gives and its pixels are normalised to (``stack-0370s``: 370),
    and how many such exposures it averages (its EXPTIME, their total, over that; 1 when
    EXPTIME is absent or no longer). None for any other file."""
    for name in names:
        match = HUGS_STACK_EXPOSURE.search(Path(name).name if name else "")
        if match:
            exposure = float(match.group(1))
            try:
                total = float(keyword(header, "EXPTIME", "TEXPTIME"))
            except (TypeError, ValueError):
                total = math.nan
            return exposure, total / exposure if total > 1.01 * exposure else 1.0
    return None


def exposure_time(header: fits.Header, path: Path, override: float | None = None,
                  source_name: str | None = None) -> float:
    """EXPTIME in seconds; the config's value wins, and a HUGS stack's is the one its name gives
    (:func:`hugs_stack`), from the file's name or the name it was fetched by (``source_name``).
    It must be positive, and an implausibly long one is warned about."""
    stack = hugs_stack(header, [path.name, source_name])
    if override is None and stack is not None:
        if stack[1] != 1.0:
            log.info("%s: a HUGS stack normalised to %g s (its name), not EXPTIME %s", path, stack[0],
                     keyword(header, "EXPTIME", "TEXPTIME"))
        return stack[0]
    value = override if override is not None else keyword(header, "EXPTIME", "TEXPTIME")
    if value is None:
        raise FrameError(f"{path}: no EXPTIME keyword; set 'exptime' for this filter in the config")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path}: EXPTIME {value!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise FrameError(f"{path}: EXPTIME is {value}; it must be positive")
    if value > MAX_PLAUSIBLE_EXPTIME:
        origin = "the config's 'exptime'" if override is not None else "EXPTIME in the header"
        log.warning("%s: exposure time %g s (%s) is longer than any real exposure (%g s); "
                    "the magnitudes will be off by 2.5 log10 of the error", path, value, origin,
                    MAX_PLAUSIBLE_EXPTIME)
    return value


def image_unit(header: fits.Header, path: Path) -> tuple[str, bool]:
    """(``'electron'`` or ``'count'``, is_rate) from BUNIT; HST defaults when absent."""
    bunit = keyword(header, "BUNIT")
    if bunit is None:
        # ACS and WFC3 calibrate to electrons (flt/flc; drizzled products carry BUNIT), and a
        # HUGS stack of their flc frames says nothing; WFPC2 and raw frames are in DN.
        if str(keyword(header, "INSTRUME", default="")).upper() in ("ACS", "WFC3"):
            return ("electron", False)
        return ("count", False)
    key = str(bunit).upper().replace(" ", "").replace("PER", "/")
    if key not in UNIT_ALIASES:
        raise FrameError(f"{path}: BUNIT {bunit!r} is not one of electrons, counts or their rates per second")
    return UNIT_ALIASES[key]


def gain(header: fits.Header, unit: str, override: float | None = None) -> float:
    """Electrons per image unit (1 for frames in electrons)."""
    if override is not None:
        return float(override)
    if unit == "electron":
        return 1.0
    value = keyword(header, "ATODGAIN", "CCDGAIN", "GAIN")
    if value is not None and float(value) > 0:
        return float(value)
    detector = detector_for(keyword(header, "INSTRUME"), str(keyword(header, "DETECTOR", default="")))
    return detector.gain if detector else 1.0


CLIPPED_PIXELS = 5  # at least this many pixels at a frame's largest value: its saturated stars are flat-topped there


def clipped_level(data: np.ndarray, bad: np.ndarray) -> tuple[float, int] | None:
    """The value a frame is clipped at, and how many of its pixels hold it, when its saturated
    stars show one: its largest usable value, held by at least ``CLIPPED_PIXELS`` pixels (a
    16-bit converter's 65535, a detector's full well as the demo's simulator clips). None
    otherwise: an unclipped frame's largest value is one star's peak, and a drizzled stack's
    saturated cores hold many different values."""
    # fmax: a NaN is no value; where=: no copy of the usable pixels
    usable = ~bad
    lowest = -np.inf if np.issubdtype(data.dtype, np.floating) else np.iinfo(data.dtype).min
    largest = np.fmax.reduce(data, axis=None, where=usable, initial=lowest)
    if not np.isfinite(largest):
        return None
    count = int(np.count_nonzero((data == largest) & usable))  # 0 when every pixel is masked
    return (float(largest), count) if count >= CLIPPED_PIXELS else None


def saturation_level(header: fits.Header, unit: str, is_rate: bool, exptime: float,
                     frame_gain: float, override: float | None = None) -> tuple[float | None, str]:
    """Pixel value (in the image's units) at which the detector saturates, or None if unknown,
    and where it came from: "config", the header's keyword, or the detector's full well."""
    if override is not None:
        return float(override), "config"
    for name in ("SATURATE", "SATURATION"):
        value = keyword(header, name)
        if value is not None:
            level, source = float(value), f"{name} keyword"  # in the image's own (per-exposure) units
            break
    else:
        detector = detector_for(keyword(header, "INSTRUME"), str(keyword(header, "DETECTOR", default="")))
        if detector is None:
            return None, "unknown"
        level = detector.full_well if unit == "electron" else detector.full_well / frame_gain
        source = f"{detector.name} full well"
    return (level / exptime if is_rate else level), source
