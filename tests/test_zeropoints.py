"""Zero points: AB/ST from PHOTFLAM/PHOTPLAM, ACS VEGA from the service or its cache, precedence."""

from __future__ import annotations

import csv
import json
import math
from http.server import BaseHTTPRequestHandler

import pytest

from clusterphot.zeropoints import (
    INSTRUMENTAL_ZEROPOINT,
    ZeropointError,
    ab_zeropoint,
    acs_cache_path,
    resolve_zeropoint,
    st_zeropoint,
    uvis_chip_photflam,
)

from .conftest import local_http_server, shared_path


def published_acs_table() -> list[dict]:
    path = shared_path("reference", "acs_wfc_zeropoints_2016-04-01.tsv")
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [{k: (v if k == "filter" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(lines, delimiter="\t")]


def test_ab_and_st_reproduce_the_published_acs_table():
    rows = published_acs_table()
    assert len(rows) >= 10
    for row in rows:
        assert ab_zeropoint(row["PHOTFLAM"], row["PHOTPLAM"]) == pytest.approx(row["ABmag"], abs=0.001), row["filter"]
        assert st_zeropoint(row["PHOTFLAM"]) == pytest.approx(row["STmag"], abs=0.001), row["filter"]


def test_resolve_from_header_keywords_records_the_source():
    zp = resolve_zeropoint("AB", photflam=7.8774e-20, photplam=5921.9, filter_name="F606W")
    assert zp.system == "AB"
    assert zp.value == pytest.approx(26.489, abs=0.001)
    assert "PHOTFLAM" in zp.source
    st = resolve_zeropoint("ST", photflam=7.8774e-20, filter_name="F606W")
    assert st.value == pytest.approx(26.659, abs=0.001)


def test_config_zeropoint_wins_over_the_header():
    zp = resolve_zeropoint("AB", override=25.52, photflam=7.8774e-20, photplam=5921.9)
    assert (zp.value, zp.source) == (25.52, "config")


@pytest.mark.parametrize(("system", "photflam", "photplam", "missing"), [
    ("AB", None, 5921.9, "PHOTFLAM"), ("AB", 7.8774e-20, None, "PHOTPLAM"), ("AB", 0.0, None, "PHOTFLAM or PHOTPLAM"),
    ("ST", None, 5921.9, "PHOTFLAM"),
])
def test_missing_photflam_stops_and_names_the_keyword(system, photflam, photplam, missing):
    with pytest.raises(ZeropointError, match=f"no {system} zero point for F606W: the header has no positive {missing};"):
        resolve_zeropoint(system, photflam=photflam, photplam=photplam, filter_name="F606W")


def test_instrumental_magnitudes_only_when_asked_for():
    zp = resolve_zeropoint("instrumental", photflam=None, photplam=None, filter_name="F606W")
    assert (zp.value, zp.system) == (INSTRUMENTAL_ZEROPOINT, "instrumental")
    assert resolve_zeropoint("ST", photflam=7.8774e-20).system == "ST"  # ST needs no PHOTPLAM


class FakeAcsService(BaseHTTPRequestHandler):
    """Answers like the ACS zero-point calculator's API, from the published table."""

    rows: list = []
    requests_seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests_seen.append(body)
        answer = json.dumps({"rows": [["WFC", r["filter"], r["PHOTPLAM"], r["PHOTFLAM"], r["STmag"],
                                       r["VEGAmag"], r["ABmag"]] for r in self.rows]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def acs_service():
    FakeAcsService.rows = published_acs_table()
    FakeAcsService.requests_seen = []
    with local_http_server(FakeAcsService) as base:
        yield f"{base}/single-filter-resource", FakeAcsService


def test_acs_vega_from_the_service_then_from_the_cache_offline(tmp_path, acs_service):
    url, service = acs_service
    expected = {r["filter"]: r["VEGAmag"] for r in published_acs_table()}
    kwargs = dict(instrument="ACS", detector="WFC", date="2016-04-01", cache_dir=tmp_path)
    zp = resolve_zeropoint("VEGA", filter_name="F814W", service_url=url, **kwargs)
    assert zp.system == "VEGA"
    assert zp.value == pytest.approx(expected["F814W"], abs=0.001)
    assert service.requests_seen == [{"date": "2016-04-01", "detector": "WFC"}]
    assert acs_cache_path(tmp_path, "WFC", "2016-04-01").exists()
    # Offline now (no server answers at this URL): the cache serves every filter of that date.
    dead_url = "http://127.0.0.1:9/none"
    zp2 = resolve_zeropoint("VEGA", filter_name="F606W", service_url=dead_url, **kwargs)
    assert zp2.value == pytest.approx(expected["F606W"], abs=0.001)
    assert "cached" in zp2.source
    assert len(service.requests_seen) == 1


def test_acs_vega_without_service_or_cache_stops_and_says_why(tmp_path):
    with pytest.raises(ZeropointError, match="service did not answer for WFC on 2016-04-01"):
        resolve_zeropoint("VEGA", filter_name="F606W", instrument="ACS", detector="WFC",
                          date="2016-04-01", cache_dir=tmp_path, service_url="http://127.0.0.1:9/none")
    assert not any(tmp_path.iterdir())  # nothing half-cached


def test_vega_for_a_non_acs_frame_needs_a_config_zeropoint(tmp_path):
    with pytest.raises(ZeropointError, match="only for ACS, and this frame is WFC3.*set 'zeropoint'"):
        resolve_zeropoint("VEGA", filter_name="F336W", instrument="WFC3", detector="UVIS",
                          date="2016-04-01", cache_dir=tmp_path, photflam=1.3e-18, photplam=3355.0)
    assert resolve_zeropoint("VEGA", override=23.46, instrument="WFC3").value == 23.46


def test_unknown_system_is_refused():
    with pytest.raises(ValueError, match="magnitude system"):
        resolve_zeropoint("JOHNSON", photflam=1e-19, photplam=5000.0)


@pytest.mark.parametrize("system", ["AB", "ST"])
def test_an_acs_frame_without_photflam_gets_ab_and_st_from_the_calculator(tmp_path, acs_service, system):
    """A HUGS stack carries no PHOTFLAM: its ACS AB and ST zero points come from the calculator's
    table, cached for reruns offline, and the provenance says so."""
    url, service = acs_service
    expected = {r["filter"]: r[f"{system}mag"] for r in published_acs_table()}
    kwargs = dict(instrument="ACS", detector="WFC", date="2016-04-01", cache_dir=tmp_path)
    zp = resolve_zeropoint(system, filter_name="F606W", service_url=url, **kwargs)
    assert (zp.system, zp.value) == (system, pytest.approx(expected["F606W"], abs=0.001))
    assert "acstools.acszpt" in zp.source and len(service.requests_seen) == 1
    offline = resolve_zeropoint(system, filter_name="F814W", service_url="http://127.0.0.1:9/none", **kwargs)
    assert offline.value == pytest.approx(expected["F814W"], abs=0.001) and "cached" in offline.source
    # a PHOTFLAM in the header still comes first
    assert resolve_zeropoint(system, filter_name="F606W", photflam=7.8774e-20, photplam=5921.9,
                             service_url=url, **kwargs).source.startswith("PHOTFLAM")


def test_an_acs_frame_without_photflam_or_an_answer_says_both(tmp_path):
    with pytest.raises(ZeropointError, match="no positive PHOTFLAM, and the ACS zero-point service did not answer"):
        resolve_zeropoint("ST", filter_name="F606W", instrument="ACS", detector="WFC", date="2016-04-01",
                          cache_dir=tmp_path, service_url="http://127.0.0.1:9/none")


@pytest.mark.parametrize(("fluxcorr", "ccdchip", "expected", "label"), [
    ("COMPLETE", 2, 1.0e-18, "PHOTFLAM (FLUXCORR COMPLETE"),  # UVIS2 already scaled to UVIS1
    ("OMIT", 2, 1.2e-18, "PHTFLAM2 (UVIS2, FLUXCORR OMIT)"),
    ("OMIT", 1, 1.0e-18, "PHTFLAM1 (UVIS1, FLUXCORR OMIT)"),
    ("OMIT", None, 1.0e-18, "no CCDCHIP"),
])
def test_a_wfc3_uvis_chip_takes_its_own_inverse_sensitivity_unless_fluxcorr_normalised_it(fluxcorr, ccdchip,
                                                                                          expected, label):
    photflam, source = uvis_chip_photflam("WFC3", "UVIS", 1.0e-18, 1.0e-18, 1.2e-18, fluxcorr, ccdchip)
    assert photflam == expected and label in source
    zp = resolve_zeropoint("ST", photflam=photflam, photflam_label=source, filter_name="F336W")
    assert zp.value == pytest.approx(st_zeropoint(expected), abs=1e-4) and zp.source == f"{source} (header)"
    # other instruments (ACS, WFPC2, IR) keep PHOTFLAM
    assert uvis_chip_photflam("ACS", "WFC", 7.9e-20, None, None, None, 2) == (7.9e-20, "PHOTFLAM")
    assert uvis_chip_photflam("WFC3", "IR", 1.5e-20, 1.0e-18, 1.2e-18, "OMIT", 2) == (1.5e-20, "PHOTFLAM")


def test_a_uvis_flc_chip_measured_gets_its_chips_zero_point_in_the_catalogue(tmp_path):
    """An flc-like file of two chips (SCI,1 is UVIS2), reprocessed with FLUXCORR omitted: the
    catalogue of its first chip is on PHTFLAM2's AB scale, and its metadata says so."""
    import numpy as np
    from astropy.io import fits

    from clusterphot.catalog import catalog_for_frame
    from clusterphot.config import FrameSettings
    from clusterphot.photometry import PhotometryParameters

    from .synthetic import gaussian_stars

    rng = np.random.default_rng(2)
    primary = fits.PrimaryHDU()
    primary.header.update({"INSTRUME": "WFC3", "DETECTOR": "UVIS", "FILTER": "F336W", "EXPTIME": 600.0,
                           "DATE-OBS": "2016-04-01", "FLUXCORR": "OMIT"})
    chips = []
    for extver, ccdchip in ((1, 2), (2, 1)):
        x, y = rng.uniform(20, 180, 40), rng.uniform(20, 180, 40)
        data = gaussian_stars((200, 200), x, y, np.full(40, 2e4), sigma=1.0, sky=30.0, read_noise=3.0, rng=rng)
        sci = fits.ImageHDU(data, name="SCI", ver=extver)
        sci.header.update({"BUNIT": "ELECTRONS", "CCDCHIP": ccdchip, "PHOTFLAM": 1.3e-18, "PHTFLAM1": 1.3e-18,
                           "PHTFLAM2": 1.6e-18, "PHOTPLAM": 3355.0})
        chips.append(sci)
    path = tmp_path / "ib_flc.fits"
    fits.HDUList([primary, *chips]).writeto(path)
    uvis2 = catalog_for_frame(path, FrameSettings("F336W", hdu=1), PhotometryParameters(fwhm=2.2))
    uvis1 = catalog_for_frame(path, FrameSettings("F336W", hdu=2), PhotometryParameters(fwhm=2.2))
    assert uvis2.meta["zeropoint"]["source"].startswith("PHTFLAM2 (UVIS2, FLUXCORR OMIT)")
    assert uvis2.meta["zeropoint"]["value"] == pytest.approx(ab_zeropoint(1.6e-18, 3355.0), abs=1e-4)
    assert uvis1.meta["zeropoint"]["value"] == pytest.approx(ab_zeropoint(1.3e-18, 3355.0), abs=1e-4)


def test_a_date_obs_with_a_time_of_day_is_looked_up_by_its_date(tmp_path, acs_service):
    """HUGS stacks write DATE-OBS with a time of day: the calculator is asked for the date."""
    url, service = acs_service
    zp = resolve_zeropoint("VEGA", filter_name="F606W", instrument="ACS", detector="WFC",
                           date="2016-04-01T04:41:12.5", cache_dir=tmp_path, service_url=url)
    assert service.requests_seen == [{"date": "2016-04-01", "detector": "WFC"}]
    assert zp.value == pytest.approx({r["filter"]: r["VEGAmag"] for r in published_acs_table()}["F606W"], abs=0.001)
    with pytest.raises(ZeropointError, match=r"no DATE-OBS \(YYYY-MM-DD\)"):
        resolve_zeropoint("VEGA", filter_name="F606W", instrument="ACS", detector="WFC", date="21/05/96",
                          cache_dir=tmp_path, service_url=url)


@pytest.mark.parametrize("system", ["AB", "VEGA"])
def test_the_calculators_zero_point_is_moved_to_a_frame_in_counts(tmp_path, acs_service, system):
    """The calculator's zero points are for electrons per second: a frame in counts at a gain of
    2 e-/count sees each star 2.5 log10(2) mag fainter per count, and the provenance says so."""
    url, _ = acs_service
    kwargs = dict(instrument="ACS", detector="WFC", date="2016-04-01", cache_dir=tmp_path, service_url=url,
                  filter_name="F606W")
    electrons = resolve_zeropoint(system, **kwargs)
    counts = resolve_zeropoint(system, electrons_per_count=2.0, **kwargs)
    assert counts.value == pytest.approx(electrons.value - 2.5 * math.log10(2.0))
    assert "for counts at 2 e-/count" in counts.source
    # ACS's PHOTFLAM is per electron too; WFPC2's is per count
    if system == "AB":
        header = resolve_zeropoint(system, photflam=7.8774e-20, photplam=5921.9, electrons_per_count=2.0, **kwargs)
        assert header.value == pytest.approx(ab_zeropoint(7.8774e-20, 5921.9) - 2.5 * math.log10(2.0), abs=1e-4)
        wfpc2 = resolve_zeropoint(system, photflam=7.8774e-20, photplam=5921.9, electrons_per_count=7.0,
                                  **{**kwargs, "instrument": "WFPC2", "detector": ""})
        assert wfpc2.value == pytest.approx(ab_zeropoint(7.8774e-20, 5921.9), abs=1e-4)
