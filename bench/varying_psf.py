"""Diagnostic: the PSF path on a frame whose PSF changes across it (issue 11's grid of PSFs).

HST's PSF is not the same all over a 10k frame; the PSF path learns one PSF per tile
(``photometry.psf.tile``) and fits each star with the tiles' PSFs interpolated to its zone
(``photometry.psf.interpolation_zone``; ``--zone 0``: every star of a tile with its tile's). This frame (4096x2048 px, a grid
of isolated stars 34 px apart, S/N about 170-630, Moffat PSF) has a FWHM that grows linearly in x from
``--fwhm-left`` to ``--fwhm-right`` px; with both equal it is the control. Printed: the bright
stars' median measured - true magnitude by where they sit across their tile in x (a tile's PSF is
its stars' average: alone, too broad for its left side and too narrow for its right), and their scatter,
each tile's median taken out, over the photon-noise limit (which depends on the stars' S/N mix:
compare runs of this script, not other benchmarks), and how many tiles learned their own PSF.

    make bench-varying-psf
    .venv/bin/python bench/varying_psf.py --tile 512
    .venv/bin/python bench/varying_psf.py --fwhm-left 2.2 --fwhm-right 2.2      # the control
    .venv/bin/python bench/varying_psf.py --per-tile    # the FWHM changing only from tile to tile
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from astropy.stats import mad_std
from scipy.spatial import cKDTree

from clusterphot.photometry import PhotometryParameters
from clusterphot.psfphot import PSFParameters, measure_frame_psf
from clusterphot.simulate import STAMP_RADIUS, add_stars, moffat_phase_stamps, point_source_snr

SHAPE = (2048, 4096)
SPACING = 34  # px between stars: isolated, a few hundred per 1024-px tile
SKY, READ_NOISE = 16.0, 4.0  # electrons
FWHM_STEPS = 256  # the FWHM changes in this many steps across the frame (16 px each)


def varying_frame(fwhm_left: float, fwhm_right: float, rng: np.random.Generator,
                  steps: int = FWHM_STEPS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frame (electrons, with noise, its sky subtracted) and its stars' x, y, flux and FWHM,
    the FWHM changing in ``steps`` equal steps across x."""
    ny, nx = SHAPE
    ys, xs = np.mgrid[30 : ny - 30 : SPACING, 30 : nx - 30 : SPACING]
    x = xs.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    y = ys.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    flux = 10 ** rng.uniform(np.log10(3e4), np.log10(4e5), x.size)
    pad = STAMP_RADIUS + 2
    canvas = np.zeros((ny + 2 * pad, nx + 2 * pad), np.float32)
    step = np.minimum((x / nx * steps).astype(int), steps - 1)
    fwhm = fwhm_left + (fwhm_right - fwhm_left) * (step + 0.5) / steps
    for k in np.unique(step):
        mine = step == k
        add_stars(canvas, x[mine] + pad, y[mine] + pad, flux[mine], moffat_phase_stamps(float(fwhm[mine][0])))
    expected = canvas[pad:-pad, pad:-pad] + SKY
    image = (rng.poisson(expected) + READ_NOISE * rng.standard_normal(expected.shape)).astype(np.float32)
    return image - np.float32(SKY), x, y, flux, fwhm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fwhm-left", type=float, default=2.0)
    parser.add_argument("--fwhm-right", type=float, default=2.4)
    parser.add_argument("--tile", type=int, default=PSFParameters().tile)
    parser.add_argument("--zone", type=int, default=PSFParameters().interpolation_zone,
                        help="photometry.psf.interpolation_zone (0: each tile's PSF constant over it)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-tile", action="store_true",
                        help="the FWHM the same within each tile, changing from tile to tile")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    steps = SHAPE[1] // args.tile if args.per_tile else FWHM_STEPS
    image, x, y, flux, fwhm = varying_frame(args.fwhm_left, args.fwhm_right, rng, steps)
    start = time.process_time()
    stars = measure_frame_psf(image, np.zeros(image.shape, bool), PhotometryParameters(fwhm=float(np.median(fwhm))),
                              PSFParameters(tile=args.tile, interpolation_zone=args.zone), 1.0, None)
    cpu = time.process_time() - start
    distance, true = cKDTree(np.column_stack([x, y])).query(np.column_stack([stars.x, stars.y]))
    found = (distance < 1.0) & (stars.flux > 0)
    true = true[found]
    delta = -2.5 * np.log10(stars.flux[found] / flux[true])
    limit = np.empty(len(true))
    for width in np.unique(fwhm[true]):  # the photon limit of each star's own PSF
        mine = fwhm[true] == width
        limit[mine] = 1.0857 / point_source_snr(flux[true][mine], SKY, READ_NOISE, float(width))
    tile = (x[true] // args.tile).astype(int) + 1000 * (y[true] // args.tile).astype(int)
    across = (x[true] % args.tile) / args.tile
    tiles = stars.extra["tiles"]
    zone = stars.extra["interpolation_zone"]
    print(f"FWHM {args.fwhm_left}-{args.fwhm_right} px across {SHAPE[1]} px, tiles of {args.tile} px, "
          + (f"PSFs interpolated over zones of {zone} px " if zone else "each tile's PSF constant over it ")
          + f"({sum(t.own_psf for t in tiles)} of {len(tiles)} with a PSF of their own): "
          f"{found.sum()} of {x.size} stars, {cpu:.1f} CPU s")
    for low in (0.0, 0.25, 0.5, 0.75):
        part = (across >= low) & (across < low + 0.25)
        print(f"  across the tile {low:.2f}-{low + 0.25:.2f}: {part.sum():5d} stars, median delta-mag "
              f"{1000 * np.median(delta[part]):+6.1f} mmag")
    for k in np.unique(tile):
        delta[tile == k] -= np.median(delta[tile == k])
    print(f"  scatter over the photon limit, each tile's median taken out: {mad_std(delta / limit):.2f}")


if __name__ == "__main__":
    main()
