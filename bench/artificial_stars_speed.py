"""Benchmark: the CPU cost of clusterphot's artificial-star passes against crowdsource re-run (issue 12).

Issue 12's item 5: at most 5 ms of CPU per artificial star on a crowded 2000x2000 frame (so that
10^5 artificial stars per HUGS frame are a matter of minutes on a cluster); the issue's anchor is
crowdsource re-run on the frame with the artificial stars injected. In one run:

    clusterphot   clusterphot.completeness.measure_artificial_pass, the PSF path measured again
                  only around the artificial stars, the catalogue's other stars held as fitted
                  (psfio.model_image), with the PSF file of the frame's catalogue; per pass:
                  positions (completeness.positions_in_light, the radial profile of the frame's
                  light, as the workflow's jobs), magnitudes
                  (uniform over completeness.default_magnitude_range), injection, measurement
                  and recovery (completeness.recovered_stars) are all on the clock
    crowdsource   crowdsource's fit_im re-run on the whole frame with the same artificial stars
                  injected (the first pass's, same noise), as a crowdsource user would; called
                  as bench/psf_vs_anchors.py calls it (run_crowdsource: its PSF refitted from a
                  Moffat guess)

    .venv/bin/python bench/artificial_stars_speed.py                      # about 6 min (one core)
    .venv/bin/python bench/artificial_stars_speed.py --passes 5 --workdir /tmp/as_bench
    .venv/bin/python bench/artificial_stars_speed.py --anchor-frame crowded   # crowdsource at 2000 px:
                                                                               # by area >= 17 min, ~9 GB
    .venv/bin/python bench/artificial_stars_speed.py --profile pass.prof     # one pass under cProfile

Frames (psf_vs_anchors' generator, seed 3, F606W, Moffat FWHM 2.2 px): crowded (2000x2000,
60,000 stars, the issue's frame) and dense (1000x1000, 15,000 stars: psf_vs_anchors' dense frame,
the same star density). crowdsource takes about 4 CPU minutes and 2.2 GB on the dense frame (at
least 4x that by area on the crowded one), so by default it runs on the dense frame only, and clusterphot
runs its passes on the dense frame too, for a ratio on the same frame. Each frame's catalogue is
measured once as the workflow does (clusterphot.psfphot.measure_frame_psf, the PSF learned; the
PSF file written with clusterphot.catalog.write_frame_psf and read back with
clusterphot.psfio.read_psf), exactly as tests/test_completeness.py's patch-vs-whole test does.
Frames, catalogues and PSF files go to a temporary directory, or to --workdir, where they are
kept and reused (a catalogue only while the clusterphot sources that measured it are unchanged).

A pass injects 5 % of the catalogue's stars (len // 20), positions drawn from the radial profile
of the frame's light (completeness.light_in_rings around artificial.profile_centre), the frame's
light profile and the catalogue's model drawn once (on the first pass's clock) and the stars near the artificial ones
taken from it per pass, as the workflow's jobs do; magnitudes uniform over default_magnitude_range of the
catalogue (brightest unsaturated - 0.5 to faintest + 1.5), and counts one recovered when
recovered_stars says so (1 px, 0.75 mag, new: not a catalogue star as it was). Seeds: positions
and magnitudes of pass k from SeedSequence([seed, k]), the injected photon noise from
[seed, k, 1].

Every measurement runs in its own child process of this script, one at a time, with
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and NUMEXPR_NUM_THREADS set to 1 (one core:
the other stays free, and CPU seconds are one core's): clusterphot's in the project's .venv
(Python 3.11), crowdsource in .venv-bench (Python 3.12, bench/requirements-anchors.txt). CPU is
time.process_time, wall is time.perf_counter, both summed over the passes and divided by the
artificial stars injected; not on the clock: reading the frame, its catalogue and PSF file once
per child (printed as "setup"). crowdsource's clock is psf_vs_anchors' (sky, noise map, fit_im);
the injection (clusterphot's, in the project's child) and the recovery matching (milliseconds,
in this script) are not on it. Peak MB: the child's ru_maxrss (libraries, frame and all passes),
2**20 bytes. crowdsource's completeness is scored against clusterphot's catalogue of the frame
as the "real" stars (crowdsource's own catalogue of the frame without artificial stars would
cost another whole run): a sanity check, not a comparison of depths.

Results are saved as JSON in bench/out/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import psf_vs_anchors as pva  # noqa: E402  (the frames' generator, crowdsource's call; numpy only at import)

# crowded: the issue's 2000x2000 frame, at the dense frame's density (15,000 stars per megapixel)
pva.FRAMES["crowded"] = (2000, 60000)
FRAME_CHOICES = ("crowded", "dense")
FWHM = pva.FWHM
FRACTION = 20  # a pass injects len(catalogue) // FRACTION stars: 5 %
RADIUS, MAX_DELTA_MAG = 1.0, 0.75  # recovery (issue 12's defaults)
TARGET_MS = 5.0  # CPU ms per artificial star (issue 12, item 5)
ISSUE_ANCHOR_MS = 56.0  # the issue's figure for crowdsource, 1000x1000
CATALOGUE_VERSION = 1  # bump when the catalogue step changes
ONE_CORE = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMEXPR_NUM_THREADS")}


def paths(workdir: Path, frame: str) -> dict[str, Path]:
    return {**pva.frame_paths(workdir, frame), "catalogue": workdir / f"{frame}_catalogue.ecsv",
            "psf_file": workdir / f"{frame}_psf_file.fits", "injected": workdir / f"{frame}_injected.fits",
            "artificial": workdir / f"{frame}_artificial.ecsv", "anchor": workdir / f"{frame}_crowdsource.ecsv"}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def clusterphot_sources() -> str:
    """A hash of the clusterphot sources in use: a kept catalogue is reused only when they are unchanged."""
    import clusterphot

    digest = hashlib.sha256()
    for path in sorted(Path(clusterphot.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


# --- children in the project's environment ------------------------------------------------------


def read_image(image: Path) -> tuple[np.ndarray, float]:
    """The frame as the test reads it (float32) and its full well."""
    from astropy.io import fits

    with fits.open(image) as hdul:
        return hdul[1].data.astype(np.float32), float(hdul[0].header["BNCHFULL"])


def prepare(frame: str, workdir: Path) -> dict:
    """The frame (simulated unless kept), its catalogue and PSF file (measured unless kept)."""
    from astropy.table import Table

    from clusterphot.catalog import write_frame_psf
    from clusterphot.frames import bad_pixel_mask
    from clusterphot.photometry import PhotometryParameters
    from clusterphot.psfphot import PSFParameters, measure_frame_psf

    pva.write_frame(frame, workdir)
    p = paths(workdir, frame)
    tag = {"frame": list(pva.FRAMES[frame]), "seed": pva.SEED, "generator": pva.GENERATOR_VERSION,
           "version": CATALOGUE_VERSION, "sources": clusterphot_sources()}
    if p["catalogue"].exists() and p["psf_file"].exists():
        kept = Table.read(p["catalogue"], format="ascii.ecsv")
        if kept.meta.get("tag") == tag:
            return {"kept": True, **{k: kept.meta[k] for k in ("cpu_s", "wall_s", "stars")}}
    frame_data, full_well = read_image(p["image"])
    params, psf_params = PhotometryParameters(fwhm=FWHM), PSFParameters()
    data = frame_data.copy()
    start = pva.clock()
    real = measure_frame_psf(data, bad_pixel_mask(data), params, psf_params, 1.0, full_well)
    took = pva.stop(start)
    # the PSF file the workflow writes beside the catalogue (read back by every pass)
    write_frame_psf(p["psf_file"], real, Table({"id": np.arange(len(real.x))}), psf_params, {})
    catalogue = Table({"x": real.x, "y": real.y, "flux": real.flux, "flags": real.flags})
    catalogue.meta.update(tag=tag, stars=len(real.x), tiles=len(real.extra["tiles"]), **took)
    catalogue.write(p["catalogue"], format="ascii.ecsv", overwrite=True)
    print(f"measured the {frame} frame's catalogue: {len(real.x)} stars, {took['cpu_s']:.0f} CPU s",
          file=sys.stderr)
    return {"kept": False, "stars": len(real.x), **took}


def instrumental_mag(flux: np.ndarray) -> np.ndarray:
    flux = np.asarray(flux, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return -2.5 * np.log10(np.where(flux > 0, flux, np.nan))


def artificial_stars(catalogue: dict, light: np.ndarray, centre: tuple[float, float], mag_range: tuple[float, float],
                     shape, bad: np.ndarray, seed: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass k's artificial stars: positions with the radial profile of the frame's ``light``
    (completeness.light_in_rings, rings of one FWHM), magnitudes uniform in the range."""
    from clusterphot.completeness import positions_in_light

    rng = np.random.default_rng([seed, k])
    n = len(catalogue["x"]) // FRACTION
    x, y = positions_in_light(light, FWHM, centre, n, shape, rng, bad)
    return x, y, rng.uniform(mag_range[0], mag_range[1], n)


