"""The workflow's configuration: validated once against the schema (which holds every default),
then the frames, colours and composites it asks for.

Building the job graph imports this module and nothing heavier: yaml, jsonschema and the
filter table, never photutils, OpenCV or matplotlib. Every value handed to a rule is a plain
value (numbers, strings, lists, dicts), so that Snakemake sees a change and reruns the jobs.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import yaml

from . import paths
from .channels import channel_weights
from .errors import ConfigError
from .filters import CLASSIC_PAIR, HUGS_FILTERS, pivot_wavelength


URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
# libyaml's loader where PyYAML has it: reading the schema is then 10x faster at start-up
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class FrameSettings:
    """What the config says about one filter's frame; None means: take it from the header."""

    filter_name: str
    exptime: float | None = None  # s
    zeropoint: float | None = None  # mag, for the frame's units per second
    zeropoint_system: str | None = None  # the config zero point's system (None: the run's magnitude_system)
    pivot_wavelength: float | None = None  # Angstrom
    gain: float | None = None  # electrons per image unit
    saturation: float | None = None  # image units
    hdu: int | str | list | None = None  # index, EXTNAME or [EXTNAME, EXTVER]
    plane: int | None = None
    dq_bits: int | None = None  # DQ bits that mask a pixel; None: frames.DEFAULT_DQ_BITS
    cosmic_rays: str = "auto"  # auto | lacosmic | none (cosmicrays.cosmic_ray_decision)
    # the name a frame fetched by URL was published under (the URL's last part): the workflow
    # keeps it as {filter}.fits, and a HUGS stack's name says what it is and its exposure time
    source_name: str | None = None


@dataclass(frozen=True)
class FrameEntry:
    """One cluster's frame in one filter, as the config gives it."""

    cluster: str
    image: str  # a path or an http(s) URL
    settings: FrameSettings

    @property
    def key(self) -> str:
        """The config key of this frame, for messages."""
        return f"clusters.{self.cluster}.filters.{self.settings.filter_name}"

    @property
    def is_url(self) -> bool:
        return bool(URL_PATTERN.match(self.image))

    @property
    def local_image(self) -> str:
        """Where the frame is read from: its path, or where its URL's file is kept."""
        if self.is_url:
            return paths.FETCHED_FRAME.format(cluster=self.cluster, filter=self.settings.filter_name)
        return self.image


# --- validation --------------------------------------------------------------------------------


def _key_path(parts) -> str:
    return ".".join(str(part) for part in parts) or "(top level)"


def _with_defaults(validator_class):
    """A validator that fills in each property's schema default while it validates."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties_with_defaults})


DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def check_finite(value, parts=()) -> None:
    """Raise ConfigError naming the key of any NaN or infinite number (YAML's .nan, .inf)."""
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, (*parts, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, (*parts, index))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key_path(parts)}': {value} is not a finite number")


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Check ``config`` against the schema, filling in its defaults (in place), then the checks
    a schema cannot express. Raises ConfigError naming the first offending key."""
    check_finite(config)
    schema = yaml.load(Path(schema_path).read_text(), Loader=SAFE_LOADER)
    errors = list(DefaultFillingValidator(schema).iter_errors(config))
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        message = error.message
        if error.validator in ("pattern", "propertyNames"):
            message += (" (names start with a letter or digit and hold letters, digits and _ . +;"
                        " cluster names may also hold -)")
        raise ConfigError(f"config key '{_key_path(error.absolute_path)}': {message}")
    check_filter_names(config)
    if not config.get("clusters"):
        check_demo_filters(config["demo"]["filters"])
    check_photometry(config["photometry"], "photometry")
    for cluster, entry in (config.get("clusters") or {}).items():
        check_photometry(entry.get("photometry") or {}, f"clusters.{cluster}.photometry")
    check_colours(config)
    check_artificial_stars(config["artificial_stars"], "artificial_stars")
    for cluster, entry in (config.get("clusters") or {}).items():
        own = entry.get("artificial_stars") or {}
        if "jobs" in own:
            raise ConfigError(f"config key 'clusters.{cluster}.artificial_stars.jobs': the jobs per frame are "
                              "one number for every frame (Snakemake's scattergather); set 'artificial_stars.jobs'")
        check_artificial_stars(own, f"clusters.{cluster}.artificial_stars")


def schema_defaults(schema_path: str | Path) -> dict:
    """The configuration that an empty config becomes: every default of the schema."""
    config: dict = {}
    validate_config(config, schema_path)
    return config


def all_filter_keys(config: dict) -> list[tuple[str, str]]:
    """(config key, filter name) of every filter the config names, the demo's included."""
    keys = [(f"clusters.{c}.filters.{f}", f) for c, entry in (config.get("clusters") or {}).items()
            for f in entry["filters"]]
    keys += [(f"demo.filters.{i}", f) for i, f in enumerate(config["demo"]["filters"])]
    return keys


