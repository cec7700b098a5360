# Configuration checks and the helpers every rule file uses.
import re
import sys
from dataclasses import asdict
from pathlib import Path

# The science is the package in src/ (`make` installs it into .venv); importable from a
# checkout even where it is not installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from clusterphot.config import (
    ConfigError,
    check_against_schema,
    check_frames_exist,
    cluster_colour_pairs,
    cmd_band,
    composite_parameters,
    configured_clusters,
    photometry_parameters,
    rgb_channel_weights,
)

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"

# One clear message naming the key or file, before any job runs.
try:
    check_against_schema(config, SCHEMA)
    validate(config, schema=SCHEMA)  # fills in the schema's defaults
    DEMO = not config["clusters"]
    CLUSTERS = configured_clusters(config)
    check_frames_exist(CLUSTERS, demo=DEMO)
    PHOTOMETRY = {name: photometry_parameters(config, name) for name in CLUSTERS}
    COLOURS = {
        name: cluster_colour_pairs(config, frames) for name, frames in CLUSTERS.items()
    }
    RGB_WEIGHTS = {
        name: rgb_channel_weights(config, name, frames)
        for name, frames in CLUSTERS.items()
    }
    RGB_PARAMETERS = composite_parameters(config)
except ConfigError as error:
    sys.exit(f"clusterphot: {error}")


wildcard_constraints:
    cluster="|".join(re.escape(c) for c in CLUSTERS) or "no-cluster",
    # the configured filters only: "merged" is a catalogue, not a filter
    filter="|".join(
        sorted({re.escape(f) for frames in CLUSTERS.values() for f in frames})
    ),
    blue="[A-Za-z0-9][A-Za-z0-9_.+]*",
    red="[A-Za-z0-9][A-Za-z0-9_.+]*",


def frame_entry(wildcards):
    return CLUSTERS[wildcards.cluster][wildcards.filter]


def frame_settings(wildcards):
    """The frame's settings as plain values: Snakemake sees a change in them and reruns."""
    return asdict(frame_entry(wildcards).settings)


def frame_image(wildcards):
    return frame_entry(wildcards).local_image


def frame_url(wildcards):
    entry = frame_entry(wildcards)
    return entry.image if entry.is_url else None


def cluster_catalogs(wildcards):
    return {
        f: f"results/catalogs/{wildcards.cluster}/{f}.ecsv"
        for f in CLUSTERS[wildcards.cluster]
    }


def composite_inputs(wildcards):
    """Every filter's frame, and what proves the frames measurable: the registration
    (solved from the catalogues), or for a single filter its catalogue."""
    cluster = wildcards.cluster
    frames = CLUSTERS[cluster]
    inputs = {f: entry.local_image for f, entry in frames.items()}
    if len(frames) > 1:
        inputs["registration"] = f"results/matched/{cluster}/registration.yaml"
    else:
        inputs["catalog"] = f"results/catalogs/{cluster}/{next(iter(frames))}.ecsv"
    return inputs


def composite_frames(cluster):
    """How to read each filter's frame: its HDU and cube plane, if the config names them."""
    return {
        f: {"hdu": entry.settings.hdu, "plane": entry.settings.plane}
        for f, entry in CLUSTERS[cluster].items()
    }


def all_outputs():
    outputs = []
    for cluster, frames in CLUSTERS.items():
        outputs.append(f"results/summary/{cluster}.tsv")
        outputs += [
            f"results/rgb/{cluster}_{kind}.{ext}"
            for kind, ext in (
                ("lupton", "png"),
                ("weighted", "png"),
                ("lupton_preview", "png"),
                ("weighted_preview", "png"),
                ("composite", "yaml"),
            )
        ]
        if len(frames) > 1:
            outputs.append(f"results/catalogs/{cluster}/merged.ecsv")
        for blue, red in COLOURS[cluster]:
            outputs += [
                f"results/matched/{cluster}/{blue}-{red}.ecsv",
                f"results/plots/{cluster}/cmd_{blue}-{red}.png",
            ]
        for f in frames:
            outputs += [
                f"results/catalogs/{cluster}/{f}.ecsv",
                f"results/plots/{cluster}/lf_{f}.png",
                f"results/plots/{cluster}/detections_{f}.png",
            ]
    return outputs
