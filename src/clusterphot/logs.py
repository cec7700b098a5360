"""Logging for workflow scripts and the command line: one place, one format, and what a failure shows."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ClusterphotError

log = logging.getLogger("clusterphot")
_log_path: Path | None = None  # where log_to sends this process's log, if to a file


def log_to(path: str | Path | None) -> None:
    """Send logging, warnings and stderr to ``path`` (or keep stderr when None)."""
    global _log_path
    if path is not None:
        _log_path = Path(path)
        _log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(_log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def tell_terminal(message: str) -> None:
    """One line on the terminal, when the log is a file (otherwise it is already there)."""
    if sys.stderr is not sys.__stderr__:
        print(message, file=sys.__stderr__)


@contextmanager
def clean_failure() -> Iterator[None]:
    """Input the user can fix (a :class:`ClusterphotError`) becomes one logged line and exit
    status 1, without a traceback. Anything else keeps its traceback in the log, and the
    terminal gets one line saying where that log is: an OSError is the machine's (a full disk,
    a permission), any other exception a bug in clusterphot."""
    try:
        yield
    except ClusterphotError as error:
        log.error("%s", error)
        tell_terminal(f"clusterphot: error: {error}")
        raise SystemExit(1) from None
    except Exception as error:
        if _log_path is None:  # the log is the terminal: the usual traceback says it all
            raise
        if isinstance(error, OSError):
            log.exception("the system refused (disk, permissions, memory?)")
            tell_terminal(f"clusterphot: error: {error}; the traceback is in {_log_path}")
        else:
            log.exception("unexpected error, a bug in clusterphot (please report it with this log)")
            tell_terminal(f"clusterphot: internal error ({type(error).__name__}: {error}); "
                          f"the traceback is in {_log_path}")
        raise SystemExit(1) from None
