"""Colour composites: channels from pivot wavelengths, registration, orientation, channel order.

The PNGs are read back with Pillow, not OpenCV, so a red/blue swap in the writer cannot be
undone by the same library's reader.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from clusterphot.channels import channel_weights, default_channel_weights
from clusterphot.composite import (
    CompositeOutputs,
    CompositeParameters,
    FrameInput,
    build_channels,
    make_composites,
    resample_onto_reference,
)
from clusterphot.filters import pivot_wavelength
from clusterphot.registration import Transform

from .helpers import at_fits_position, channel_centroids, pillow_rgb
from .synthetic import field_frames, gaussian_stars

HUGS = ["F275W", "F336W", "F438W", "F606W", "F814W"]


def pivots(filters):
    return {f: pivot_wavelength(f) for f in filters}


def rotation_shift(degrees: float, dx: float, dy: float) -> Transform:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return Transform([[c, -s], [s, c]], [dx, dy], method="known")


# --- channel weights --------------------------------------------------------------------------


def test_default_weights_send_reddest_to_red_and_bluest_to_blue():
    weights = default_channel_weights(pivots(reversed(HUGS)))  # order of the config must not matter
    assert set(weights["red"]) == {"F606W", "F814W"} and weights["red"]["F814W"] > weights["red"]["F606W"]
    assert set(weights["blue"]) == {"F275W", "F336W"} and weights["blue"]["F275W"] > weights["blue"]["F336W"]
    assert set(weights["green"]) == {"F336W", "F438W", "F606W"}
    assert max(weights["green"], key=weights["green"].get) == "F438W"
    for channel in weights.values():
        assert sum(channel.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(("filters", "expected"), [
    (["F336W", "F555W", "F814W"], {"red": {"F814W": 1.0}, "green": {"F555W": 1.0}, "blue": {"F336W": 1.0}}),
    (["F814W", "F336W"], {"red": {"F814W": 1.0}, "green": {"F336W": 0.5, "F814W": 0.5}, "blue": {"F336W": 1.0}}),
    (["F606W"], {"red": {"F606W": 1.0}, "green": {"F606W": 1.0}, "blue": {"F606W": 1.0}}),
])
def test_default_weights_for_fewer_filters(filters, expected):
    weights = default_channel_weights(pivots(filters))
    assert weights.keys() == expected.keys()
    for channel, filter_weights in expected.items():
        assert weights[channel] == pytest.approx(filter_weights)


def test_configured_weights_become_weighted_means():
    configured = {"red": {"F814W": 7, "F606W": 3}, "green": {"F606W": 1}, "blue": {"F438W": 2, "F336W": 1, "F275W": 1}}
    weights = channel_weights(pivots(HUGS), configured)
    assert weights["red"] == pytest.approx({"F814W": 0.7, "F606W": 0.3})
    assert weights["blue"] == pytest.approx({"F438W": 0.5, "F336W": 0.25, "F275W": 0.25})


@pytest.mark.parametrize(("configured", "message"), [
    ({"red": {"F999W": 1}, "green": {"F606W": 1}, "blue": {"F275W": 1}}, r"channel 'red': filter\(s\) F999W"),
    ({"red": {"F814W": 1}, "green": {"F606W": 0}, "blue": {"F275W": 1}}, "channel 'green'"),
    ({"red": {"F814W": 1}, "green": {"F606W": 1}, "blue": {"F275W": -1, "F336W": 2}}, "negative"),
])
def test_bad_configured_weights_name_the_channel(configured, message):
    with pytest.raises(ValueError, match=message):
        channel_weights(pivots(HUGS), configured)


# --- resampling -------------------------------------------------------------------------------


def test_resampling_puts_a_star_where_the_transform_says():
    shape = (90, 120)
    x0, y0 = 40.3, 50.6
    frame = gaussian_stars(shape, [x0], [y0], [1000.0], sigma=1.5)
    transform = rotation_shift(0.7, 6.4, -3.2)
    out = resample_onto_reference(frame, transform, (80, 130))
    assert out.shape == (80, 130) and out.dtype == np.float32
    expected_x, expected_y = transform.apply(x0, y0)
    yy, xx = np.mgrid[:80, :130]
    near = np.hypot(xx - expected_x, yy - expected_y) < 6
    weights = np.where(near, np.nan_to_num(out), 0.0)
    assert np.sum(weights * xx) / weights.sum() == pytest.approx(expected_x, abs=0.05)
    assert np.sum(weights * yy) / weights.sum() == pytest.approx(expected_y, abs=0.05)
    # The reference pixels the frame does not cover hold no data.
    assert np.isnan(out[:, -3:]).all() and np.isfinite(out[10:70, 20:100]).all()


# --- whole composites from FITS frames ----------------------------------------------------------

SHAPE = (100, 140)  # not square: a transposed image would not fit
RED_ONLY = (30.0, 70.0)  # (x, y) on the reference frame, 0-based
BLUE_ONLY = (105.0, 22.0)


def write_filter_frames(folder, filters, transforms, own_sources, rng_seed=3, common=True):
    paths, xs, ys = field_frames(folder, filters, transforms, own_sources, SHAPE, seed=rng_seed,
                                 clear=(RED_ONLY, BLUE_ONLY), common=common)
    return [FrameInput(f, path) for f, path in paths.items()], xs, ys


def outputs(tmp_path, tag=""):
    return CompositeOutputs(*(tmp_path / f"{tag}{kind}.png" for kind in ("lupton", "weighted", "lp", "wp")))


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_single_filter_sources_have_their_filters_colour_where_a_fits_viewer_shows_them(tmp_path, bit_depth):
    filters = ["F336W", "F606W", "F814W"]
    transforms = {"F606W": Transform.identity(), "F336W": rotation_shift(0.4, 2.4, -1.7),
                  "F814W": rotation_shift(-0.3, -1.2, 0.8)}
    frames, _, _ = write_filter_frames(tmp_path, filters, transforms, {"F814W": [RED_ONLY], "F336W": [BLUE_ONLY]})
    out = outputs(tmp_path)
    params = CompositeParameters(bit_depth=bit_depth, preview_size=70)
    provenance = make_composites(frames, transforms, "F606W", channel_weights(pivots(filters)), params, out)

    assert provenance["shape"] == list(SHAPE)
    for path in (out.lupton, out.weighted):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert raw.shape == (*SHAPE, 3) and raw.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
        image = pillow_rgb(path)
        r, g, b = at_fits_position(image, *RED_ONLY)
        assert r > 100 and r > 3 * g and r > 3 * b, (path.name, r, g, b)
        r, g, b = at_fits_position(image, *BLUE_ONLY)
        assert b > 100 and b > 3 * r and b > 3 * g, (path.name, r, g, b)
        # Mirrored (origin at the top, as numpy prints it) there is only sky.
        assert at_fits_position(image[::-1], *RED_ONLY).max() < 60
    # The previews are 8-bit, shrunk to preview_size, and keep the colours in place.
    for path in (out.lupton_preview, out.weighted_preview):
        small = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert small.shape == (50, 70, 3) and small.dtype == np.uint8
        r, g, b = at_fits_position(pillow_rgb(path), RED_ONLY[0] / 2, RED_ONLY[1] / 2)
        assert r > 2 * max(g, b), (path.name, r, g, b)


def fringe_offsets(folder, transforms_used):
    """Largest red-blue centroid offset (px) of isolated stars in a two-filter weighted composite."""
    filters = ["F336W", "F814W"]
    true = {"F814W": Transform.identity(), "F336W": rotation_shift(0.3, 2.6, -1.3)}
    frames, xs, ys = write_filter_frames(folder, filters, true, {}, rng_seed=5)
    out = outputs(folder)
    make_composites(frames, transforms_used, "F814W", channel_weights(pivots(filters)),
                    CompositeParameters(percentile=99.9), out)
    image = pillow_rgb(out.weighted)
    offsets = []
    for k, (x, y) in enumerate(zip(xs, ys)):
        others = np.hypot(xs - x, ys - y)
        others[k] = np.inf
        if others.min() < 10 or not (8 < x < SHAPE[1] - 8 and 8 < y < SHAPE[0] - 8):
            continue
        red, _, blue = channel_centroids(image, x, y)
        offsets.append(np.hypot(*(red - blue)))
    assert len(offsets) >= 5
    return max(offsets)


def test_registered_frames_show_no_colour_fringes(tmp_path):
    true = {"F814W": Transform.identity(), "F336W": rotation_shift(0.3, 2.6, -1.3)}
    registered = fringe_offsets(tmp_path / "registered", true)
    unregistered = fringe_offsets(tmp_path / "unregistered", {f: Transform.identity() for f in true})
    assert registered < 0.15
    assert unregistered > 1.0  # the same measure sees the fringes of unregistered frames


def test_smoothing_stays_in_the_image_plane(tmp_path):
    filters = ["F336W", "F606W", "F814W"]
    identity = {f: Transform.identity() for f in filters}
    frames, _, _ = write_filter_frames(tmp_path, filters, identity, {"F814W": [RED_ONLY]}, common=False)
    weights = channel_weights(pivots(filters))  # red = F814W, green = F606W, blue = F336W
    sharp, _, _, _ = build_channels(frames, identity, "F606W", weights, CompositeParameters())
    smooth, _, _, _ = build_channels(frames, identity, "F606W", weights, CompositeParameters(smooth_sigma=2.0))
    for k in range(3):  # each channel smoothed on its own, in two dimensions
        assert np.allclose(smooth[k], ndimage.gaussian_filter(sharp[k], 2.0), atol=1e-4)
    x, y = int(RED_ONLY[0]), int(RED_ONLY[1])
    # The red source spreads over the image but none of it leaks into green or blue
    # (the tutorial's blur across the colour axis would put ~20 % of it there).
    assert smooth[0][y, x] < 0.5 * sharp[0][y, x]
    assert max(abs(smooth[1][y, x]), abs(smooth[2][y, x])) < 0.01 * sharp[0][y, x]


# --- partial coverage and the previews' annotations ---------------------------------------------


def test_sky_not_covered_by_every_filter_is_grey_not_one_filters_colour(tmp_path):
    """F814W shifted 40 px against the reference: the strip only F336W and F606W cover holds
    their stars, which would be cyan; it is grey (R = G = B), in both composites, while the
    covered sky keeps its colours (issue 14, item 3)."""
    filters = ["F336W", "F606W", "F814W"]
    transforms = {"F606W": Transform.identity(), "F336W": Transform.identity(),
                  "F814W": rotation_shift(0.0, 40.0, 0.0)}
    frames, _, _ = write_filter_frames(tmp_path, filters, transforms, {"F814W": [RED_ONLY], "F336W": [BLUE_ONLY]})
    weights = channel_weights(pivots(filters))
    _, _, covered, _ = build_channels(frames, transforms, "F606W", weights, CompositeParameters())
    assert 30 <= (~covered).any(axis=0).sum() <= 45 and covered.mean() > 0.6  # a strip, not holes
    out = outputs(tmp_path)
    make_composites(frames, transforms, "F606W", weights, CompositeParameters(), out)
    uncovered = ~covered[::-1]  # the PNG's top row is the frame's last
    for path in (out.lupton, out.weighted):
        image = pillow_rgb(path)
        partial = image[uncovered]
        assert partial.max() > 50  # stars there, seen in two filters
        assert np.abs(partial - partial.mean(axis=1, keepdims=True)).max() <= 1.0, path.name
        r, g, b = at_fits_position(image, *BLUE_ONLY)  # covered by all: blue stays blue
        assert b > 3 * r, (path.name, r, g, b)


def tan_wcs(rotation_degrees: float, scale_arcsec: float = 0.05):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [15.8, -55.2]
    wcs.wcs.crpix = [200.0, 150.0]
    angle = math.radians(rotation_degrees)
    s = scale_arcsec / 3600.0
    # east to the left (RA grows to the left) and north up, turned by the angle
    wcs.wcs.cd = [[-s * math.cos(angle), s * math.sin(angle)], [s * math.sin(angle), s * math.cos(angle)]]
    return wcs


@pytest.mark.parametrize("rotation", [0.0, 30.0])
def test_north_and_east_and_the_pixel_scale_come_from_the_wcs(rotation):
    from clusterphot.composite import north_east, scale_bar_arcsec

    north, east, arcsec = north_east(tan_wcs(rotation), 200.0, 150.0)
    angle = math.radians(rotation)
    np.testing.assert_allclose(north, [math.sin(angle), math.cos(angle)], atol=1e-3)
    np.testing.assert_allclose(east, [-math.cos(angle), math.sin(angle)], atol=1e-3)
    assert arcsec == pytest.approx(0.05, rel=1e-3)
    assert scale_bar_arcsec(0.05, 1200) == 10  # 200 px of the 240 a fifth allows
    assert scale_bar_arcsec(0.05 * 8, 1200) == 60


def test_previews_carry_a_legend_and_with_a_wcs_a_scale_bar_and_compass():
    from clusterphot.composite import annotated, channel_legend

    legend = channel_legend({"red": {"F814W": 1.0}, "green": {"F606W": 1.0}, "blue": {"F275W": 0.5, "F336W": 0.5}})
    assert [text for text, _ in legend] == ["R  F814W", "G  F606W", "B  F275W + F336W"]
    black = np.zeros((600, 800, 3), np.uint8)
    bare = annotated(black, legend, None, 0.1, (6000, 8000))
    assert not black.any()  # drawn on a copy
    lower_left, lower_right, upper_right = bare[450:, :300], bare[540:, 500:], bare[:200, 600:]
    assert lower_left[..., 2].max() > 200 and not lower_right.any() and not upper_right.any()
    full = annotated(black, legend, tan_wcs(0.0), 0.1, (6000, 8000))
    assert (full[540:, 500:] == 255).all(axis=-1).any() and (full[:200, 600:] == 255).all(axis=-1).any()
    assert np.array_equal(annotated(black[:100, :150], legend, tan_wcs(0.0), 0.1, (1000, 1500)), black[:100, :150])
