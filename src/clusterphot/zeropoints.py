"""Photometric zero points, always with their provenance.

Order of precedence for a frame:

1. the config's ``zeropoint`` for that filter (source ``config``);
2. AB or ST from the frame's PHOTFLAM/PHOTPLAM (a WFC3/UVIS chip not normalised by
   FLUXCORR: its own PHTFLAM1 or PHTFLAM2, :func:`uvis_chip_photflam`); VEGA for ACS, and AB
   or ST for an ACS frame without PHOTFLAM (a HUGS stack), from the ACS zero-point calculator
   via ``acstools.acszpt``, cached under ``resources/`` so reruns work offline;
3. none of these: :class:`ZeropointError`, saying what is missing. Instrumental magnitudes
   (zero point 25) only when the config asks for them (``magnitude_system: instrumental``).

A zero point here converts a count rate in the frame's own units per second to a
magnitude: ``mag = zeropoint - 2.5 log10(rate)`` (PHOTFLAM is defined the same way).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from astropy.table import Table

from .errors import ZeropointError
from .outputs import atomic_output

log = logging.getLogger(__name__)

SYSTEMS = ("AB", "ST", "VEGA", "instrumental")
INSTRUMENTAL_ZEROPOINT = 25.0
ACS_DETECTORS = ("WFC", "HRC", "SBC")


@dataclass(frozen=True)
class Zeropoint:
    """A zero point (mag) in a magnitude system, and where it came from."""

    value: float
    system: str  # "AB", "ST", "VEGA" or "instrumental"
    source: str

    def as_meta(self) -> dict:
        return asdict(self)


def ab_zeropoint(photflam: float, photplam: float) -> float:
    """AB zero point from the inverse sensitivity (erg/cm^2/s/A per unit/s) and pivot wavelength (A)."""
    return -2.5 * math.log10(photflam) - 5.0 * math.log10(photplam) - 2.408


def st_zeropoint(photflam: float) -> float:
    """ST zero point from the inverse sensitivity (erg/cm^2/s/A per unit/s)."""
    return -2.5 * math.log10(photflam) - 21.10


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def photflam_zeropoint(system: str, photflam, photplam, label: str = "PHOTFLAM") -> Zeropoint | None:
    """AB or ST zero point from PHOTFLAM/PHOTPLAM header values; None if they are missing.
    ``label``: the keyword the inverse sensitivity came from (:func:`uvis_chip_photflam`)."""
    photflam, photplam = _positive(photflam), _positive(photplam)
    if system == "ST" and photflam:
        return Zeropoint(round(st_zeropoint(photflam), 4), "ST", f"{label} (header)")
    if system == "AB" and photflam and photplam:
        return Zeropoint(round(ab_zeropoint(photflam, photplam), 4), "AB", f"{label}, PHOTPLAM (header)")
    return None


# --- ACS VEGAmag through the ACS zero-point calculator ------------------------------------


def acs_cache_path(cache_dir: Path, detector: str, date: str) -> Path:
    return Path(cache_dir) / f"acs_{detector.lower()}_{date}.ecsv"


def _query_acs_service(detector: str, date: str, service_url: str | None, timeout: float) -> Table:
    """All filters' zero points of an ACS detector on a date, from the calculator's API.

    ``service_url`` points at a server speaking the same API (a mirror, or a local one in
    tests); without it ``acstools.acszpt`` asks STScI's own service.
    """
    if service_url is None:
        from acstools import acszpt

        table = acszpt.Query(date=date, detector=detector).fetch()
        if table is None:
            raise ConnectionError("acstools.acszpt returned no table")
        table = Table(table)
        for name in table.colnames:
            table[name] = getattr(table[name], "value", table[name])
        table.rename_column("PHOTLAM", "PHOTPLAM")
        return table
    body = json.dumps({"date": date, "detector": detector})
    response = requests.post(service_url, data=body, timeout=timeout)
    response.raise_for_status()
    rows = response.json()["rows"]
    names = ("Detector", "Filter", "PHOTPLAM", "PHOTFLAM", "STmag", "VEGAmag", "ABmag")
    table = Table(rows=[tuple(row) for row in rows], names=names,
                  dtype=("U8", "U8", float, float, float, float, float))
    table.remove_column("Detector")
    return table


def acs_zeropoint_table(detector: str, date: str, cache_dir: Path,
                        service_url: str | None = None, timeout: float = 30.0) -> tuple[Table, str] | None:
    """The ACS zero-point table for a date, from the cache or the service (then cached)."""
    cache = acs_cache_path(cache_dir, detector, date)
    if cache.exists():
        return Table.read(cache, format="ascii.ecsv"), f"acstools.acszpt (cached {cache.name})"
    try:
        table = _query_acs_service(detector, date, service_url, timeout)
    except Exception as err:  # offline, service down, or a malformed answer: fall back
        log.warning("ACS zero-point service did not answer for %s %s: %s", detector, date, err)
        return None
    table.meta["query"] = {"detector": detector, "date": date, "service": service_url or "acstools.acszpt"}
    with atomic_output(cache) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return table, f"acstools.acszpt ({service_url or 'ACS zero-point calculator'}, {date})"


ACS_COLUMNS = {"VEGA": "VEGAmag", "AB": "ABmag", "ST": "STmag"}  # the calculator's table


def acs_calculator_zeropoint(system: str, detector: str, filter_name: str, date: str, cache_dir: Path,
                             service_url: str | None = None) -> Zeropoint | None:
    """An ACS filter's zero point on a date in ``system`` (VEGA, AB or ST) from the ACS
    zero-point calculator's table, or None when not obtainable."""
    found = acs_zeropoint_table(detector, date, cache_dir, service_url)
    if found is None:
        return None
    table, source = found
    rows = table[[str(f).upper() == filter_name.upper() for f in table["Filter"]]]
    if len(rows) == 0:
        return None
    return Zeropoint(float(rows[ACS_COLUMNS[system]][0]), system, source)


