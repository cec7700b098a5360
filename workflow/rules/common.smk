# Configuration checks and the helpers every rule file uses. Only the package's config code is
# imported here (yaml, jsonschema, the filter table): building the job graph must stay fast,
# without photutils, OpenCV or matplotlib.
import os
import re
import sys
from dataclasses import asdict
from functools import cache
from pathlib import Path

try:
    from clusterphot import paths
    from clusterphot.config import (
        LACOSMIC,
        artificial_star_settings,
        check_frames_exist,
        cluster_colour_pairs,
        cluster_pivot_wavelengths,
        cmd_band,
        composite_parameters,
        configured_clusters,
        frame_warnings,
        photometry_method,
        photometry_parameters,
        psf_settings,
        rgb_channel_weights,
        validate_config,
    )
    from clusterphot.errors import ConfigError
    from clusterphot.fingerprint import file_fingerprints
except ImportError as error:
    sys.exit(
        f"clusterphot: the clusterphot package cannot be imported ({error}); run `make` "
        "(it installs the package into .venv) and use .venv/bin/snakemake, or install it into "
        "the environment that runs snakemake with `pip install --no-deps -e .`"
    )

# The conda environment (--sdm conda) installs this repository's package by this path.
os.environ.setdefault("CLUSTERPHOT_SOURCE", str(Path(workflow.basedir).resolve()))

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"

# One clear message naming the key or file, before any job runs.
try:
    validate_config(config, SCHEMA)  # and fills in the schema's defaults
    DEMO = not config["clusters"]
    CLUSTERS = configured_clusters(config)
    check_frames_exist(CLUSTERS, demo=DEMO)
    PIVOTS = {
        name: cluster_pivot_wavelengths(frames) for name, frames in CLUSTERS.items()
    }
    COLOURS = {name: cluster_colour_pairs(config, PIVOTS[name]) for name in CLUSTERS}
    RGB_WEIGHTS = {
        name: rgb_channel_weights(config, name, PIVOTS[name]) for name in CLUSTERS
    }
    PHOTOMETRY = {name: photometry_parameters(config, name) for name in CLUSTERS}
    METHOD = {name: photometry_method(config, name) for name in CLUSTERS}
    PSF = {name: psf_settings(config, name) for name in CLUSTERS}
    ARTIFICIAL = {name: artificial_star_settings(config, name) for name in CLUSTERS}
    RGB_PARAMETERS = composite_parameters(config)
except ConfigError as error:
    sys.exit(f"clusterphot: {error}")

if workflow.is_main_process:  # once, not again in every cluster job's log
    for warning in frame_warnings(CLUSTERS):
        print(f"clusterphot: warning: {warning}", file=sys.stderr)


wildcard_constraints:
    cluster="|".join(re.escape(c) for c in CLUSTERS) or "no-cluster",
    filter="|".join(
        sorted({re.escape(f) for frames in CLUSTERS.values() for f in frames})
    ),
    blue="[A-Za-z0-9][A-Za-z0-9_.+]*",
    red="[A-Za-z0-9][A-Za-z0-9_.+]*",


def clusters_measured_with(method):
    """A wildcard constraint: the clusters whose frames ``method`` measures (a rule per method
    makes their catalogues; a pattern that matches nothing when there are none)."""
    names = [re.escape(c) for c in CLUSTERS if METHOD[c] == method]
    return "|".join(names) or "(?!)"


def psf_parameters(wildcards):
    """The PSF path's settings of the frame's cluster, as plain values; write_residual left
    out (it asks for one more output, rule psf_residual, and changes no catalogue)."""
    return {k: v for k, v in PSF[wildcards.cluster].items() if k != "write_residual"}


def measured_frame_inputs(wildcards):
    """A measured frame, its catalogue and cosmic rays; and its PSF file when the cluster is
    measured with PSFs: what its detection map and its artificial-star jobs read (these are
    drawn and measured with the PSF)."""
    frame = {"cluster": wildcards.cluster, "filter": wildcards.filter}
    inputs = {
        "image": frame_image(wildcards),
        "catalog": paths.CATALOG.format(**frame),
        "cosmic_rays": paths.COSMIC_RAY_MASK.format(**frame),
    }
    if METHOD[wildcards.cluster] == "psf":
        inputs["psf"] = paths.PSF_MODEL.format(**frame)
    return inputs