def run_passes(frame: str, workdir: Path, passes: int, seed: int, inject: bool, profile: Path | None,
               patch_radius: float | None = None) -> dict:
    """``passes`` artificial-star passes on the frame, each timed alone; with ``inject`` the first
    pass's artificial stars are also added to the frame (same noise) and written for the anchor."""
    from astropy.table import Table

    from clusterphot.completeness import (add_artificial_stars, default_magnitude_range, light_in_rings,
                                          measure_artificial_pass, recovered_stars, sky_below_cluster)
    from clusterphot.frames import bad_pixel_mask
    from clusterphot.photometry import FLAG_SATURATED, PhotometryParameters
    from clusterphot.artificial import profile_centre, tracer_stars
    from clusterphot.psfio import model_image, read_psf
    from clusterphot.psfphot import PSFParameters

    p = paths(workdir, frame)
    start = pva.clock()
    frame_data, full_well = read_image(p["image"])
    table = Table.read(p["catalogue"], format="ascii.ecsv")
    catalogue = {name: np.asarray(table[name], float) for name in ("x", "y", "flux")}
    psf_file = read_psf(p["psf_file"])
    bad = bad_pixel_mask(frame_data)
    real_mag = instrumental_mag(catalogue["flux"])
    saturated = (np.asarray(table["flags"]) & FLAG_SATURATED) > 0
    mag_range = default_magnitude_range(real_mag, saturated)
    # the workflow's choices (clusterphot.artificial): the brightest tenth find the centre
    bright = tracer_stars(real_mag, np.asarray(table["flags"]))
    centre = profile_centre(catalogue["x"], catalogue["y"], bright, frame_data.shape, FWHM)
    params, psf_params = PhotometryParameters(fwhm=FWHM), PSFParameters()
    if patch_radius is None:  # the workflow's (clusterphot.artificial.patch_radius)
        from clusterphot.artificial import patch_radius as workflow_patch_radius

        patch_radius = workflow_patch_radius("psf", params, RADIUS)
    setup = pva.stop(start)
    once = {}  # drawn once per job, on the first pass's clock, as the workflow's job does

    def one_pass(k: int) -> dict:
        begin = pva.clock()
        if not once:  # the catalogue's model and the frame's light profile
            ny, nx = frame_data.shape
            once["model"] = model_image(psf_file, catalogue["x"], catalogue["y"], catalogue["flux"], (0, 0, nx, ny))
            once["light"] = light_in_rings(frame_data, ~bad, centre, FWHM,
                                           sky_below_cluster(frame_data, ~bad, centre))
        x, y, mag = artificial_stars(catalogue, once["light"], centre, mag_range, frame_data.shape, bad, seed, k)
        out = measure_artificial_pass(frame_data, bad, catalogue, psf_file, x, y, 10 ** (-0.4 * mag), params,
                                      psf_params, 1.0, full_well, np.random.default_rng([seed, k, 1]), patch_radius,
                                      once["model"])
        match = recovered_stars(x, y, mag, out.x, out.y, instrumental_mag(out.flux), catalogue["x"],
                                catalogue["y"], real_mag, RADIUS, MAX_DELTA_MAG)
        took = pva.stop(begin)
        found = match >= 0
        delta = instrumental_mag(out.flux)[match[found]] - mag[found]
        return {"stars": int(len(x)), "recovered": int(found.sum()), "fitted": int(len(out.x)),
                "median_delta_mag": float(np.median(delta)) if found.any() else math.nan, **took}

    results = []
    if profile is not None:  # one pass under cProfile (its CPU inflated by the profiler: not timed)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        results.append(one_pass(0))
        profiler.disable()
        profiler.dump_stats(str(profile))
    else:
        results = [one_pass(k) for k in range(passes)]
    if inject:
        # the first pass's artificial stars, with the same photon noise, for the anchor's whole-frame run
        from astropy.io import fits

        x, y, mag = artificial_stars(catalogue, once["light"], centre, mag_range, frame_data.shape, bad, seed, 0)
        injected = frame_data.copy()
        add_artificial_stars(injected, x, y, 10 ** (-0.4 * mag) / psf_file.correction, psf_file.psf, 1.0,
                             np.random.default_rng([seed, 0, 1]), psf_file.footprint_level, full_well)
        with fits.open(p["image"]) as hdul:
            hdul[1].data = injected
            hdul.writeto(p["injected"], overwrite=True)
        Table({"x": x, "y": y, "mag": mag}).write(p["artificial"], format="ascii.ecsv", overwrite=True)
    import clusterphot

    return {"passes": results, "setup": setup, "peak_mb": peak_mb(), "mag_range": list(mag_range),
            "patch_radius": patch_radius,
            "catalogue_stars": int(len(catalogue["x"])), "tiles": len(psf_file.tiles),
            "clusterphot": str(Path(clusterphot.__file__).parent)}


