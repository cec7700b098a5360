"""Cosmic rays of single exposures: which frames need them found, L.A.Cosmic (astroscrappy) to
find them, and the mask file the workflow's jobs share.

A single exposure (WFPC2 ``c0m``, an ``flt``/``flc`` without CR-SPLIT, most ground-based frames)
is full of cosmic-ray hits that DAOFIND takes for stars. Stacks, drizzled and CR-combined
products had theirs rejected when the exposures were combined. Cosmic-ray pixels are masked,
never painted over, for photometry: a star's flux comes from its unmasked pixels.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import astroscrappy
import numpy as np
from astropy.io import fits

from .config import LACOSMIC
from .errors import FrameError
from .filters import detector_for
from .frames import Frame, keyword
from .outputs import atomic_output

log = logging.getLogger(__name__)

COSMIC_RAY_MODES = ("auto", "lacosmic", "none")
# the DQ bits of cosmic rays in ACS and WFC3 products: found by AstroDrizzle (4096) or by the
# CR-SPLIT combination (8192)
DQ_COSMIC_RAY = 4096 | 8192

LACOSMIC_SIGCLIP = LACOSMIC["sigclip"]
LACOSMIC_SIGFRAC = LACOSMIC["sigfrac"]
LACOSMIC_OBJLIM = LACOSMIC["objlim"]
LACOSMIC_ITERATIONS = LACOSMIC["niter"]
# Rows per block (plus a margin each side): the detection is local, and astroscrappy's dozen
# float32 work arrays of a whole 10k x 10k frame would need 5 GB. Its reach: a 7x7 median of a
# 3x3 median and a 5x5 noise median (6 rows) per iteration, and each iteration's cleaning of
# the hits (a 5x5 box) before the next detection, four times: about 32 rows; 40 to spare.
BLOCK_ROWS = 2048
BLOCK_MARGIN = 40

# Suffixes of HST file names (ROOTNAME_suffix.fits) and what they say about cosmic rays
DRIZZLED_SUFFIXES = ("drz", "drc")
COMBINED_SUFFIXES = ("crj", "crc", "sfl")
SINGLE_EXPOSURE_SUFFIXES = ("flt", "flc", "c0m", "c0f")


@dataclass(frozen=True)
class CosmicRayDecision:
    """Whether a frame's cosmic rays are to be found with L.A.Cosmic, and why."""

    lacosmic: bool
    reason: str


def product_suffix(name: str) -> str | None:
    """The HST product suffix of a file name (``ubai2505m_c0m.fits`` -> ``c0m``), None without one."""
    match = re.search(r"_([a-z0-9]{3})(?:\.fits?)?(?:\.gz)?$", name.lower())
    return match.group(1) if match else None


def cosmic_ray_decision(mode: str, header: fits.Header, names: list[str], extensions: list[str],
                        dq_cosmic_ray_bits: int = 0) -> CosmicRayDecision:
    """What ``cosmic_rays`` (``auto``, ``lacosmic`` or ``none``) means for this frame.

    ``auto`` finds them only in a single exposure, as its header and file names show: a stack,
    a drizzled combination or a CR-combined product needs none, nor does an exposure whose DQ
    already flags them (``dq_cosmic_ray_bits``: the bits 4096 and 8192 set there and masked), nor
    a WFC3/IR exposure (fitted up the ramp). ``names``: the file's, and where it came from (a
    URL's last part); the header's FILENAME is added. ``extensions``: the file's EXTNAMEs (a
    drizzled product has WHT and CTX).
    """
    if mode not in COSMIC_RAY_MODES:
        raise ValueError(f"cosmic_rays {mode!r} is none of {COSMIC_RAY_MODES}")
    if mode == "lacosmic":
        return CosmicRayDecision(True, "cosmic_rays: lacosmic in the config")
    if mode == "none":
        return CosmicRayDecision(False, "cosmic_rays: none in the config")
    names = [name for name in [*names, str(keyword(header, "FILENAME", default=""))] if name]
    suffixes = {product_suffix(name) for name in names} - {None}
    ncombine = _number(keyword(header, "NCOMBINE"))
    ndrizim = _number(keyword(header, "NDRIZIM"))
    crsplit = _number(keyword(header, "CRSPLIT", "NRPTEXP"))
    instrument = str(keyword(header, "INSTRUME", default="")).upper()
    detector = str(keyword(header, "DETECTOR", default="")).upper()
    telescope = str(keyword(header, "TELESCOP", default="")).upper()
    drizzled = ("WHT" in extensions or "CTX" in extensions or keyword(header, "D001VER") is not None
                or bool(suffixes & set(DRIZZLED_SUFFIXES)))
    if drizzled and ndrizim == 1:
        return CosmicRayDecision(True, "auto: a single exposure, drizzled (NDRIZIM 1)")
    if drizzled:
        return CosmicRayDecision(False, "auto: a drizzled product (its cosmic rays were rejected when its "
                                        "exposures were combined)")
    if any("stack" in name.lower() for name in names):
        return CosmicRayDecision(False, "auto: a stack (its file name says so)")
    if ncombine > 1:
        return CosmicRayDecision(False, f"auto: a combination of {int(ncombine)} exposures (NCOMBINE)")
    if suffixes & set(COMBINED_SUFFIXES) or (str(keyword(header, "CRCORR", default="")).upper() == "COMPLETE"
                                             and not suffixes & set(SINGLE_EXPOSURE_SUFFIXES)):
        return CosmicRayDecision(False, "auto: a CR-combined product (CRCORR COMPLETE)")
    if dq_cosmic_ray_bits:
        bits = " and ".join(str(bit) for bit in (4096, 8192) if dq_cosmic_ray_bits & bit)
        return CosmicRayDecision(False, f"auto: its DQ already flags cosmic rays (bit {bits}, masked)")
    if instrument == "WFC3" and detector == "IR":
        return CosmicRayDecision(False, "auto: a WFC3/IR exposure (its cosmic rays were rejected up the ramp)")
    if suffixes & set(SINGLE_EXPOSURE_SUFFIXES):
        return CosmicRayDecision(True, "auto: a single exposure (an HST " + "/".join(
            sorted(suffixes & set(SINGLE_EXPOSURE_SUFFIXES))) + " product)")
    if instrument == "WFPC2":
        return CosmicRayDecision(True, "auto: a single WFPC2 exposure")
    if crsplit == 1 or ncombine == 1:
        return CosmicRayDecision(True, "auto: a single exposure (CRSPLIT or NCOMBINE is 1)")
    if telescope and telescope != "HST":
        return CosmicRayDecision(True, f"auto: a ground-based frame ({telescope}) with no sign of being combined")
    return CosmicRayDecision(False, "auto: no sign of a single exposure in the header (set cosmic_rays: lacosmic "
                                    "for this filter if it is one)")