def has_artificial_stars(cluster):
    """Whether a cluster's frames get an artificial-star test."""
    return ARTIFICIAL[cluster]["n_stars"] > 0


def frame_pattern(pattern):
    """A per-frame path pattern with {cluster} and {filter} kept as wildcards through the
    expand() of Snakemake's gather (which fills in only {scatteritem})."""
    return pattern.replace("{cluster}", "{{cluster}}").replace("{filter}", "{{filter}}")


# The PSF settings that shape the PSF the artificial stars of a frame measured with
# apertures are drawn with (completeness.aperture_path_psf); the rest change nothing there.
PSF_LEARNING_SETTINGS = (
    "oversampling",
    "max_psf_stars",
    "min_psf_stars",
    "isolation",
    "psf_radius",
)


def artificial_psf_parameters(wildcards):
    """The PSF settings an artificial-star job uses: all of a PSF cluster's; for a cluster
    measured with apertures only those that learn the PSF its artificial stars are drawn
    with (so that a change in the fitting's settings reruns none of its jobs)."""
    settings = psf_parameters(wildcards)
    if METHOD[wildcards.cluster] == "psf":
        return settings
    return {k: v for k, v in settings.items() if k in PSF_LEARNING_SETTINGS}


# artificial_stars keys only the gathering uses: a change reruns rule completeness, not the jobs
GATHER_ONLY_SETTINGS = ("bin_width", "zones")


def artificial_job_settings(wildcards):
    """The cluster's artificial_stars settings an artificial-star job uses."""
    settings = ARTIFICIAL[wildcards.cluster]
    return {k: v for k, v in settings.items() if k not in GATHER_ONLY_SETTINGS}


