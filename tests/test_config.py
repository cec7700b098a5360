"""Configuration: schema defaults, one message naming the bad key or file, per-cluster overrides."""

from __future__ import annotations

import copy

import pytest
import yaml

from clusterphot.config import (
    ConfigError,
    check_against_schema,
    check_frames_exist,
    composite_parameters,
    configured_clusters,
    photometry_parameters,
    rgb_channel_weights,
)

from .conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SHIPPED = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def with_clusters(clusters: dict) -> dict:
    config = copy.deepcopy(SHIPPED)
    config["clusters"] = clusters
    return config


def test_shipped_config_is_valid_and_runs_the_demo():
    check_against_schema(SHIPPED, SCHEMA)
    assert SHIPPED["clusters"] == {}


@pytest.mark.parametrize("clusters, key, words", [
    ({"ngc1": {"filters": {"F606W": "a.fits"}, "photometri": {}}}, "clusters.ngc1", "photometri"),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "exptime": -3}}}},
     "clusters.ngc1.filters.F606W", ""),
    ({"ngc1": {"filters": {"F606W": {"image": "a.fits", "exptim": 3}}}},
     "clusters.ngc1.filters.F606W", ""),
    ({"ngc/1": {"filters": {"F606W": "a.fits"}}}, "clusters", "ngc/1"),
    ({"ngc1": {"filters": {"F606W-F814W": "a.fits"}}}, "clusters.ngc1.filters", "F606W-F814W"),
    ({"ngc1": {"filters": {}}}, "clusters.ngc1.filters", ""),
])
def test_bad_config_is_one_message_naming_the_key(clusters, key, words):
    with pytest.raises(ConfigError) as error:
        check_against_schema(with_clusters(clusters), SCHEMA)
    message = str(error.value)
    assert f"config key '{key}" in message
    assert words in message
    assert "\n" not in message


def test_unknown_top_level_key():
    config = copy.deepcopy(SHIPPED)
    config["photometri"] = {"fwhm": 2}
    with pytest.raises(ConfigError, match="photometri"):
        check_against_schema(config, SCHEMA)


def test_missing_frame_names_key_and_file(tmp_path):
    present = tmp_path / "f606w.fits"
    present.write_bytes(b"")
    config = with_clusters({"ngc1": {"filters": {"F606W": str(present),
                                                  "F814W": {"image": str(tmp_path / "nope.fits")}}}})
    clusters = configured_clusters(config)
    with pytest.raises(ConfigError, match=r"clusters.ngc1.filters.F814W.*nope.fits does not exist"):
        check_frames_exist(clusters, demo=False)


def test_mapping_form_overrides_and_per_cluster_photometry():
    config = with_clusters({
        "ngc1": {"filters": {"F814W": {"image": "x.fits", "exptime": 340, "zeropoint": 25.52,
                                       "pivot_wavelength": 8045}},
                 "photometry": {"fwhm": 2.7}},
        "ngc2": {"filters": {"F606W": "y.fits"}},
    })
    frames = configured_clusters(config)
    settings = frames["ngc1"]["F814W"].settings
    assert (settings.exptime, settings.zeropoint, settings.pivot_wavelength) == (340, 25.52, 8045)
    assert frames["ngc2"]["F606W"].settings.exptime is None
    assert photometry_parameters(config, "ngc1").fwhm == 2.7
    assert photometry_parameters(config, "ngc2").fwhm == SHIPPED["photometry"]["fwhm"]
    assert photometry_parameters(config, "ngc1").threshold == SHIPPED["photometry"]["threshold"]


def test_empty_clusters_means_the_demo():
    config = copy.deepcopy(SHIPPED)
    config["demo"]["clusters"] = {"d1": {"seed": 1}}
    frames = configured_clusters(config)
    assert list(frames) == ["d1"]
    assert list(frames["d1"]) == SHIPPED["demo"]["filters"]
    assert frames["d1"]["F606W"].image == "results/demo/d1/F606W.fits"


