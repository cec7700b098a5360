"""Figures: valid, non-blank PNGs written atomically, no figures left open, sensible crops."""

import astropy.units as u
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from clusterphot.plots import densest_region, magnitude_system, plot_detections, plot_luminosity_function


@pytest.fixture(autouse=True)
def no_figures_left_open():
    yield
    assert plt.get_fignums() == [], "a figure was left open"


def star_field(shape=(200, 200), n=12, seed=1):
    """Noise on a flat sky plus Gaussian stars (sigma 1.2 px); returns data, x, y."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    x = rng.uniform(20, nx - 20, n)
    y = rng.uniform(20, ny - 20, n)
    yy, xx = np.mgrid[0:ny, 0:nx]
    data = rng.normal(100.0, 3.0, shape)
    for xi, yi, amp in zip(x, y, rng.uniform(200, 2000, n)):
        data += amp * np.exp(-((xx - xi) ** 2 + (yy - yi) ** 2) / (2 * 1.2**2))
    return data.astype(np.float32), x, y


def read_png(path):
    """The image as an (ny, nx, channels) float array, after checking it is a sound PNG."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].var() > 0, "blank image"
    return image


def count_colour(image, rgb, tol=0.15):
    """Number of pixels within ``tol`` of a colour in every channel."""
    return int((np.abs(image[..., :3] - np.asarray(rgb)) < tol).all(axis=-1).sum())


RED, YELLOW = (1.0, 0.0, 0.0), (1.0, 1.0, 0.0)


def only_file(folder, name):
    assert sorted(p.name for p in folder.iterdir()) == [name], "temporary file left behind"


# --- detection maps --------------------------------------------------------------------------


def test_detection_map_draws_apertures_and_annuli(tmp_path):
    data, x, y = star_field()
    path = tmp_path / "detections.png"
    plot_detections(data, x, y, path, aperture_radius=3.0, annulus_radii=(6.0, 9.0), title="test",
                    crop_size=80)
    image = read_png(path)
    assert count_colour(image, RED) > 100  # overview markers and apertures
    # sky annuli in the crop, thin and translucent over the dark sky: yellowish
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    assert ((r > 0.35) & (np.abs(r - g) < 0.08) & (b < 0.6 * r)).sum() > 100
    only_file(tmp_path, "detections.png")


def test_detection_map_crop_shows_few_annuli_marks_flagged_stars_and_says_why_it_shrank(tmp_path):
    """Issue 14, item 4: of a crowded crop's stars only a dozen get their sky annulus drawn; a
    flagged star's aperture is orange and dashed; masked pixels have a legend entry; a crop
    smaller than configured says why."""
    from clusterphot.plots import ANNULI_SHOWN, annuli_subset, crop_box, crop_note, draw_crop

    assert len(annuli_subset(150)) == ANNULI_SHOWN and annuli_subset(5).tolist() == [0, 1, 2, 3, 4]
    data, x, y = star_field(n=400)
    flagged = np.zeros(len(x), bool)
    flagged[::7] = True
    bad = np.zeros(data.shape, bool)
    bad[:5] = True
    fig, ax = plt.subplots()
    try:
        x0, y0, width, height = crop_box(x, y, data.shape, 150, 60)
        draw_crop(ax, data, bad, x, y, x0, y0, width, height, 3.0, (6.0, 9.0), flagged)
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "masked or no data" in labels and "aperture of a flagged star" in labels
        annulus_label = [label for label in labels if label.startswith("sky annulus")][0]
        assert f"({ANNULI_SHOWN} of " in annulus_label
        assert "flagged" in ax.get_title()
    finally:
        plt.close(fig)
    assert width < 150 and "shrunk from the configured 150 px" in crop_note(width, height, 150, data.shape, 60)
    assert crop_note(150, 150, 150, data.shape, 60) == ""
    path = tmp_path / "crowded.png"
    plot_detections(data, x, y, path, 3.0, (6.0, 9.0), "crowded", bad=bad, crop_size=150, max_crop_stars=60,
                    flagged=flagged)
    image = read_png(path)
    orange = (image[..., 0] > 0.9) & (np.abs(image[..., 1] - 0.65) < 0.1) & (image[..., 2] < 0.2)
    assert orange.sum() > 20


def test_detection_map_without_stars_has_no_markers(tmp_path):
    data, _, _ = star_field(n=0)
    path = tmp_path / "empty.png"
    plot_detections(data, np.zeros(0), np.zeros(0), path, 3.0, (6.0, 9.0), "no stars")
    image = read_png(path)
    assert count_colour(image, RED) == 0
    assert count_colour(image, YELLOW) == 0


