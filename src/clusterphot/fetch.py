"""Frames given by URL: fetched once into ``resources/frames/`` and kept.

A download is streamed to a temporary file, checked (complete, and a FITS file), then renamed:
an interrupted or failed download never leaves a file that looks like a frame.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import requests

from .errors import FetchError
from .outputs import atomic_output

log = logging.getLogger(__name__)

FITS_START = b"SIMPLE  ="  # every FITS file's first card
CHUNK_BYTES = 8 * 2**20


def fetch_frame(url: str, path: str | Path, timeout: float = 60.0, attempts: int = 3, wait: float = 2.0) -> Path:
    """Download ``url`` to ``path`` (atomically); retry connection failures ``attempts`` times."""
    path = Path(path)
    with atomic_output(path) as tmp:
        for attempt in range(1, attempts + 1):
            try:
                _download(url, tmp, timeout)
                break
            except requests.RequestException as error:  # no answer, a timeout, a broken connection
                if attempt == attempts:
                    raise FetchError(f"{url}: no complete answer after {attempts} attempts ({error})") from None
                log.warning("%s: attempt %d failed (%s); retrying", url, attempt, error)
                time.sleep(wait * attempt)
        with open(tmp, "rb") as handle:
            start = handle.read(len(FITS_START))
        if start != FITS_START:
            raise FetchError(f"{url}: the answer is not a FITS file (it starts with {start[:30]!r})")
    log.info("%s: fetched into %s (%.1f MB)", url, path, path.stat().st_size / 2**20)
    return path


def _download(url: str, tmp: Path, timeout: float) -> None:
    with requests.get(url, stream=True, timeout=timeout) as response:
        if response.status_code != 200:
            raise FetchError(f"{url}: HTTP {response.status_code} {response.reason}")
        expected = response.headers.get("Content-Length")
        received = 0
        with open(tmp, "wb") as handle:
            for chunk in response.iter_content(CHUNK_BYTES):
                handle.write(chunk)
                received += len(chunk)
    if expected is not None and received != int(expected):
        raise requests.ConnectionError(f"download cut short ({received} of {expected} bytes)")
