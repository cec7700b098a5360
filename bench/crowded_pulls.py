"""Diagnostic: what the PSF path's errors mean in a crowded cluster core (issue 11's pulls).

A frame like tests/test_psf.py's pulls test's (600x600 px, 5000 stars in a King profile, Moffat
FWHM 2.2 px, F606W; the PSF learned from the frame; the same stars, other noise), for several
seeds. Stars are matched to the nearest true star within 1 px, as the test matches them. Per 1-mag bin of true
magnitude (matched within 1 px, unsaturated, at least 30 stars) it prints the robust standard
deviation (1.4826 MAD) of three kinds of pulls:

  truth     (measured - true mag - the bright stars' median offset) / mag_err: the test's pulls
  unseen    the same with each star's truth given the light of the true stars that no detection
            found within 2.5 FWHM of it, each weighted by the share of its light a PSF fit of
            the star over one fitting radius takes at its distance: about what the pulls would
            be were the blends with undetected stars counted as the star's light (an upper
            bound on that light: a star between two detected ones is counted for both, where
            their joint fit shares it)
  repeat    the same scene observed twice, independent photon and read noise:
            (mag_1 - mag_2 less the bright stars' median of it, each exposure's learned PSF
            having its own scale) / hypot(mag_err_1, mag_err_2): how honest the errors are
            about what changes between exposures (the blends stay the same)

with the bin's completeness (its true stars in the exposed footprint matched; the test takes
the bins at least half complete) and the share of its stars with unseen light above 1 per cent
of their own within 1 FWHM. 1.0 means errors that describe the scatter; the issue asks
0.8-1.25 against the truth.

    make bench-pulls                                        # seeds 3 to 6 (about a minute)
    .venv/bin/python bench/crowded_pulls.py --seeds 3 4
"""

from __future__ import annotations

import argparse

import numpy as np
from astropy.stats import mad_std
from scipy.spatial import cKDTree

from clusterphot.frames import bad_pixel_mask
from clusterphot.photometry import PhotometryParameters, frame_sky_statistics
from clusterphot.psf import EPSF
from clusterphot.psffit import fit_radius_for
from clusterphot.psfphot import PSFParameters, PSFPhotometry, psf_photometry
from clusterphot.simulate import simulate_crowded_frame

FWHM = 2.2
SHAPE = (600, 600)
N_STARS = 5000
UNSEEN_RADIUS = 2.5  # FWHM: unseen stars this close to a star count in its truth


def observe(expected: np.ndarray, read_noise: float, full_well: float, rng: np.random.Generator) -> np.ndarray:
    """One exposure of a noise-free frame (electrons): Poisson and read noise where it is
    exposed (its zero-filled border stays zero), clipped at full well as the simulator does."""
    image = expected.copy()
    exposed = image > 0
    image[exposed] = rng.poisson(image[exposed]) + read_noise * rng.standard_normal(exposed.sum())
    return np.minimum(image, full_well).astype(np.float32)


def measure(image: np.ndarray, full_well: float) -> PSFPhotometry:
    """The PSF path on one frame, its PSF learned, as tests/test_psf.py's pulls test runs it."""
    bad = bad_pixel_mask(image)
    sky = frame_sky_statistics(image, bad)
    image = image - np.float32(sky.median)
    image[bad] = 0.0
    return psf_photometry(image, bad, sky, PhotometryParameters(fwhm=FWHM), PSFParameters(), 1.0,
                          0.9 * full_well - sky.median)


def fitted_share(psf: EPSF, distance: np.ndarray) -> np.ndarray:
    """The share of a star's light at ``distance`` px that a PSF fit of another star takes,
    the fit over one fitting radius (DAOPHOT's, :func:`clusterphot.psffit.fit_radius_for`) with
    equal weights (a faint star's: the sky's noise): sum(P P_shifted) / sum(P^2) over the
    fitting pixels, averaged over directions."""
    reach = int(np.ceil(fit_radius_for(FWHM)))
    oy, ox = (a.ravel().astype(float) for a in np.mgrid[-reach : reach + 1, -reach : reach + 1])
    disk = np.hypot(ox, oy) <= fit_radius_for(FWHM)
    ox, oy = ox[disk], oy[disk]
    own = psf.evaluate(ox, oy)
    radii = np.linspace(0.0, UNSEEN_RADIUS * FWHM, 24)
    angles = np.linspace(0.0, np.pi / 2, 4, endpoint=False)  # the PSF's symmetry does the rest
    share = np.array([np.mean([np.sum(own * psf.evaluate(ox - r * np.cos(a), oy - r * np.sin(a)))
                               for a in angles]) for r in radii]) / np.sum(own**2)
    return np.interp(distance, radii, share)


