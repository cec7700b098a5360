"""Benchmark: clusterphot's PSF photometry against its anchors, photutils and crowdsource (issue 11).

All methods measure the same simulated crowded frames (seed 3, F606W, Moffat FWHM 2.2 px, true
star lists known), in one run:

    clusterphot            clusterphot.psfphot.measure_frame_psf (the workflow's PSF path: tiles of
                           1024 px, fluxes corrected to total), the PSF learned from the frame
    clusterphot-truepsf    the same, given the true PSF
    clusterphot-tilepsf    the same, each tile's PSF constant over it (photometry.psf.interpolation_zone: 0;
                           the same as clusterphot on a frame no larger than a tile)
    clusterphot-aperture   clusterphot.photometry.measure_frame, the aperture path (photometry.method:
                           aperture), for the issue's "m50 at least 1 mag fainter than apertures"
    photutils              photutils' PSFPhotometry (one pass, grouped), its ePSF built by EPSFBuilder
    photutils-truepsf      the same, given the true PSF (an ImagePSF)
    photutils-iter         photutils' IterativePSFPhotometry (grouped, 2 passes), its own ePSF
    photutils-iter-truepsf the same, given the true PSF
    crowdsource            crowdsource's fit_im, its PSF refitted from a Moffat guess (refit_psf)
    crowdsource-truepsf    the same, given the true PSF (a SimplePSF stamp), not refitted

    make bench-psf                                                # builds .venv-bench once, then runs this
    .venv/bin/python bench/psf_vs_anchors.py --quick              # a 500x500 frame, 3000 stars: a smoke run
    .venv/bin/python bench/psf_vs_anchors.py --frames dense --methods clusterphot crowdsource

Frames: sparse (1000x1000, 2000 stars) and dense (1000x1000, 15000 stars), or --quick; and large
(10000x10000, 100,000 stars: a HUGS frame's size, for clusterphot's memory and its time at scale;
`--frames large --methods clusterphot clusterphot-aperture`, the anchors would take hours). They are
simulated once into a temporary directory (FITS, truth ECSV, the true PSF), or into --workdir,
where they are kept and reused. Every method runs in its own child process of this script, on the
frame read from that directory: clusterphot's in the project's .venv (Python 3.11), the anchors in
.venv-bench (Python 3.12, bench/requirements-anchors.txt: photutils 3.1.1 needs 3.12, crowdsource
0.5.9 is installed there with --no-deps). A child imports its libraries and reads the frame, then
the clock starts: CPU seconds (time.process_time, all threads) and wall seconds cover the whole
method (sky, detection, PSF, fitting); peak memory is the child's ru_maxrss (libraries included).
The child writes its catalogue (x, y, flux, flux_err; 0-based pixels, a pixel's centre on the
integer) and this script scores every catalogue the same way against the truth:

  found           rows with a finite, positive flux (the rest is dropped before scoring)
  CPU s/1k        CPU seconds per 1000 stars found
  spurious        fraction of the found stars with no true star within 1 px
  m50             magnitude (0.25-mag bins) from which completeness -- true stars in the exposed
                  footprint with a detection within 1 px, matched one to one -- stays below 50 %
  bright          matched true stars with a true S/N > 100 (clusterphot.simulate.point_source_snr:
                  the Cramer-Rao bound from flux, sky, read noise and the PSF) not saturated in the truth;
                  bias = their median delta-mag (measured - true), scatter = 1.4826 MAD of delta-mag
  sc/err          scatter / the median photon-noise error the method reports (1.0857 flux_err / flux)
  sc/lim          scatter / the median true photon-noise limit (1.0857 / true S/N): 1.0 is ideal
  iso, iso sc/lim the bright stars whose true neighbours within 8 px hold < 1 % of their flux, and
                  sc/lim of those alone (crowding aside: how close the fit itself comes to the limit)
  pulls           per 1-mag bin of true magnitude (matched, unsaturated, >= 30 stars): the robust
                  std (1.4826 MAD) of (delta-mag - scale) / reported error, scale the isolated
                  bright stars' median delta-mag (the method's flux scale, e.g. its correction to
                  total; the median of all bright stars, bias, is pulled 2-3 mmag bright by their
                  blends, which spread a bin of 2-mmag errors as if they were 1.3 times too
                  small); 1.0 means honest errors;
                  for clusterphot also of the stars not flagged "poor fit" (flag 32, qfit above
                  max_qfit: the PSF does not describe the star, in a crowd mostly a companion within
                  a pixel or two that no detection separated), and the fraction so flagged

Then clusterphot's ratios against each anchor and the issue's targets: CPU per 1000 stars
<= 1.0 s, >= 3x faster than crowdsource and >= 6x faster than IterativePSFPhotometry, bright
scatter <= 1.15 x the photon limit, spurious <= 1 %. A method that fails or runs over --timeout
gets its error in its row, and the others go on. Results are saved as JSON in bench/out/.
MB here are 2**20 bytes.

How the anchors are set up (the same for all of them; see run_photutils and run_crowdsource):
the sky is the sigma-clipped median of the exposed pixels; the noise per pixel is the sky's
sigma-clipped std and the photon noise of the sky-subtracted signal (the frame is in electrons);
masked: the zero border and pixels at or above 90 % of the full well (clusterphot's rule).
photutils finds stars with DAOStarFinder set as clusterphot's detection (4 sky sigma, FWHM 2.2,
min_separation 0) and fits 5x5 pixels per star (fit_shape), grouping stars closer than
--group-separation px (5: those whose fit boxes overlap); its ePSF is built (EPSFBuilder,
oversampling 4, 25x25 cutouts) from the brightest 300 unsaturated detections with no other
detection within 12 px. crowdsource detects and fits with fit_im's defaults (threshold 5 sigma,
4-10 iterations), on the whole frame at once, the masked pixels given weight 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRAMES = {  # name: (side in px, stars)
    "quick": (500, 3000),
    "sparse": (1000, 2000),
    "dense": (1000, 15000),
    "large": (10000, 100000),
}
SEED = 3
FILTER = "F606W"
FWHM = 2.2  # px, of the simulated Moffat PSF; every method is told it
OVERSAMPLING = 4  # nodes per pixel of the true ePSF handed to clusterphot and photutils
SATURATION_FRACTION = 0.9  # pixels at or above this fraction of the full well are not fitted
DETECTION_SIGMA = 4.0  # DAOStarFinder threshold in sky sigma, as clusterphot's
GENERATOR_VERSION = 1  # bump when the frames change, so that a --workdir's old frames are not reused

# method: (environment, what it is)
METHODS = {
    "clusterphot": ("project", "clusterphot measure_frame_psf, PSF learned"),
    "clusterphot-truepsf": ("project", "clusterphot measure_frame_psf, true PSF"),
    "clusterphot-tilepsf": ("project", "clusterphot measure_frame_psf, PSF learned, each tile's not interpolated"),
    "clusterphot-aperture": ("project", "clusterphot measure_frame, apertures"),
    "photutils": ("anchors", "photutils PSFPhotometry, grouped, EPSFBuilder ePSF"),
    "photutils-truepsf": ("anchors", "photutils PSFPhotometry, grouped, true PSF"),
    "photutils-iter": ("anchors", "photutils IterativePSFPhotometry, grouped, 2 passes, EPSFBuilder ePSF"),
    "photutils-iter-truepsf": ("anchors", "photutils IterativePSFPhotometry, grouped, 2 passes, true PSF"),
    "crowdsource": ("anchors", "crowdsource fit_im, PSF refitted from a Moffat guess"),
    "crowdsource-truepsf": ("anchors", "crowdsource fit_im, true PSF stamp"),
}
# The issue's targets.
TARGET_CPU_PER_1K = 1.0  # s
TARGET_SPEEDUP = {"crowdsource": 3.0, "photutils-iter": 6.0}
TARGET_SCATTER_OVER_LIMIT = 1.15
TARGET_SPURIOUS = 0.01
TARGET_PEAK_OVER_FRAME = 3.0  # peak memory over the frame's float32 size
TARGET_M50_GAIN = 1.0  # mag: the PSF path's m50 this much fainter than the aperture path's
ISOLATION_RADIUS = 8.0  # px: an isolated bright star has < 1 % of its flux in other true stars this close


# --- the frames (a child in the project's environment) ----------------------------------------


def frame_paths(workdir: Path, frame: str) -> dict[str, Path]:
    return {"image": workdir / f"{frame}.fits", "truth": workdir / f"{frame}_truth.ecsv",
            "psf": workdir / f"{frame}_true_psf.fits"}


def true_epsf_grid(fwhm: float, oversampling: int = OVERSAMPLING) -> np.ndarray:
    """The simulator's exact Moffat ePSF (clusterphot.simulate.moffat_epsf_grid), for the runs
    given the true PSF."""
    from clusterphot.simulate import moffat_epsf_grid

    return moffat_epsf_grid(fwhm, oversampling)


def write_frame(frame: str, workdir: Path, side_and_stars: tuple[int, int] | None = None) -> None:
    """Simulate one frame and write it, its truth and the true PSF, unless they are there
    (``side_and_stars``: a frame not in FRAMES, named ``frame``)."""
    from astropy.io import fits

    from clusterphot.simulate import moffat_phase_stamps, simulate_crowded_frame

    side, stars = FRAMES[frame] if side_and_stars is None else side_and_stars
    paths = frame_paths(workdir, frame)
    tag = {"BNCHSIZE": side, "BNCHSTAR": stars, "BNCHSEED": SEED, "BNCHVERS": GENERATOR_VERSION}
    if all(p.exists() for p in paths.values()) and all(
            fits.getheader(paths["image"], 0).get(k) == v for k, v in tag.items()):
        return
    start = time.perf_counter()
    hdul, truth = simulate_crowded_frame(shape=(side, side), n_stars=stars, seed=SEED, filter_name=FILTER, fwhm=FWHM)
    workdir.mkdir(parents=True, exist_ok=True)
    truth.write(paths["truth"], format="ascii.ecsv", overwrite=True)
    # the true PSF: the ePSF grid, and the centred pixel stamp (for crowdsource), sums 16 and 1
    psf = fits.PrimaryHDU(true_epsf_grid(FWHM))
    psf.header.update({"OVERSAMP": OVERSAMPLING, "FWHM": FWHM})
    stamp = fits.ImageHDU(moffat_phase_stamps(FWHM, n_phase=1)[0, 0].astype(np.float64), name="STAMP")
    fits.HDUList([psf, stamp]).writeto(paths["psf"], overwrite=True)
    # what an anchor, without clusterphot, needs from the header: the full well (no SATURATE
    # keyword, as in real stacks; clusterphot knows it from the detector)
    hdul[0].header.update(tag)
    hdul[0].header["BNCHFULL"] = (float(truth.meta["full_well"]), "full well, electrons")
    tmp = paths["image"].with_suffix(".tmp")
    hdul.writeto(tmp, overwrite=True)  # the frame last: a frame with its tags means all three are complete
    tmp.replace(paths["image"])
    print(f"simulated {frame} ({side} px, {stars} stars) in {time.perf_counter() - start:.0f} s", file=sys.stderr)


# --- what every child shares (numpy, astropy only) ----------------------------------------------


def read_frame(image: Path) -> tuple[np.ndarray, float]:
    """The frame (electrons, float64) and its full well."""
    from astropy.io import fits

    with fits.open(image) as hdul:
        return hdul[1].data.astype(np.float64), float(hdul[0].header["BNCHFULL"])


def anchor_inputs(data: np.ndarray, full_well: float) -> dict:
    """What every anchor starts from: the sky-subtracted frame (masked pixels 0), the mask
    (zero border, saturated pixels), the per-pixel noise, the sky's level and std."""
    from astropy.stats import sigma_clipped_stats

    border = data == 0  # drizzled stacks are exactly 0 where nothing was exposed
    saturated = data >= SATURATION_FRACTION * full_well
    _, sky, sky_std = sigma_clipped_stats(data[~border], sigma=3.0, maxiters=10)
    image = data - sky
    image[border] = 0.0
    mask = border | saturated
    error = np.sqrt(sky_std**2 + np.clip(image, 0.0, None))  # electrons: Poisson variance = signal
    return {"image": image, "mask": mask, "error": error, "sky": float(sky), "sky_std": float(sky_std),
            "saturated_above": SATURATION_FRACTION * full_well - sky}


