"""Writing outputs atomically: a crash never leaves a half-written file that looks complete."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` only when the block succeeds.

    The temporary name is hidden, unique to this process, and keeps the real extension (some
    writers, OpenCV's and matplotlib's, pick the format by it). On any failure it is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(table, path: str | Path) -> None:
    """Write an astropy Table as ECSV atomically: a crash never leaves a half-written file."""
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def write_yaml(data: dict, path: str | Path) -> None:
    """Write plain data as YAML atomically (temporary name, then rename)."""
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
