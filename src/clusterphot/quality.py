"""Which stars make a clean colour-magnitude diagram: cuts on errors, shape and flags.

The tables keep every star with its flags; only the CMD is drawn from the stars that pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from .catalog import float_column
from .photometry import FLAG_BAD_SKY, FLAG_EDGE, FLAG_NONPOSITIVE_FLUX, FLAG_SATURATED


@dataclass(frozen=True)
class QualityCuts:
    """Which stars make a clean CMD; the rest stay in the tables with their flags."""

    max_mag_err: float = 0.1
    sharpness_range: tuple[float, float] = (0.2, 1.0)
    exclude_flags: int = FLAG_SATURATED | FLAG_EDGE | FLAG_NONPOSITIVE_FLUX | FLAG_BAD_SKY

    def passes(self, table: Table, suffix: str = "") -> np.ndarray:
        """True for the rows whose star (columns ending in ``suffix``) makes the cuts."""
        mag_err = float_column(table[f"mag_err{suffix}"])
        sharpness = float_column(table[f"sharpness{suffix}"])
        flags = np.ma.filled(np.ma.asarray(table[f"flags{suffix}"], dtype=np.int64), self.exclude_flags)
        with np.errstate(invalid="ignore"):  # NaN never passes a comparison
            return ((mag_err <= self.max_mag_err) & (sharpness >= self.sharpness_range[0])
                    & (sharpness <= self.sharpness_range[1]) & ((flags & self.exclude_flags) == 0))


def cmd_arrays(table: Table, blue: str, red: str, band: str, cuts: QualityCuts):
    """Colour, magnitude and their errors of the stars that pass the cuts in both filters."""
    clean = cuts.passes(table, f"_{blue}") & cuts.passes(table, f"_{red}")
    colour = np.asarray(table["colour"], float)[clean]
    colour_err = np.asarray(table["colour_err"], float)[clean]
    mag = np.asarray(table[f"mag_{band}"], float)[clean]
    mag_err = np.asarray(table[f"mag_err_{band}"], float)[clean]
    return colour, mag, colour_err, mag_err