# --- WFC3/UVIS: one inverse sensitivity per chip ------------------------------------------


def uvis_chip_photflam(instrument, detector, photflam, phtflam1, phtflam2, fluxcorr,
                       ccdchip) -> tuple[float | None, str]:
    """The inverse sensitivity that applies to a frame, and the keyword it came from. WFC3/UVIS
    headers since 2016 carry PHTFLAM1 and PHTFLAM2, one per chip (PHOTFLAM is PHTFLAM1); calwf3's
    FLUXCORR step multiplies UVIS2's pixels by PHTFLAM2 / PHTFLAM1 so that PHOTFLAM holds for
    both chips (WFC3 Instrument Handbook 6.10). Where FLUXCORR is not COMPLETE (reprocessed with
    it omitted, for the UV filters' colour terms), a chip's pixels are on their own scale: its
    own PHTFLAM (CCDCHIP in the chip's header says which). Any other frame: PHOTFLAM."""
    is_uvis = (str(instrument or "").strip().upper(), str(detector or "").strip().upper()) == ("WFC3", "UVIS")
    if not is_uvis or _positive(phtflam1) is None or _positive(phtflam2) is None:
        return photflam, "PHOTFLAM"
    if str(fluxcorr or "").strip().upper() == "COMPLETE":
        return photflam or phtflam1, "PHOTFLAM (FLUXCORR COMPLETE: both chips on UVIS1's scale)"
    chip = str(ccdchip).strip() if ccdchip is not None else ""
    if chip not in ("1", "2"):
        return photflam, f"PHOTFLAM (FLUXCORR {fluxcorr or 'not set'}, no CCDCHIP: taken as UVIS1)"
    return (phtflam1 if chip == "1" else phtflam2), f"PHTFLAM{chip} (UVIS{chip}, FLUXCORR {fluxcorr or 'not set'})"