def test_detection_map_strided_with_mask_and_nan(tmp_path):
    data, x, y = star_field(shape=(150, 260))
    data[:, 100:104] = np.nan
    bad = np.zeros(data.shape, bool)
    bad[10:30, :] = True
    path = tmp_path / "strided.png"
    # max_pixels below the frame size forces a stride of 3; a crop larger than the frame is clipped.
    plot_detections(data, x, y, path, 3.0, (6.0, 9.0), "strided", bad=bad, max_pixels=100, crop_size=400)
    read_png(path)
    only_file(tmp_path, "strided.png")


def test_detection_map_replaces_existing_file(tmp_path):
    data, x, y = star_field()
    path = tmp_path / "detections.png"
    path.write_bytes(b"old")
    plot_detections(data, x, y, path, 3.0, (6.0, 9.0), "again")
    read_png(path)
    only_file(tmp_path, "detections.png")


def test_png_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "lf.png"
    path.write_bytes(b"previous")

    def half_write(self, target, **kwargs):
        assert str(target).endswith(".png")  # the format follows the temporary name's extension
        with open(target, "wb") as handle:
            handle.write(b"\x89PNG")
        raise OSError("disk full")

    monkeypatch.setattr(plt.Figure, "savefig", half_write)
    with pytest.raises(OSError, match="disk full"):
        plot_luminosity_function(catalogue([20.0, 21.0]), path, "NGC 104", "F606W")
    assert path.read_bytes() == b"previous"
    only_file(tmp_path, "lf.png")


def test_figure_closed_when_saving_fails(tmp_path):
    data, x, y = star_field()
    (tmp_path / "not_a_folder").write_text("")
    with pytest.raises(OSError):
        plot_detections(data, x, y, tmp_path / "not_a_folder" / "d.png", 3.0, (6.0, 9.0), "fails")
    # The autouse fixture checks that the figure was closed anyway.


# --- densest region ---------------------------------------------------------------------------


def test_densest_region_finds_planted_clump():
    rng = np.random.default_rng(3)
    shape, size = (400, 500), 60
    x = np.concatenate([rng.uniform(0, 500, 300), rng.uniform(300, 320, 100)])
    y = np.concatenate([rng.uniform(0, 400, 300), rng.uniform(100, 120, 100)])
    x0, y0 = densest_region(x, y, shape, size)
    assert x0 <= 300 and x0 + size >= 320
    assert y0 <= 100 and y0 + size >= 120


@pytest.mark.parametrize("corner", [(2, 2), (495, 2), (2, 395), (495, 395)])
def test_densest_region_stays_inside_at_edges(corner):
    rng = np.random.default_rng(4)
    shape, size = (400, 500), 60
    x = np.clip(corner[0] + rng.normal(0, 2, 50), 0, 499)
    y = np.clip(corner[1] + rng.normal(0, 2, 50), 0, 399)
    x0, y0 = densest_region(x, y, shape, size)
    assert 0 <= x0 <= shape[1] - size and 0 <= y0 <= shape[0] - size
    # The box still holds the clump.
    assert x0 <= corner[0] <= x0 + size and y0 <= corner[1] <= y0 + size


def test_densest_region_without_stars_is_centred():
    assert densest_region(np.zeros(0), np.zeros(0), (400, 500), 60) == (220, 170)


def test_densest_region_crop_larger_than_frame():
    assert densest_region(np.array([5.0]), np.array([5.0]), (40, 30), 100) == (0, 0)


# --- luminosity function ----------------------------------------------------------------------


def catalogue(mags, system="AB"):
    table = Table({"mag": np.asarray(mags, dtype=float)})
    table["mag"].unit = u.ABmag
    table.meta["magnitude_system"] = system
    return table


def test_luminosity_function(tmp_path):
    rng = np.random.default_rng(5)
    mags = rng.normal(22.0, 1.5, 300)
    mags[:20] = np.nan
    path = tmp_path / "lf.png"
    plot_luminosity_function(catalogue(mags), path, "NGC 104", "F606W")
    read_png(path)
    only_file(tmp_path, "lf.png")


