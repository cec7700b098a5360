"""How the PSF path's time and memory grow with the frame's pixels and its stars (issue 11: "time
linear in stars and pixels").

Crowded simulated frames, made as ``bench/psf_vs_anchors.py`` makes its own (``write_frame``,
``clusterphot.simulate.simulate_crowded_frame``: a King cluster mid-field, core radius 5 per
cent of the side, Moffat FWHM 2.2 px, F606W, seed 3), in two series:

- pixels: the benchmark's dense frame (1000x1000 px, 15,000 stars) scaled up, the same density
  pattern on 4 and 16 times the pixels (2000x2000 with 60,000 stars, 4000x4000 with 240,000);
- stars: 2000x2000 px with 15,000, 30,000, 60,000 and 120,000 stars.

Each frame is measured as ``bench/psf_vs_anchors.py`` measures it (``run_clusterphot``: the PSF
learned from the frame, tiles of 1024 px and their PSFs interpolated where the frame is large
enough), in a fresh process with BLAS on one thread: CPU seconds of the whole path (sky,
detection, PSF, fits, residual passes) and the process's peak memory. Then one least-squares
fit, CPU s = a x megapixels + b x thousands of stars found, over the frames fitted in tiles
(those of 2000 px and more: a frame at least 1.5 tiles wide is fitted tile by tile and then
again with the tiles' PSFs interpolated), and each frame's time against it: a path linear in
both is within a few per cent of the fit for all of them. The 1000x1000 frame, fitted whole
and once, shows what the second fit costs.

    make bench-psf-scaling                                      # the six frames (about 3 min)
    .venv/bin/python bench/psf_scaling.py --workdir /tmp/scaling   # keep the frames for a rerun
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# (side in px, stars): the dense frame scaled up, then more stars on the same pixels
FRAMES = [(1000, 15000), (2000, 60000), (4000, 240000), (2000, 15000), (2000, 30000), (2000, 120000)]
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def frame_name(side: int, stars: int) -> str:
    return f"crowded_{side}px_{stars}stars"


def generate(side: int, stars: int, workdir: Path) -> None:
    """The frame simulated and written as the benchmark's are (psf_vs_anchors.write_frame: its
    seed, filter and PSF, tagged with its generator's version; kept when already there)."""
    from psf_vs_anchors import write_frame

    write_frame(frame_name(side, stars), workdir, (side, stars))
    print(json.dumps({}))  # run_child's report: nothing to say


def measure(image: Path) -> None:
    """The PSF path on one frame, as the benchmark runs it; its report as JSON on stdout."""
    from psf_vs_anchors import run_clusterphot

    result = run_clusterphot(image, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    flux = np.asarray(result["flux"], float)
    found = int((np.isfinite(flux) & (flux > 0)).sum())  # as psf_vs_anchors.score counts the stars found
    print(json.dumps({**result["clock"], "peak_mb": peak, "frame_mb": result["frame_mb"], "found": found,
                      "note": result["note"]}))


def linear_fit(megapixels: np.ndarray, kilostars: np.ndarray, cpu_s: np.ndarray) -> tuple[float, float]:
    """CPU s = a megapixels + b kilostars, least squares (no constant: an empty frame costs nothing)."""
    design = np.column_stack([megapixels, kilostars])
    (a, b), *_ = np.linalg.lstsq(design, cpu_s, rcond=None)
    return float(a), float(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the frames here, not in a temporary directory")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per frame")
    parser.add_argument("--outdir", type=Path, default=HERE / "out", help="where the results (JSON) go")
    parser.add_argument("--generate", nargs=3, metavar=("SIDE", "STARS", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(int(args.generate[0]), int(args.generate[1]), Path(args.generate[2]))
        return
    if args.child:
        measure(args.child)
        return

    from psf_vs_anchors import frame_paths, run_child

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for side, stars in FRAMES:
            path = frame_paths(workdir, frame_name(side, stars))["image"]
            # simulated in a child (the parent holds no frame), unless already there
            report = run_child(sys.executable, ["--generate", str(side), str(stars), str(workdir)], args.timeout,
                               script=__file__)
            if "error" in report:
                sys.exit(f"simulating {path.name}: {report['error']}")
            report = run_child(sys.executable, ["--child", str(path)], args.timeout, script=__file__, env=ONE_THREAD)
            if "error" in report:
                sys.exit(f"measuring {path.name}: {report['error']}")
            rows.append({"side": side, "stars": stars, **report})
            print(f"{side} px, {stars} stars: {report['found']} found, {report['cpu_s']:.1f} CPU s, "
                  f"{report['peak_mb']:.0f} MB ({report['note']})", file=sys.stderr)

    megapixels = np.array([r["side"] ** 2 / 1e6 for r in rows])
    kilostars = np.array([r["found"] / 1e3 for r in rows])
    cpu_s = np.array([r["cpu_s"] for r in rows])
    tiled = np.array(["tiles" in r["note"] for r in rows])
    a, b = linear_fit(megapixels[tiled], kilostars[tiled], cpu_s[tiled])
    args.outdir.mkdir(parents=True, exist_ok=True)
    results = {"frames": rows, "fit": {"cpu_s_per_megapixel": a, "cpu_s_per_1000_stars_found": b}}
    (args.outdir / "psf_scaling.json").write_text(json.dumps(results, indent=1))
    print(f"\nPSF path, BLAS on one thread; fit over the {tiled.sum()} frames fitted in tiles: "
          f"CPU s = {a:.3f} x Mpx + {b:.3f} x 1000 stars found\n")
    print("| frame | fitted | stars simulated | stars found | CPU s | CPU s / Mpx | CPU s / 1000 found | fit "
          "| measured / fit | peak MB | frame float32 MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row, mpx, kst, cpu in zip(rows, megapixels, kilostars, cpu_s):
        fitted = a * mpx + b * kst
        how = "in tiles" if "tiles" in row["note"] else "whole"
        print(f"| {row['side']}x{row['side']} | {how} | {row['stars']:,} | {row['found']:,} | {cpu:.1f} "
              f"| {cpu / mpx:.2f} | {cpu / kst:.2f} | {fitted:.1f} | {cpu / fitted:.2f} | {row['peak_mb']:.0f} "
              f"| {row['frame_mb']:.0f} |")


if __name__ == "__main__":
    main()