def read_true_psf(path: Path) -> tuple[np.ndarray, int, np.ndarray]:
    """The true ePSF grid, its oversampling, and the centred pixel stamp."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        return hdul[0].data.astype(np.float64), int(hdul[0].header["OVERSAMP"]), hdul["STAMP"].data.astype(np.float64)


# --- the methods (each run in a child) ----------------------------------------------------------


def run_clusterphot(image: Path, psf_path: Path | None, aperture: bool = False, interpolate: bool = True) -> dict:
    """clusterphot as the workflow measures a frame: read as float32 (clusterphot.frames, block by
    block), bad pixels, then the PSF path (or with ``aperture`` the aperture path)."""
    from clusterphot.frames import bad_pixel_mask, read_frame as read_float32
    from clusterphot.photometry import PhotometryParameters, measure_frame
    from clusterphot.psf import EPSF
    from clusterphot.psfphot import FLAG_POOR_FIT, PSFParameters, measure_frame_psf
    from astropy.io import fits

    data = read_float32(image).data
    full_well = float(fits.getheader(image, 0)["BNCHFULL"])
    given = None
    if psf_path is not None:
        from clusterphot.simulate import moffat_wing

        grid, oversampling, _ = read_true_psf(psf_path)
        given = EPSF(grid, oversampling, wing=moffat_wing(FWHM))  # the truth's wing beyond its grid too
    params = PhotometryParameters(fwhm=FWHM, saturation_fraction=SATURATION_FRACTION)
    start = clock()
    bad = bad_pixel_mask(data)
    if aperture:
        stars = measure_frame(data, bad, params, 1.0, full_well)
        note = "apertures"
    else:
        psf_params = PSFParameters() if interpolate else PSFParameters(interpolation_zone=0)
        stars = measure_frame_psf(data, bad, params, psf_params, 1.0, full_well, true_psf=given)
        tiles = stars.extra["tiles"]
        zone = stars.extra["interpolation_zone"]
        note = (f"{len(tiles)} tiles, {sum(t.own_psf for t in tiles)} with their own PSF"
                + (f", interpolated over {zone}-px zones" if zone else "") if tiles
                else f"{len(stars.extra['passes'])} passes") + f", PSF from {stars.extra['psf'].n_stars or 'truth'}"
    result = {"clock": stop(start), "x": stars.x, "y": stars.y, "flux": stars.flux, "flux_err": stars.flux_err,
              "note": note, "frame_mb": data.nbytes / 2**20}
    if not aperture:
        result["poor_fit"] = (stars.flags & FLAG_POOR_FIT) > 0
    return result


def daofinder(threshold: float):
    """DAOStarFinder set as clusterphot's detection."""
    from photutils.detection import DAOStarFinder

    return DAOStarFinder(threshold=threshold, fwhm=FWHM, min_separation=0.0, sharpness_range=(0.2, 1.0),
                         roundness_range=(-1.0, 1.0), exclude_border=False)