def test_colour_pairs_are_ordered_blue_to_red_and_unknown_filters_need_a_wavelength(tmp_path):
    from clusterphot.config import cluster_colour_pairs, cmd_band

    hst = with_clusters({"ngc1": {"filters": {"F814W": "a.fits", "F336W": "b.fits", "F606W": "c.fits"}}})
    frames = configured_clusters(hst)["ngc1"]
    assert cluster_colour_pairs(hst, frames) == [("F336W", "F606W"), ("F606W", "F814W")]
    assert cmd_band(hst, "F606W", "F814W") == "F606W" and cmd_band(hst, "F336W", "F606W") == "F606W"

    own = with_clusters({"m3": {"filters": {"V": {"image": "v.fits", "pivot_wavelength": 5500},
                                            "B": {"image": "b.fits", "pivot_wavelength": 4400},
                                            "I": {"image": str(tmp_path / "missing.fits")}}}})
    with pytest.raises(ConfigError, match=r"clusters.m3.filters.I.*pivot_wavelength"):
        cluster_colour_pairs(own, configured_clusters(own)["m3"])
    own["clusters"]["m3"]["filters"]["I"] = {"image": "i.fits", "pivot_wavelength": 8000}
    assert cluster_colour_pairs(own, configured_clusters(own)["m3"]) == [("B", "V"), ("V", "I")]


def test_rgb_channels_per_cluster_override_the_global_ones_and_bad_ones_name_the_key():
    frames = {"F606W": "a.fits", "F814W": "b.fits"}
    config = with_clusters({"ngc1": {"filters": frames,
                                     "rgb": {"channels": {"red": {"F814W": 1}, "green": {"F606W": 1, "F814W": 1},
                                                          "blue": {"F606W": 1}}}},
                            "ngc2": {"filters": frames}})
    check_against_schema(config, SCHEMA)
    clusters = configured_clusters(config)
    assert rgb_channel_weights(config, "ngc1", clusters["ngc1"])["green"] == {"F606W": 0.5, "F814W": 0.5}
    # ngc2 has no channels of its own and the global ones are null: from the pivot wavelengths
    assert rgb_channel_weights(config, "ngc2", clusters["ngc2"])["red"] == {"F814W": 1.0}
    config["rgb"]["channels"] = {"red": {"F850LP": 1}, "green": {"F606W": 1}, "blue": {"F606W": 1}}
    with pytest.raises(ConfigError, match=r"config key 'rgb.channels' for cluster ngc2: .*F850LP"):
        rgb_channel_weights(config, "ngc2", clusters["ngc2"])


def test_rgb_parameters_come_from_the_config():
    config = copy.deepcopy(SHIPPED)
    config["rgb"].update({"bit_depth": 16, "smooth_sigma": 1.0})
    config["rgb"]["lupton"]["Q"] = 3.0
    params = composite_parameters(config)
    assert (params.bit_depth, params.smooth_sigma, params.Q, params.percentile) == (16, 1.0, 3.0, 99.5)
    config["rgb"]["bit_depth"] = 12
    with pytest.raises(ConfigError, match="rgb.bit_depth"):
        check_against_schema(config, SCHEMA)


@pytest.mark.parametrize("example", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(example):
    config = {**SHIPPED, **yaml.safe_load(example.read_text())}
    check_against_schema(config, SCHEMA)
    assert configured_clusters(config)


def test_url_frames_are_kept_under_resources():
    config = yaml.safe_load((REPO / "config" / "examples" / "hugs_ngc6101.yaml").read_text())
    frames = configured_clusters({**SHIPPED, **config})["ngc6101"]
    assert {f: e.is_url for f, e in frames.items()} == {"F606W": True, "F814W": True}
    assert frames["F606W"].image.startswith("https://archive.stsci.edu/hlsps/hugs/ngc6101/hlsp_hugs_hst_acs-wfc_")
    assert frames["F606W"].local_image == "resources/frames/ngc6101/F606W.fits"
    check_frames_exist({"ngc6101": frames}, demo=False)  # URLs are checked when fetched, not here