# --- the child in the anchors' environment ------------------------------------------------------


def run_anchor(frame: str, workdir: Path) -> dict:
    """crowdsource on the frame with the first pass's artificial stars, as psf_vs_anchors runs it."""
    from astropy.table import Table

    p = paths(workdir, frame)
    result = pva.run_crowdsource(p["injected"], None)
    Table({name: np.asarray(result[name], np.float64) for name in ("x", "y", "flux")}).write(
        p["anchor"], format="ascii.ecsv", overwrite=True)
    return {**result["clock"], "peak_mb": peak_mb(), "note": result["note"], "found": int(len(result["x"]))}


def score_anchor(frame: str, workdir: Path) -> dict:
    """crowdsource's recovery of the artificial stars (clusterphot's catalogue as the real stars)."""
    from astropy.table import Table

    from clusterphot.completeness import recovered_stars

    p = paths(workdir, frame)
    fakes = Table.read(p["artificial"], format="ascii.ecsv")
    real = Table.read(p["catalogue"], format="ascii.ecsv")
    out = Table.read(p["anchor"], format="ascii.ecsv")
    x, y, mag = (np.asarray(fakes[name], float) for name in ("x", "y", "mag"))
    out_mag = instrumental_mag(out["flux"])
    match = recovered_stars(x, y, mag, np.asarray(out["x"], float), np.asarray(out["y"], float), out_mag,
                            np.asarray(real["x"], float), np.asarray(real["y"], float),
                            instrumental_mag(real["flux"]), RADIUS, MAX_DELTA_MAG)
    found = match >= 0
    return {"stars": int(len(x)), "recovered": int(found.sum()),
            "median_delta_mag": float(np.median(out_mag[match[found]] - mag[found])) if found.any() else math.nan}