def file_facts(frame: Frame, dq_bits: int) -> tuple[list[str], int]:
    """(the file's EXTNAMEs, the cosmic-ray bits (4096, 8192) that the frame's DQ has set and
    ``dq_bits`` masks), for :func:`cosmic_ray_decision`."""
    with fits.open(frame.path) as hdul:  # the headers; the DQ's pixels only when looked at
        extensions = [hdu.name for hdu in hdul]
        found = 0
        image = hdul[frame.hdu_index]
        wanted = dq_bits & DQ_COSMIC_RAY
        if wanted and image.name == "SCI" and ("DQ", image.ver) in hdul:
            dq = hdul[("DQ", image.ver)]
            for r0 in range(0, dq.shape[0], 256):
                found |= int(np.bitwise_or.reduce(np.asarray(dq.section[r0 : r0 + 256]).astype(np.int64) & wanted,
                                                  axis=None))
                if found == wanted:
                    break
    return extensions, found


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# WFPC2's read noise by its A/D gain (e- per DN), the PC's as the WFPC2 Instrument Handbook gives
# it (the WF chips': 5.2-5.5 and 7.0-8.3): measured on bias frames, the A/D rounding included
WFPC2_READ_NOISE = {7.0: 5.2, 15.0: 7.0}


def read_noise(header: fits.Header) -> float:
    """Read noise in electrons: the header's (READNSEA..D averaged for ACS and WFC3, else
    RDNOISE/READNOIS/READNSE), WFPC2's at its ATODGAIN, the detector's nominal, or 0 for an
    unknown detector (L.A.Cosmic's noise model is then the pixels' photon noise alone)."""
    amplifiers = [float(header[k]) for k in ("READNSEA", "READNSEB", "READNSEC", "READNSED")
                  if isinstance(header.get(k), (int, float)) and header[k] > 0]
    if amplifiers:
        return float(np.mean(amplifiers))
    value = keyword(header, "RDNOISE", "READNOIS", "READNSE", "READNOISE")
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    instrument = str(keyword(header, "INSTRUME", default="")).upper()
    atodgain = _number(keyword(header, "ATODGAIN"))
    if instrument == "WFPC2" and math.isfinite(atodgain):
        return WFPC2_READ_NOISE[min(WFPC2_READ_NOISE, key=lambda gain: abs(gain - atodgain))]
    detector = detector_for(keyword(header, "INSTRUME"), str(keyword(header, "DETECTOR", default="")))
    return detector.read_noise if detector is not None else 0.0


def lacosmic_saturation(saturation: float | None, electrons_per_unit: float, pedestal: float) -> float:
    """The saturation level given in image units (None: unknown) as astroscrappy sees it, in a
    block's electrons: converted as the block's pixels are (float32, the same operations), then a hair
    lower, so that a pixel at the level (a clipped frame's plateau) counts as saturated, not as
    a cosmic ray (in float64 the level came out above its own pixels in about one case in six)."""
    if not saturation:
        return float(np.finfo(np.float32).max)
    level = np.float32(saturation) * np.float32(electrons_per_unit) + np.float32(pedestal)
    return float(np.nextafter(level, np.float32(-np.inf)))


