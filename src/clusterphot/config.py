"""The workflow's configuration: validation with one clear message, and the frames it names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .catalog import FrameSettings
from .photometry import PhotometryParameters

URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
DEMO_FOLDER = "results/demo"


class ConfigError(ValueError):
    """A configuration the workflow cannot run; the message names the key or file."""


@dataclass(frozen=True)
class FrameEntry:
    """One cluster's frame in one filter, as the config gives it."""

    cluster: str
    image: str
    settings: FrameSettings

    @property
    def is_url(self) -> bool:
        return bool(URL_PATTERN.match(self.image))


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def check_against_schema(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError naming the first offending key if ``config`` breaks the schema."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    message = error.message
    if error.validator == "pattern" or (error.validator == "propertyNames"):
        message += (" (names start with a letter or digit and hold letters, digits and _ . +;"
                    " cluster names may also hold -)")
    raise ConfigError(f"config key '{_key_path(error)}': {message}")


def frame_entry(cluster: str, filter_name: str, value: str | dict) -> FrameEntry:
    """A FrameEntry from a filter's config value (a path/URL, or a mapping with 'image')."""
    if isinstance(value, str):
        return FrameEntry(cluster, value, FrameSettings(filter_name))
    options = {k: v for k, v in value.items() if k != "image"}
    return FrameEntry(cluster, value["image"], FrameSettings(filter_name, **options))


def demo_clusters(config: dict) -> dict[str, dict[str, FrameEntry]]:
    """The simulated demo clusters' frames (made by the ``simulate`` rule)."""
    demo = config["demo"]
    return {
        name: {f: frame_entry(name, f, f"{DEMO_FOLDER}/{name}/{f}.fits") for f in demo["filters"]}
        for name in demo["clusters"]
    }


def configured_clusters(config: dict) -> dict[str, dict[str, FrameEntry]]:
    """Cluster -> filter -> FrameEntry for the configured clusters, the demo when there are none."""
    clusters = config.get("clusters") or {}
    if not clusters:
        return demo_clusters(config)
    return {
        name: {f: frame_entry(name, f, value) for f, value in entry["filters"].items()}
        for name, entry in clusters.items()
    }


def check_frames_exist(clusters: dict[str, dict[str, FrameEntry]], demo: bool) -> None:
    """Raise ConfigError naming the key and the file when a configured local frame is missing."""
    if demo:
        return
    for cluster, frames in clusters.items():
        for filter_name, entry in frames.items():
            key = f"clusters.{cluster}.filters.{filter_name}"
            if entry.is_url:
                raise ConfigError(
                    f"config key '{key}': {entry.image} is a URL; fetching frames by URL is not "
                    "available in this version: download the file and give its path"
                )
            if not Path(entry.image).is_file():
                raise ConfigError(f"config key '{key}': file {entry.image} does not exist")


def photometry_parameters(config: dict, cluster: str) -> PhotometryParameters:
    """The photometry parameters for a cluster: global defaults overlaid by its overrides."""
    values = dict(config["photometry"])
    values.update((config.get("clusters") or {}).get(cluster, {}).get("photometry", {}))
    for key in ("sharpness_range", "roundness_range", "annulus_radii", "region"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    if values["annulus_radii"][0] >= values["annulus_radii"][1]:
        raise ConfigError(f"config key 'photometry.annulus_radii' for {cluster}: inner radius must be < outer")
    return PhotometryParameters(**values)
