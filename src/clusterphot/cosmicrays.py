"""Cosmic rays of single exposures: which frames need them found, L.A.Cosmic (astroscrappy) to
find them, and the mask file the workflow's jobs share.

A single exposure (WFPC2 ``c0m``, an ``flt``/``flc`` without CR-SPLIT, most ground-based frames)
is full of cosmic-ray hits that DAOFIND takes for stars. Stacks, drizzled and CR-combined
products had theirs rejected when the exposures were combined. Cosmic-ray pixels are masked,
never painted over, for photometry: a star's flux comes from its unmasked pixels.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import astroscrappy
import numpy as np
from astropy.io import fits

from .errors import FrameError
from .filters import detector_for
from .frames import Frame, keyword

log = logging.getLogger(__name__)

COSMIC_RAY_MODES = ("auto", "lacosmic", "none")
# the DQ bits of cosmic rays in ACS and WFC3 products: found by AstroDrizzle (4096) or by the
# CR-SPLIT combination (8192)
DQ_COSMIC_RAY = 4096 | 8192

# L.A.Cosmic (van Dokkum 2001) as astroscrappy runs it, with the paper's full 3x3 and 7x7
# medians for the fine structure (astroscrappy's faster separable median takes the cores of
# undersampled stars for cosmic rays: 2000 of the 3100 matched stars' centres on the NGC 1261
# WFPC2 F336W frame against 140 with the full median, as many as chance). sigclip and sigfrac
# are the paper's; objlim 10 rather than 5 because an HST star two pixels wide has fine
# structure close to a cosmic ray's: on that frame 5 loses 10 per cent of the stars matched
# with F555W, 10 none, and it still removes 68 per cent of the unmatched detections.
LACOSMIC_SIGCLIP = 4.5
LACOSMIC_SIGFRAC = 0.3
LACOSMIC_OBJLIM = 10.0
LACOSMIC_ITERATIONS = 4
# Rows per block (plus a margin each side): the detection is local (7 x 7 medians, grown a
# pixel per iteration), and astroscrappy's dozen float32 work arrays of a whole 10k x 10k
# frame would need 5 GB.
BLOCK_ROWS = 2048
BLOCK_MARGIN = 32

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


def cosmic_ray_decision(mode: str, header: fits.Header, path: Path, extensions: list[str],
                        dq_flags_cosmic_rays: bool) -> CosmicRayDecision:
    """What ``cosmic_rays`` (``auto``, ``lacosmic`` or ``none``) means for this frame.

    ``auto`` finds them only in a single exposure, as its header (or, failing that, its
    file name) shows: a stack, a drizzled or a CR-combined product needs none, nor does an
    exposure whose DQ already flags them (``dq_flags_cosmic_rays``: bit 4096 or 8192 set and masked).
    ``extensions``: the file's EXTNAMEs (a drizzled product has WHT and CTX).
    """
    if mode not in COSMIC_RAY_MODES:
        raise ValueError(f"cosmic_rays {mode!r} is none of {COSMIC_RAY_MODES}")
    if mode == "lacosmic":
        return CosmicRayDecision(True, "cosmic_rays: lacosmic in the config")
    if mode == "none":
        return CosmicRayDecision(False, "cosmic_rays: none in the config")
    # the file's own name first, then the name the archive gave it (FILENAME), as the pipeline wrote it
    suffixes = {product_suffix(path.name), product_suffix(str(keyword(header, "FILENAME", default="")))}
    ncombine = keyword(header, "NCOMBINE", "NDRIZIM")
    crsplit = keyword(header, "CRSPLIT", "NRPTEXP")
    if "WHT" in extensions or "CTX" in extensions or keyword(header, "D001VER") is not None \
            or suffixes & set(DRIZZLED_SUFFIXES):
        return CosmicRayDecision(False, "auto: a drizzled product (its cosmic rays were rejected when its "
                                        "exposures were combined)")
    if "stack" in path.name.lower():
        return CosmicRayDecision(False, "auto: a stack (its file name says so)")
    if _number(ncombine) > 1:
        return CosmicRayDecision(False, f"auto: a combination of {int(_number(ncombine))} exposures (NCOMBINE)")
    if suffixes & set(COMBINED_SUFFIXES) or (str(keyword(header, "CRCORR", default="")).upper() == "COMPLETE"
                                             and not suffixes & set(SINGLE_EXPOSURE_SUFFIXES)):
        return CosmicRayDecision(False, "auto: a CR-combined product (CRCORR COMPLETE)")
    if dq_flags_cosmic_rays:
        return CosmicRayDecision(False, "auto: its DQ already flags cosmic rays (bits 4096 and 8192, masked)")
    instrument = str(keyword(header, "INSTRUME", default="")).upper()
    telescope = str(keyword(header, "TELESCOP", default="")).upper()
    if suffixes & set(SINGLE_EXPOSURE_SUFFIXES):
        return CosmicRayDecision(True, "auto: a single exposure (an HST " + "/".join(
            sorted(suffixes & set(SINGLE_EXPOSURE_SUFFIXES))) + " product)")
    if instrument == "WFPC2":
        return CosmicRayDecision(True, "auto: a single WFPC2 exposure")
    if _number(crsplit) == 1 or _number(ncombine) == 1:
        return CosmicRayDecision(True, "auto: a single exposure (CRSPLIT or NCOMBINE is 1)")
    if telescope and telescope != "HST":
        return CosmicRayDecision(True, f"auto: a ground-based frame ({telescope}) with no sign of being combined")
    return CosmicRayDecision(False, "auto: no sign of a single exposure in the header (set cosmic_rays: lacosmic "
                                    "for this filter if it is one)")


def file_facts(frame: Frame, dq_bits: int) -> tuple[list[str], bool]:
    """(the file's EXTNAMEs, whether the frame's DQ flags cosmic rays that ``dq_bits`` masks),
    for :func:`cosmic_ray_decision`."""
    with fits.open(frame.path) as hdul:  # the headers; the DQ's pixels only when looked at
        extensions = [hdu.name for hdu in hdul]
        flagged = False
        image = hdul[frame.hdu_index]
        if dq_bits & DQ_COSMIC_RAY and image.name == "SCI" and ("DQ", image.ver) in hdul:
            bits = dq_bits & DQ_COSMIC_RAY
            dq = hdul[("DQ", image.ver)]
            for r0 in range(0, dq.shape[0], 256):
                if np.any(np.asarray(dq.section[r0 : r0 + 256]).astype(np.int64) & bits):
                    flagged = True
                    break
    return extensions, flagged


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def read_noise(header: fits.Header) -> float:
    """Read noise in electrons: the header's (READNSEA..D averaged for ACS and WFC3, else
    RDNOISE/READNOIS/READNSE), the detector's nominal, or 0 for an unknown detector (L.A.Cosmic's
    noise model is then the pixels' photon noise alone)."""
    amplifiers = [float(header[k]) for k in ("READNSEA", "READNSEB", "READNSEC", "READNSED")
                  if isinstance(header.get(k), (int, float)) and header[k] > 0]
    if amplifiers:
        return float(np.mean(amplifiers))
    value = keyword(header, "RDNOISE", "READNOIS", "READNSE", "READNOISE")
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    detector = detector_for(keyword(header, "INSTRUME"), str(keyword(header, "DETECTOR", default="")))
    return detector.read_noise if detector is not None else 0.0


