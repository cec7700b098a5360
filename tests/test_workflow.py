"""The workflow end to end, run by Snakemake itself on a tiny configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.table import Table
from scipy.spatial import cKDTree

from clusterphot.simulate import write_simulated_cluster

from .conftest import REPO

pytestmark = pytest.mark.workflow
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
FILTERS = ["F438W", "F814W"]
TINY = {"demo": {"clusters": {"tiny": {"seed": 7, "n_stars": 400, "distance_modulus": 16.5}},
                 "filters": FILTERS, "shape": [256, 256]}}


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    configfile = workdir / "test-config.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    configfile.write_text(yaml.safe_dump(config))
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_demo_writes_every_output_of_the_contract(demo_run):
    for f in FILTERS:
        for path in (f"results/catalogs/tiny/{f}.ecsv", f"results/plots/tiny/lf_{f}.png",
                     f"results/plots/tiny/detections_{f}.png", f"results/demo/tiny/{f}.fits",
                     f"results/demo/tiny/{f}_truth.ecsv", f"logs/photometry/tiny/{f}.log",
                     f"benchmarks/photometry/tiny/{f}.tsv"):
            assert (demo_run / path).stat().st_size > 0, path
    assert (demo_run / "results/summary/tiny.tsv").exists()
    # only the configured demo cluster: the shipped demo clusters were replaced, not merged
    assert sorted(p.name for p in (demo_run / "results/catalogs").iterdir()) == ["tiny"]


def test_catalogues_are_calibrated_and_agree_with_the_truth(demo_run):
    for f in FILTERS:
        catalog = Table.read(demo_run / f"results/catalogs/tiny/{f}.ecsv")
        truth = Table.read(demo_run / f"results/demo/tiny/{f}_truth.ecsv")
        assert catalog.meta["zeropoint"]["system"] == "AB"
        assert catalog.meta["zeropoint"]["source"].startswith("PHOTFLAM")
        assert catalog.meta["cluster"] == "tiny" and catalog.meta["filter"] == f
        assert str(catalog["flux"].unit) == "electron" and str(catalog["ra"].unit) == "deg"
        assert np.isfinite(catalog["ra"]).all()
        distance, index = cKDTree(np.column_stack([truth["x"], truth["y"]])).query(
            np.column_stack([catalog["x"], catalog["y"]]))
        matched = distance < 1.0
        assert matched.mean() > 0.9
        bright = matched & (catalog["flags"] == 0) & (catalog["mag_err"] < 0.01)
        assert bright.sum() >= 10
        offset = np.asarray(catalog["mag"])[bright] - np.asarray(truth["mag"])[index[bright]]
        assert abs(np.median(offset)) < 0.05
        assert 1.4826 * np.median(np.abs(offset - np.median(offset))) < 0.03


def test_summary_counts_the_catalogues(demo_run):
    summary = Table.read(demo_run / "results/summary/tiny.tsv", format="ascii.tab")
    assert list(summary["filter"]) == FILTERS
    for row in summary:
        catalog = Table.read(demo_run / f"results/catalogs/tiny/{row['filter']}.ecsv")
        assert row["n_stars"] == len(catalog)
        assert row["mag_max"] == pytest.approx(np.nanmax(catalog["mag"]), abs=1e-4)


def test_unchanged_rerun_does_no_work(demo_run):
    result = snakemake(demo_run, TINY)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stderr + result.stdout


def test_users_config_gives_exactly_its_clusters(tmp_path):
    write_simulated_cluster(tmp_path / "frames", name="mine", seed=3, filters=["F606W"], shape=(128, 128),
                            n_stars=100)
    config = {"clusters": {"ngc0001": {"filters": {"F606W": str(tmp_path / "frames" / "F606W.fits")}}}}
    result = snakemake(tmp_path / "run", config, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "simulate" not in result.stdout
    assert "photometry" in result.stdout
    listing = snakemake(tmp_path / "run", config, "--list-target-rules")
    assert listing.returncode == 0
    dry = snakemake(tmp_path / "run", config, "--dry-run")
    assert "results/catalogs/ngc0001/F606W.ecsv" in dry.stdout
    assert "demo1" not in dry.stdout and "demo2" not in dry.stdout


@pytest.mark.parametrize("config, expected", [
    ({"clusters": {"ngc1": {"filters": {"F606W": "does/not/exist.fits"}}}},
     "config key 'clusters.ngc1.filters.F606W': file does/not/exist.fits does not exist"),
    ({"clusters": {"ngc1": {"filters": {"F606W": "x.fits"}}}, "photometri": {}},
     "'photometri' was unexpected"),
])
def test_bad_config_stops_before_any_job_with_one_message(tmp_path, config, expected):
    result = snakemake(tmp_path, config)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
