"""HST filters and detectors: the facts that frames do not always carry.

Pivot wavelengths order filters from blue to red (colours are always blue - red), by
the one precedence of :func:`pivot_wavelength`; detector properties give saturation and noise defaults.
Values are the instruments' published nominal ones, to a few Angstrom / per cent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The HUGS survey's five bands, blue to red, and its classic colour-magnitude diagram.
HUGS_FILTERS: tuple[str, ...] = ("F275W", "F336W", "F438W", "F606W", "F814W")
CLASSIC_PAIR: tuple[str, str] = ("F606W", "F814W")


@dataclass(frozen=True)
class Detector:
    """Nominal properties of an HST detector."""

    name: str  # e.g. "ACS/WFC"
    full_well: float  # electrons
    read_noise: float  # electrons per pixel
    gain: float  # electrons per DN


DETECTORS: dict[str, Detector] = {
    "ACS/WFC": Detector("ACS/WFC", full_well=84700.0, read_noise=4.0, gain=2.0),
    "WFC3/UVIS": Detector("WFC3/UVIS", full_well=63000.0, read_noise=3.1, gain=1.55),
    # WFPC2 saturates in the A/D converter (4095 DN) before its full well.
    "WFPC2": Detector("WFPC2", full_well=4095.0 * 7.0, read_noise=5.2, gain=7.0),
}

# Pivot wavelengths in Angstrom (ACS/WFC where the filter exists there, else WFC3/UVIS).
HST_PIVOT_WAVELENGTH: dict[str, float] = {
    "F218W": 2228.0,
    "F225W": 2372.1,
    "F275W": 2709.7,
    "F300X": 2820.0,
    "F336W": 3354.5,
    "F390W": 3923.7,
    "F435W": 4329.9,
    "F438W": 4326.2,
    "F475W": 4747.0,
    "F502N": 5023.0,
    "F550M": 5581.5,
    "F555W": 5361.0,
    "F606W": 5921.9,
    "F625W": 6311.8,
    "F658N": 6584.0,
    "F660N": 6599.4,
    "F775W": 7693.5,
    "F814W": 8045.5,
    "F850LP": 9031.5,
    "F892N": 8914.8,
}

# Instrument / detector of each HUGS band, and nominal inverse sensitivities
# (PHOTFLAM, erg/cm^2/s/A per electron/s) used by the simulator.
HUGS_CAMERA: dict[str, tuple[str, str]] = {
    "F275W": ("WFC3", "UVIS"),
    "F336W": ("WFC3", "UVIS"),
    "F438W": ("WFC3", "UVIS"),
    "F606W": ("ACS", "WFC"),
    "F814W": ("ACS", "WFC"),
}
HUGS_PHOTFLAM: dict[str, float] = {
    "F275W": 3.186e-18,
    "F336W": 1.285e-18,
    "F438W": 6.736e-19,
    "F606W": 7.8774e-20,
    "F814W": 7.092e-20,
}


def pivot_wavelength(filter_name: str, configured: float | None = None, photplam=None) -> float | None:
    """Pivot wavelength (Angstrom) of a frame's filter; None when nothing gives one.

    One precedence, used everywhere a wavelength is needed (ordering colours blue to red,
    the composites' channels, the catalogue's metadata):

    1. ``configured``: the config's ``pivot_wavelength`` for the frame;
    2. the nominal HST value for the filter's name (the table above);
    3. ``photplam``: PHOTPLAM from the frame's header.

    The table comes before the header so that colours can be ordered before any frame is read
    (or fetched); for an HST filter the two agree to about 1 % (F606W: 5922 A on ACS/WFC,
    5889 A on WFC3/UVIS), far less than the gap between any two broad bands.
    """
    if configured is not None:
        return float(configured)
    nominal = HST_PIVOT_WAVELENGTH.get(filter_name.upper())
    if nominal is not None:
        return nominal
    try:
        photplam = float(photplam)
    except (TypeError, ValueError):
        return None
    return photplam if math.isfinite(photplam) and photplam > 0 else None


def detector_for(instrument: str | None, detector: str | None) -> Detector | None:
    """The Detector for header values like INSTRUME='ACS', DETECTOR='WFC'; None if unknown."""
    if not instrument:
        return None
    instrument = instrument.strip().upper()
    key = f"{instrument}/{detector.strip().upper()}" if detector else instrument
    return DETECTORS.get(key) or DETECTORS.get(instrument)