def digitisation_noise(electrons_per_dn: float) -> float:
    """The rounding of the A/D converter, in electrons: a step of ``electrons_per_dn`` is a
    uniform error of rms step / sqrt(12). Beside the read noise in L.A.Cosmic's noise model:
    WFPC2 at 15 e-/DN on a sky of 1 DN has 4.3 e- of it, and without it the sky's rounded
    pixels pass for cosmic rays (1400 false hits on the NGC 1261 F555W frame)."""
    return electrons_per_dn / np.sqrt(12.0)


def find_cosmic_rays(electrons: np.ndarray, bad: np.ndarray, read_noise_electrons: float,
                     saturation_electrons: float | None, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """True on cosmic-ray pixels of a single exposure in electrons (with its sky, which L.A.Cosmic's
    noise model needs), ``bad`` pixels left out. astroscrappy's L.A.Cosmic, run in blocks of
    ``block_rows`` rows with margins: the same mask as one call on the whole frame (tested)."""
    ny = electrons.shape[0]
    mask = np.zeros(electrons.shape, bool)
    satlevel = float(saturation_electrons) if saturation_electrons else float(np.finfo(np.float32).max)
    for start in range(0, ny, block_rows):
        lo, hi = max(0, start - BLOCK_MARGIN), min(ny, start + block_rows + BLOCK_MARGIN)
        block = np.nan_to_num(electrons[lo:hi], nan=0.0, posinf=0.0, neginf=0.0)
        found, _ = astroscrappy.detect_cosmics(
            block, inmask=bad[lo:hi], gain=1.0, readnoise=read_noise_electrons, satlevel=satlevel,
            sigclip=LACOSMIC_SIGCLIP, sigfrac=LACOSMIC_SIGFRAC, objlim=LACOSMIC_OBJLIM,
            niter=LACOSMIC_ITERATIONS, sepmed=False, cleantype="meanmask", fsmode="median")
        stop = min(ny, start + block_rows)
        mask[start:stop] = found[start - lo : stop - lo]
    mask &= ~bad
    return mask


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
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    fits.HDUList(hdus).writeto(partial, overwrite=True)
    partial.replace(path)  # never a half-written mask under the final name


def apply_cosmic_ray_mask(frame: Frame, path: str | Path) -> dict:
    """Add the cosmic rays of :func:`write_cosmic_ray_mask`'s file to the frame's product mask
    (not grown: a hit is its own pixels); return what the file's header says, for the metadata."""
    mask, about = read_cosmic_ray_mask(path, frame.shape)
    if mask is not None:
        frame.product_mask = mask if frame.product_mask is None else frame.product_mask | mask
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