# --- the parent ---------------------------------------------------------------------------------


def run_child(python: str, arguments: list[str], timeout: float) -> dict:
    """This script in a fresh process on one core (psf_vs_anchors' runner)."""
    return pva.run_child(python, arguments, timeout, script=__file__, env=ONE_CORE)


def summarise(report: dict) -> dict:
    """Totals over a child's passes: artificial stars, CPU and wall ms per star, completeness."""
    passes = report["passes"]
    stars = sum(r["stars"] for r in passes)
    return {"stars": stars, "cpu_ms": 1e3 * sum(r["cpu_s"] for r in passes) / stars,
            "wall_ms": 1e3 * sum(r["wall_s"] for r in passes) / stars,
            "completeness": sum(r["recovered"] for r in passes) / stars,
            "cpu_ms_spread": [1e3 * r["cpu_s"] / r["stars"] for r in passes]}


def print_table(frames: list[str], reports: dict, anchor_frame: str | None) -> None:
    anchor = reports.get("anchor")
    anchor_ms = (1e3 * anchor["cpu_s"] / anchor["score"]["stars"]
                 if anchor and "error" not in anchor and "score" in anchor else math.nan)
    print("| frame | method | passes | artificial stars | CPU ms/star | crowdsource / this | target <= 5 ms | "
          "wall ms/star | peak MB | completeness | note |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for frame in frames:
        side, n = pva.FRAMES[frame]
        name = f"{frame} {side}x{side}"
        r = reports["passes"].get(frame)
        if r is None:
            continue
        if "error" in r:
            print(f"| {name} | clusterphot |" + " |" * 8 + f" FAILED: {r['error']} |")
            continue
        s = summarise(r)
        ratio = anchor_ms / s["cpu_ms"] if frame == anchor_frame else math.nan
        spread = s["cpu_ms_spread"]
        note = (f"{r['catalogue_stars']} catalogue stars ({n} true), {max(r['tiles'], 1)} tile(s); per pass "
                f"{min(spread):.2f}-{max(spread):.2f} ms/star; setup {r['setup']['cpu_s']:.1f} CPU s once")
        print(f"| {name} | clusterphot | {len(r['passes'])} | {s['stars']} | {s['cpu_ms']:.2f} | {pva.fmt(ratio, '.1f')} | "
              f"{'met' if s['cpu_ms'] <= TARGET_MS else 'NOT met'} | {s['wall_ms']:.2f} | {r['peak_mb']:.0f} | "
              f"{100 * s['completeness']:.1f} % | {note} |")
    if anchor_frame is not None and anchor is not None:
        side, _ = pva.FRAMES[anchor_frame]
        name = f"{anchor_frame} {side}x{side}"
        if "error" in anchor:
            print(f"| {name} | crowdsource |" + " |" * 8 + f" FAILED: {anchor['error']} |")
        else:
            sc = anchor["score"]
            print(f"| {name} | crowdsource (whole frame) | 1 | {sc['stars']} | {anchor_ms:.1f} | - | - | "
                  f"{1e3 * anchor['wall_s'] / sc['stars']:.1f} | "
                  f"{anchor['peak_mb']:.0f} | {100 * sc['recovered'] / sc['stars']:.1f} % | "
                  f"{anchor['found']} stars found; {anchor['cpu_s']:.0f} CPU s for the frame; {anchor['note']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5, help="artificial-star passes per frame (default 5)")
    parser.add_argument("--frames", nargs="+", choices=FRAME_CHOICES, default=list(FRAME_CHOICES),
                        help="frames clusterphot's passes run on (default both)")
    parser.add_argument("--anchor-frame", choices=(*FRAME_CHOICES, "none"), default="dense",
                        help="the frame crowdsource is re-run on (default dense, 1000x1000: crowdsource at "
                             "2000x2000 would take, by area, >= 17 CPU min and ~9 GB); none: no anchor")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--patch-radius", type=float,
                        help="px: stars detected this close to an artificial star are fitted (default: the "
                             "workflow's, clusterphot.artificial.patch_radius)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per child")
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) frames and catalogues here")
    parser.add_argument("--project-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--anchor-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--outdir", type=Path, default=HERE / "out")
    parser.add_argument("--profile", type=Path, help="instead: one clusterphot pass on the first frame under "
                        "cProfile, its stats written here")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "FRAME"), help=argparse.SUPPRESS)
    parser.add_argument("--inject", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, frame = args.child
        workdir = args.workdir
        if task == "prepare":
            report = prepare(frame, workdir)
        elif task == "passes":
            report = run_passes(frame, workdir, args.passes, args.seed, args.inject, args.profile, args.patch_radius)
        elif task == "anchor":
            report = run_anchor(frame, workdir)
        else:
            raise ValueError(task)
        print(json.dumps(report))
        return

    anchor_frame = None if args.anchor_frame == "none" else args.anchor_frame
    frames = list(args.frames)
    if anchor_frame is not None and anchor_frame not in frames:
        frames.append(anchor_frame)  # the anchor's artificial stars come from clusterphot's pass there
    if args.profile is not None:
        frames, anchor_frame = frames[:1], None
    start = time.perf_counter()
    project = str(args.project_python)
    reports: dict = {"prepare": {}, "passes": {}}
    with tempfile.TemporaryDirectory(prefix="artificial_stars_speed_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for frame in frames:
            made = run_child(project, ["--child", "prepare", frame, "--workdir", str(workdir)], args.timeout)
            if "error" in made:
                sys.exit(f"could not make the {frame} frame and catalogue: {made['error']}\n{made.get('stderr', '')}")
            reports["prepare"][frame] = made
            print(f"{frame}: catalogue of {made['stars']} stars ({'kept' if made['kept'] else 'measured'}, "
                  f"{made['cpu_s']:.0f} CPU s)", file=sys.stderr)
            extra = ["--inject"] if frame == anchor_frame else []
            if args.profile is not None:
                extra += ["--profile", str(args.profile)]
            if args.patch_radius is not None:
                extra += ["--patch-radius", str(args.patch_radius)]
            report = run_child(project, ["--child", "passes", frame, "--workdir", str(workdir), "--passes",
                                         str(args.passes), "--seed", str(args.seed), *extra], args.timeout)
            reports["passes"][frame] = report
            if "error" in report:
                print(f"{frame}, clusterphot passes: FAILED: {report['error']}\n{report.get('stderr', '')[-3000:]}",
                      file=sys.stderr)
            else:
                s = summarise(report)
                print(f"{frame}, clusterphot: {len(report['passes'])} passes, {s['stars']} artificial stars, "
                      f"{s['cpu_ms']:.2f} CPU ms each, peak {report['peak_mb']:.0f} MB", file=sys.stderr)
        if args.profile is not None:
            print(f"profile of one pass on {frames[0]} written to {args.profile}", file=sys.stderr)
            return
        if anchor_frame is not None and "error" not in reports["passes"][anchor_frame]:
            anchor = run_child(str(args.anchor_python), ["--child", "anchor", anchor_frame, "--workdir", str(workdir)],
                               args.timeout)
            if "error" not in anchor:
                anchor["score"] = score_anchor(anchor_frame, workdir)
                print(f"{anchor_frame}, crowdsource: {anchor['cpu_s']:.0f} CPU s, peak {anchor['peak_mb']:.0f} MB",
                      file=sys.stderr)
            else:
                print(f"{anchor_frame}, crowdsource: FAILED: {anchor['error']}\n{anchor.get('stderr', '')[-3000:]}",
                      file=sys.stderr)
            reports["anchor"] = anchor

    print(f"Frames: seed {pva.SEED}, {pva.FILTER}, Moffat FWHM {FWHM} px; " + ", ".join(
        f"{f} {pva.FRAMES[f][0]}x{pva.FRAMES[f][0]} px with {pva.FRAMES[f][1]} stars" for f in frames)
        + ". A pass injects 5 % of the catalogue's stars (patch radius " + ", ".join(sorted({
            f"{r['patch_radius']:g} px" for r in reports["passes"].values() if "patch_radius" in r})) + "). "
        f"{os.cpu_count()} cores, each child on one (OMP_NUM_THREADS=1). CPU: time.process_time; "
        "peak MB: the child's max RSS. clusterphot from " + ", ".join(sorted({
            r["clusterphot"] for r in reports["passes"].values() if "clusterphot" in r})) + ".\n")
    print_table(frames, reports, anchor_frame)
    if anchor_frame is not None and anchor_frame != "crowded":
        print(f"\ncrowdsource ran on the {anchor_frame} {pva.FRAMES[anchor_frame][0]}x{pva.FRAMES[anchor_frame][0]} "
              "frame, not on the 2000x2000 one (too long for this run: >= 4x its CPU by area; --anchor-frame "
              "crowded runs it there); its ratio is "
              "against clusterphot's passes on the same frame. The issue quotes "
              f"{ISSUE_ANCHOR_MS:.0f} ms per artificial star for crowdsource at 1000x1000.")
    args.outdir.mkdir(parents=True, exist_ok=True)
    saved = args.outdir / "artificial_stars_speed.json"
    strip = lambda r: {k: v for k, v in r.items() if k != "stderr"} if isinstance(r, dict) else r  # noqa: E731
    saved.write_text(json.dumps({"prepare": reports["prepare"],
                                 "passes": {f: strip(r) for f, r in reports["passes"].items()},
                                 "anchor": strip(reports.get("anchor")), "anchor_frame": anchor_frame,
                                 "seed": args.seed}, indent=2))
    print(f"\nsaved {saved.relative_to(ROOT) if saved.is_relative_to(ROOT) else saved}; "
          f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