def find_cosmic_rays(data: np.ndarray, bad: np.ndarray, electrons_per_unit: float, read_noise_electrons: float,
                     saturation: float | None, pedestal: float = 0.0,
                     block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """True on cosmic-ray pixels of a single exposure (``data`` times ``electrons_per_unit`` is
    electrons, plus ``pedestal`` electrons where its sky was subtracted: L.A.Cosmic's noise model
    is each pixel's photons; ``saturation`` in the image's units), ``bad`` pixels left out.
    astroscrappy's L.A.Cosmic, run in blocks
    of ``block_rows`` rows with margins (each converted to electrons on its own: no second copy
    of the frame): the same mask as one call on the whole frame (tested), but for a hit whose
    5x5 box holds no good pixel, which astroscrappy fills with its image's median."""
    ny = data.shape[0]
    mask = np.zeros(data.shape, bool)
    satlevel = lacosmic_saturation(saturation, electrons_per_unit, pedestal)
    for start in range(0, ny, block_rows):
        lo, hi = max(0, start - BLOCK_MARGIN), min(ny, start + block_rows + BLOCK_MARGIN)
        # float32 whatever the frame's type: astroscrappy's, and the saturation level's arithmetic
        block = np.nan_to_num(data[lo:hi].astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        block *= np.float32(electrons_per_unit)
        block += np.float32(pedestal)
        found, _ = astroscrappy.detect_cosmics(
            block, inmask=bad[lo:hi], gain=1.0, readnoise=read_noise_electrons, satlevel=satlevel,
            sigclip=LACOSMIC_SIGCLIP, sigfrac=LACOSMIC_SIGFRAC, objlim=LACOSMIC_OBJLIM,
            niter=LACOSMIC_ITERATIONS, sepmed=False, cleantype="meanmask", fsmode="median")
        stop = min(ny, start + block_rows)
        mask[start:stop] = found[start - lo : stop - lo]
    mask &= ~bad
    return mask


def sky_pedestal(median: float, std: float, read_noise_electrons: float) -> float:
    """Electrons to add to a frame whose sky was subtracted, so that L.A.Cosmic's noise model
    (each pixel's photons and the read noise) holds: what the sky's scatter (``std``, e-) says
    its photons were, less what its median (e-) still holds. 0 for a frame whose median holds
    its sky: one at least a twentieth of its variance (a real single exposure's does, crowded or
    not: NGC 1261's WFPC2 F336W frame 10 e- against a scatter of 13 e-); a subtracted sky
    leaves a median near 0."""
    if median >= 0.05 * std**2:
        return 0.0
    return max(0.0, std**2 - read_noise_electrons**2 - median)


# --- the mask file ------------------------------------------------------------------------------


def write_cosmic_ray_mask(path: str | Path, mask: np.ndarray | None, decision: CosmicRayDecision,
                          image: str, shape: tuple[int, int]) -> None:
    """The frame's cosmic-ray mask as a FITS file: a compressed uint8 image (1 on a cosmic ray)
    when L.A.Cosmic ran, a header alone when it did not; the header says which and why."""
    header = fits.Header()
    header["CRMETHOD"] = ("lacosmic" if decision.lacosmic else "none", "how cosmic rays were found")
    header["CRREASON"] = (decision.reason, "why")
    header["NCRPIX"] = (int(mask.sum()) if mask is not None else 0, "pixels masked as cosmic rays")
    header["CRIMAGE"] = (Path(image).name, "the frame")
    header["CRNAXIS1"], header["CRNAXIS2"] = shape[1], shape[0]
    if decision.lacosmic:
        header["CRSIGCLP"], header["CRSIGFRC"], header["CROBJLIM"] = LACOSMIC_SIGCLIP, LACOSMIC_SIGFRAC, LACOSMIC_OBJLIM
    hdus = [fits.PrimaryHDU(header=header)]
    if mask is not None:
        hdus.append(fits.CompImageHDU(mask.astype(np.uint8), name="CRMASK", compression_type="RICE_1"))
    with atomic_output(path) as partial:  # never a half-written mask under the final name
        fits.HDUList(hdus).writeto(partial)


def apply_cosmic_ray_mask(frame: Frame, path: str | Path) -> dict:
    """Add the cosmic rays of :func:`write_cosmic_ray_mask`'s file to the frame's product mask
    (not grown: a hit is its own pixels); return what the file's header says, for the metadata."""
    mask, about = read_cosmic_ray_mask(path, frame.shape)
    if mask is not None:
        frame.mask_also(mask)
    return about


def read_cosmic_ray_mask(path: str | Path, shape: tuple[int, int]) -> tuple[np.ndarray | None, dict]:
    """(mask or None, what the header says) from :func:`write_cosmic_ray_mask`'s file."""
    with fits.open(path) as hdul:
        header = hdul[0].header
        about = {"cosmic_rays": header["CRMETHOD"], "cosmic_rays_reason": header["CRREASON"],
                 "cosmic_ray_pixels": int(header["NCRPIX"])}
        if "CRMASK" not in hdul:
            return None, about
        mask = hdul["CRMASK"].data.astype(bool)
    if mask.shape != tuple(shape):
        raise FrameError(f"{path}: cosmic-ray mask of shape {mask.shape} is not the frame's {tuple(shape)}; "
                         "delete it to have it made again")
    return mask, about
