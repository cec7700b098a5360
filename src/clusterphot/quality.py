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

    def each(self, table: Table, suffix: str = "") -> dict[str, np.ndarray]:
        """Per cut, in the order they are told: True for the rows whose star (columns ending in
        ``suffix``) makes it."""
        mag_err = float_column(table[f"mag_err{suffix}"])
        sharpness = float_column(table[f"sharpness{suffix}"])
        flags = np.ma.filled(np.ma.asarray(table[f"flags{suffix}"], dtype=np.int64), self.exclude_flags)
        low, high = self.sharpness_range
        with np.errstate(invalid="ignore"):  # NaN never passes a comparison
            return {f"mag_err <= {self.max_mag_err:g}": mag_err <= self.max_mag_err,
                    f"sharpness {low:g}-{high:g}": (sharpness >= low) & (sharpness <= high),
                    "unflagged": (flags & self.exclude_flags) == 0}

    def passes(self, table: Table, suffix: str = "") -> np.ndarray:
        """True for the rows whose star (columns ending in ``suffix``) makes the cuts."""
        return np.logical_and.reduce(list(self.each(table, suffix).values()))


def cuts_kept(table: Table, blue: str, red: str, cuts: QualityCuts) -> list[tuple[str, int]]:
    """How many of the matched stars each cut, in both filters, leaves, one after the other:
    [("matched", n), ("mag_err <= 0.1", n1), ...], for a CMD's title."""
    kept = [("matched", len(table))]
    passing = np.ones(len(table), bool)
    for (name, blue_passes), red_passes in zip(cuts.each(table, f"_{blue}").items(),
                                               cuts.each(table, f"_{red}").values()):
        passing &= blue_passes & red_passes
        kept.append((name, int(passing.sum())))
    return kept


def cmd_arrays(table: Table, blue: str, red: str, band: str, cuts: QualityCuts):
    """Colour, magnitude and their errors of the stars that pass the cuts in both filters."""
    clean = cuts.passes(table, f"_{blue}") & cuts.passes(table, f"_{red}")
    colour = np.asarray(table["colour"], float)[clean]
    colour_err = np.asarray(table["colour_err"], float)[clean]
    mag = np.asarray(table[f"mag_{band}"], float)[clean]
    mag_err = np.asarray(table[f"mag_err_{band}"], float)[clean]
    return colour, mag, colour_err, mag_err
