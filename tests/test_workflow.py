"""The workflow end to end, run by Snakemake itself on a tiny configuration."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from PIL import Image
from scipy.ndimage import median_filter
from scipy.spatial import cKDTree

from clusterphot import paths
from clusterphot.catalog import CATALOG_COLUMNS, PSF_COLUMNS
from clusterphot.registration import Transform
from clusterphot.simulate import write_simulated_cluster

from .conftest import REPO, shared_path
from .helpers import (SNAKEMAKE, SPARSE, at_fits_position, channel_centroids, jobs_a_change_would_run, pillow_rgb,
                      snakemake)
from .synthetic import field_frames

pytestmark = pytest.mark.workflow
FILTERS = ["F438W", "F814W"]
TINY = {"demo": {"clusters": {"tiny": {"seed": 7, "n_stars": 400, "distance_modulus": 16.5}},
                 "filters": FILTERS, "shape": [256, 256]},
        "artificial_stars": {"n_stars": 200}}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_demo_writes_every_output_of_the_contract(demo_run):
    # the paths as the README documents them, spelled out: a change to clusterphot.paths must fail here
    for f in FILTERS:
        for path in (f"results/catalogs/tiny/{f}.ecsv", f"results/plots/tiny/lf_{f}.png",
                     f"results/plots/tiny/detections_{f}.png", f"results/demo/tiny/{f}.fits",
                     f"results/demo/tiny/{f}_truth.ecsv", f"logs/psf_photometry/tiny/{f}.log",
                     f"benchmarks/psf_photometry/tiny/{f}.tsv", f"results/psf/tiny/{f}.fits",
                     f"results/plots/tiny/psf_{f}.png"):
            assert (demo_run / path).stat().st_size > 0, path
    assert (demo_run / "results/summary/tiny.tsv").exists()
    for path in ("results/rgb/tiny_lupton.png", "results/rgb/tiny_weighted.png", "results/rgb/tiny_lupton_preview.png",
                 "results/rgb/tiny_weighted_preview.png", "results/rgb/tiny_composite.yaml",
                 "logs/composite/tiny.log", "benchmarks/composite/tiny.tsv"):
        assert (demo_run / path).stat().st_size > 0, path
    # only the configured demo cluster: the shipped demo clusters were replaced, not merged
    assert sorted(p.name for p in (demo_run / "results/catalogs").iterdir()) == ["tiny"]


def test_catalogues_are_calibrated_and_agree_with_the_truth(demo_run):
    for f in FILTERS:
        catalog = Table.read(demo_run / paths.CATALOG.format(cluster="tiny", filter=f))
        truth = Table.read(demo_run / paths.DEMO_TRUTH.format(cluster="tiny", filter=f))
        assert catalog.meta["zeropoint"]["system"] == "AB"
        assert catalog.meta["zeropoint"]["source"].startswith("PHOTFLAM")
        assert catalog.meta["cluster"] == "tiny" and catalog.meta["filter"] == f
        # photometry.fwhm: auto: measured from the stars (their profile through the pixels: a little
        # wider than the simulated Moffat)
        fwhm = catalog.meta["fwhm"]
        assert fwhm["source"].startswith("measured") and fwhm["used"] == catalog.meta["parameters"]["fwhm"]
        assert fwhm["configured"]["fwhm"] == "auto" and fwhm["n_stars"] >= 20
        assert 1.0 < fwhm["used"] / truth.meta["psf_fwhm"] < 1.15
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
    summary = Table.read(demo_run / paths.SUMMARY.format(cluster="tiny"), format="ascii.tab")
    assert list(summary["filter"]) == FILTERS
    for row in summary:
        catalog = Table.read(demo_run / paths.CATALOG.format(cluster="tiny", filter=row["filter"]))
        assert row["n_stars"] == len(catalog)
        assert row["mag_max"] == pytest.approx(np.nanmax(catalog["mag"]), abs=1e-4)


def test_every_log_says_what_its_job_did(demo_run):
    logs = sorted((demo_run / "logs").rglob("*.log"))
    assert {path.relative_to(demo_run / "logs").parts[0] for path in logs} >= {
        "simulate", "cosmic_rays", "psf_photometry", "psf_figure", "register", "match_colour", "merge", "summary",
        "cluster_page", "cmd", "luminosity_function", "detection_map", "composite", "artificial_stars", "completeness",
        "completeness_plot"}
    for path in logs:
        assert path.read_text().strip(), f"{path} is empty"
    summary = Table.read(demo_run / paths.SUMMARY.format(cluster="tiny"), format="ascii.tab")
    for row in summary:
        log = (demo_run / f"logs/psf_photometry/tiny/{row['filter']}.log").read_text()
        assert f"{row['n_stars']} stars (PSF photometry), AB zero point {row['zeropoint']:.4f} from PHOTFLAM" in log
        assert "PSF from " in log and "correction to total" in log and "sky " in log
        fwhm = Table.read(demo_run / paths.CATALOG.format(cluster="tiny", filter=row["filter"])).meta["fwhm"]
        assert f"FWHM {fwhm['used']:.2f} px, measured (photometry.fwhm: auto)" in log
    registration = yaml.safe_load((demo_run / paths.REGISTRATION.format(cluster="tiny")).read_text())
    moved = [f for f in FILTERS if f != registration["reference_filter"]]
    log = (demo_run / "logs/register/tiny.log").read_text()
    for f in moved:
        transform = registration["transforms"][f]
        assert (f"{f} onto {registration['reference_filter']}: {transform['method']}: shift" in log
                and f"rms {transform['rms']:.3f} px over {transform['n_pairs']} pairs" in log), log
    matched = Table.read(demo_run / paths.MATCHED.format(cluster="tiny", blue="F438W", red="F814W"))
    log = (demo_run / "logs/match_colour/tiny/F438W-F814W.log").read_text()
    assert f"F438W-F814W: {len(matched)} stars matched one-to-one" in log
    log = (demo_run / "logs/cmd/tiny/F438W-F814W.log").read_text()
    assert "wrote results/plots/tiny/cmd_F438W-F814W.png: F438W - F814W against F814W:" in log


def test_the_report_opens_on_each_clusters_page_with_its_summary_table(demo_run):
    import json

    result = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(demo_run), "--configfile",
                             str(demo_run / "test-config.yaml"), "--report", "report.html"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (demo_run / "report.html").read_text()
    # the landing page: the workflow description, shown when the report opens
    [landing] = re.findall(r'workflow_desc = (".*?");\n', report, re.S)
    landing = json.loads(landing)
    page = (demo_run / paths.CLUSTER_PAGE.format(cluster="tiny")).read_text()
    assert landing.index("<h1") < landing.index(page[page.index('<div class="clusterphot-page">'):][:2000])
    # the composite and the CMD as pictures in the page itself, then the summary table
    assert landing.count('<img src="data:image/png;base64,') == 2
    summary = Table.read(demo_run / paths.SUMMARY.format(cluster="tiny"), format="ascii.tab")
    table = landing[landing.index("<table>"):landing.index("</table>")]
    for row in summary:
        assert f"<td class=\"text\">{row['filter']}</td><td>{row['n_stars']}</td>" in table
        assert f"<td>{row['zeropoint']:.4f}</td>" in table
    assert "zeropoint (mag)" in table
    # a 256-pixel frame is shown whole: the composites' captions may not call the preview downsampled
    assert "downsampled preview" not in report
    assert report.count("the picture itself when it is at most") == 2


def test_demo_frames_get_their_artificial_star_tests_in_jobs_gathered_into_tables_and_a_plot(demo_run):
    """Issue 12: per frame, the artificial_stars.jobs jobs (2) each measure half of its
    artificial stars; gathered into the table of artificial stars and the completeness curve
    (units, zones, m50 and m90), plotted, and shown in the LF, the CMD and the summary."""
    summary = Table.read(demo_run / paths.SUMMARY.format(cluster="tiny"), format="ascii.tab")
    for f in FILTERS:
        for k in (1, 2):  # the paths as the README documents them
            assert (demo_run / f"results/completeness/tiny/jobs/{f}_{k}-of-2.ecsv").exists()
            job_log = (demo_run / f"logs/artificial_stars/tiny/{f}_{k}-of-2.log").read_text()
            assert job_log.count("recovered") >= 1 and "follow the frame's light" in job_log
            assert (demo_run / f"benchmarks/artificial_stars/tiny/{f}_{k}-of-2.tsv").exists()
        stars = Table.read(demo_run / f"results/completeness/tiny/{f}.ecsv")
        curve = Table.read(demo_run / f"results/completeness/tiny/{f}_curve.ecsv")
        read_plot = Image.open(demo_run / f"results/plots/tiny/completeness_{f}.png")
        assert read_plot.size[0] > 500
        assert len(stars) == 200 and sorted(set(stars["job"])) == [1, 2]
        for name, unit in (("x", "pix"), ("y", "pix"), ("mag_in", "mag"), ("mag_out", "mag"), ("x_out", "pix")):
            assert stars[name].unit == unit, name
        assert {"recovered", "flags_out", "r_centre", "zone"} <= set(stars.colnames)
        assert 0.3 < np.mean(stars["recovered"]) < 1.0  # the range reaches below the detection limit
        assert sorted(set(curve["zone"])) == [0, 1, 2, 3]
        assert curve.meta["m90"] < curve.meta["m50"] < np.nanmax(stars["mag_in"])
        assert curve.meta["settings"]["n_stars"] == 200 and len(curve.meta["jobs"]) == 2
        assert all(np.isfinite(job["profile_sky"]) for job in curve.meta["jobs"])
        row = summary[summary["filter"] == f][0]
        assert row["m50"] == pytest.approx(curve.meta["m50"], abs=1e-4)
        assert "m50" in (demo_run / f"logs/completeness/tiny/{f}.log").read_text()


def test_an_artificial_star_job_asks_for_the_time_its_passes_take(demo_run):
    """A pass costs about a whole-frame detection whatever its size, and a sparse catalogue
    injects few stars per pass (at most artificial_stars.fraction of its stars): the same
    artificial stars in passes of 1 star instead of 5 per cent ask Slurm for more time."""
    def runtimes(fraction: float) -> list[int]:
        config = dict(TINY, artificial_stars={"n_stars": 200000, "fraction": fraction})
        result = snakemake(demo_run, config, "--dry-run", "--forcerun", "artificial_stars")
        assert result.returncode == 0, result.stderr[-2000:]
        asked = re.findall(r"rule artificial_stars:.*?runtime=(\d+)", result.stdout + result.stderr, re.S)
        assert len(asked) == 2 * len(FILTERS)
        return [int(minutes) for minutes in asked]

    assert min(runtimes(0.001)) > 2 * max(runtimes(0.05))


def test_unchanged_rerun_does_no_work(demo_run):
    result = snakemake(demo_run, TINY)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stderr + result.stdout


@pytest.mark.parametrize(("change", "expected"), [
    # the cluster's page shows the Lupton composite and the CMDs: it follows them
    ({"rgb": {"lupton": {"Q": 3.0}}}, {"composite": 1, "cluster_page": 1, "all": 1}),
    ({"plots": {"detection_crop": 100}}, {"detection_map": 2, "all": 1}),
    ({"catalogs": {"quality": {"max_mag_err": 0.2}}}, {"cmd": 1, "cluster_page": 1, "all": 1}),
    # the residual images asked for: their jobs alone (the catalogues and PSF files give them)
    ({"photometry": {"psf": {"write_residual": True}}}, {"psf_residual": 2, "all": 1}),
    # a photometry parameter: every job that reads a catalogue, but not the simulation
    ({"photometry": {"threshold": 5.0}}, {"psf_photometry": 2, "psf_figure": 2, "luminosity_function": 2,
                                           "detection_map": 2, "summary": 1, "register": 1, "match_colour": 1,
                                           "merge": 1, "cmd": 1, "composite": 1, "artificial_stars": 4,
                                           "completeness": 2, "completeness_plot": 2, "cluster_page": 1, "all": 1}),
    # the frames' cosmic rays: their masks and every job that reads the frames or catalogues
    ({"cosmic_rays": "lacosmic"}, {"cosmic_rays": 2, "psf_photometry": 2, "psf_figure": 2, "luminosity_function": 2,
                                   "detection_map": 2, "summary": 1, "register": 1, "match_colour": 1, "merge": 1,
                                   "cmd": 1, "composite": 1, "artificial_stars": 4, "completeness": 2,
                                   "completeness_plot": 2, "cluster_page": 1, "all": 1}),
    # the completeness curve's bins: the gathering and what shows it, not the artificial-star jobs
    ({"artificial_stars": {"n_stars": 200, "bin_width": 0.25}}, {"completeness": 2, "completeness_plot": 2,
                                                                 "luminosity_function": 2, "cmd": 1, "summary": 1,
                                                                 "cluster_page": 1, "all": 1}),
    # the artificial stars' seed: their jobs and what shows their completeness, not the catalogues
    ({"artificial_stars": {"n_stars": 200, "seed": 2}}, {"artificial_stars": 4, "completeness": 2,
                                                         "completeness_plot": 2, "luminosity_function": 2,
                                                         "cmd": 1, "summary": 1, "cluster_page": 1, "all": 1}),
])
def test_changing_one_parameter_reruns_only_what_depends_on_it(demo_run, change, expected):
    config = {**TINY, **change}
    assert jobs_a_change_would_run(demo_run, config) == expected
    assert jobs_a_change_would_run(demo_run, TINY) == {}  # the dry runs changed nothing


def test_a_run_killed_hard_is_finished_by_the_same_command_and_equals_an_uninterrupted_one(tmp_path, demo_run):
    workdir = tmp_path / "killed"
    workdir.mkdir()
    configfile = workdir / "test-config.yaml"
    configfile.write_text(yaml.safe_dump(TINY))
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
               "--cores", "1"]
    # its own session, so that kill -9 reaches Snakemake and the job it is running
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    catalogs = workdir / "results/catalogs/tiny"
    deadline = time.monotonic() + 300
    while not (catalogs.exists() and any(catalogs.glob("*.ecsv"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (workdir / paths.MERGED_CATALOG.format(cluster="tiny")).exists()  # killed in the middle

    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = sorted(p.relative_to(demo_run) for p in (demo_run / "results").rglob("*.ecsv"))
    # catalogues, truth lists, merged, one colour; per filter its artificial stars, their curve
    # and its two jobs' artificial stars
    assert len(outputs) == 2 * len(FILTERS) + 2 + 4 * len(FILTERS)
    for path in outputs:
        # The same catalogues, byte for byte, as the uninterrupted run's: data, units and metadata
        # (and the same artificial stars: they are drawn from the seed, not from the run).
        assert (workdir / path).read_bytes() == (demo_run / path).read_bytes(), path


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
    assert paths.CATALOG.format(cluster="ngc0001", filter="F606W") in dry.stdout
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


def test_demo_matched_colours_agree_with_the_true_colours(demo_run):
    blue, red = FILTERS
    matched = Table.read(demo_run / paths.MATCHED.format(cluster="tiny", blue=blue, red=red))
    truth = {f: Table.read(demo_run / paths.DEMO_TRUTH.format(cluster="tiny", filter=f)) for f in FILTERS}
    assert matched.meta["n_matched"] == len(matched) > 50
    for f in FILTERS:
        ids = np.asarray(matched[f"id_{f}"])
        assert len(np.unique(ids)) == len(ids), "one-to-one"
    registration = matched.meta["transforms"]
    assert all(t["rms"] is None or t["rms"] < 0.2 for t in registration.values())
    # each matched star: the true star nearest to it in each frame must be the same star
    same = np.ones(len(matched), bool)
    true_ids = []
    for f in FILTERS:
        t = truth[f]
        _, nearest = cKDTree(np.column_stack([t["x"], t["y"]])).query(
            np.column_stack([matched[f"x_{f}"], matched[f"y_{f}"]]))
        true_ids.append(np.asarray(t["id"])[nearest])
    same &= true_ids[0] == true_ids[1]
    assert same.mean() > 0.97
    bright = same & (np.asarray(matched["colour_err"]) < 0.02)
    assert bright.sum() >= 10
    by_id = {f: dict(zip(np.asarray(truth[f]["id"]), np.asarray(truth[f]["mag"]))) for f in FILTERS}
    true_colour = np.array([by_id[blue][i] - by_id[red][i] for i in true_ids[0][bright]])
    offset = np.asarray(matched["colour"])[bright] - true_colour
    assert abs(np.median(offset)) < 0.05
    assert (demo_run / paths.CMD.format(cluster="tiny", blue=blue, red=red)).stat().st_size > 0


def test_demo_merged_catalogue_has_every_filter_side_by_side(demo_run):
    merged = Table.read(demo_run / paths.MERGED_CATALOG.format(cluster="tiny"))
    assert merged.meta["reference_filter"] in FILTERS
    assert (np.asarray(merged["n_filters"]) >= 2).all()
    for f in FILTERS:
        for column in ("id", "x", "y", "mag", "mag_err", "flags"):
            assert f"{column}_{f}" in merged.colnames
    assert np.isfinite(np.asarray(merged["ra"])).all()


def test_ngc1261_real_frames(tmp_path):
    """The real WFPC2 pair: >= 1500 stars matched one-to-one between F336W and F555W."""
    shared_path("data", "ngc1261_wfpc2", "ubai2505m_f336w.fits")
    config = yaml.safe_load((REPO / "config/examples/ngc1261.yaml").read_text())
    for name, image in config["clusters"]["ngc1261"]["filters"].items():
        config["clusters"]["ngc1261"]["filters"][name] = str((REPO / image).resolve())
    colour = {"cluster": "ngc1261", "blue": "F336W", "red": "F555W"}
    result = snakemake(tmp_path, config, paths.MATCHED.format(**colour), paths.CMD.format(**colour))
    assert result.returncode == 0, result.stderr[-3000:]
    matched = Table.read(tmp_path / paths.MATCHED.format(**colour))
    assert len(matched) >= 1500
    for f in ("F336W", "F555W"):
        assert len(np.unique(matched[f"id_{f}"])) == len(matched)
    transform = matched.meta["transforms"]
    assert all(t["rms"] < 0.3 for t in transform.values() if t["n_pairs"] > 0)
    # the CMD: a main sequence no wider than 0.15 mag (robust colour scatter) just below the turn-off
    from clusterphot.quality import QualityCuts, cmd_arrays

    colour, mag, _, _ = cmd_arrays(matched, "F336W", "F555W", "F555W", QualityCuts())
    edges = np.arange(np.floor(mag.min()), mag.max(), 0.2)
    populated = [(lo, np.median(colour[(mag >= lo) & (mag < lo + 0.2)])) for lo in edges
                 if ((mag >= lo) & (mag < lo + 0.2)).sum() >= 100]
    bluest = min(c for _, c in populated)
    turn_off = min(lo for lo, c in populated if c <= bluest + 0.02)  # brightest bin at the blue edge
    below = (mag >= turn_off + 0.2) & (mag < turn_off + 0.6)
    width = 1.4826 * np.median(np.abs(colour[below] - np.median(colour[below])))
    assert below.sum() >= 200
    assert width <= 0.15, f"main sequence {width:.3f} mag wide below the turn-off at {turn_off:.1f}"
    red_giants = (mag < turn_off - 1.5) & (colour > bluest + 0.3)
    assert red_giants.sum() >= 50, "a red-giant branch"


def blue_specks(rgb: np.ndarray) -> int:
    """Pixels of a composite sharp in blue alone: 60 of 255 above the blue's 5x5 median, and not
    15 above the red's (a star is sharp in every channel, a cosmic ray in its own filter's)."""
    red, blue = rgb[..., 0], rgb[..., 2]
    return int(((blue - median_filter(blue, 5) > 60) & (red - median_filter(red, 5) < 15)).sum())


def test_ngc1261_cosmic_rays_go_from_the_catalogue_and_the_composite_and_as_many_stars_match(tmp_path):
    """The real WFPC2 pair (single exposures, auto finds their cosmic rays) against the same run
    with cosmic_rays: none: most of F336W's detections without an F555W partner go, and most of
    the composite's blue specks, and as many stars match (the README counts those lost to the
    masks and those gained)."""
    shared_path("data", "ngc1261_wfpc2", "ubai2505m_f336w.fits")
    config = yaml.safe_load((REPO / "config/examples/ngc1261.yaml").read_text())
    for name, image in config["clusters"]["ngc1261"]["filters"].items():
        config["clusters"]["ngc1261"]["filters"][name] = str((REPO / image).resolve())
    config["artificial_stars"] = {"n_stars": 0}
    colour = {"cluster": "ngc1261", "blue": "F336W", "red": "F555W"}
    outputs = (paths.MATCHED.format(**colour), paths.LUPTON_RGB.format(cluster="ngc1261"))
    runs = {}
    for mode in ("none", "auto"):
        result = snakemake(tmp_path / mode, {**config, "cosmic_rays": mode}, *outputs)
        assert result.returncode == 0, result.stderr[-3000:]
        catalogue = Table.read(tmp_path / mode / paths.CATALOG.format(cluster="ngc1261", filter="F336W"))
        matched = Table.read(tmp_path / mode / paths.MATCHED.format(**colour))
        runs[mode] = {"meta": catalogue.meta, "unmatched": len(catalogue) - len(matched), "matched": len(matched),
                      "specks": blue_specks(pillow_rgb(tmp_path / mode / outputs[1]))}
    none, auto = runs["none"], runs["auto"]
    assert none["meta"]["cosmic_rays"] == "none" and none["meta"]["cosmic_ray_pixels"] == 0
    assert auto["meta"]["cosmic_rays"] == "lacosmic" and auto["meta"]["cosmic_ray_pixels"] > 0
    assert "c0f" in auto["meta"]["cosmic_rays_reason"]  # FILENAME: the archive's name of the exposure
    assert auto["unmatched"] <= 0.4 * none["unmatched"], runs
    assert auto["matched"] >= none["matched"], runs
    assert auto["specks"] <= 0.4 * none["specks"], runs


def test_demo_composites_cover_the_reference_frame(demo_run):
    registration = yaml.safe_load((demo_run / paths.REGISTRATION.format(cluster="tiny")).read_text())
    provenance = yaml.safe_load((demo_run / paths.COMPOSITE_PROVENANCE.format(cluster="tiny")).read_text())
    assert provenance["reference_filter"] == registration["reference_filter"]
    assert provenance["channels"]["red"] == {"F814W": 1.0} and provenance["channels"]["blue"] == {"F438W": 1.0}
    for kind in ("lupton", "weighted"):
        image = cv2.imread(str(demo_run / f"results/rgb/tiny_{kind}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (*TINY["demo"]["shape"], 3) and image.dtype == np.uint8
        assert image.max() == 255 and np.median(image) < 40  # stars on a dark sky


def test_composites_of_users_frames_are_registered_and_coloured(tmp_path):
    """Frames shifted and rotated against each other, a source seen only in the reddest filter
    and one only in the bluest: the workflow solves the registration itself."""
    shape, red_only, blue_only = (200, 260), (60.0, 140.0), (200.0, 45.0)
    to_reference = {"F606W": Transform.identity(),
                    "F336W": Transform([[0.99996, -0.00873], [0.00873, 0.99996]], [2.4, -1.7]),
                    "F814W": Transform(np.eye(2), [-1.2, 0.8])}
    paths, xs, ys = field_frames(tmp_path / "frames", list(to_reference), to_reference,
                                 {"F814W": [red_only], "F336W": [blue_only]}, shape, n_stars=80,
                                 clear=(red_only, blue_only))
    config = {"clusters": {"field": {"filters": {f: str(p) for f, p in paths.items()}}}, **SPARSE}
    result = snakemake(tmp_path / "run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = yaml.safe_load((tmp_path / "run/results/rgb/field_composite.yaml").read_text())["reference_filter"]
    # Positions were drawn on F606W's grid; the workflow's reference may be another filter's.
    on_reference = to_reference[reference].inverse().apply
    red_only, blue_only = on_reference(*red_only), on_reference(*blue_only)
    xs, ys = on_reference(xs, ys)
    for kind in ("lupton", "weighted"):
        image = pillow_rgb(tmp_path / f"run/results/rgb/field_{kind}.png")
        assert image.shape == (*shape, 3)
        r, g, b = at_fits_position(image, *red_only)
        assert r > 100 and r > 3 * max(g, b), (kind, r, g, b)
        r, g, b = at_fits_position(image, *blue_only)
        assert b > 100 and b > 3 * max(r, g), (kind, r, g, b)
    # No fringes: the red (F814W) and blue (F336W) light of each isolated star coincide.
    image = pillow_rgb(tmp_path / "run/results/rgb/field_weighted.png")
    offsets = []
    for k, (x, y) in enumerate(zip(xs, ys)):
        distance = np.hypot(xs - x, ys - y)
        distance[k] = np.inf
        if distance.min() > 10 and 8 < x < shape[1] - 8 and 8 < y < shape[0] - 8:
            red, _, blue = channel_centroids(image, x, y)
            offsets.append(np.hypot(*(red - blue)))
    assert len(offsets) >= 10 and max(offsets) < 0.2, offsets


# --- PSF photometry (photometry.method: psf) -------------------------------------------------------

PSF_FILTERS = ["F438W", "F814W"]


@pytest.fixture(scope="module")
def psf_run(tmp_path_factory):
    """A cluster of two small simulated frames measured with PSFs (the default), residual images
    asked for, and the same frames as a cluster measured with apertures."""
    folder = tmp_path_factory.mktemp("psf")
    write_simulated_cluster(folder / "frames", name="psf", seed=7, filters=PSF_FILTERS, shape=(256, 256),
                            n_stars=400, distance_modulus=16.5)
    frames = {f: str(folder / "frames" / f"{f}.fits") for f in PSF_FILTERS}
    config = {"clusters": {"psfc": {"filters": frames},
                           "apc": {"filters": frames, "photometry": {"method": "aperture"}}},
              "photometry": {"psf": {"write_residual": True}}, "artificial_stars": {"n_stars": 100}}
    result = snakemake(folder / "run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "run", config


def test_psf_frames_get_their_psf_outputs_and_aperture_frames_none(psf_run):
    workdir, _ = psf_run
    for f in PSF_FILTERS:
        # the paths as the README documents them, spelled out
        for path in (f"results/psf/psfc/{f}.fits", f"results/plots/psfc/psf_{f}.png",
                     f"results/psf/psfc/{f}_residual.fits", f"logs/psf_photometry/psfc/{f}.log",
                     f"benchmarks/psf_photometry/psfc/{f}.tsv", f"logs/psf_residual/psfc/{f}.log"):
            assert (workdir / path).stat().st_size > 0, path
        assert (workdir / f"logs/psf_figure/psfc/{f}.log").exists()
        assert not (workdir / f"logs/photometry/psfc/{f}.log").exists()
        image = np.asarray(Image.open(workdir / paths.PSF_FIGURE.format(cluster="psfc", filter=f)).convert("L"))
        assert image.shape[1] > 1500 and image.std() > 20  # a drawn figure, not a blank one
    # the same frames measured with apertures: no PSF file, figure or log
    assert not (workdir / "results/psf/apc").exists() and not (workdir / "logs/psf_photometry/apc").exists()
    assert not (workdir / "logs/psf_figure/apc").exists() and not (workdir / "logs/psf_residual/apc").exists()
    assert not list((workdir / "results/plots/apc").glob("psf_*"))
    for f in PSF_FILTERS:
        catalogue = Table.read(workdir / paths.CATALOG.format(cluster="apc", filter=f))
        log = (workdir / f"logs/photometry/apc/{f}.log").read_text()
        zeropoint = catalogue.meta["zeropoint"]["value"]
        assert f"{len(catalogue)} stars (aperture photometry), AB zero point {zeropoint:.4f} from PHOTFLAM" in log
        assert "aperture correction" in log and "sky " in log
    # its artificial stars were drawn and measured with its PSF file
    for f in PSF_FILTERS:
        curve = Table.read(workdir / paths.COMPLETENESS_CURVE.format(cluster="psfc", filter=f))
        assert curve.meta["photometry_method"] == "psf" and curve.meta["n_artificial"] == 100
    # a PSF frame's detection map has the row of data, model and residual below
    psf_map = Image.open(workdir / paths.DETECTION_MAP.format(cluster="psfc", filter="F814W")).size
    aperture_map = Image.open(workdir / paths.DETECTION_MAP.format(cluster="apc", filter="F814W")).size
    assert psf_map[0] == aperture_map[0] and psf_map[1] > 1.5 * aperture_map[1]


def test_psf_catalogues_have_the_fits_columns_and_their_psf_file(psf_run):
    workdir, _ = psf_run
    for f in PSF_FILTERS:
        psf = Table.read(workdir / paths.CATALOG.format(cluster="psfc", filter=f))
        aperture = Table.read(workdir / paths.CATALOG.format(cluster="apc", filter=f))  # the same frames
        assert psf.colnames == [*CATALOG_COLUMNS, *PSF_COLUMNS] and aperture.colnames == list(CATALOG_COLUMNS)
        assert str(psf["crowding"].unit) == "mag" and psf["found_in_pass"].dtype.kind == "i"
        assert psf["flux"].description.startswith("PSF flux corrected to total")
        assert "64 found on the residual image" in psf["flags"].description
        meta = psf.meta
        assert meta["photometry_method"] == "psf" and meta["cluster"] == "psfc"
        assert meta["psf"]["file"] == paths.PSF_MODEL.format(cluster="psfc", filter=f)
        assert meta["psf_parameters"]["oversampling"] == 4 and "write_residual" not in meta["psf_parameters"]
        assert meta["passes"][0]["stars"] > 0 and meta["aperture_correction"]["note"] == "PSF flux to total"
        assert "photometry_method" not in aperture.meta and "psf" not in aperture.meta
        # the PSF path finds the bright stars the aperture path finds
        distance, _ = cKDTree(np.column_stack([psf["x"], psf["y"]])).query(
            np.column_stack([aperture["x"], aperture["y"]]))
        bright = np.asarray(aperture["mag_err"]) < 0.02
        assert bright.sum() > 10 and (distance[bright] < 1.0).mean() > 0.9
        # the PSF file says what the catalogue says
        header = fits.getheader(workdir / paths.PSF_MODEL.format(cluster="psfc", filter=f))
        assert header["FWHM"] == pytest.approx(meta["psf"]["fwhm"]) and header["NSTARS"] == meta["psf"]["n_stars"]
        assert header["OVERSAMP"] == 4 and header["RADIUS"] == meta["psf"]["radius"] and not header["FALLBACK"]
        # the residual image: float32, the frame's shape, NaN off the data, mostly the sky's noise
        residual = fits.getdata(workdir / paths.PSF_RESIDUAL.format(cluster="psfc", filter=f))
        assert residual.dtype == np.dtype(">f4") and list(residual.shape) == meta["shape"]
        assert 0.3 < np.isfinite(residual).mean() < 1.0
        valid = residual[np.isfinite(residual)]
        robust = 1.4826 * np.median(np.abs(valid - np.median(valid)))
        assert robust < 1.5 * meta["frame_sky"]["std"] and abs(np.median(valid)) < meta["frame_sky"]["std"]
    merged = Table.read(workdir / paths.MERGED_CATALOG.format(cluster="psfc"))
    assert "qfit_F814W" in merged.colnames and "found_in_pass_F438W" in merged.colnames


def test_psf_settings_rerun_the_psf_photometry_and_write_residual_only_the_residuals(psf_run):
    workdir, config = psf_run
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["photometry"]["psf"].update(n_iter=3, fallback="aperture")
    counts = jobs_a_change_would_run(workdir, changed)
    # psfc's frames, their PSF figures and artificial stars (two jobs each); none of apc's jobs
    assert counts["psf_photometry"] == 2 and counts["psf_figure"] == 2 and counts["artificial_stars"] == 4
    assert "photometry" not in counts
    no_residual = yaml.safe_load(yaml.safe_dump(config))
    no_residual["photometry"]["psf"]["write_residual"] = False
    assert jobs_a_change_would_run(workdir, no_residual) == {}  # nothing to redo, one output fewer
    assert jobs_a_change_would_run(workdir, config) == {}


def test_a_frame_without_enough_psf_stars_stops_or_falls_back_to_apertures(tmp_path):
    write_simulated_cluster(tmp_path / "frames", name="few", seed=3, filters=["F814W"], shape=(128, 128),
                            n_stars=60, distance_modulus=16.5)
    frame = str(tmp_path / "frames" / "F814W.fits")
    config = {"clusters": {"few": {"filters": {"F814W": frame}, "photometry": {}}}}  # the default: psf
    target = paths.CATALOG.format(cluster="few", filter="F814W")
    result = snakemake(tmp_path / "error", config, target)
    assert result.returncode != 0
    assert f"clusterphot: error: {frame}: only " in result.stderr and "needed)" in result.stderr
    assert not (tmp_path / "error" / target).exists()
    config["clusters"]["few"]["photometry"]["psf"] = {"fallback": "aperture"}
    outputs = [target, paths.PSF_FIGURE.format(cluster="few", filter="F814W"),
               paths.DETECTION_MAP.format(cluster="few", filter="F814W")]
    result = snakemake(tmp_path / "fallback", config, *outputs)
    assert result.returncode == 0, result.stderr[-3000:]
    catalog = Table.read(tmp_path / "fallback" / target)
    assert catalog.colnames == list(CATALOG_COLUMNS) and catalog.meta["photometry_method"] == "aperture"
    assert "needed" in catalog.meta["psf_fallback"]["reason"]
    assert fits.getheader(tmp_path / "fallback" / paths.PSF_MODEL.format(cluster="few", filter="F814W"))["FALLBACK"]
    log = (tmp_path / "fallback/logs/psf_photometry/few/F814W.log").read_text()
    assert "WARNING" in log and "measured with apertures instead" in log