def check_filter_names(config: dict) -> None:
    """Names that would put a filter's outputs on top of a cluster's are refused."""
    for key, name in all_filter_keys(config):
        if name.lower() in paths.RESERVED_FILTER_NAMES:
            raise ConfigError(f"config key '{key}': '{name}' cannot name a filter ({paths.MERGED_CATALOG} is the "
                              "cluster's merged catalogue); call the filter something else")


def check_demo_filters(filters: list[str]) -> None:
    """The demo simulates HST frames in the HUGS bands only (their cameras and sensitivities)."""
    for index, name in enumerate(filters):
        if name not in HUGS_FILTERS:
            raise ConfigError(f"config key 'demo.filters.{index}': the demo simulates the HUGS bands "
                              f"({', '.join(HUGS_FILTERS)}), not {name}")


# a length of the photometry section in multiples of the PSF's FWHM: '1.5 fwhm'
LENGTH_IN_FWHM = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*fwhm\s*$", re.IGNORECASE)


def length_in_pixels(length: float | str, fwhm: float) -> float:
    """A length of the config in pixels: a number is pixels already, '1.5 fwhm' is 1.5 x ``fwhm``."""
    if isinstance(length, str):
        match = LENGTH_IN_FWHM.match(length)
        if match is None:
            raise ConfigError(f"{length!r} is neither pixels (a number) nor a multiple of the FWHM ('1.5 fwhm')")
        return float(match.group(1)) * fwhm
    return float(length)


def check_photometry(values: dict, key: str) -> None:
    """The photometry values a schema cannot check: an empty or reversed region or sky annulus
    (of two lengths in the same unit: pixels, or FWHM; the frame's FWHM decides the rest), a
    length of 0 FWHM."""
    region = values.get("region")
    if region is not None:
        x0, x1, y0, y1 = region
        if x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0:
            raise ConfigError(f"config key '{key}.region': {region} holds no pixels; give [x0, x1, y0, y1] "
                              "with x0 < x1 and y0 < y1 (0-based pixels, x1 and y1 excluded)")
    for name in ("aperture_radius", "aperture_correction_radius"):
        if isinstance(values.get(name), str) and length_in_pixels(values[name], 1.0) <= 0:
            raise ConfigError(f"config key '{key}.{name}': {values[name]!r} is no length; give pixels or a "
                              "positive multiple of the FWHM ('1.5 fwhm')")
    annulus = values.get("annulus_radii")
    if annulus is None:
        return
    if any(isinstance(r, str) and length_in_pixels(r, 1.0) <= 0 for r in annulus):
        raise ConfigError(f"config key '{key}.annulus_radii': {annulus} holds a length of 0")
    if isinstance(annulus[0], str) == isinstance(annulus[1], str):
        inner, outer = (length_in_pixels(r, 1.0) for r in annulus)
        if inner >= outer:
            raise ConfigError(f"config key '{key}.annulus_radii': inner radius {annulus[0]} must be smaller than "
                              f"the outer {annulus[1]}")


