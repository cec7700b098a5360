"""Benchmark: clusterphot's per-frame photometry against the classic tutorial recipe.

Both measure the same simulated crowded frames (true star lists known), at several frame sizes.
Each contestant runs in its own process, so that its time and peak memory (ru_maxrss of that
process) are its own; the frames are simulated in yet another process, for the same reason
(see ``run_script``). Printed per size: time, peak memory, peak memory per byte of the frame's
float32 pixels, time per megapixel and per 1000 stars (flat columns across sizes mean linear
growth), with clusterphot / tutorial ratios; then the accuracy against the true star list
(detections, spurious fraction, magnitude of 50% completeness, bias and scatter of bright stars).
Results are saved as JSON in bench/out/.

    .venv/bin/python bench/photometry_vs_tutorial.py [--sizes 2000 4000 8000] [--repeats 3]
    .venv/bin/python bench/photometry_vs_tutorial.py --size 10000 --stars 100000 --skip-tutorial [--steps]

Star counts grow with the frame's area, 3750 per megapixel unless --stars is given: 60000 at
4000 px (the frame of the earlier published numbers, which this reproduces), 240000 at 8000,
375000 at 10000. The issue's big-frame case is 10000 px with 10^5 stars: pass --stars 100000.
Frames are kept in bench/out/ and reused by later runs with the same size, stars and seed.
MB here are 2**20 bytes. --steps adds a table of clusterphot's peak memory and time step by step
(read, mask, sky, detection, ...), from one more run per size (Linux only: it resets the process's
peak memory through /proc/self/clear_refs as each step starts).

The tutorial recipe is re-implemented from its description (DAOStarFinder fwhm=3 at 5 sigma
of a global sigma-clipped std, r=5 apertures, 10-15 px annulus mean via ApertureStats, and
magnitudes ``zp - 2.4 log10(abs(net) / t)`` in a Python loop), bugs included: that is what
users ran. Its zero point is the right AB one, copied by hand as the recipe says.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STARS_PER_MEGAPIXEL = 60000 / 16.0  # the earlier single-size benchmark: 60000 stars on 4000 x 4000
GENERATOR_VERSION = 1  # bump when the simulated frames change, so old ones are not reused
# The budget for big frames: clusterphot's peak memory beyond the libraries / the frame's float32 size.
# (Small frames have fixed costs of tens of MB -- the sky sample, the tables -- that a frame's size does not bound.)
TARGET_PEAK_PER_FRAME = 3.0
BIG_FRAME = 8000  # px; from this size on the budget is checked


# --- the simulated frames --------------------------------------------------------------------


def default_stars(size: int) -> int:
    return int(round(STARS_PER_MEGAPIXEL * size**2 / 1e6))


def frame_paths(outdir: Path, size: int, stars: int) -> tuple[Path, Path]:
    """The frame's FITS file and its true star list."""
    stem = outdir / f"crowded_{size}px_{stars}stars"
    return stem.with_suffix(".fits"), stem.with_name(stem.name + "_truth.ecsv")