def resolve_zeropoint(system: str, *, override: float | None = None, photflam=None, photplam=None,
                      instrument: str | None = None, detector: str | None = None,
                      filter_name: str | None = None, date: str | None = None,
                      cache_dir: Path | None = None, service_url: str | None = None,
                      photflam_label: str = "PHOTFLAM", electrons_per_count: float = 1.0,
                      override_system: str | None = None) -> Zeropoint:
    """The zero point to use for a frame, following the module's order of precedence.
    ``photflam_label``: the keyword ``photflam`` came from, for the provenance.
    ``override_system``: the system of ``override`` when it is not ``system`` (a config zero
    point given with its own, e.g. a ground-based frame's VEGA in an AB run).
    ``electrons_per_count``: the gain of a frame in counts (DN); the ACS calculator's zero
    points, and ACS's and WFC3's PHOTFLAM, are for electrons per second, and are moved to the
    frame's counts by it (WFPC2's PHOTFLAM is per DN already).

    Raises :class:`ZeropointError` when the chosen system's zero point cannot be had.
    """
    if override is not None and override_system is not None:
        system = override_system
    if system not in SYSTEMS:
        raise ValueError(f"magnitude system {system!r} is not one of {', '.join(SYSTEMS)}")
    date = observation_date(date)
    if override is not None:
        return Zeropoint(float(override), system, "config")
    if system == "instrumental":
        return Zeropoint(INSTRUMENTAL_ZEROPOINT, "instrumental", "magnitude_system: instrumental (arbitrary)")
    if system != "VEGA":
        found = photflam_zeropoint(system, photflam, photplam, photflam_label)
        if found is not None:
            per_electron = str(instrument or "").strip().upper() in PHOTFLAM_PER_ELECTRON
            return for_counts(found, electrons_per_count) if per_electron else found
        missing = [] if _positive(photflam) else ["PHOTFLAM"]
        if system == "AB" and not _positive(photplam):
            missing.append("PHOTPLAM")
        reason = f"the header has no positive {' or '.join(missing)}"
        # an ACS frame without them (a HUGS stack): the calculator's AB or ST, as for VEGA
        if _acs_lookup_reason(system, instrument, detector, filter_name, date, cache_dir) is None:
            found = acs_calculator_zeropoint(system, detector.strip().upper(), filter_name, date, cache_dir,
                                             service_url)
            if found is not None:
                return for_counts(found, electrons_per_count)
            reason += f", and {_acs_silence(detector, date, filter_name, cache_dir)}"
    else:
        reason = _acs_lookup_reason(system, instrument, detector, filter_name, date, cache_dir)
        if reason is None:
            found = acs_calculator_zeropoint(system, detector.strip().upper(), filter_name, date, cache_dir,
                                             service_url)
            if found is not None:
                return for_counts(found, electrons_per_count)
            reason = _acs_silence(detector, date, filter_name, cache_dir)
    raise ZeropointError(
        f"no {system} zero point for {filter_name}: {reason}; set 'zeropoint' for this filter in the "
        "config, or choose magnitude_system: instrumental"
    )


# Instruments whose PHOTFLAM is per electron (their calibrated products are in electrons)
PHOTFLAM_PER_ELECTRON = ("ACS", "WFC3")


def for_counts(zeropoint: Zeropoint, electrons_per_count: float) -> Zeropoint:
    """A zero point for electrons per second moved to counts per second at ``electrons_per_count``:
    a star gives 1/gain as many counts as electrons, so its zero point is 2.5 log10(gain) smaller."""
    if electrons_per_count == 1.0:
        return zeropoint
    return Zeropoint(zeropoint.value - 2.5 * math.log10(electrons_per_count), zeropoint.system,
                     f"{zeropoint.source}; for counts at {electrons_per_count:g} e-/count")


def observation_date(value) -> str | None:
    """DATE-OBS as the ACS calculator takes it, YYYY-MM-DD: a time of day after it (HUGS stacks
    carry one, 2006-05-21T04:41:12) is dropped; None for anything else."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.]*)?", str(value or "").strip())
    return match.group(1) if match else None


def _acs_silence(detector, date, filter_name, cache_dir) -> str:
    return (f"the ACS zero-point service did not answer for {detector} on {date} (or has no {filter_name}) and "
            f"{cache_dir} holds no answer to reuse")


def _acs_lookup_reason(system, instrument, detector, filter_name, date, cache_dir) -> str | None:
    """Why the ACS calculator's zero point cannot even be asked for (None: it can)."""
    is_acs = (instrument or "").strip().upper() == "ACS" and (detector or "").strip().upper() in ACS_DETECTORS
    if not is_acs:
        return (f"{system} zero points are looked up only for ACS, and this frame is "
                f"{instrument or 'of unknown instrument'}")
    if not filter_name or not date:
        return "the header has no DATE-OBS (YYYY-MM-DD) to look the ACS zero point up by"
    if cache_dir is None:
        return "no zero-point cache folder is configured"
    return None
