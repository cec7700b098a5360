"""Logging for workflow scripts and the command line: one place, one format."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .frames import FrameError


def log_to(path: str | Path | None) -> None:
    """Send logging, warnings and stderr to ``path`` (or keep stderr when None)."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    warnings.simplefilter("default")


@contextmanager
def clean_failure() -> Iterator[None]:
    """Turn a known bad-input error into one logged line and exit status 1 (no traceback)."""
    try:
        yield
    except (FrameError, ValueError, OSError) as error:
        logging.getLogger("clusterphot").error("%s", error)
        if sys.stderr is not sys.__stderr__:  # the log is a file: tell the terminal too
            print(f"clusterphot: error: {error}", file=sys.__stderr__)
        raise SystemExit(1) from None
