"""The command line measures one frame without the workflow, and fails in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from .synthetic import gaussian_stars, grid_of_stars, write_frame

CLUSTERPHOT = Path(sys.executable).with_name("clusterphot")


def test_measure_writes_a_calibrated_catalogue(tmp_path):
    rng = np.random.default_rng(11)
    x, y = grid_of_stars((200, 200), spacing=30, margin=20, rng=rng)
    image = gaussian_stars((200, 200), x, y, np.full(x.size, 2e4), 0.9, sky=30.0, read_noise=4.0, rng=rng)
    frame = write_frame(tmp_path / "frame.fits", image, exptime=50.0)
    output = tmp_path / "cat.ecsv"
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(frame), "--filter", "F606W", "-o", str(output),
                             "--fwhm", "2.1", "--zeropoint", "25.0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = Table.read(output)
    assert len(table) == x.size
    assert table.meta["zeropoint"] == {"value": 25.0, "system": "AB", "source": "config"}
    expected = 25.0 - 2.5 * np.log10(2e4 / 50.0)
    assert abs(np.median(table["mag"]) - expected) < 0.02
    assert f"{x.size} stars" in result.stdout


def test_a_missing_frame_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run([str(CLUSTERPHOT), "measure", str(tmp_path / "nope.fits"), "-f", "F606W",
                             "-o", str(tmp_path / "out.ecsv")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nope.fits: file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.ecsv").exists()
