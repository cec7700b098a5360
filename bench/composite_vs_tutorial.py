"""Benchmark: clusterphot's colour composites against the classic tutorial recipe.

Both make a weighted-mean RGB and a Lupton RGB of the same simulated cluster, five float32
frames (F275W, F336W, F438W, F606W, F814W) of --size x --size pixels, each filter shifted by a
known sub-pixel offset and a tiny rotation from F814W's grid. Each contestant runs in its own
process, so that its time and peak memory (ru_maxrss of that process) are its own. Printed:
time, peak memory, and peak memory per byte of float32 frame data (peak / (5 size^2 4 B)),
with clusterphot / tutorial ratios; saved as JSON in bench/out/.

    .venv/bin/python bench/composite_vs_tutorial.py [--size 10000] [--stars 100000] [--repeats 1]

At the default size the frames take 2 GB on disk (bench/out/composite/, reused by later runs)
and the tutorial recipe needs over 10 GB of memory; --skip-tutorial runs clusterphot alone.
MB here are 2**20 bytes, GB 2**30.

clusterphot: ``clusterphot.composite.make_composites`` with its default parameters (8-bit)
and the known transforms, as the pipeline would run it after registration.

The tutorial ("Stacking with python") is re-implemented step by step, bugs included, as users
ran it: all frames read whole with ``fits.getdata`` and kept, each divided by its 99th
percentile; weighted-mean channels, then ``gaussian_filter(sigma=1)`` of the (ny, nx, 3) stack,
which also blurs across the colour axis, and RGB written where OpenCV expects BGR, upside down;
then ``make_lupton_rgb`` of three of the filters. It does no registration, so the filters' stars
do not line up. Its crop ``[1000:7000, 1000:7000]`` is replaced by the full frame, so that both
methods make the full image.
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

FILTERS = ("F275W", "F336W", "F438W", "F606W", "F814W")  # blue to red
REFERENCE = "F814W"
# Each frame's offset from the F814W grid: shift (x, y) in px and rotation (deg) about the centre.
OFFSETS = {"F275W": (-1.83, -4.41, 0.015), "F336W": (4.55, 3.12, -0.02),
           "F438W": (-3.18, 2.74, 0.01), "F606W": (2.37, -1.61, 0.0)}
SKY = {"F275W": 0.02, "F336W": 0.03, "F438W": 0.08, "F606W": 0.25, "F814W": 0.2}  # e-/s per px
NOISE = {"F275W": 0.01, "F336W": 0.012, "F438W": 0.02, "F606W": 0.03, "F814W": 0.03}  # e-/s per px
EXPTIME = {"F275W": 1430.0, "F336W": 1200.0, "F438W": 170.0, "F606W": 370.0, "F814W": 340.0}
PSF_SIGMA = 1.0  # px
BORDER = 50  # px of zeros around each frame, as in drizzled stacks
GENERATOR_VERSION = 1  # bump when the simulated frames change, so old ones are not reused
BUDGET_MB = 2.5 * 1024  # clusterphot's memory target for five 10k x 10k frames


# --- the simulated cluster -----------------------------------------------------------------


def known_transforms(size: int) -> dict:
    """Filter -> clusterphot Transform from that frame's pixels to F814W's (F814W itself: none)."""
    from clusterphot.registration import Transform

    centre = np.full(2, (size - 1) / 2)
    transforms = {}
    for name, (dx, dy, degrees) in OFFSETS.items():
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        rotation = np.array([[c, -s], [s, c]])
        transforms[name] = Transform(rotation, centre - rotation @ centre + (dx, dy), method="known")
    return transforms


def frame_paths(outdir: Path, size: int, stars: int) -> dict[str, Path]:
    return {f: outdir / "composite" / f"cluster_{size}px_{stars}stars_{f}.fits" for f in FILTERS}


def simulate_stars(size: int, stars: int, rng: np.random.Generator):
    """Star positions on the F814W grid, and each star's magnitude in every filter.

    Half the stars follow a Plummer profile about the centre, half are spread evenly. F814W
    magnitudes follow dN/dm ~ 10^(0.3 m) from 17 to 26. Each star has a colour c (like
    F438W - F814W: 80 % red giants and main sequence around 1.0, 20 % hot stars around -0.1),
    and m_f = m_F814W + c s_f, with s_f growing as 1 / pivot wavelength (0 for F814W, 1 for F438W).
    """
    from clusterphot.filters import pivot_wavelength

    x, y = rng.uniform(0, size, stars), rng.uniform(0, size, stars)
    core = np.arange(stars // 2)
    u = rng.uniform(0, 1, core.size)
    radius, angle = size / 10 * np.sqrt(u / (1 - u)), rng.uniform(0, 2 * np.pi, core.size)
    xc, yc = size / 2 + radius * np.cos(angle), size / 2 + radius * np.sin(angle)
    inside = (xc >= 0) & (xc < size) & (yc >= 0) & (yc < size)  # the rest stay where they were drawn
    x[core[inside]], y[core[inside]] = xc[inside], yc[inside]

    lo, hi = 10 ** (0.3 * 17), 10 ** (0.3 * 26)
    mag_ref = np.log10(lo + rng.uniform(0, 1, stars) * (hi - lo)) / 0.3
    hot = rng.uniform(0, 1, stars) < 0.2
    colour = np.where(hot, rng.normal(-0.1, 0.15, stars), rng.normal(1.0, 0.25, stars))
    inverse = {f: 1 / pivot_wavelength(f) for f in FILTERS}
    slope = {f: (inverse[f] - inverse[REFERENCE]) / (inverse["F438W"] - inverse[REFERENCE]) for f in FILTERS}
    return x, y, {f: mag_ref + colour * slope[f] for f in FILTERS}


def add_stars(image: np.ndarray, x, y, flux, chunk: int = 20_000) -> None:
    """Add Gaussian stars (sigma PSF_SIGMA px, total ``flux``) at x, y: 9 x 9 stamps, all at once."""
    ny, nx = image.shape
    flat = image.reshape(-1)
    steps = np.arange(-4, 5)
    for start in range(0, len(x), chunk):
        xs, ys, fs = x[start : start + chunk], y[start : start + chunk], flux[start : start + chunk]
        cols = np.rint(xs).astype(int)[:, None] + steps  # (stars, 9)
        rows = np.rint(ys).astype(int)[:, None] + steps
        gx = np.exp(-0.5 * ((cols - xs[:, None]) / PSF_SIGMA) ** 2)
        gy = np.exp(-0.5 * ((rows - ys[:, None]) / PSF_SIGMA) ** 2)
        stamps = (fs / (2 * np.pi * PSF_SIGMA**2))[:, None, None] * gy[:, :, None] * gx[:, None, :]
        inside = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
        index = rows[:, :, None] * nx + cols[:, None, :]
        np.add.at(flat, index[inside], stamps[inside].astype(np.float32))


def write_frames(size: int, stars: int, seed: int, outdir: Path) -> None:
    """Simulate and write the five frames, unless frames for this size, stars and seed exist."""
    from astropy.io import fits

    paths = frame_paths(outdir, size, stars)
    tag = {"BNCHSIZE": size, "BNCHSTAR": stars, "BNCHSEED": seed, "BNCHVERS": GENERATOR_VERSION}
    if all(p.exists() and all(fits.getheader(p, 0).get(k) == v for k, v in tag.items()) for p in paths.values()):
        return
    rng = np.random.default_rng(seed)
    x_ref, y_ref, mags = simulate_stars(size, stars, rng)
    transforms = known_transforms(size)
    for name, path in paths.items():
        start = time.perf_counter()
        x, y = (x_ref, y_ref) if name == REFERENCE else transforms[name].inverse().apply(x_ref, y_ref)
        image = rng.standard_normal((size, size), dtype=np.float32)
        image *= NOISE[name]
        image += SKY[name]
        add_stars(image, x, y, 10 ** (-0.4 * (mags[name] - 25.0)))  # zero point 25: 1 e-/s at mag 25
        image[:BORDER], image[-BORDER:], image[:, :BORDER], image[:, -BORDER:] = 0, 0, 0, 0
        primary = fits.PrimaryHDU()
        primary.header.update({"TELESCOP": "HST", "FILTER": name, "EXPTIME": EXPTIME[name], **tag})
        if name != REFERENCE:
            dx, dy, degrees = OFFSETS[name]
            primary.header.update({"SHIFTX": dx, "SHIFTY": dy, "ROTDEG": degrees})
        sci = fits.ImageHDU(image, name="SCI")
        sci.header.update({"BUNIT": "ELECTRONS/S", "EXPTIME": EXPTIME[name]})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fits.HDUList([primary, sci]).writeto(tmp, overwrite=True)
        tmp.replace(path)
        print(f"wrote {path.name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)


# --- the two contestants (each run in a child process) -------------------------------------


def run_tutorial(paths: dict[str, Path], prefix: Path) -> None:
    """The tutorial recipe, step by step, on the full frames."""
    import cv2 as cv
    from astropy.io import fits
    from astropy.visualization import make_lupton_rgb
    from scipy.ndimage import gaussian_filter

    image_list = [str(paths[f]) for f in FILTERS]  # 0 = F275W ... 4 = F814W
    images = [fits.getdata(image) for image in image_list]
    norm_images = [img / np.percentile(img, 99) for img in images]

    # Weighted mean (the recipe's seven filters' weights, mapped to these five)
    R = norm_images[4] * 0.7 + norm_images[3] * 0.3
    G = norm_images[3] * 0.7 + norm_images[2] * 0.3
    B = norm_images[2] * 0.5 + norm_images[1] * 0.25 + norm_images[0] * 0.25
    rgb_image = np.stack([R, G, B], axis=-1)
    rgb_image = gaussian_filter(rgb_image, sigma=1)
    rgb_image = np.clip(rgb_image, 0, 1)
    rgb_image_8bit = (rgb_image * 255).astype(np.uint8)
    cv.imwrite(f"{prefix}_weighted.png", rgb_image_8bit)

    # Lupton
    R = norm_images[4]
    G = norm_images[3]
    B = norm_images[0]
    rgb_image = make_lupton_rgb(R, G, B, stretch=1, Q=1)
    p0, p100 = np.percentile(rgb_image, (0, 100))
    rgb_image = np.clip((rgb_image - p0) / (p100 - p0), 0, 1)
    rgb_image = np.flipud(rgb_image)
    rgb_image_8bit = (rgb_image * 255).astype(np.uint8)
    rgb_image_bgr = cv.cvtColor(rgb_image_8bit, cv.COLOR_RGB2BGR)
    cv.imwrite(f"{prefix}_lupton.png", rgb_image_bgr)


def run_clusterphot(paths: dict[str, Path], prefix: Path, transforms: dict) -> None:
    from clusterphot.channels import channel_weights
    from clusterphot.composite import CompositeOutputs, CompositeParameters, FrameInput, make_composites
    from clusterphot.filters import pivot_wavelength

    frames = [FrameInput(f, paths[f]) for f in FILTERS]
    weights = channel_weights({f: pivot_wavelength(f) for f in FILTERS})
    outputs = CompositeOutputs(*(f"{prefix}_{kind}.png" for kind in
                                 ("lupton", "weighted", "lupton_preview", "weighted_preview")))
    make_composites(frames, transforms, REFERENCE, weights, CompositeParameters(), outputs)


def import_libraries() -> float:
    """Import what either method uses, before the clock starts: the same for both, and paid
    once per process, not per composite. Returns the seconds it took."""
    start = time.perf_counter()
    import astropy.io.fits  # noqa: F401
    import astropy.visualization  # noqa: F401
    import cv2  # noqa: F401
    import scipy.ndimage  # noqa: F401

    import clusterphot.composite  # noqa: F401
    return time.perf_counter() - start


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(method: str, size: int, stars: int, outdir: Path) -> None:
    import_seconds = import_libraries()
    import_peak_mb = peak_mb()
    paths = frame_paths(outdir, size, stars)
    prefix = outdir / "composite" / f"{method}_{size}"
    transforms = known_transforms(size)  # what registration would have found
    start = time.perf_counter()
    if method == "tutorial":
        run_tutorial(paths, prefix)  # no registration
    else:
        run_clusterphot(paths, prefix, transforms)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb(), "import_seconds": import_seconds,
                      "import_peak_mb": import_peak_mb}))


# --- the parent: frames, runs, table -------------------------------------------------------


def run_script(*arguments: str) -> str:
    """This script in a fresh process; its standard output.

    Everything big happens in children: a child's ru_maxrss starts at its parent's peak
    (Python starts children with vfork), so the parent must stay small to not inflate it.
    """
    result = subprocess.run([sys.executable, __file__, *arguments], check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout


def measure(method: str, args: argparse.Namespace) -> dict:
    """Median time and peak memory of ``args.repeats`` fresh processes running ``method``."""
    runs = []
    for _ in range(args.repeats):
        output = run_script("--child", method, "--size", str(args.size), "--stars", str(args.stars),
                            "--outdir", str(args.outdir))
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {**{key: statistics.median(run[key] for run in runs) for key in runs[0]}, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000, help="frame side, pixels")
    parser.add_argument("--stars", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="runs per method; medians are shown")
    parser.add_argument("--skip-tutorial", action="store_true", help="run clusterphot alone")
    parser.add_argument("--outdir", type=Path, default=HERE / "out")
    parser.add_argument("--child", metavar="METHOD", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.stars, args.outdir)
        return
    if args.generate:
        write_frames(args.size, args.stars, args.seed, args.outdir)
        return

    start = time.perf_counter()
    run_script("--generate", "--size", str(args.size), "--stars", str(args.stars), "--seed", str(args.seed),
               "--outdir", str(args.outdir))
    print(f"frames ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    methods = ("clusterphot",) if args.skip_tutorial else ("tutorial", "clusterphot")
    rows = {method: measure(method, args) for method in methods}
    frames_mb = len(FILTERS) * args.size**2 * 4 / 2**20
    for row in rows.values():
        row["peak_per_frame_bytes"] = row["peak_mb"] / frames_mb

    print(f"Five {args.size}x{args.size} float32 frames ({', '.join(FILTERS)}), {args.stars} stars: "
          f"{frames_mb:.0f} MB of pixels in all.")
    print(f"Medians of {args.repeats} run(s) each. Times are per composite (Lupton + weighted PNGs), after "
          f"importing the libraries (about {rows['clusterphot']['import_seconds']:.1f} s and "
          f"{rows['clusterphot']['import_peak_mb']:.0f} MB per process, the same for both).\n")
    print(f"{'':28s}" + "".join(f"{m:>13s}" for m in methods) + (f"{'ratio':>9s}" if len(methods) == 2 else ""))
    for label, key, fmt in [("time (s)", "seconds", "{:.1f}"), ("peak memory (MB)", "peak_mb", "{:.0f}"),
                            ("peak / frames' float32 size", "peak_per_frame_bytes", "{:.2f}")]:
        line = f"{label:28s}" + "".join(f"{fmt.format(rows[m][key]):>13s}" for m in methods)
        if len(methods) == 2:
            line += f"{rows['clusterphot'][key] / rows['tutorial'][key]:>9.2f}"
        print(line)
    peak = rows["clusterphot"]["peak_mb"]
    verdict = "within" if peak <= BUDGET_MB else "OVER"
    print(f"\nclusterphot's peak memory: {peak / 1024:.2f} GB, {verdict} the {BUDGET_MB / 1024:.1f} GB budget"
          + (" (ratio column: clusterphot / tutorial)" if len(methods) == 2 else ""))
    result = {"size": args.size, "stars": args.stars, "seed": args.seed, "repeats": args.repeats,
              "frames_mb": frames_mb, "budget_mb": BUDGET_MB, "methods": rows}
    (args.outdir / f"composite_result_{args.size}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