def test_the_luminosity_functions_density_is_in_stars_per_bin_on_the_counts_axis(tmp_path):
    """One axis: the bars and the density curve in stars per bin, the curve's area over the bins
    the number of stars drawn; a detection with a 2-mag error 6 mag below the rest is counted in
    the legend, not drawn, and does not stretch the axis."""
    from clusterphot.plots import LF_BINWIDTH, draw_luminosity_function, stars_per_bin_density

    rng = np.random.default_rng(3)
    mags = np.r_[rng.normal(22.0, 1.0, 2000), rng.uniform(24.0, 26.0, 500)]
    grid = np.linspace(10.0, 40.0, 30001)
    area = np.trapezoid(stars_per_bin_density(mags, grid), grid) / LF_BINWIDTH
    assert area == pytest.approx(len(mags), rel=1e-3)
    # where the stars are flat (24-26 mag: 500 over 8 bins), the curve reads about as the bars do
    plateau = stars_per_bin_density(mags, np.array([24.75, 25.25]))
    assert np.all(np.abs(plateau / (500 / 8) - 1) < 0.25), plateau

    table = catalogue(np.r_[mags, 32.0])
    table["mag_err"] = np.r_[np.full(len(mags), 0.05), 2.0]
    path = tmp_path / "lf.png"
    plot_luminosity_function(table, path, "NGC 104", "F606W")
    read_png(path)
    fig, ax = plt.subplots()
    try:
        draw_luminosity_function(ax, mags, 0, n_poor=1)
        assert len(fig.axes) == 1  # no second axis
        curve = [line for line in ax.lines if line.get_color() == "tab:red"][0]
        x, y = curve.get_data()
        assert np.trapezoid(y, x) / LF_BINWIDTH == pytest.approx(len(mags), rel=0.01)  # drawn whole
        assert ax.get_xlim()[1] < 28.0
        assert any("with errors above" in text.get_text() for text in ax.get_legend().get_texts())
    finally:
        plt.close(fig)


@pytest.mark.parametrize("mags", [[], [np.nan, np.nan], [21.3], [21.3, 21.3, np.nan]])
def test_luminosity_function_with_few_stars(tmp_path, mags):
    path = tmp_path / "lf.png"
    plot_luminosity_function(catalogue(mags), path, "NGC 104", "F606W")
    read_png(path)


def test_luminosity_function_masked_column(tmp_path):
    table = Table({"mag": MaskedColumn([20.0, 21.0, 22.0, 23.0], mask=[False, True, False, False])})
    path = tmp_path / "lf.png"
    plot_luminosity_function(table, path, "NGC 104", "F814W")
    read_png(path)


def test_magnitude_system_from_meta_or_unit():
    table = catalogue([20.0], system="VEGA")
    assert magnitude_system(table) == "VEGA"
    del table.meta["magnitude_system"]
    assert magnitude_system(table) == "AB"  # from the unit mag(AB)
    table["mag"].unit = u.mag
    assert magnitude_system(table) == "instrumental"


# --- completeness --------------------------------------------------------------------------------


def artificial_stars(n=3000, seed=4, m_half=24.0):
    """Artificial stars recovered with Fleming et al.'s probability (plateau 0.95, alpha 2),
    their curve and fits as the workflow's completeness rule writes them."""
    from astropy.table import Table

    from clusterphot.artificial import ArtificialStarSettings, gather_artificial_stars
    from clusterphot.completeness import fleming

    rng = np.random.default_rng(seed)
    mag_in = rng.uniform(18.0, 27.0, n)
    recovered = rng.uniform(size=n) < fleming(mag_in, 0.95, 2.0, m_half)
    x, y = rng.normal(500, 150, n), rng.normal(500, 150, n)
    part = Table({"x": x * u.pix, "y": y * u.pix, "mag_in": mag_in * u.mag, "recovered": recovered,
                  "mag_out": np.where(recovered, mag_in + rng.normal(0.0, 0.03, n), np.nan) * u.mag,
                  "mag_err_out": np.full(n, 0.03) * u.mag, "x_out": x * u.pix, "y_out": y * u.pix,
                  "flags_out": np.where(recovered, 0, -1)}, meta={"job": 1, "photometry_method": "aperture"})
    cat_rng = np.random.default_rng(seed + 1)
    catalog = Table({"x": cat_rng.normal(500, 150, 800), "y": cat_rng.normal(500, 150, 800),
                     "flux": np.ones(800), "mag": cat_rng.uniform(17, 26, 800), "mag_err": np.full(800, 0.01),
                     "flags": np.zeros(800, int)},
                    meta={"shape": [1000, 1000], "parameters": {"fwhm": 2.0}, "magnitude_system": "AB"})
    return gather_artificial_stars([part], catalog, ArtificialStarSettings())