def matched(stars: PSFPhotometry, tree: cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the stars, into the truth) of the stars within 1 px of a true star."""
    distance, true = tree.query(np.column_stack([stars.x, stars.y]))
    found = np.flatnonzero((distance < 1.0) & (stars.fit.flux > 0))
    return found, true[found]


def seed_rows(seed: int) -> list[dict]:
    hdul, truth = simulate_crowded_frame(shape=SHAPE, n_stars=N_STARS, seed=seed, filter_name="F606W", fwhm=FWHM,
                                         noise=False)
    expected = hdul[1].data.astype(np.float64)
    read_noise, full_well = float(truth.meta["read_noise"]), float(truth.meta["full_well"])
    rng = np.random.default_rng([seed, 1])  # not the scene's own stream
    first, second = (measure(observe(expected, read_noise, full_well, rng), full_well) for _ in range(2))

    true_x, true_y = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    true_flux, true_mag = np.asarray(truth["flux"], float), np.asarray(truth["mag"], float)
    saturated = np.asarray(truth["saturated"], bool)
    tree = cKDTree(np.column_stack([true_x, true_y]))
    index, true = matched(first, tree)
    flux, flux_err = first.fit.flux[index], first.fit.flux_err[index]
    mag_err = 1.0857 * flux_err / flux
    delta = -2.5 * np.log10(flux / true_flux[true])
    unsaturated = ~saturated[true]
    offset = np.median(delta[unsaturated & (mag_err < 0.01)])  # the learned PSF's scale

    # the light of the true stars no detection found, near each matched star
    seen = np.zeros(len(true_x), bool)
    seen[true] = True
    pairs = tree.query_ball_point(np.column_stack([true_x[true], true_y[true]]), UNSEEN_RADIUS * FWHM,
                                  return_sorted=False)
    star = np.repeat(np.arange(len(true)), [len(p) for p in pairs])
    other = np.concatenate([np.asarray(p, int) for p in pairs])
    keep = ~seen[other] & (other != true[star])
    star, other = star[keep], other[keep]
    distance = np.hypot(true_x[other] - true_x[true[star]], true_y[other] - true_y[true[star]])
    unseen = np.bincount(star, true_flux[other] * fitted_share(first.psf, distance), minlength=len(true))
    close = np.bincount(star, true_flux[other] * (distance < FWHM), minlength=len(true))
    delta_unseen = -2.5 * np.log10(flux / (true_flux[true] + unseen))
    offset_unseen = np.median(delta_unseen[unsaturated & (mag_err < 0.01)])

    # the same stars in the second exposure (a true star matched twice there: its last match)
    index_2, true_2 = matched(second, tree)
    row_2 = np.full(len(true_x), -1)
    row_2[true_2] = index_2
    both = row_2[true] >= 0
    other_index = row_2[true[both]]
    change = -2.5 * np.log10(flux[both] / second.fit.flux[other_index])
    change -= np.median(change[(unsaturated & (mag_err < 0.01))[both]])  # each learned PSF's scale
    err_2 = 1.0857 * second.fit.flux_err[other_index] / second.fit.flux[other_index]
    repeat = np.full(len(true), np.nan)
    repeat[both] = change / np.hypot(mag_err[both], err_2)

    in_footprint = np.asarray(truth["in_footprint"], bool)
    rows = []
    for low in range(15, 28):
        in_bin = unsaturated & (true_mag[true] >= low) & (true_mag[true] < low + 1)
        if in_bin.sum() < 30:
            continue
        with_repeat = in_bin & np.isfinite(repeat)
        rows.append({"seed": seed, "mag": low, "n": int(in_bin.sum()),
                     "truth": mad_std((delta[in_bin] - offset) / mag_err[in_bin]),
                     "unseen": mad_std((delta_unseen[in_bin] - offset_unseen) / mag_err[in_bin]),
                     "repeat": mad_std(repeat[with_repeat]) if with_repeat.sum() >= 30 else np.nan,
                     "complete": float(seen[in_footprint & (true_mag >= low) & (true_mag < low + 1)].mean()),
                     "blended": float(np.mean(close[in_bin] > 0.01 * true_flux[true][in_bin]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6])
    args = parser.parse_args()
    print(f"crowded frame {SHAPE[1]}x{SHAPE[0]}, {N_STARS} stars, FWHM {FWHM} px; robust width of the pulls")
    print(f"{'seed':>4} {'mag':>4} {'n':>4} {'complete':>8} {'truth':>6} {'unseen':>7} {'repeat':>7} {'blended':>8}")
    for seed in args.seeds:
        for row in seed_rows(seed):
            print(f"{row['seed']:>4} {row['mag']:>4} {row['n']:>4} {100 * row['complete']:>7.0f}% {row['truth']:>6.2f} "
                  f"{row['unseen']:>7.2f} "
                  f"{row['repeat']:>7.2f} {100 * row['blended']:>7.0f}%")


if __name__ == "__main__":
    main()
