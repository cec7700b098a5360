"""Helpers the tests share: running the workflow with Snakemake itself, and reading composites back."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from .conftest import REPO
from .synthetic import gaussian_stars, grid_of_stars

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    configfile = workdir / "test-config.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    configfile.write_text(yaml.safe_dump(config))
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


# The configs of frames with a few dozen stars (star_field's 25; field_frames' and
# write_simulated_cluster's 128x128 px ones): too few bright, isolated ones to learn a PSF from
# (photometry.psf.min_psf_stars, 20), so the tests about reading, naming and rerunning such
# frames measure them with apertures. Both methods read and check a frame with the same code
# (catalog.catalog_for_frame).
SPARSE = {"photometry": {"method": "aperture"}}


def measure_f606w_frames(workdir: Path, entries: dict, **config) -> dict:
    """Each frame (cluster -> its F606W config entry) measured by the workflow as a cluster of
    its own (``config``: more keys), with apertures (``SPARSE``); cluster -> its catalogue."""
    from astropy.table import Table

    from clusterphot import paths

    photometry = {**SPARSE["photometry"], **config.pop("photometry", {})}
    config = {"clusters": {name: {"filters": {"F606W": entry}} for name, entry in entries.items()},
              "photometry": photometry, **config}
    targets = [paths.CATALOG.format(cluster=name, filter="F606W") for name in entries]
    result = snakemake(workdir, config, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: Table.read(workdir / target) for name, target in zip(entries, targets)}


def assert_same_magnitudes(tables: dict, reference: str, fraction: float) -> None:
    """Every catalogue finds ``fraction`` of the reference catalogue's clean stars (within 0.2 px)
    at the same magnitudes (median difference below 0.003 mag)."""
    from scipy.spatial import cKDTree

    good = tables[reference]["flags"] == 0
    assert good.sum() >= 20
    x, y = (np.asarray(tables[reference][c])[good] for c in ("x", "y"))
    tree = cKDTree(np.column_stack([x, y]))
    for name, table in tables.items():
        distance, index = tree.query(np.column_stack([table["x"], table["y"]]), distance_upper_bound=0.2)
        matched = np.isfinite(distance)
        assert matched.sum() >= fraction * good.sum(), name
        difference = np.asarray(table["mag"])[matched] - np.asarray(tables[reference]["mag"])[good][index[matched]]
        assert abs(np.nanmedian(difference)) < 0.003, (name, np.nanmedian(difference))


def jobs_a_change_would_run(workdir: Path, config: dict) -> dict[str, int]:
    """Rule -> number of jobs a dry run with ``config`` lists."""
    result = snakemake(workdir, config, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output[output.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def pillow_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def at_fits_position(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """The RGB a FITS viewer (origin lower left) shows at 0-based pixel (x, y): a 3x3 mean."""
    row = image.shape[0] - 1 - int(round(y))
    col = int(round(x))
    return image[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3).mean(axis=0)


def channel_centroids(image: np.ndarray, x: float, y: float, radius: float = 4.0) -> np.ndarray:
    """Flux-weighted (x, y) of each channel around a star, in FITS pixel coordinates."""
    ny = image.shape[0]
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    fits_y = ny - 1 - rows
    near = np.hypot(cols - x, fits_y - y) <= radius
    centroids = []
    for k in range(3):
        w = np.where(near, image[..., k], 0.0)
        centroids.append((np.sum(w * cols) / w.sum(), np.sum(w * fits_y) / w.sum()))
    return np.array(centroids)


def warnings_from(caplog, logger: str) -> list[str]:
    """The messages of the WARNING records ``logger`` left in pytest's caplog."""
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


def tan_wcs_header(crpix: float = 80.0, **changes) -> dict:
    """A TAN WCS of 0.05"/px near NGC 1261, as header cards; ``changes`` break it on purpose."""
    header = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 48.07, "CRVAL2": -55.22, "CRPIX1": crpix,
              "CRPIX2": crpix, "CD1_1": -1.4e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 1.4e-5}
    header.update(changes)
    return header


def star_field(shape=(160, 160), seed: int = 11) -> np.ndarray:
    """Electrons over 100 s: isolated stars on a sky, with noise."""
    rng = np.random.default_rng(seed)
    x, y = grid_of_stars(shape, spacing=25, margin=18, rng=rng)
    return gaussian_stars(shape, x, y, rng.uniform(3e4, 2e5, x.size), sigma=1.2, sky=30.0, read_noise=4.0, rng=rng)
