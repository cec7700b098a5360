"""The workflow's configuration: validation with one clear message, and the frames it names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .catalog import FrameSettings
from .composite import CompositeParameters, channel_weights
from .filters import CLASSIC_PAIR
from .filters import pivot_wavelength as nominal_pivot_wavelength
from .photometry import PhotometryParameters

URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
DEMO_FOLDER = "results/demo"
FETCHED_FOLDER = "resources/frames"  # frames given by URL are kept here


class ConfigError(ValueError):
    """A configuration the workflow cannot run; the message names the key or file."""


@dataclass(frozen=True)
class FrameEntry:
    """One cluster's frame in one filter, as the config gives it."""

    cluster: str
    image: str  # a path or an http(s) URL
    settings: FrameSettings

    @property
    def is_url(self) -> bool:
        return bool(URL_PATTERN.match(self.image))

    @property
    def local_image(self) -> str:
        """Where the frame is read from: its path, or where its URL's file is kept."""
        if self.is_url:
            return f"{FETCHED_FOLDER}/{self.cluster}/{self.settings.filter_name}.fits"
        return self.image


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
    """Raise ConfigError naming the key and the file when a configured local frame is missing.

    URLs are checked when they are fetched (a job of its own), not here.
    """
    if demo:
        return
    for cluster, frames in clusters.items():
        for filter_name, entry in frames.items():
            key = f"clusters.{cluster}.filters.{filter_name}"
            if not entry.is_url and not Path(entry.image).is_file():
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


def entry_pivot_wavelength(entry: FrameEntry, filter_name: str) -> float:
    """Pivot wavelength (Angstrom) for ordering filters before any job runs.

    The config's value, else the nominal HST one, else PHOTPLAM read from the frame's header.
    """
    if entry.settings.pivot_wavelength is not None:
        return float(entry.settings.pivot_wavelength)
    nominal = nominal_pivot_wavelength(filter_name)
    if nominal is not None:
        return nominal
    if Path(entry.local_image).is_file():  # a URL's frame once it has been fetched
        from astropy.io import fits

        try:
            with fits.open(entry.local_image) as hdul:
                for hdu in hdul:
                    photplam = hdu.header.get("PHOTPLAM")
                    if photplam:
                        return float(photplam)
        except OSError:
            pass  # an unreadable frame is reported by its photometry job, naming the file
    raise ConfigError(
        f"config key 'clusters.{entry.cluster}.filters.{filter_name}': no pivot wavelength known for "
        f"{filter_name}; set 'pivot_wavelength' (Angstrom) so its colours can be ordered blue to red"
    )


def cluster_colour_pairs(config: dict, frames: dict[str, FrameEntry]) -> list[tuple[str, str]]:
    """(blue, red) pairs of a cluster: adjacent by pivot wavelength, the HUGS classic, configured ones."""
    ordered = sorted(frames, key=lambda f: entry_pivot_wavelength(frames[f], f))
    pairs = [(ordered[i], ordered[i + 1]) for i in range(len(ordered) - 1)]
    if all(f in ordered for f in CLASSIC_PAIR):
        pairs.append(CLASSIC_PAIR)
    rank = {f: i for i, f in enumerate(ordered)}
    for a, b in config["catalogs"]["colour_pairs"]:
        if a in rank and b in rank and a != b:
            pairs.append((a, b) if rank[a] < rank[b] else (b, a))
    return list(dict.fromkeys(pairs))


def cmd_band(config: dict, blue: str, red: str) -> str:
    """Filter on the CMD's magnitude axis: configured, else F606W for the HUGS classic, else red."""
    configured = config["catalogs"]["cmd_band"].get(f"{blue}-{red}")
    if configured is not None:
        return configured
    return blue if (blue, red) == CLASSIC_PAIR else red


def rgb_channel_weights(config: dict, cluster: str, frames: dict[str, FrameEntry]) -> dict[str, dict[str, float]]:
    """Channel -> filter -> weight of a cluster's composites: its own, the global ones, or by pivot wavelength."""
    own = (config.get("clusters") or {}).get(cluster, {}).get("rgb", {}).get("channels")
    key = f"clusters.{cluster}.rgb.channels" if own else "rgb.channels"
    configured = own or config["rgb"]["channels"]
    pivots = {f: entry_pivot_wavelength(entry, f) for f, entry in frames.items()}
    try:
        return channel_weights(pivots, configured)
    except ValueError as error:
        raise ConfigError(f"config key '{key}' for cluster {cluster}: {error}") from None


def composite_parameters(config: dict) -> CompositeParameters:
    """The composites' normalisation, smoothing and stretch from the config's ``rgb`` section."""
    rgb = config["rgb"]
    return CompositeParameters(
        percentile=rgb["percentile"], smooth_sigma=rgb["smooth_sigma"], stretch=rgb["lupton"]["stretch"],
        Q=rgb["lupton"]["Q"], minimum=rgb["lupton"]["minimum"], bit_depth=rgb["bit_depth"],
        preview_size=rgb["preview_size"],
    )
