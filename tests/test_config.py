"""Configuration: one validation that fills in the schema's defaults, one message naming the bad
key or file, the defaults' single source, per-cluster overrides, one pivot-wavelength lookup."""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, fields

import numpy as np
import pytest
import yaml

from clusterphot.composite import CompositeParameters
from clusterphot.config import (
    PHOTOMETRY_CHOICES,
    PSF_WORKFLOW_OPTIONS,
    FrameSettings,
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
    schema_defaults,
    validate_config,
)
from clusterphot.errors import ConfigError
from clusterphot.catalog import psf_parameters
from clusterphot.photometry import PhotometryParameters
from clusterphot.psfphot import PSFParameters
from clusterphot.quality import QualityCuts

from .conftest import REPO
from .synthetic import write_frame

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SHIPPED_TEXT = (REPO / "config" / "config.yaml").read_text()
SHIPPED = yaml.safe_load(SHIPPED_TEXT)


def with_clusters(clusters: dict, **top) -> dict:
    config = copy.deepcopy(SHIPPED)
    config["clusters"] = clusters
    config.update(top)
    return config


def validated(config: dict) -> dict:
    validate_config(config, SCHEMA)
    return config


def leaves(mapping: dict, prefix=()) -> dict[tuple, object]:
    """(key, ..., key) -> value of every non-mapping value in nested mappings."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


# --- one source of defaults ------------------------------------------------------------------------


def test_the_shipped_config_is_valid_and_runs_the_demo():
    config = validated(copy.deepcopy(SHIPPED))
    assert config["clusters"] == {}
    assert list(configured_clusters(config)) == ["demo1", "demo2"]


def test_the_shipped_config_shows_exactly_the_schema_defaults():
    defaults = schema_defaults(SCHEMA)
    assert validated(copy.deepcopy(SHIPPED)) == defaults
    # every default is written out in the shipped file, where users read them (the demo's
    # clusters excepted: a --configfile with its own must replace them, not merge into them)
    missing = {k for k in set(leaves(defaults)) - set(leaves(SHIPPED)) if k[:2] != ("demo", "clusters")}
    assert not missing, f"defaults not shown in config/config.yaml: {sorted(missing)}"


def test_an_empty_config_is_filled_in_with_every_default():
    config = schema_defaults(SCHEMA)
    assert config["photometry"]["fwhm"] == "auto" and config["rgb"]["lupton"]["Q"] > 0
    assert config["catalogs"]["quality"]["exclude_flags"] == 15
    assert config["demo"]["clusters"]["demo2"]["n_stars"] == 7000


def test_the_dataclasses_defaults_are_the_schemas():
    defaults = schema_defaults(SCHEMA)
    photometry = {k: (tuple(v) if isinstance(v, list) else v) for k, v in defaults["photometry"].items()
                  if k not in PHOTOMETRY_CHOICES}
    assert asdict(PhotometryParameters()) == photometry
    assert {f.name for f in fields(PhotometryParameters)} == set(defaults["photometry"]) - set(PHOTOMETRY_CHOICES)
    assert asdict(CompositeParameters()) == composite_parameters(defaults)
    quality = {k: (tuple(v) if isinstance(v, list) else v) for k, v in defaults["catalogs"]["quality"].items()}
    assert asdict(QualityCuts()) == quality
    # a photometry section with one override gives the dataclass with that one field changed
    overridden = PhotometryParameters.from_meta(photometry_parameters(
        validated(with_clusters({"c": {"filters": {"F606W": "a.fits"}, "photometry": {"fwhm": 3.1}}})), "c"))
    assert overridden == PhotometryParameters(fwhm=3.1)


def test_the_schemas_psf_defaults_are_psfparameters_field_for_field():
    """photometry.psf holds every PSFParameters field with the dataclass's default, and the
    workflow's own options; nothing else (the PSF path's parameters may still change)."""
    defaults = schema_defaults(SCHEMA)["photometry"]["psf"]
    fields_ = {f.name: f.default for f in fields(PSFParameters)}
    assert set(defaults) - set(PSF_WORKFLOW_OPTIONS) == set(fields_), "schema photometry.psf != PSFParameters"
    for name, default in fields_.items():
        assert defaults[name] == default and type(defaults[name]) is type(default), name
    assert psf_parameters(defaults) == PSFParameters()
    assert (defaults["write_residual"], defaults["fallback"]) == (False, "error")
    assert schema_defaults(SCHEMA)["photometry"]["method"] == "psf"


def test_method_and_psf_settings_per_cluster_override_the_global_ones_key_by_key():
    config = validated(with_clusters({
        "a": {"filters": {"F606W": "a.fits"}, "photometry": {"psf": {"min_psf_stars": 8}}},
        "b": {"filters": {"F606W": "b.fits"}, "photometry": {"method": "aperture"}},
    }, photometry={**SHIPPED["photometry"], "psf": {"fallback": "aperture"}}))
    assert photometry_method(config, "a") == "psf" and photometry_method(config, "b") == "aperture"
    a, b = psf_settings(config, "a"), psf_settings(config, "b")
    assert a["min_psf_stars"] == 8 and a["fallback"] == "aperture"  # its own, and the global one
    assert b["min_psf_stars"] == 20 and b["fallback"] == "aperture"
    assert psf_parameters(a) == PSFParameters(min_psf_stars=8)
    # the PhotometryParameters of a PSF cluster are the same plain values
    assert PhotometryParameters.from_meta(photometry_parameters(config, "a")) == PhotometryParameters()
    assert config["photometry"]["psf"]["min_psf_stars"] == 20  # the override stayed the cluster's
    with pytest.raises(ValueError, match="not fields of PSFParameters"):
        psf_parameters({**a, "oversampleing": 2})


def test_the_config_readme_explains_every_key():
    readme = (REPO / "config" / "README.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_.<>]+)`", readme))
    for key in leaves(schema_defaults(SCHEMA)):
        if key[:2] == ("demo", "clusters"):
            key = ("demo", "clusters")
        assert ".".join(key) in documented, f"config/README.md does not explain {'.'.join(key)}"


# --- one message naming the key ---------------------------------------------------------------------


@pytest.mark.parametrize("clusters, key, words", [
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometri": {}}}, "clusters.ngc1", "photometri"),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "exptime": -3}}}},
     "clusters.ngc1.filters.F606W", ""),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "exptim": 3}}}},
     "clusters.ngc1.filters.F606W", ""),
    ({"ngc/1": {"filters": {"F606W": "a.fits"}}}, "clusters", "ngc/1"),
    ({"ngc1": {"filters": {"F606W-F814W": "a.fits"}}}, "clusters.ngc1.filters", "F606W-F814W"),
    ({"ngc1": {"filters": {}}}, "clusters.ngc1.filters", ""),
    # what a schema cannot say
    ({"ngc1": {"filters": {"merged": "a.fits"}}}, "clusters.ngc1.filters.merged", "merged catalogue"),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "exptime": float("nan")}}}},
     "clusters.ngc1.filters.F606W.exptime", "nan is not a finite number"),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "zeropoint": float("inf")}}}},
     "clusters.ngc1.filters.F606W.zeropoint", "inf is not a finite number"),
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometry": {"region": [50, 10, 0, 100]}}},
     "clusters.ngc1.photometry.region", "holds no pixels"),
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometry": {"region": [0, 100, 30, 30]}}},
     "clusters.ngc1.photometry.region", "holds no pixels"),
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometry": {"annulus_radii": [15, 10]}}},
     "clusters.ngc1.photometry.annulus_radii", "smaller than the outer"),
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometry": {"method": "daophot"}}},
     "clusters.ngc1.photometry.method", "'daophot' is not one of ['aperture', 'psf']"),
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometry": {"psf": {"oversampling": 0}}}},
     "clusters.ngc1.photometry.psf.oversampling", "less than the minimum"),
])
def test_bad_config_is_one_message_naming_the_key(clusters, key, words):
    with pytest.raises(ConfigError) as error:
        validate_config(with_clusters(clusters), SCHEMA)
    message = str(error.value)
    assert f"config key '{key}" in message
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("top, key, words", [
    ({"photometri": {"fwhm": 2}}, "(top level)", "photometri"),
    ({"photometry": {"region": [-20, -5, 0, 10]}}, "photometry.region", "holds no pixels"),
    ({"photometry": {"psf": {"fallback": "skip"}}}, "photometry.psf.fallback", "'skip' is not one of"),
    ({"photometry": {"psf": {"write_residuals": True}}}, "photometry.psf", "'write_residuals' was unexpected"),
    ({"catalogs": {"colour_pairs": [["F606W", "F999W"]]}}, "catalogs.colour_pairs.0", "no cluster has filter F999W"),
    ({"catalogs": {"colour_pairs": [["F606W", "F606W"]]}}, "catalogs.colour_pairs.0", "two different filters"),
    ({"catalogs": {"cmd_band": {"F606W-F814W": "F336W"}}}, "catalogs.cmd_band.F606W-F814W", "not one of"),
    ({"demo": {"filters": ["F606W", "Merged"]}}, "demo.filters.1", "cannot name a filter"),
])
def test_bad_sections_name_their_key(top, key, words):
    config = with_clusters({"ngc1": {"filters": {"F606W": "a.fits", "F814W": "b.fits"}}})
    for section, value in top.items():
        config[section] = {**config.get(section, {}), **value} if isinstance(value, dict) else value
    if "demo" in top:
        config["clusters"] = {}
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    assert f"config key '{key}'" in str(error.value)
    assert words in str(error.value)


def test_a_colour_pair_is_made_only_where_a_cluster_has_both_filters():
    config = validated(with_clusters({"a": {"filters": {"F336W": "x.fits", "F606W": "y.fits"}},
                                      "b": {"filters": {"F438W": "z.fits", "F606W": "w.fits"}}},
                                     catalogs={"colour_pairs": [["F606W", "F336W"]]}))
    frames = configured_clusters(config)
    assert cluster_colour_pairs(config, cluster_pivot_wavelengths(frames["a"])) == [("F336W", "F606W")]
    assert cluster_colour_pairs(config, cluster_pivot_wavelengths(frames["b"])) == [("F438W", "F606W")]


def test_missing_frame_names_key_and_file(tmp_path):
    present = tmp_path / "f606w.fits"
    present.write_bytes(b"")
    config = with_clusters({"ngc1": {"filters": {"F606W": str(present),
                                                  "F814W": {"image": str(tmp_path / "nope.fits")}}}})
    clusters = configured_clusters(validated(config))
    with pytest.raises(ConfigError, match=r"clusters.ngc1.filters.F814W.*nope.fits does not exist"):
        check_frames_exist(clusters, demo=False)


def test_one_file_for_two_filters_is_a_warning(tmp_path):
    config = validated(with_clusters({"ngc1": {"filters": {"F606W": "a.fits", "F814W": "./a.fits",
                                                           "F336W": "b.fits"}}}))
    warnings = frame_warnings(configured_clusters(config))
    assert len(warnings) == 1 and "F606W and F814W are the same file" in warnings[0]


# --- the frames and their settings --------------------------------------------------------------------


def test_mapping_form_overrides_and_per_cluster_photometry():
    config = validated(with_clusters({
        "ngc1": {"filters": {"F814W": {"image": "x.fits", "exptime": 340, "zeropoint": 25.52,
                                       "pivot_wavelength": 8045}},
                 "photometry": {"fwhm": 2.7}},
        "ngc2": {"filters": {"F606W": "y.fits"}},
    }))
    frames = configured_clusters(config)
    settings = frames["ngc1"]["F814W"].settings
    assert (settings.exptime, settings.zeropoint, settings.pivot_wavelength) == (340, 25.52, 8045)
    assert frames["ngc2"]["F606W"].settings == FrameSettings("F606W")
    assert photometry_parameters(config, "ngc1")["fwhm"] == 2.7
    assert photometry_parameters(config, "ngc2")["fwhm"] == SHIPPED["photometry"]["fwhm"]
    assert photometry_parameters(config, "ngc1")["threshold"] == SHIPPED["photometry"]["threshold"]
    assert config["photometry"]["fwhm"] == SHIPPED["photometry"]["fwhm"]  # the override stayed the cluster's


def test_empty_clusters_means_the_demo():
    config = copy.deepcopy(SHIPPED)
    config["demo"]["clusters"] = {"d1": {"seed": 1}}
    frames = configured_clusters(validated(config))
    assert list(frames) == ["d1"]
    assert list(frames["d1"]) == SHIPPED["demo"]["filters"]
    assert frames["d1"]["F606W"].image == "results/demo/d1/F606W.fits"


# --- one pivot-wavelength lookup ----------------------------------------------------------------------


def test_colour_pairs_are_ordered_blue_to_red_and_unknown_filters_need_a_wavelength(tmp_path):
    hst = validated(with_clusters({"ngc1": {"filters": {"F814W": "a.fits", "F336W": "b.fits", "F606W": "c.fits"}}}))
    pivots = cluster_pivot_wavelengths(configured_clusters(hst)["ngc1"])
    assert cluster_colour_pairs(hst, pivots) == [("F336W", "F606W"), ("F606W", "F814W")]
    assert cmd_band(hst, "F606W", "F814W") == "F606W" and cmd_band(hst, "F336W", "F606W") == "F606W"

    own = validated(with_clusters({"m3": {"filters": {"V": {"image": "v.fits", "pivot_wavelength": 5500},
                                                      "B": {"image": "b.fits", "pivot_wavelength": 4400},
                                                      "I": {"image": str(tmp_path / "missing.fits")}}}}))
    with pytest.raises(ConfigError, match=r"clusters.m3.filters.I.*pivot_wavelength"):
        cluster_pivot_wavelengths(configured_clusters(own)["m3"])
    own["clusters"]["m3"]["filters"]["I"] = {"image": "i.fits", "pivot_wavelength": 8000}
    pivots = cluster_pivot_wavelengths(configured_clusters(own)["m3"])
    assert cluster_colour_pairs(own, pivots) == [("B", "V"), ("V", "I")]


def test_one_precedence_for_the_pivot_wavelength_config_then_table_then_header(tmp_path):
    """The config orders colours with the same value the catalogue records."""
    from clusterphot.catalog import catalog_for_frame

    rng = np.random.default_rng(4)
    data = rng.normal(100.0, 5.0, (64, 64)).astype(np.float32)
    data[30:33, 30:33] += 5000.0
    hst = write_frame(tmp_path / "hst.fits", data, photplam=5887.0)  # WFC3/UVIS F606W's own PHOTPLAM
    ground = write_frame(tmp_path / "ground.fits", data, photplam=6400.0)
    config = validated(with_clusters({"c": {"filters": {"F606W": str(hst), "R": str(ground),
                                                        "I": {"image": str(ground), "pivot_wavelength": 8000}}}}))
    frames = configured_clusters(config)["c"]
    pivots = cluster_pivot_wavelengths(frames)
    assert pivots == {"F606W": 5921.9, "R": 6400.0, "I": 8000.0}
    for name, entry in frames.items():
        table = catalog_for_frame(entry.image, entry.settings, PhotometryParameters())
        assert table.meta["pivot_wavelength"] == pivots[name], name


# --- composites -------------------------------------------------------------------------------------


def test_rgb_channels_per_cluster_override_the_global_ones_and_bad_ones_name_the_key():
    frames = {"F606W": "a.fits", "F814W": "b.fits"}
    config = validated(with_clusters({"ngc1": {"filters": frames,
                                               "rgb": {"channels": {"red": {"F814W": 1},
                                                                    "green": {"F606W": 1, "F814W": 1},
                                                                    "blue": {"F606W": 1}}}},
                                      "ngc2": {"filters": frames}}))
    clusters = configured_clusters(config)
    pivots = {name: cluster_pivot_wavelengths(f) for name, f in clusters.items()}
    assert rgb_channel_weights(config, "ngc1", pivots["ngc1"])["green"] == {"F606W": 0.5, "F814W": 0.5}
    # ngc2 has no channels of its own and the global ones are null: from the pivot wavelengths
    assert rgb_channel_weights(config, "ngc2", pivots["ngc2"])["red"] == {"F814W": 1.0}
    config["rgb"]["channels"] = {"red": {"F850LP": 1}, "green": {"F606W": 1}, "blue": {"F606W": 1}}
    with pytest.raises(ConfigError, match=r"config key 'rgb.channels' for cluster ngc2: .*F850LP"):
        rgb_channel_weights(config, "ngc2", pivots["ngc2"])


def test_rgb_parameters_come_from_the_config():
    config = validated(copy.deepcopy(SHIPPED))
    config["rgb"].update({"bit_depth": 16, "smooth_sigma": 1.0})
    config["rgb"]["lupton"]["Q"] = 3.0
    params = CompositeParameters(**composite_parameters(config))
    assert (params.bit_depth, params.smooth_sigma, params.Q, params.percentile) == (16, 1.0, 3.0, 99.5)
    config["rgb"]["bit_depth"] = 12
    with pytest.raises(ConfigError, match="rgb.bit_depth"):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize("example", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(example):
    config = validated({**SHIPPED, **yaml.safe_load(example.read_text())})
    assert configured_clusters(config)


def test_url_frames_are_kept_under_resources():
    config = yaml.safe_load((REPO / "config" / "examples" / "hugs_ngc6101.yaml").read_text())
    frames = configured_clusters(validated({**SHIPPED, **config}))["ngc6101"]
    assert {f: e.is_url for f, e in frames.items()} == {"F606W": True, "F814W": True}
    assert frames["F606W"].image.startswith("https://archive.stsci.edu/hlsps/hugs/ngc6101/hlsp_hugs_hst_acs-wfc_")
    assert frames["F606W"].local_image == "resources/frames/ngc6101/F606W.fits"
    # kept as F606W.fits, known by the name it was published under (a stack, and its exposure)
    assert frames["F606W"].settings.source_name == frames["F606W"].image.rsplit("/", 1)[-1]
    assert "_stack-" in frames["F606W"].settings.source_name
    check_frames_exist({"ngc6101": frames}, demo=False)  # URLs are checked when fetched, not here


def test_artificial_star_settings_are_the_dataclasses_per_cluster_overrides_key_by_key_and_jobs_global():
    from clusterphot.artificial import ArtificialStarSettings
    from clusterphot.config import artificial_star_settings

    defaults = schema_defaults(SCHEMA)["artificial_stars"]
    assert ArtificialStarSettings.from_meta(defaults) == ArtificialStarSettings()
    assert {f.name for f in fields(ArtificialStarSettings)} == set(defaults) - {"jobs"}
    config = validated(with_clusters({
        "a": {"filters": {"F606W": "a.fits"}, "artificial_stars": {"n_stars": 0}},
        "b": {"filters": {"F606W": "b.fits"}, "artificial_stars": {"magnitude_range": [17, 27.5]}},
    }, artificial_stars={"seed": 5}))
    a, b = artificial_star_settings(config, "a"), artificial_star_settings(config, "b")
    assert a["n_stars"] == 0 and a["seed"] == 5 and "jobs" not in a
    assert b["n_stars"] == defaults["n_stars"] and ArtificialStarSettings.from_meta(b).magnitude_range == (17, 27.5)
    with pytest.raises(ConfigError, match=r"clusters.a.artificial_stars.jobs': .*set 'artificial_stars.jobs'"):
        validate_config(with_clusters({"a": {"filters": {"F606W": "a.fits"}, "artificial_stars": {"jobs": 4}}}),
                        SCHEMA)
    with pytest.raises(ConfigError, match=r"'artificial_stars.magnitude_range': \[27.0, 17.0\] is not \[bright"):
        validate_config(with_clusters({"a": {"filters": {"F606W": "a.fits"}}},
                                      artificial_stars={"magnitude_range": [27.0, 17.0]}), SCHEMA)
    with pytest.raises(ConfigError, match="artificial_stars.fraction"):
        validate_config(with_clusters({"a": {"filters": {"F606W": "a.fits"}}}, artificial_stars={"fraction": 0.2}),
                        SCHEMA)


def test_a_frames_hdu_is_an_index_a_name_or_a_name_and_version(tmp_path):
    """hdu: 1, SCI or [SCI, 2] (an flc file's second chip); a malformed one names the key."""
    image = write_frame(tmp_path / "a.fits", np.ones((40, 40), np.float32))
    for hdu in (1, "SCI", ["SCI", 2]):
        validated(with_clusters({"c": {"filters": {"F606W": {"image": str(image), "hdu": hdu}}}}))
    for hdu in (["SCI"], ["SCI", 0], [2, "SCI"], -1, ""):
        with pytest.raises(ConfigError, match=r"clusters.c.filters.F606W"):
            validated(with_clusters({"c": {"filters": {"F606W": {"image": str(image), "hdu": hdu}}}}))


# --- a config zero point's own magnitude system --------------------------------------------------


def test_a_config_zeropoint_of_its_own_system_labels_its_catalogue_lf_and_cmd(tmp_path):
    """A ground-based frame's Vega zero point in an AB run (issue 14, item 7): its catalogue,
    luminosity function and the CMD's colour axis say VEGA; the HST frame beside it stays AB;
    a system that is none of AB, ST, VEGA and instrumental names its key."""
    from astropy.table import Table

    from clusterphot.catalog import catalog_for_frame
    from clusterphot.crossmatch import shared_system
    from clusterphot.plots import colour_label, magnitude_system

    rng = np.random.default_rng(4)
    data = rng.normal(100.0, 5.0, (64, 64)).astype(np.float32)
    data[30:33, 30:33] += 5000.0
    hst = write_frame(tmp_path / "hst.fits", data, photplam=5887.0)
    ground = write_frame(tmp_path / "ground.fits", data, photplam=6400.0)
    config = validated(with_clusters({"c": {"filters": {
        "F606W": str(hst), "R": {"image": str(ground), "zeropoint": {"value": 24.9, "system": "VEGA"}}}}}))
    frames = configured_clusters(config)["c"]
    assert (frames["R"].settings.zeropoint, frames["R"].settings.zeropoint_system) == (24.9, "VEGA")
    tables = {name: catalog_for_frame(entry.image, entry.settings, PhotometryParameters(), system="AB")
              for name, entry in frames.items()}
    assert tables["R"].meta["magnitude_system"] == "VEGA" and tables["R"].meta["zeropoint"]["value"] == 24.9
    assert tables["F606W"].meta["magnitude_system"] == "AB"
    assert str(tables["R"]["mag"].unit) == "mag" and tables["R"]["mag"].description.startswith("VEGA")
    assert magnitude_system(Table.read(_written(tables["R"], tmp_path / "R.ecsv"))) == "VEGA"
    assert shared_system(list(tables.values())) == "mixed"
    assert colour_label("R", "F606W", "VEGA", "AB") == "R (VEGA mag) - F606W (AB mag)"
    assert colour_label("F606W", "F814W", "AB", "AB") == "F606W - F814W (AB mag)"
    with pytest.raises(ConfigError, match="zeropoint"):
        validated(with_clusters({"c": {"filters": {
            "R": {"image": str(ground), "zeropoint": {"value": 24.9, "system": "Johnson"}}}}}))


def _written(table, path):
    table.write(path, format="ascii.ecsv")
    return path
