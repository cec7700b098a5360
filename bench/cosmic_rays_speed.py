"""How long finding a single exposure's cosmic rays takes, and how much memory, side by side:

- clusterphot: ``cosmicrays.find_cosmic_rays`` (astroscrappy's L.A.Cosmic with the full medians,
  in blocks of 2048 rows);
- astroscrappy as most scripts call it: one call on the whole frame, its defaults (the faster
  separable median, which takes undersampled stars' cores for cosmic rays: see the README);
- astroscrappy with the full medians in one call (what clusterphot's blocks must equal).

Each runs in a process of its own on the same simulated exposure (stars, sky, read noise and
cosmic-ray hits), so that its peak memory is its own. Prints CPU seconds per 10^6 pixels, peak
memory and the ratio to clusterphot, and how many of the injected hits each found.

    .venv/bin/python bench/cosmic_rays_speed.py [--size 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HIT_E = (300.0, 5000.0)  # electrons per hit pixel


def exposure(size: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(electrons, the hits' pixels): Gaussian stars (FWHM 2 px) on a sky of 30 e- with 4 e- of
    read noise, and a cosmic-ray pixel in every 500 (single pixels and pairs)."""
    from clusterphot.simulate import add_stars, moffat_phase_stamps

    rng = np.random.default_rng(seed)
    n_stars = size * size // 400
    image = np.zeros((size, size), np.float32)
    add_stars(image, rng.uniform(20, size - 20, n_stars), rng.uniform(20, size - 20, n_stars),  # stamps on the frame
              10 ** rng.uniform(2.5, 5.0, n_stars), moffat_phase_stamps(2.0))
    image = (rng.poisson(image + 30.0) + rng.normal(0.0, 4.0, image.shape)).astype(np.float32)
    hits = np.zeros(image.shape, bool)
    n_hits = size * size // 1000
    rows, columns = rng.integers(0, size - 1, n_hits), rng.integers(0, size - 1, n_hits)
    hits[rows, columns] = True
    hits[rows[::2], columns[::2] + 1] = True
    image[hits] += rng.uniform(*HIT_E, hits.sum()).astype(np.float32)
    return image, hits


def run_one(method: str, size: int, saved: str) -> dict:
    """Time ``method`` on the exposure (``saved``: the parent's .npz of it) in this process, its
    memory from after the exposure was loaded (building it would set the peak)."""
    import astroscrappy

    from clusterphot.cosmicrays import LACOSMIC_ITERATIONS, LACOSMIC_OBJLIM, LACOSMIC_SIGCLIP, LACOSMIC_SIGFRAC
    from clusterphot.cosmicrays import find_cosmic_rays

    with np.load(saved) as arrays:
        image, hits = arrays["image"], arrays["hits"]
    bad = np.zeros(image.shape, bool)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    if method == "clusterphot":
        found = find_cosmic_rays(image, bad, 1.0, 4.0, None)
    else:
        found, _ = astroscrappy.detect_cosmics(
            image, gain=1.0, readnoise=4.0, satlevel=1e30, sigclip=LACOSMIC_SIGCLIP, sigfrac=LACOSMIC_SIGFRAC,
            objlim=LACOSMIC_OBJLIM, niter=LACOSMIC_ITERATIONS, sepmed=(method == "astroscrappy-defaults"))
    cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "cpu_s": cpu, "cpu_per_mpx": cpu / (image.size / 1e6), "peak_mb": peak / 1024,
            "rise_mb": (peak - before) / 1024, "hits_found": float(found[hits].mean()),
            "other_pixels": int((found & ~hits).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096, help="frame side, px (default 4096)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--saved", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.size, args.saved)))
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        saved = f"{folder}/exposure.npz"
        image, hits = exposure(args.size)
        np.savez(saved, image=image, hits=hits)
        del image, hits
        for method in ("clusterphot", "astroscrappy-defaults", "astroscrappy-full-median"):
            out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--one", method,
                                  "--saved", saved], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = results[0]
    print(f"{args.size} x {args.size} single exposure, one core each")
    print(f"{'method':26s} {'CPU s':>7s} {'s/10^6 px':>9s} {'x ours':>7s} {'peak MB':>8s} {'rise MB':>8s} "
          f"{'hits found':>10s} {'other px':>9s}")
    for r in results:
        print(f"{r['method']:26s} {r['cpu_s']:7.1f} {r['cpu_per_mpx']:9.2f} {r['cpu_s'] / ours['cpu_s']:7.2f} "
              f"{r['peak_mb']:8.0f} {r['rise_mb']:8.0f} {r['hits_found']:10.3f} {r['other_pixels']:9d}")


if __name__ == "__main__":
    main()
