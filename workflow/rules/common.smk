# Configuration checks and the helpers every rule file uses.
import re
import sys
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
    configured_clusters,
    photometry_parameters,
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


def frame_image(wildcards):
    return frame_entry(wildcards).image


def cluster_catalogs(wildcards):
    return {
        f: f"results/catalogs/{wildcards.cluster}/{f}.ecsv"
        for f in CLUSTERS[wildcards.cluster]
    }


def all_outputs():
    outputs = []
    for cluster, frames in CLUSTERS.items():
        outputs.append(f"results/summary/{cluster}.tsv")
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