def check_artificial_stars(values: dict, key: str) -> None:
    """The artificial stars' magnitude range runs from bright to faint."""
    magnitude_range = values.get("magnitude_range")
    if magnitude_range is not None and magnitude_range[0] >= magnitude_range[1]:
        raise ConfigError(f"config key '{key}.magnitude_range': {magnitude_range} is not [bright, faint]: the first "
                          "magnitude must be the smaller")


def check_colours(config: dict) -> None:
    """Every extra colour and CMD band names filters the config has."""
    clusters = config.get("clusters")
    known = ({f for entry in clusters.values() for f in entry["filters"]} if clusters
             else set(config["demo"]["filters"]))
    for index, (a, b) in enumerate(config["catalogs"]["colour_pairs"]):
        key = f"catalogs.colour_pairs.{index}"
        unknown = [f for f in (a, b) if f not in known]
        if unknown:
            raise ConfigError(f"config key '{key}': no cluster has filter {', '.join(unknown)} "
                              f"(the filters are {', '.join(sorted(known))})")
        if a == b:
            raise ConfigError(f"config key '{key}': a colour needs two different filters, not {a} twice")
    for colour, band in config["catalogs"]["cmd_band"].items():
        if band not in colour.split("-"):
            raise ConfigError(f"config key 'catalogs.cmd_band.{colour}': {band} is not one of the colour's filters")


# --- the frames ----------------------------------------------------------------------------------


def url_file_name(url: str) -> str:
    """The file name a URL serves: its path's last part, or a MAST API URL's ``uri=`` or
    ``filename=`` (``.../Download/file?uri=mast:HLSP/hugs/.../x_stack-0370s.fits``)."""
    parts = urlsplit(url)
    for key in ("uri", "product_name", "filename", "file"):
        for value in parse_qs(parts.query).get(key, []):
            if value.strip("/"):
                return value.rstrip("/").rsplit("/", 1)[-1]
    return parts.path.rstrip("/").rsplit("/", 1)[-1]


def frame_entry(cluster: str, filter_name: str, value: str | dict, cosmic_rays: str = "auto") -> FrameEntry:
    """A FrameEntry from a filter's config value (a path/URL, or a mapping with 'image');
    ``cosmic_rays``: the config's top-level choice, for a frame that does not make its own."""
    image = value if isinstance(value, str) else value["image"]
    options = {} if isinstance(value, str) else {k: v for k, v in value.items() if k != "image"}
    if isinstance(options.get("zeropoint"), dict):  # {value, system}: a zero point of its own system
        given = options.pop("zeropoint")
        options.update(zeropoint=given["value"], zeropoint_system=given["system"])
    source_name = url_file_name(image) if URL_PATTERN.match(image) else None
    return FrameEntry(cluster, image, FrameSettings(filter_name, **{"cosmic_rays": cosmic_rays, **options},
                                                    source_name=source_name))


def demo_clusters(config: dict) -> dict[str, dict[str, FrameEntry]]:
    """The simulated demo clusters' frames (made by the ``simulate`` rule)."""
    demo = config["demo"]
    return {
        name: {f: frame_entry(name, f, paths.DEMO_FRAME.format(cluster=name, filter=f), config["cosmic_rays"])
               for f in demo["filters"]}
        for name in demo["clusters"]
    }


def configured_clusters(config: dict) -> dict[str, dict[str, FrameEntry]]:
    """Cluster -> filter -> FrameEntry for the configured clusters, the demo when there are none."""
    clusters = config.get("clusters") or {}
    if not clusters:
        return demo_clusters(config)
    return {
        name: {f: frame_entry(name, f, value, config["cosmic_rays"]) for f, value in entry["filters"].items()}
        for name, entry in clusters.items()
    }


