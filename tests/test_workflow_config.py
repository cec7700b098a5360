"""The config and the frames through the workflow: names that once collided with the workflow's
own, one file for two filters, a frame replaced behind Snakemake's back, a registration that
cannot be solved. (Config errors: tests/test_bad_input.py.)"""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from astropy.table import Table

from clusterphot import paths
from clusterphot.registration import Transform
from clusterphot.simulate import write_simulated_cluster

from .helpers import SPARSE, snakemake
from .synthetic import field_frames

pytestmark = pytest.mark.workflow


def simulated_pair(folder, seed: int) -> tuple:
    write_simulated_cluster(folder, name="c", seed=seed, filters=["F606W", "F814W"], shape=(128, 128), n_stars=200)
    return folder / "F606W.fits", folder / "F814W.fits"


def test_filters_named_like_the_workflows_inputs_run_end_to_end(tmp_path):
    """'registration' and 'catalog' were names of the composite's inputs: now they are just filters."""
    blue, red = simulated_pair(tmp_path / "frames", seed=3)
    config = {"clusters": {"odd": {"filters": {
        "registration": {"image": str(blue), "pivot_wavelength": 5922.0},
        "catalog": {"image": str(red), "pivot_wavelength": 8045.0},
    }}}, **SPARSE}
    result = snakemake(tmp_path / "run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    for f in ("registration", "catalog"):
        assert Table.read(run / paths.CATALOG.format(cluster="odd", filter=f)).meta["filter"] == f
    matched = Table.read(run / paths.MATCHED.format(cluster="odd", blue="registration", red="catalog"))
    assert len(matched) > 20
    merged = Table.read(run / paths.MERGED_CATALOG.format(cluster="odd"))
    assert merged.meta["filters"] == ["registration", "catalog"]
    provenance = yaml.safe_load((run / paths.COMPOSITE_PROVENANCE.format(cluster="odd")).read_text())
    assert provenance["channels"]["red"] == {"catalog": 1.0} and provenance["channels"]["blue"] == {"registration": 1.0}
    summary = Table.read(run / paths.SUMMARY.format(cluster="odd"), format="ascii.tab")
    assert sorted(summary["filter"]) == ["catalog", "registration"]


def test_one_file_given_for_two_filters_is_a_warning(tmp_path):
    blue, _ = simulated_pair(tmp_path / "frames", seed=3)
    config = {"clusters": {"twice": {"filters": {"F606W": str(blue), "F814W": str(blue)}}}}
    result = snakemake(tmp_path / "run", config, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clusterphot: warning: clusters.twice: filters F606W and F814W are the same file" in result.stderr


def test_a_frame_replaced_by_an_older_file_reruns_its_photometry(tmp_path):
    frame, _ = simulated_pair(tmp_path / "first", seed=3)
    replacement, _ = simulated_pair(tmp_path / "second", seed=4)
    os.utime(replacement, (1_000_000_000, 1_000_000_000))  # from 2001: older than any catalogue
    config = {"clusters": {"c": {"filters": {"F606W": str(frame)}}}, **SPARSE}
    catalog = paths.CATALOG.format(cluster="c", filter="F606W")
    run = tmp_path / "run"
    result = snakemake(run, config, catalog)
    assert result.returncode == 0, result.stderr[-3000:]
    first = Table.read(run / catalog)
    result = snakemake(run, config, catalog, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr

    shutil.copy2(replacement, frame)  # as cp -p, rsync -a or an unpacked archive do: the old date comes along
    assert frame.stat().st_mtime < (run / catalog).stat().st_mtime
    result = snakemake(run, config, catalog, "--dry-run")
    assert "photometry" in result.stdout and "Nothing to be done" not in result.stdout + result.stderr
    result = snakemake(run, config, catalog)
    assert result.returncode == 0, result.stderr[-3000:]
    second = Table.read(run / catalog)
    assert len(second) != len(first) or (second["x"][:10] != first["x"][:10]).any()


def test_a_registration_that_cannot_be_solved_names_the_cluster_the_filters_and_the_files(tmp_path):
    shape = (160, 200)
    identity = {"F606W": Transform.identity(), "F814W": Transform.identity()}
    # two unrelated star fields: no stars in common
    blue, _, _ = field_frames(tmp_path / "a", ["F606W"], identity, {}, shape, n_stars=40, seed=5)
    red, _, _ = field_frames(tmp_path / "b", ["F814W"], identity, {}, shape, n_stars=30, seed=6)
    config = {"clusters": {"apart": {"filters": {"F606W": str(blue["F606W"]), "F814W": str(red["F814W"])}}},
              **SPARSE}
    result = snakemake(tmp_path / "run", config)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("clusterphot: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    message = errors[0]
    assert "cluster apart: F814W" in message and str(red["F814W"]) in message, message
    assert "onto F606W" in message and str(blue["F606W"]) in message, message
    assert "Traceback" not in (tmp_path / "run/logs/register/apart.log").read_text()