def test_completeness_plot_shows_the_zones_and_the_photometric_error(tmp_path):
    from clusterphot.plots import plot_completeness

    stars, curve = artificial_stars()
    assert curve.meta["m50"] == pytest.approx(24.0, abs=0.1)
    path = tmp_path / "completeness.png"
    plot_completeness(stars, curve, path, "NGC 104", "F606W")
    read_png(path)
    only_file(tmp_path, "completeness.png")
    # no artificial star recovered: still a figure, no fit
    stars["recovered"] = False
    stars["mag_out"] = np.nan
    empty_path = tmp_path / "none.png"
    plot_completeness(stars, curve, empty_path, "NGC 104", "F606W")
    read_png(empty_path)


def test_the_corrected_luminosity_function_divides_each_bin_by_the_fitted_completeness(tmp_path):
    """Stars of a flat luminosity function seen with the completeness of the artificial stars:
    corrected, the counts are flat again down to 50 per cent completeness, and not corrected
    below it."""
    from clusterphot.completeness import fleming
    from clusterphot.plots import corrected_counts, luminosity_function_bins

    _, curve = artificial_stars(n=20000)
    rng = np.random.default_rng(9)
    true_mag = rng.uniform(18.0, 26.5, 60000)
    seen = true_mag[rng.uniform(size=true_mag.size) < fleming(true_mag, 0.95, 2.0, 24.0)]
    edges = luminosity_function_bins(seen)
    corrected = corrected_counts(seen, edges, curve)
    centres = 0.5 * (edges[:-1] + edges[1:])
    flat = 60000 / 8.5 * 0.25  # stars per 0.25 mag bin before losing any
    inside = (centres > 18.2) & (centres < 26.3)
    assert np.isfinite(corrected[inside & (centres < 23.8)]).all()
    assert np.nanmedian(np.abs(corrected[inside] / flat - 1)) < 0.05
    assert np.isnan(corrected[centres > 24.3]).all()  # under 50 per cent: not corrected
    path = tmp_path / "lf.png"
    plot_luminosity_function(catalogue(seen), path, "NGC 104", "F606W", curve)
    read_png(path)


# --- colour-magnitude diagram ---------------------------------------------------------------


def test_cmd_error_bars_stand_inside_the_axes():
    """The column of typical errors: a faint bin's colour error of 0.8 mag and the brightest
    bin's magnitude error both inside the limits (they had run off the left and top edges)."""
    from clusterphot.plots import cmd_error_bars

    centres = np.array([16.5, 18.5, 20.5, 22.5])
    c_err, m_err = np.array([0.01, 0.03, 0.2, 0.8]), np.array([0.6, 0.02, 0.1, 0.4])
    x, (x_lo, x_hi), (y_lo, y_hi) = cmd_error_bars(centres, c_err, m_err, 0.2, 1.6, 16.2, 22.8)
    assert np.all(x - c_err > x_lo) and np.all(x + c_err < x_hi)
    assert np.all(centres - m_err > y_lo) and np.all(centres + m_err < y_hi)
    assert (x_lo, x_hi, y_lo, y_hi) != (0.2, 1.6, 16.2, 22.8)  # the axes grew to hold them


def test_cmd_title_says_what_each_cut_kept(tmp_path):
    from clusterphot.plots import cuts_title, plot_cmd
    from clusterphot.quality import QualityCuts, cuts_kept

    n = 10
    table = Table({"colour": np.full(n, 0.5), "colour_err": np.full(n, 0.02)})
    for band in ("B", "R"):
        table[f"mag_{band}"] = np.linspace(18.0, 22.0, n)
        table[f"mag_err_{band}"] = np.full(n, 0.05)
        table[f"sharpness_{band}"] = np.full(n, 0.6)
        table[f"flags_{band}"] = np.zeros(n, int)
    table["mag_err_B"][:3] = 0.3  # three too uncertain in B
    table["sharpness_R"][3] = 1.5  # one too sharp in R
    table["flags_B"][4] = 1  # one saturated
    kept = cuts_kept(table, "B", "R", QualityCuts())
    assert kept == [("matched", 10), ("mag_err <= 0.1", 7), ("sharpness 0.2-1", 6), ("unflagged", 5)]
    assert cuts_title(kept).startswith("5 of 10 matched stars")
    path = tmp_path / "cmd.png"
    passes = QualityCuts().passes(table, "_B") & QualityCuts().passes(table, "_R")
    plot_cmd(table["colour"][passes], table["mag_R"][passes], table["colour_err"][passes], table["mag_err_R"][passes],
             path, "NGC 104", "B", "R", "R", "AB", kept=kept)
    read_png(path)