def photutils_epsf(inputs: dict, found) -> tuple[object, int]:
    """photutils' ePSF from the frame: EPSFBuilder on the brightest 300 unsaturated detections
    whose 25x25 cutout lies on exposed pixels and holds no other detection's centre."""
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars
    from scipy.spatial import cKDTree

    half = 12
    x, y = np.asarray(found["x_centroid"], float), np.asarray(found["y_centroid"], float)
    peak = np.asarray(found["peak"], float)
    ny, nx = inputs["image"].shape
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    inside = (ix >= half) & (ix < nx - half) & (iy >= half) & (iy < ny - half)
    clean = np.zeros(len(x), bool)
    for i in np.flatnonzero(inside & (distance[:, 1] > half) & (peak < 0.8 * inputs["saturated_above"])
                            & (peak > 20 * inputs["sky_std"])):
        clean[i] = not inputs["mask"][iy[i] - half : iy[i] + half + 1, ix[i] - half : ix[i] + half + 1].any()
    chosen = np.flatnonzero(clean)
    chosen = chosen[np.argsort(-peak[chosen])][:300]
    stars = extract_stars(NDData(inputs["image"]), Table({"x": x[chosen], "y": y[chosen]}), size=2 * half + 1)
    built = EPSFBuilder(oversampling=OVERSAMPLING, maxiters=10, progress_bar=False)(stars)
    return (built.epsf if hasattr(built, "epsf") else built[0]), len(chosen)


