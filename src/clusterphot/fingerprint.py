"""A frame's identity for reruns: the hash of its content, computed again only when the file changed.

Snakemake reruns a job when an input is newer than its output. A frame replaced by a different
one with an older modification time (``cp -p``, ``rsync -a``, an unpacked archive) is not newer,
so the photometry rule takes the frame's content hash as a parameter as well: a changed hash
reruns it, whatever the dates say.

Hashing a 400 MB frame takes about half a second (SHA-256), so each hash is kept in a small
cache, valid while the file's size, modification time, change time and inode stay the same.
The change time (ctime) moves whenever a file is written, replaced or renamed into place, and
no copying tool can set it back, so a replaced frame is always hashed again; a frame that was
only touched is hashed again and keeps its hash (nothing reruns). A start-up with a current
cache only looks at the files' metadata.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from .outputs import atomic_output

CACHE = Path(".snakemake/clusterphot/fingerprints.json")


def stat_key(path: Path) -> list[int]:
    """What must stay the same for a cached hash to hold: size, mtime, ctime (ns) and inode."""
    status = path.stat()
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino]


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def file_fingerprints(paths: Iterable[str | Path], cache: str | Path = CACHE) -> dict[str, str]:
    """Path (as given) -> content hash of each existing file, through the cache (updated when needed)."""
    cache = Path(cache)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):  # no cache yet, or a damaged one: hash again
        known = {}
    fingerprints = {}
    changed = False
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.is_file():
            continue
        key = stat_key(resolved)
        entry = known.get(str(resolved))
        if entry is None or entry["stat"] != key:
            entry = {"stat": key, "hash": content_hash(resolved)}
            known[str(resolved)] = entry
            changed = True
        fingerprints[str(path)] = entry["hash"]
    if changed:
        with atomic_output(cache) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    return fingerprints