def check_frames_exist(clusters: dict[str, dict[str, FrameEntry]], demo: bool) -> None:
    """Raise ConfigError naming the key and the file when a configured local frame is missing
    or unreadable. URLs are checked when they are fetched (a job of its own), not here."""
    if demo:
        return
    for frames in clusters.values():
        for entry in frames.values():
            if entry.is_url:
                continue
            if not Path(entry.image).is_file():
                raise ConfigError(f"config key '{entry.key}': file {entry.image} does not exist")
            if not os.access(entry.image, os.R_OK):
                raise ConfigError(f"config key '{entry.key}': file {entry.image} cannot be read (permissions)")


def frame_warnings(clusters: dict[str, dict[str, FrameEntry]]) -> list[str]:
    """What is allowed but most likely a mistake: one file given for two filters of a cluster."""
    warnings = []
    for cluster, frames in clusters.items():
        seen: dict[str, str] = {}
        for filter_name, entry in frames.items():
            where = entry.image if entry.is_url else str(Path(entry.image).resolve())
            if where in seen:
                warnings.append(f"clusters.{cluster}: filters {seen[where]} and {filter_name} are the same file "
                                f"({entry.image}); their colour will be zero")
            else:
                seen[where] = filter_name
    return warnings


# L.A.Cosmic (van Dokkum 2001) as clusterphot.cosmicrays runs it through astroscrappy, with the
# paper's full 3x3 and 7x7 medians for the fine structure (astroscrappy's faster separable
# median takes the cores of undersampled stars for cosmic rays: 2000 of the 3100 matched stars'
# centres on the NGC 1261 WFPC2 F336W frame against 140 with the full median, as many as
# chance). sigclip and sigfrac are the paper's; objlim 10 rather than 5 because an HST star two
# pixels wide has fine structure close to a cosmic ray's: on that frame 5 loses 10 per cent of
# the stars matched with F555W, 10 none. Here, not there, so that the workflow's rule carries
# them as params (a change finds the cosmic rays again) without importing astroscrappy.
LACOSMIC = {"sigclip": 4.5, "sigfrac": 0.3, "objlim": 10.0, "niter": 4}

# Keys of ``photometry`` that are not PhotometryParameters' fields: the choice of method, and
# the PSF path's settings (PSFParameters' fields plus PSF_WORKFLOW_OPTIONS).
PHOTOMETRY_CHOICES = ("method", "psf")
# Keys of ``photometry.psf`` that are the workflow's, not PSFParameters' fields.
PSF_WORKFLOW_OPTIONS = ("write_residual", "fallback")


def photometry_settings(config: dict, cluster: str) -> dict:
    """A cluster's whole ``photometry`` section as plain values: the global one overlaid by its
    own, key by key (``psf`` too: a cluster's ``psf: {min_psf_stars: 10}`` keeps the rest)."""
    values = copy.deepcopy(config["photometry"])
    own = copy.deepcopy((config.get("clusters") or {}).get(cluster, {}).get("photometry") or {})
    values["psf"] = {**values.get("psf", {}), **own.pop("psf", {})}
    values.update(own)
    return values


def photometry_parameters(config: dict, cluster: str) -> dict:
    """A cluster's photometry parameters (``PhotometryParameters``' fields) as plain values."""
    return {k: v for k, v in photometry_settings(config, cluster).items() if k not in PHOTOMETRY_CHOICES}


def photometry_method(config: dict, cluster: str) -> str:
    """'aperture' or 'psf': how a cluster's frames are measured."""
    return photometry_settings(config, cluster)["method"]


def psf_settings(config: dict, cluster: str) -> dict:
    """A cluster's ``photometry.psf`` section: PSFParameters' fields and PSF_WORKFLOW_OPTIONS."""
    return photometry_settings(config, cluster)["psf"]


def artificial_star_settings(config: dict, cluster: str) -> dict:
    """A cluster's ``artificial_stars`` section as plain values (``ArtificialStarSettings``'
    fields): the global one overlaid by its own, key by key; ``jobs`` left out (it is global:
    the scattergather's number of jobs)."""
    own = (config.get("clusters") or {}).get(cluster, {}).get("artificial_stars") or {}
    values = {**config["artificial_stars"], **own}
    values.pop("jobs", None)
    return copy.deepcopy(values)