def run_photutils(image: Path, psf_path: Path | None, iterative: bool, group_separation: float) -> dict:
    """photutils' PSFPhotometry (one pass) or IterativePSFPhotometry (2 passes), grouped."""
    import warnings

    from photutils.psf import ImagePSF, IterativePSFPhotometry, PSFPhotometry, SourceGrouper

    data, full_well = read_frame(image)
    true_psf = None
    if psf_path is not None:
        grid, oversampling, _ = read_true_psf(psf_path)
        true_psf = ImagePSF(grid, oversampling=oversampling)
    start = clock()
    inputs = anchor_inputs(data, full_well)
    del data
    finder = daofinder(DETECTION_SIGMA * inputs["sky_std"])
    if true_psf is None:
        found = finder(inputs["image"], mask=inputs["mask"])
        psf, n_psf = photutils_epsf(inputs, found)
        note = f"ePSF from {n_psf} stars"
    else:
        psf, note = true_psf, "true PSF"
    common = dict(fit_shape=(5, 5), finder=finder, grouper=SourceGrouper(min_separation=group_separation),
                  aperture_radius=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils warns at every group above 25 stars
        if iterative:
            photometry = IterativePSFPhotometry(psf, maxiters=2, mode="new", **common)
        else:
            photometry = PSFPhotometry(psf, **common)
        table = photometry(inputs["image"], mask=inputs["mask"], error=inputs["error"])
    groups = np.bincount(np.asarray(table["group_id"])) if "group_id" in table.colnames else np.zeros(1, int)
    note += f", largest group {groups.max()} stars"
    return {"clock": stop(start), "x": table["x_fit"], "y": table["y_fit"], "flux": table["flux_fit"],
            "flux_err": table["flux_err"], "note": note}


def run_crowdsource(image: Path, psf_path: Path | None) -> dict:
    """crowdsource's fit_im on the whole frame (its x is the frame's first axis: rows)."""
    import contextlib
    import io

    from crowdsource import crowdsource_base, psf as crowdsource_psf

    data, full_well = read_frame(image)
    if psf_path is not None:
        _, _, stamp = read_true_psf(psf_path)
        # 59x59 (the largest stamp fit_im's detection asks for), normalised to the total flux
        stamp = np.pad(stamp, (59 - stamp.shape[0]) // 2).astype(np.float32)
        psf = crowdsource_psf.SimplePSF(stamp / stamp.sum(), normalize=-1)
    else:  # its own way: a Moffat guess (its default beta), refitted from the frame's stars
        psf = crowdsource_psf.SimplePSF(crowdsource_psf.moffat_psf(FWHM, stampsz=59, deriv=False))
    start = clock()
    inputs = anchor_inputs(data, full_well)
    del data
    weight = np.where(inputs["mask"], 0.0, 1.0 / inputs["error"]).astype(np.float32)
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):  # it prints progress; the last stdout line is our report
        stars, _, _, _ = crowdsource_base.fit_im(inputs["image"].astype(np.float32), psf, weight=weight,
                                                 refit_psf=psf_path is None, verbose=False)
    lines = [line for line in chatter.getvalue().splitlines() if line.strip()]
    note = "true PSF" if psf_path is not None else "PSF refitted"
    if lines:
        note += f"; said: {lines[-1][:45]}"
    return {"clock": stop(start), "x": stars["y"], "y": stars["x"], "flux": stars["flux"],
            "flux_err": stars["dflux"], "note": note}


def clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def stop(start: tuple[float, float]) -> dict:
    return {"cpu_s": time.process_time() - start[0], "wall_s": time.perf_counter() - start[1]}


def child(method: str, image: Path, psf_path: Path, output: Path, group_separation: float) -> None:
    """Run one method on one frame, write its catalogue, print its times and peak memory (JSON)."""
    from astropy.table import Table

    given = psf_path if method.endswith("-truepsf") else None
    family = method.removesuffix("-truepsf")
    if family == "clusterphot":
        result = run_clusterphot(image, given)
    elif family == "clusterphot-tilepsf":
        result = run_clusterphot(image, None, interpolate=False)
    elif family == "clusterphot-aperture":
        result = run_clusterphot(image, None, aperture=True)
    elif family in ("photutils", "photutils-iter"):
        result = run_photutils(image, given, family == "photutils-iter", group_separation)
    elif family == "crowdsource":
        result = run_crowdsource(image, given)
    else:
        raise ValueError(f"unknown method {method!r}")
    catalog = Table({name: np.asarray(result[name], dtype=np.float64) for name in ("x", "y", "flux", "flux_err")})
    if "poor_fit" in result:  # clusterphot's flag 32: the PSF does not describe the star (a blend, mostly)
        catalog["poor_fit"] = np.asarray(result["poor_fit"], bool)
    catalog.write(output, format="ascii.ecsv", overwrite=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({**result["clock"], "peak_mb": peak, "note": result["note"],
                      **({"frame_mb": result["frame_mb"]} if "frame_mb" in result else {})}))


# --- scoring against the truth (the parent, after all runs) -------------------------------------


def robust_std(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def completeness_limit(true_mag: np.ndarray, found: np.ndarray, step: float = 0.25) -> float:
    """The magnitude (a bin's bright edge) from which completeness stays below 50 %: the bin after
    the faintest one still 50 % complete, counting bins of at least 10 true stars. (In a crowded
    frame completeness hovers near 50 % over magnitudes where the core's stars are lost, and the
    first bin below 50 % would be a matter of luck.)"""
    bins = np.arange(np.floor(true_mag.min()), np.ceil(true_mag.max()) + step, step)
    total, _ = np.histogram(true_mag, bins)
    hit, _ = np.histogram(true_mag[found], bins)
    complete = np.flatnonzero((total >= 10) & (hit >= 0.5 * total))
    return float(bins[complete[-1] + 1]) if complete.size else float("nan")


def score(catalog, truth) -> dict:
    from scipy.spatial import cKDTree

    from clusterphot.matching import match_one_to_one
    from clusterphot.simulate import neighbour_flux, point_source_snr

    flux, flux_err = np.asarray(catalog["flux"], float), np.asarray(catalog["flux_err"], float)
    x, y = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    keep = np.isfinite(flux) & (flux > 0) & np.isfinite(x) & np.isfinite(y)
    x, y, flux, flux_err = x[keep], y[keep], flux[keep], flux_err[keep]
    poor_fit = np.asarray(catalog["poor_fit"], bool)[keep] if "poor_fit" in catalog.colnames else None
    meta = truth.meta
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    tflux, tmag = np.asarray(truth["flux"], float), np.asarray(truth["mag"], float)
    saturated, footprint = np.asarray(truth["saturated"], bool), np.asarray(truth["in_footprint"], bool)

    nearest = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([x, y]))[0] if len(x) else np.zeros(0)
    ti, di, _ = match_one_to_one(tx, ty, x, y, 1.0)
    found = np.zeros(len(tx), bool)
    found[ti] = True

    dmag = -2.5 * np.log10(flux[di] / tflux[ti])
    err = 2.5 / math.log(10) * flux_err[di] / flux[di]
    limit = 2.5 / math.log(10) / point_source_snr(tflux[ti], meta["sky"], meta["read_noise"], meta["psf_fwhm"])
    true_snr = 2.5 / math.log(10) / limit
    bright = (true_snr > 100) & ~saturated[ti] & np.isfinite(dmag)
    # isolated: the other true stars within ISOLATION_RADIUS hold < 1 % of the star's flux together
    neighbours = neighbour_flux(tx, ty, tflux, ISOLATION_RADIUS)
    isolated = bright & (neighbours[ti] < 0.01 * tflux[ti])
    bias = float(np.median(dmag[bright])) if bright.any() else float("nan")
    # the flux scale the pulls are taken against: the isolated bright stars', which no blend biases
    scale = float(np.median(dmag[isolated])) if isolated.sum() >= 10 else bias
    scatter = robust_std(dmag[bright])
    pulls, pulls_fit_well, poor_fit_fraction = {}, {}, {}
    unsaturated = ~saturated[ti]
    for lo in np.arange(np.floor(tmag[ti].min()), np.ceil(tmag[ti].max())) if len(ti) else []:
        sel = unsaturated & (tmag[ti] >= lo) & (tmag[ti] < lo + 1) & np.isfinite(err) & (err > 0)
        if sel.sum() >= 30:
            pulls[f"{lo:.0f}"] = robust_std((dmag[sel] - scale) / err[sel])
            if poor_fit is not None:
                well = sel & ~poor_fit[di]
                pulls_fit_well[f"{lo:.0f}"] = robust_std((dmag[well] - scale) / err[well])
                poor_fit_fraction[f"{lo:.0f}"] = float(poor_fit[di][sel].mean())
    with np.errstate(invalid="ignore"):
        median_err = float(np.nanmedian(err[bright])) if bright.any() else float("nan")
    return {
        "found": int(len(x)),
        "dropped": int((~keep).sum()),
        "matched": int(found.sum()),
        "spurious": float(np.mean(nearest > 1.0)) if len(x) else float("nan"),
        "m50": completeness_limit(tmag[footprint], found[footprint]),
        "bright": int(bright.sum()),
        "bias": bias,
        "scatter": scatter,
        "scatter_over_err": scatter / median_err if median_err > 0 else float("nan"),
        "scatter_over_limit": scatter / float(np.median(limit[bright])) if bright.any() else float("nan"),
        "isolated": int(isolated.sum()),
        "isolated_scatter_over_limit": (robust_std(dmag[isolated]) / float(np.median(limit[isolated]))
                                        if isolated.sum() >= 10 else float("nan")),
        "pulls": pulls,
        **({"pulls_fit_well": pulls_fit_well, "poor_fit_fraction": poor_fit_fraction} if poor_fit is not None else {}),
    }


# --- the parent: frames, runs, tables -----------------------------------------------------------


def interpreter(environment: str, args) -> str:
    return str(args.project_python if environment == "project" else args.anchor_python)


def run_child(python: str, arguments: list[str], timeout: float, script: str = __file__,
              env: dict | None = None) -> dict:
    """``script`` (this one) in a fresh process, with ``env`` added to the environment: its JSON
    report (the last stdout line), or {'error': ...}.

    The parent holds no frame (its peak would carry into the child's ru_maxrss through fork)."""
    try:
        result = subprocess.run([python, script, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"error": f"over the {timeout:.0f} s timeout"}
    except OSError as error:
        return {"error": f"cannot start {python}: {error}"}
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        last = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return {"error": (last[-1] if last else f"exit code {result.returncode}")[:200], "stderr": result.stderr}
    return json.loads(lines[-1])


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def print_tables(results: dict) -> None:
    print("| frame | method | found | CPU s | CPU s/1k | wall s | peak MB | spurious | m50 | bright | bias | "
          "scatter | sc/err | sc/lim | iso | iso sc/lim | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for frame, rows in results.items():
        for method, r in rows.items():
            if "error" in r:
                print(f"| {frame} | {method} |" + " |" * 14 + f" FAILED: {r['error']} |")
                continue
            per_1k = r["cpu_s"] / (r["found"] / 1e3) if r["found"] else float("nan")
            print(f"| {frame} | {method} | {r['found']} | {r['cpu_s']:.1f} | {fmt(per_1k, '.2f')} | "
                  f"{r['wall_s']:.1f} | {r['peak_mb']:.0f} | {fmt(100 * r['spurious'], '.2f')}% | "
                  f"{fmt(r['m50'], '.2f')} | {r['bright']} | {fmt(r['bias'], '+.4f')} | {fmt(r['scatter'], '.4f')} | "
                  f"{fmt(r['scatter_over_err'], '.2f')} | {fmt(r['scatter_over_limit'], '.2f')} | {r['isolated']} | "
                  f"{fmt(r['isolated_scatter_over_limit'], '.2f')} | {r['note']} |")
    print("\nPulls: robust std of (delta-mag - the isolated bright stars' median) / reported error, per 1-mag bin of true F606W magnitude "
          "(matched, unsaturated stars, bins of >= 30):\n")
    bins = sorted({b for rows in results.values() for r in rows.values() for b in r.get("pulls", {})}, key=float)
    print("| frame | method | " + " | ".join(bins) + " |")
    print("|---|---|" + "---:|" * len(bins))
    for frame, rows in results.items():
        for method, r in rows.items():
            if "pulls" in r:
                print(f"| {frame} | {method} | " + " | ".join(fmt(r["pulls"].get(b), ".2f") for b in bins) + " |")
            if "pulls_fit_well" in r:
                print(f"| {frame} | {method}, not flagged poor fit | "
                      + " | ".join(fmt(r["pulls_fit_well"].get(b), ".2f") for b in bins) + " |")
                print(f"| {frame} | {method}: fraction flagged poor fit | "
                      + " | ".join(fmt(r["poor_fit_fraction"].get(b), ".2f") for b in bins) + " |")


def print_ratios(results: dict) -> None:
    def per_1k(r):
        return r["cpu_s"] / (r["found"] / 1e3) if r.get("found") else float("nan")

    print("\nclusterphot against the anchors and the issue's targets (CPU per 1000 stars found; anchor / "
          "clusterphot, so > 1 means clusterphot is faster):\n")
    for frame, rows in results.items():
        for ours in ("clusterphot", "clusterphot-truepsf"):
            r = rows.get(ours)
            if r is None:
                continue
            if "error" in r:
                print(f"- {frame}, {ours}: failed, no ratios")
                continue
            suffix = "-truepsf" if ours.endswith("-truepsf") else ""
            c = per_1k(r)
            print(f"- {frame}, {ours}: {c:.2f} CPU s per 1000 stars (target <= {TARGET_CPU_PER_1K:.1f}: "
                  f"{'met' if c <= TARGET_CPU_PER_1K else 'NOT met'}); bright scatter {r['scatter_over_limit']:.2f} x "
                  f"the photon limit (target <= {TARGET_SCATTER_OVER_LIMIT}: "
                  f"{'met' if r['scatter_over_limit'] <= TARGET_SCATTER_OVER_LIMIT else 'NOT met'}; isolated "
                  f"{fmt(r['isolated_scatter_over_limit'], '.2f')} x); spurious "
                  f"{100 * r['spurious']:.2f} % (target <= {100 * TARGET_SPURIOUS:.0f} %: "
                  f"{'met' if r['spurious'] <= TARGET_SPURIOUS else 'NOT met'})")
            if r.get("frame_mb", 0) >= 100:  # smaller, the libraries are most of it
                ratio = r["peak_mb"] / r["frame_mb"]
                print(f"    peak memory {r['peak_mb']:.0f} MB = {ratio:.1f} x the frame's float32 size "
                      f"({r['frame_mb']:.0f} MB; target <= {TARGET_PEAK_OVER_FRAME:.0f}: "
                      f"{'met' if ratio <= TARGET_PEAK_OVER_FRAME else 'NOT met'}; libraries included)")
            apertures = rows.get("clusterphot-aperture")
            if apertures is not None and "m50" in apertures:
                gain = r["m50"] - apertures["m50"]
                print(f"    m50 {r['m50']:.2f} vs the aperture path's {apertures['m50']:.2f}: {gain:+.2f} mag "
                      f"(target >= +{TARGET_M50_GAIN:.0f}: {'met' if gain >= TARGET_M50_GAIN else 'NOT met'}); "
                      f"{per_1k(apertures) / c:.2f}x its CPU per 1000 stars")
            for anchor in ("photutils", "photutils-iter", "crowdsource"):
                a = rows.get(anchor + suffix)
                if a is None:
                    continue
                if "error" in a:
                    print(f"    vs {anchor + suffix}: the anchor failed ({a['error'][:80]})")
                    continue
                speedup = per_1k(a) / c
                target = TARGET_SPEEDUP.get(anchor)
                verdict = ("" if target is None else
                           f" (target >= {target:.0f}: {'met' if speedup >= target else 'NOT met'})")
                print(f"    vs {anchor + suffix}: CPU/1k {speedup:.2f}x{verdict}; "
                      f"wall {a['wall_s'] / r['wall_s']:.2f}x; "
                      f"peak MB {r['peak_mb'] / a['peak_mb']:.2f}x ours/theirs; m50 {r['m50'] - a['m50']:+.2f} mag "
                      f"deeper; sc/lim {r['scatter_over_limit']:.2f} vs {a['scatter_over_limit']:.2f}; spurious "
                      f"{100 * r['spurious']:.2f} % vs {100 * a['spurious']:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", nargs="+", choices=sorted(FRAMES), default=["sparse", "dense"])
    parser.add_argument("--quick", action="store_true", help="the quick frame only (500x500, 3000 stars)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per method and frame")
    parser.add_argument("--group-separation", type=float, default=5.0,
                        help="photutils' SourceGrouper min_separation, px (5: stars whose 5x5 fit boxes overlap)")
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the frames here, not in a temporary directory")
    parser.add_argument("--project-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--anchor-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--outdir", type=Path, default=HERE / "out")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "IMAGE", "PSF", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("FRAME", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, image, psf_path, output = args.child
        child(method, Path(image), Path(psf_path), Path(output), args.group_separation)
        return
    if args.generate:
        write_frame(args.generate[0], Path(args.generate[1]))
        print(json.dumps({"ok": True}))
        return

    frames = ["quick"] if args.quick else args.frames
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="psf_vs_anchors_") as tmp:
        workdir = args.workdir or Path(tmp)
        reports: dict[str, dict[str, dict]] = {}
        for frame in frames:
            made = run_child(str(args.project_python), ["--generate", frame, str(workdir)], args.timeout)
            if "error" in made:
                sys.exit(f"could not simulate the {frame} frame: {made['error']}\n{made.get('stderr', '')}")
            paths = frame_paths(workdir, frame)
            reports[frame] = {}
            for method in args.methods:
                output = workdir / f"{frame}_{method}.ecsv"
                output.unlink(missing_ok=True)
                report = run_child(interpreter(METHODS[method][0], args),
                                   ["--child", method, str(paths["image"]), str(paths["psf"]), str(output),
                                    "--group-separation", str(args.group_separation)], args.timeout)
                reports[frame][method] = report
                summary = (f"FAILED: {report['error']}" if "error" in report else
                           f"{report['cpu_s']:.1f} CPU s, {report['wall_s']:.1f} s, {report['peak_mb']:.0f} MB")
                print(f"{frame}, {method}: {summary}", file=sys.stderr)

        # Scoring reads the catalogues and truths: after all runs, so that the parent stays small.
        from astropy.table import Table

        for frame, rows in reports.items():
            truth = Table.read(frame_paths(workdir, frame)["truth"], format="ascii.ecsv")
            for method, report in rows.items():
                if "error" in report:
                    continue
                try:
                    report.update(score(Table.read(workdir / f"{frame}_{method}.ecsv", format="ascii.ecsv"), truth))
                except Exception as error:  # a malformed catalogue fails its row, not the benchmark
                    report["error"] = f"scoring: {error!r}"[:200]
                    traceback.print_exc()

    print(f"Frames: seed {SEED}, {FILTER}, Moffat FWHM {FWHM} px; " + ", ".join(
        f"{f} {FRAMES[f][0]}x{FRAMES[f][0]} px with {FRAMES[f][1]} stars" for f in frames)
        + f". {os.cpu_count()} cores. CPU s: process CPU time (all threads); peak MB: the child's max RSS.\n")
    print_tables(reports)
    print_ratios(reports)
    args.outdir.mkdir(parents=True, exist_ok=True)
    saved = args.outdir / f"psf_vs_anchors_{'_'.join(frames)}.json"
    saved.write_text(json.dumps({f: {m: {k: v for k, v in r.items() if k != "stderr"} for m, r in rows.items()}
                                 for f, rows in reports.items()}, indent=2))
    for rows in reports.values():
        for method, r in rows.items():
            if "stderr" in r:
                print(f"\n{method} failed; the end of its stderr:\n" + "\n".join(r["stderr"].splitlines()[-15:]),
                      file=sys.stderr)
    print(f"\nsaved {saved.relative_to(ROOT) if saved.is_relative_to(ROOT) else saved}; "
          f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