def write_frame(size: int, stars: int, seed: int, outdir: Path) -> None:
    """Simulate one crowded frame and write it with its truth, unless they exist for these settings."""
    from astropy.io import fits

    from clusterphot.simulate import simulate_crowded_frame

    image, truth_path = frame_paths(outdir, size, stars)
    tag = {"BNCHSIZE": size, "BNCHSTAR": stars, "BNCHSEED": seed, "BNCHVERS": GENERATOR_VERSION}
    if image.exists() and truth_path.exists() and all(fits.getheader(image, 0).get(k) == v for k, v in tag.items()):
        return
    start = time.perf_counter()
    hdul, truth = simulate_crowded_frame(shape=(size, size), n_stars=stars, seed=seed)
    hdul[0].header.update(tag)
    outdir.mkdir(parents=True, exist_ok=True)
    # the truth first: a frame on disk with its tags means both are complete
    truth.write(truth_path, format="ascii.ecsv", overwrite=True)
    tmp = image.with_suffix(".tmp")
    hdul.writeto(tmp, overwrite=True)
    tmp.replace(image)
    print(f"simulated {image.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


# --- the two contestants (each run in a child process) ------------------------------------


def run_tutorial(image: Path, output: Path) -> None:
    """The tutorial recipe, step by step, on a crop typed from a look at the frame."""
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from astropy.table import Table
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry
    from photutils.detection import DAOStarFinder

    with fits.open(image) as hdul:
        im_data = hdul[1].data
        header = hdul[0].header + hdul[1].header
        # the user looks at the frame and types the crop: here, just inside the zero border
        rows = np.flatnonzero(im_data.any(axis=1))
        cols = np.flatnonzero(im_data.any(axis=0))
        y0, y1, x0, x1 = rows[0] + 1, rows[-1], cols[0] + 1, cols[-1]
        section = im_data[y0:y1, x0:x1]
        mean, median, std = sigma_clipped_stats(section, sigma=3.0)
        daofind = DAOStarFinder(fwhm=3.0, threshold=5.0 * std)
        sources = daofind(section - median)
        positions = np.transpose((sources["x_centroid"], sources["y_centroid"]))
        apertures = CircularAperture(positions, r=5.0)
        annulus = CircularAnnulus(positions, r_in=10, r_out=15)
        bkg_mean = ApertureStats(section, annulus).mean
        total_bkg = bkg_mean * apertures.area_overlap(section)
        star_data = aperture_photometry(section, apertures)
        star_data["total_bkg"] = total_bkg
        zeropoint = -2.5 * math.log10(header["PHOTFLAM"]) - 5 * math.log10(header["PHOTPLAM"]) - 2.408
        exposure_time = header["EXPTIME"]
        magnitudes = []
        for line in star_data:
            magnitudes.append(zeropoint - (2.4 * math.log10(abs(line[3] - line[4]) / exposure_time)))
        star_data["magnitude"] = magnitudes
    out = Table({"x": np.asarray(star_data["xcenter"].value) + x0,
                 "y": np.asarray(star_data["ycenter"].value) + y0,
                 "mag": np.asarray(magnitudes), "mag_err": np.full(len(magnitudes), np.nan),
                 "flags": np.zeros(len(magnitudes), int)})
    out.write(output, format="ascii.ecsv", overwrite=True)


def run_clusterphot(image: Path, output: Path) -> None:
    from clusterphot import catalog, outputs
    from clusterphot.config import FrameSettings
    from clusterphot.photometry import PhotometryParameters

    # through the modules, so that --steps can follow every step
    table = catalog.catalog_for_frame(image, FrameSettings("F606W"), PhotometryParameters(), system="AB")
    outputs.write_table(table, output)


def import_libraries() -> float:
    """Import what either method uses, before the clock starts: the same for both, and paid
    once per process, not per frame. Returns the seconds it took."""
    start = time.perf_counter()
    import astropy.io.fits  # noqa: F401
    import astropy.stats  # noqa: F401
    import astropy.table  # noqa: F401
    import photutils.aperture  # noqa: F401
    import photutils.detection  # noqa: F401

    import clusterphot.catalog  # noqa: F401
    return time.perf_counter() - start


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# Steps of clusterphot's photometry whose peak memory --steps reports (module, function names).
STEPS = {"clusterphot.catalog": ("catalog_for_frame", "read_frame", "bad_pixel_mask", "measure_frame", "magnitudes"),
         "clusterphot.outputs": ("write_table",),
         "clusterphot.photometry": ("frame_sky_statistics", "detect_stars", "merge_saturated_detections", "local_sky",
                                    "touches_mask", "aperture_sums", "peak_values", "nearest_neighbour_distance",
                                    "measure_aperture_correction")}


def process_status_mb(key: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, MB (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(key + ":"))


def reset_peak() -> None:
    """Start VmHWM afresh from the current memory (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def run_clusterphot_steps(image: Path, output: Path) -> list[dict]:
    """run_clusterphot with each step in STEPS timed and its peak memory recorded.

    Each step's function is wrapped in its module (the callers look it up there); the process's
    peak (VmHWM) is reset as a step starts and read as it ends, and handed on to the enclosing
    step. Returns, in call order: step (indented by nesting), MB at start, peak, MB at end, seconds.
    """
    import functools
    import importlib

    stack, records = [], []

    def wrap(module, name):
        function = getattr(module, name)

        @functools.wraps(function)
        def step(*args, **kwargs):
            if stack:  # what the enclosing step reached so far
                stack[-1]["peak_mb"] = max(stack[-1]["peak_mb"], process_status_mb("VmHWM"))
            record = {"step": "  " * len(stack) + name, "start_mb": process_status_mb("VmRSS"), "peak_mb": 0.0}
            stack.append(record)
            records.append(record)
            reset_peak()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                record["seconds"] = time.perf_counter() - start
                record["peak_mb"] = max(record["peak_mb"], process_status_mb("VmHWM"))
                record["end_mb"] = process_status_mb("VmRSS")
                stack.pop()
                if stack:
                    stack[-1]["peak_mb"] = max(stack[-1]["peak_mb"], record["peak_mb"])

        setattr(module, name, step)

    for module_name, names in STEPS.items():
        module = importlib.import_module(module_name)
        for name in names:
            wrap(module, name)
    run_clusterphot(image, output)
    return records


def child(method: str, image: Path, output: Path) -> None:
    if method == "steps":
        import_libraries()
        print(json.dumps(run_clusterphot_steps(image, output)))
        return
    import_seconds = import_libraries()
    import_peak_mb = peak_mb()
    start = time.perf_counter()
    {"tutorial": run_tutorial, "clusterphot": run_clusterphot}[method](image, output)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb(), "import_seconds": import_seconds,
                      "import_peak_mb": import_peak_mb}))


# --- scoring against the true star list ----------------------------------------------------


def completeness_limit(true_mag, found, step=0.25):
    """Faintest magnitude bin above which completeness first drops below 50 %."""
    bins = np.arange(np.floor(true_mag.min()), np.ceil(true_mag.max()) + step, step)
    total, _ = np.histogram(true_mag, bins)
    hit, _ = np.histogram(true_mag[found], bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = hit / total
    peak = np.nanargmax(np.where(total >= 10, fraction, np.nan))
    for i in range(peak, len(fraction)):
        if total[i] >= 10 and fraction[i] < 0.5:
            return float(bins[i])
    return float(bins[-1])


def score(catalog, truth) -> dict:
    from scipy.spatial import cKDTree

    from clusterphot.matching import match_one_to_one
    from clusterphot.simulate import point_source_snr

    truth = truth[truth["in_footprint"]]
    x, y = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    ti, di, _ = match_one_to_one(np.asarray(truth["x"]), np.asarray(truth["y"]), x, y, 1.0)
    found = np.zeros(len(truth), bool)
    found[ti] = True
    truth_tree = cKDTree(np.column_stack([truth["x"], truth["y"]]))
    nearest, _ = truth_tree.query(np.column_stack([x, y]))
    dmag = np.asarray(catalog["mag"], float)[di] - np.asarray(truth["mag"], float)[ti]
    # the same bright stars for both methods: unsaturated, with a true S/N > 100, no flag
    meta = truth.meta
    true_snr = point_source_snr(np.asarray(truth["flux"], float)[ti], meta["sky"], meta["read_noise"], meta["psf_fwhm"])
    bright = (~np.asarray(truth["saturated"])[ti]) & (true_snr > 100) & (np.asarray(catalog["flags"])[di] == 0)
    good = dmag[bright]
    good = good[np.isfinite(good)]
    median = float(np.median(good)) if good.size else float("nan")
    return {
        "detections": len(catalog),
        "matched": int(found.sum()),
        "spurious_fraction": float(np.mean(nearest > 1.0)) if len(catalog) else float("nan"),
        "mag50": completeness_limit(np.asarray(truth["mag"], float), found),
        "bright_stars": int(good.size),
        "bright_bias": median,
        "bright_scatter": float(1.4826 * np.median(np.abs(good - median))) if good.size else float("nan"),
    }


# --- the parent: frames, runs, tables --------------------------------------------------------


def run_script(*arguments: str) -> str:
    """This script in a fresh process; its standard output.

    Everything big happens in children: a child's ru_maxrss starts at its parent's peak
    (Python starts children with vfork, and Linux carries the peak across exec), so the parent
    never holds a frame -- not even the simulated one -- so as not to inflate the contestants'.
    """
    result = subprocess.run([sys.executable, __file__, *arguments], check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout


def measure(method: str, image: Path, output: Path, repeats: int) -> dict:
    """Median time and peak memory of ``repeats`` fresh processes running ``method``."""
    runs = [json.loads(run_script("--child", method, str(image), str(output)).strip().splitlines()[-1])
            for _ in range(repeats)]
    return {**{key: statistics.median(run[key] for run in runs) for key in runs[0]}, "runs": runs}


def print_tables(results: list[dict], methods: tuple[str, ...], repeats: int) -> None:
    import_s = statistics.median(r["methods"][m]["import_seconds"] for r in results for m in methods)
    import_mb = statistics.median(r["methods"][m]["import_peak_mb"] for r in results for m in methods)
    print(f"Medians of {repeats} run(s) each (noisy machine: other jobs may run). Times are per frame, after "
          f"importing the libraries (about {import_s:.1f} s and {import_mb:.0f} MB per process, the same for "
          f"both, included in the peaks).\n")
    header = (f"{'size':>6s} {'stars':>7s} {'method':>12s} {'time s':>8s} {'peak MB':>8s} {'peak/frame':>11s} "
              f"{'-imports':>9s} {'s/Mpix':>7s} {'s/1k stars':>11s} {'s/1k det':>9s}")
    print(header)
    print("-" * len(header))
    for r in results:
        frame_mb = r["frame_mb"]
        for m in methods:
            row = r["methods"][m]
            print(f"{r['size']:>6d} {r['stars']:>7d} {m:>12s} {row['seconds']:>8.2f} {row['peak_mb']:>8.0f} "
                  f"{row['peak_mb'] / frame_mb:>11.2f} {(row['peak_mb'] - row['import_peak_mb']) / frame_mb:>9.2f} "
                  f"{row['seconds'] / (r['size'] ** 2 / 1e6):>7.3f} {row['seconds'] / (r['stars'] / 1e3):>11.3f} "
                  f"{row['seconds'] / (row['detections'] / 1e3):>9.3f}")
        if len(methods) == 2:
            c, t = r["methods"]["clusterphot"], r["methods"]["tutorial"]
            print(f"{'':>6s} {'':>7s} {'ratio c/t':>12s} {c['seconds'] / t['seconds']:>8.2f} "
                  f"{c['peak_mb'] / t['peak_mb']:>8.2f}")
    print("\npeak/frame: peak memory / the frame's float32 size (size^2 x 4 B); -imports: the same after "
          "subtracting the process's peak after imports. s/1k det: seconds per 1000 detections.\n")

    print(f"{'size':>6s} {'method':>12s} {'detected':>9s} {'matched':>8s} {'spurious':>9s} {'mag50':>6s} "
          f"{'bright':>7s} {'bias':>7s} {'scatter':>8s}")
    for r in results:
        for m in methods:
            row = r["methods"][m]
            print(f"{r['size']:>6d} {m:>12s} {row['detections']:>9d} {row['matched']:>8d} "
                  f"{row['spurious_fraction']:>9.3f} {row['mag50']:>6.2f} {row['bright_stars']:>7d} "
                  f"{row['bright_bias']:>+7.3f} {row['bright_scatter']:>8.3f}")
    print("\nmatched: true stars with a detection within 1 px (one to one); spurious: fraction of detections "
          "with no true star within 1 px; mag50: magnitude where completeness drops below 50%; bright: "
          "unsaturated stars with true S/N > 100 and no flag, their median magnitude error (bias) and "
          "its robust scatter.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", "--size", type=int, nargs="+", default=[2000, 4000, 8000],
                        help="frame sides, pixels")
    parser.add_argument("--stars", type=int,
                        help=f"stars per frame (default: {STARS_PER_MEGAPIXEL:.0f} per megapixel, 60000 at 4000 px)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per method and size; medians are shown")
    parser.add_argument("--skip-tutorial", action="store_true", help="run clusterphot alone")
    parser.add_argument("--steps", action="store_true",
                        help="also run clusterphot once more per size and show each step's peak memory and time")
    parser.add_argument("--outdir", type=Path, default=HERE / "out")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "IMAGE", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    if args.generate:
        for size in args.sizes:
            write_frame(size, args.stars or default_stars(size), args.seed, args.outdir)
        return

    start = time.perf_counter()
    methods = ("clusterphot",) if args.skip_tutorial else ("tutorial", "clusterphot")
    results = []
    for size in args.sizes:
        stars = args.stars or default_stars(size)
        run_script("--generate", "--size", str(size), "--stars", str(stars), "--seed", str(args.seed),
                   "--outdir", str(args.outdir))
        image, _ = frame_paths(args.outdir, size, stars)
        rows = {}
        for method in methods:
            rows[method] = measure(method, image, args.outdir / f"{method}_{size}px_{stars}stars.ecsv", args.repeats)
            print(f"{size} px, {method}: {rows[method]['seconds']:.1f} s, {rows[method]['peak_mb']:.0f} MB",
                  file=sys.stderr)
        results.append({"size": size, "stars": stars, "seed": args.seed, "repeats": args.repeats,
                        "frame_mb": size**2 * 4 / 2**20, "methods": rows})
        if args.steps:
            steps = run_script("--child", "steps", str(image), str(args.outdir / f"steps_{size}px_{stars}stars.ecsv"))
            results[-1]["steps"] = json.loads(steps.strip().splitlines()[-1])

    # Scoring reads the (small) catalogues and truths: after all runs, so that the parent stays small.
    from astropy.table import Table

    for r in results:
        _, truth_path = frame_paths(args.outdir, r["size"], r["stars"])
        truth = Table.read(truth_path, format="ascii.ecsv")
        r["in_footprint"] = int(truth["in_footprint"].sum())
        for method, row in r["methods"].items():
            catalog = Table.read(args.outdir / f"{method}_{r['size']}px_{r['stars']}stars.ecsv", format="ascii.ecsv")
            row.update(score(catalog, truth))
        name = f"result_{r['size']}px_{r['stars']}stars{'_clusterphot' if args.skip_tutorial else ''}.json"
        (args.outdir / name).write_text(json.dumps(r, indent=2))

    print_tables(results, methods, args.repeats)
    for r in results:
        if "tutorial" in r["methods"]:
            c, t = r["methods"]["clusterphot"], r["methods"]["tutorial"]
            print(f"{r['size']} px: clusterphot reaches {c['mag50'] - t['mag50']:+.2f} mag deeper (50% completeness) "
                  f"than the tutorial recipe")
    for r in (r for r in results if r["size"] >= BIG_FRAME):
        row = r["methods"]["clusterphot"]
        ratio = (row["peak_mb"] - row["import_peak_mb"]) / r["frame_mb"]
        print(f"{r['size']} px: clusterphot's peak beyond the libraries is {ratio:.2f} x the frame's float32 size "
              f"({'within' if ratio <= TARGET_PEAK_PER_FRAME else 'OVER'} the {TARGET_PEAK_PER_FRAME:.0f} x budget)")
    for r in results:
        if "steps" in r:
            print(f"\nclusterphot step by step, {r['size']} px, {r['stars']} stars (one run; MB of the process "
                  f"at the step's start, its peak during the step, at its end):")
            print(f"{'step':34s} {'start':>7s} {'peak':>7s} {'end':>7s} {'peak-start':>11s} {'s':>6s}")
            for step in r["steps"]:
                print(f"{step['step']:34s} {step['start_mb']:>7.0f} {step['peak_mb']:>7.0f} {step['end_mb']:>7.0f} "
                      f"{step['peak_mb'] - step['start_mb']:>11.0f} {step['seconds']:>6.2f}")
    print(f"\ntotal benchmark time {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