def artificial_stars_per_job(wildcards):
    """About how many artificial stars one job of the frame measures."""
    n_jobs = int(wildcards.scatteritem.split("-of-")[1])
    return -(-ARTIFICIAL[wildcards.cluster]["n_stars"] // n_jobs)


def catalogue_rows(path):
    """Stars in an ECSV catalogue: its lines less the header (``#``) and the column names."""
    with open(path, "rb") as lines:
        return sum(1 for line in lines if not line.startswith(b"#")) - 1


def artificial_job_runtime(wildcards, input, attempt):
    """Minutes for an artificial-star job: reading the frame and drawing its catalogue's model
    (25 s for a 10k x 10k frame, 400 MB: 0.02 min per MB allows 20x that), then each pass
    about a whole-frame detection and array work (3.3 s for a 16 MB frame, 15 s for 400 MB:
    0.01 min per MB allows 3x and 16x that), its stars about 5 ms each (12 allowed). A
    10,000-star job on a 10k frame took 66-100 s in three passes. A sparse catalogue injects
    few stars per pass, so many passes, counted as clusterphot.artificial.pass_sizes counts
    them (not imported: building the job graph imports only config code).
    """
    stars = artificial_stars_per_job(wildcards)
    per_pass = max(
        1,
        int(ARTIFICIAL[wildcards.cluster]["fraction"] * catalogue_rows(input.catalog)),
    )
    passes = -(-stars // per_pass)
    frame_mb = os.path.getsize(input.image) / 2**20
    return attempt * int(
        5 + input.size_mb / 50 + stars / 5000 + passes * frame_mb / 100
    )


def completeness_curve_of(wildcards):
    """The frame's completeness curve, when it has an artificial-star test (for its LF)."""
    if not has_artificial_stars(wildcards.cluster):
        return {}
    return {"curve": paths.COMPLETENESS_CURVE.format(**wildcards)}


def cmd_completeness_curve(wildcards):
    """The completeness curve of the CMD's magnitude band, when the cluster has one."""
    if not has_artificial_stars(wildcards.cluster):
        return {}
    band = cmd_band(config, wildcards.blue, wildcards.red)
    return {
        "curve": paths.COMPLETENESS_CURVE.format(cluster=wildcards.cluster, filter=band)
    }


def cluster_completeness_curves(wildcards):
    """The completeness curves of a cluster's frames (for its summary), when it has them."""
    if not has_artificial_stars(wildcards.cluster):
        return []
    return expand(
        paths.COMPLETENESS_CURVE,
        cluster=wildcards.cluster,
        filter=cluster_filters(wildcards),
    )


def frame_entry(wildcards):
    return CLUSTERS[wildcards.cluster][wildcards.filter]


def frame_settings(wildcards):
    """The frame's settings as plain values: Snakemake sees a change in them and reruns."""
    return asdict(frame_entry(wildcards).settings)


# what rule cosmic_rays reads a frame and finds its cosmic rays with (frame settings that
# change neither, such as the zero point, stay out: they would find them again for nothing)
COSMIC_RAY_SETTINGS = (
    "filter_name",
    "exptime",
    "gain",
    "saturation",
    "hdu",
    "plane",
    "dq_bits",
    "cosmic_rays",
    "source_name",
)


def cosmic_ray_settings(wildcards):
    return {
        k: v for k, v in frame_settings(wildcards).items() if k in COSMIC_RAY_SETTINGS
    }


def frame_image(wildcards):
    return frame_entry(wildcards).local_image


def frame_url(wildcards):
    entry = frame_entry(wildcards)
    return entry.image if entry.is_url else None


@cache
def content_fingerprint(image):
    return file_fingerprints([image]).get(image)


def frame_fingerprint(wildcards):
    """The content hash of a frame on disk that the workflow neither makes nor fetches: a
    frame replaced by another with an older date still reruns its photometry (see
    fingerprint.py). Worked out only for the jobs in the graph (on a cluster node: its own).
    """
    entry = frame_entry(wildcards)
    if DEMO or entry.is_url:
        return None
    return content_fingerprint(entry.image)


def cluster_filters(wildcards):
    """The cluster's filters, in the config's order (the order of its catalogues and frames)."""
    return list(CLUSTERS[wildcards.cluster])


def cluster_catalogs(wildcards):
    return expand(
        paths.CATALOG, cluster=wildcards.cluster, filter=cluster_filters(wildcards)
    )


def cluster_frames(wildcards):
    return [entry.local_image for entry in CLUSTERS[wildcards.cluster].values()]


def composite_frames(wildcards):
    """How to read each filter's frame: its HDU, cube plane and DQ bits, if the config names them."""
    return {
        f: {
            "hdu": entry.settings.hdu,
            "plane": entry.settings.plane,
            "dq_bits": entry.settings.dq_bits,
        }
        for f, entry in CLUSTERS[wildcards.cluster].items()
    }


def cluster_cmds(wildcards):
    """The cluster's colour-magnitude diagrams, bluest colour first."""
    return [
        paths.CMD.format(cluster=wildcards.cluster, blue=blue, red=red)
        for blue, red in COLOURS[wildcards.cluster]
    ]


def cluster_cosmic_ray_masks(wildcards):
    return expand(
        paths.COSMIC_RAY_MASK,
        cluster=wildcards.cluster,
        filter=cluster_filters(wildcards),
    )


def all_outputs():
    outputs = []
    for cluster, frames in CLUSTERS.items():
        outputs += expand(paths.PER_FRAME, cluster=cluster, filter=list(frames))
        if METHOD[cluster] == "psf":
            outputs += expand(paths.PER_PSF_FRAME, cluster=cluster, filter=list(frames))
            if PSF[cluster]["write_residual"]:
                outputs += expand(
                    paths.PSF_RESIDUAL, cluster=cluster, filter=list(frames)
                )
        if has_artificial_stars(cluster):
            outputs += expand(
                paths.PER_COMPLETENESS_FRAME, cluster=cluster, filter=list(frames)
            )
        outputs += expand(
            [paths.SUMMARY, paths.CLUSTER_PAGE, *paths.COMPOSITES], cluster=cluster
        )
        if len(frames) > 1:
            outputs += expand(paths.MERGED_CATALOG, cluster=cluster)
        for blue, red in COLOURS[cluster]:
            outputs += expand(paths.PER_COLOUR, cluster=cluster, blue=blue, red=red)
    return outputs