# --- pivot wavelengths, colours and composites ---------------------------------------------------


def header_photplam(path: str | Path) -> float | None:
    """PHOTPLAM from the first HDU of a FITS file that has it (headers only; pixels are not read)."""
    from astropy.io import fits  # only for filters the table does not know: keeps start-up light

    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                value = hdu.header.get("PHOTPLAM")
                if value:
                    return float(value)
    except (OSError, ValueError, TypeError):
        pass  # an unreadable frame is reported by its photometry job, naming the file
    return None


def entry_pivot_wavelength(entry: FrameEntry) -> float:
    """A frame's pivot wavelength (Angstrom) by the one precedence of
    :func:`clusterphot.filters.pivot_wavelength`; the header is read only when needed."""
    name, configured = entry.settings.filter_name, entry.settings.pivot_wavelength
    value = pivot_wavelength(name, configured)
    if value is None and Path(entry.local_image).is_file():  # a URL's frame once it has been fetched
        value = pivot_wavelength(name, configured, header_photplam(entry.local_image))
    if value is None:
        raise ConfigError(f"config key '{entry.key}': no pivot wavelength known for {name}; set "
                          "'pivot_wavelength' (Angstrom) so its colours can be ordered blue to red")
    return value


def cluster_pivot_wavelengths(frames: dict[str, FrameEntry]) -> dict[str, float]:
    """Filter -> pivot wavelength of one cluster's frames."""
    return {f: entry_pivot_wavelength(entry) for f, entry in frames.items()}


def cluster_colour_pairs(config: dict, pivots: dict[str, float]) -> list[tuple[str, str]]:
    """(blue, red) pairs of a cluster: adjacent by pivot wavelength, the HUGS classic, configured ones.

    A configured pair is made for every cluster that has both of its filters.
    """
    ordered = sorted(pivots, key=pivots.get)
    pairs = [(ordered[i], ordered[i + 1]) for i in range(len(ordered) - 1)]
    if all(f in pivots for f in CLASSIC_PAIR):
        pairs.append(CLASSIC_PAIR)
    for a, b in config["catalogs"]["colour_pairs"]:
        if a in pivots and b in pivots:
            pairs.append((a, b) if pivots[a] < pivots[b] else (b, a))
    return list(dict.fromkeys(pairs))


def cmd_band(config: dict, blue: str, red: str) -> str:
    """Filter on the CMD's magnitude axis: configured, else F606W for the HUGS classic, else red."""
    configured = config["catalogs"]["cmd_band"].get(f"{blue}-{red}")
    if configured is not None:
        return configured
    return blue if (blue, red) == CLASSIC_PAIR else red


def rgb_channel_weights(config: dict, cluster: str, pivots: dict[str, float]) -> dict[str, dict[str, float]]:
    """Channel -> filter -> weight of a cluster's composites: its own, the global ones, or by pivot wavelength."""
    own = (config.get("clusters") or {}).get(cluster, {}).get("rgb", {}).get("channels")
    key = f"clusters.{cluster}.rgb.channels" if own else "rgb.channels"
    try:
        return channel_weights(pivots, own or config["rgb"]["channels"])
    except ValueError as error:
        raise ConfigError(f"config key '{key}' for cluster {cluster}: {error}") from None


def composite_parameters(config: dict) -> dict:
    """The composites' normalisation, smoothing and stretch (``CompositeParameters``' fields) as plain values."""
    rgb = config["rgb"]
    return {"percentile": rgb["percentile"], "smooth_sigma": rgb["smooth_sigma"],
            "stretch": rgb["lupton"]["stretch"], "Q": rgb["lupton"]["Q"], "minimum": rgb["lupton"]["minimum"],
            "bit_depth": rgb["bit_depth"], "preview_size": rgb["preview_size"]}
