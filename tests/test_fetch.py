"""Frames by URL, served from 127.0.0.1: fetched once, checked, kept; failures name the URL."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from astropy.table import Table

from clusterphot.fetch import FetchError, fetch_frame

from .conftest import local_http_server
from .synthetic import gaussian_stars, grid_of_stars, write_frame
from .helpers import SPARSE, snakemake

DEAD_URL = "http://127.0.0.1:9/hlsp_hugs_hst_acs-wfc_ngc0000_f606w_v1_stack-0370s.fits"  # nothing listens on port 9


class FrameServer(BaseHTTPRequestHandler):
    """Serves ``files`` (path -> bytes); /short.fits promises more bytes than it sends."""

    files: dict[str, bytes] = {}
    requests_seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.requests_seen.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        length = len(body) + (1000 if self.path == "/short.fits" else 0)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def frame_server(tmp_path):
    rng = np.random.default_rng(4)
    x, y = grid_of_stars((120, 120), spacing=25, margin=15, rng=rng)
    data = gaussian_stars((120, 120), x, y, rng.uniform(3e4, 1e5, x.size), sigma=1.2, sky=30.0, read_noise=4.0,
                          rng=rng)
    frame = write_frame(tmp_path / "served.fits", data).read_bytes()
    FrameServer.files = {"/hugs/f606w.fits": frame, "/page.fits": b"<html>Maintenance</html>",
                         "/short.fits": frame[:5000]}
    FrameServer.requests_seen = []
    with local_http_server(FrameServer) as base:
        yield base, frame


def test_a_frame_is_fetched_whole(tmp_path, frame_server):
    base, frame = frame_server
    path = fetch_frame(f"{base}/hugs/f606w.fits", tmp_path / "kept" / "F606W.fits")
    assert path.read_bytes() == frame


@pytest.mark.parametrize(("url_path", "message"), [
    ("/missing.fits", "HTTP 404 Not Found"),
    ("/page.fits", "the answer is not a FITS file (it starts with b'<html>"),
    ("/short.fits", "no complete answer after 2 attempts"),
])
def test_a_bad_answer_names_the_url_and_leaves_nothing(tmp_path, frame_server, url_path, message):
    base, _ = frame_server
    with pytest.raises(FetchError) as error:
        fetch_frame(f"{base}{url_path}", tmp_path / "kept" / "F606W.fits", attempts=2, wait=0)
    assert str(error.value).startswith(f"{base}{url_path}: ") and message in str(error.value)
    assert list((tmp_path / "kept").iterdir()) == []  # not even a partial download


def test_an_unreachable_server_names_the_url(tmp_path):
    with pytest.raises(FetchError, match=f"{DEAD_URL}: no complete answer after 2 attempts"):
        fetch_frame(DEAD_URL, tmp_path / "F606W.fits", attempts=2, wait=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.workflow
def test_workflow_fetches_a_url_frame_once_and_keeps_it(tmp_path, frame_server):
    base, frame = frame_server
    url = f"{base}/hugs/f606w.fits"
    config = {"clusters": {"ngc0000": {"filters": {"F606W": url}}}, **SPARSE}
    target = "results/catalogs/ngc0000/F606W.ecsv"
    result = snakemake(tmp_path, config, target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "resources/frames/ngc0000/F606W.fits").read_bytes() == frame
    catalog = Table.read(tmp_path / target)
    assert catalog.meta["image_url"] == url and len(catalog) > 10
    # A changed photometry parameter remeasures the kept frame; nothing is fetched again.
    again = snakemake(tmp_path, {**config, "photometry": {**SPARSE["photometry"], "threshold": 6.0}}, target)
    assert again.returncode == 0, again.stderr[-3000:]
    assert FrameServer.requests_seen == ["/hugs/f606w.fits"]


@pytest.mark.workflow
def test_workflow_stops_on_an_unreachable_url_naming_it(tmp_path):
    config = {"clusters": {"ngc0000": {"filters": {"F606W": DEAD_URL}}}}
    result = snakemake(tmp_path, config)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("clusterphot: error: ")]
    assert len(lines) == 1 and lines[0].startswith(f"clusterphot: error: {DEAD_URL}: no complete answer"), lines
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "resources/frames/ngc0000/F606W.fits").exists()
    assert not (tmp_path / "results/catalogs").exists()
