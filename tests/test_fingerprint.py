"""A frame's content hash: the same for the same bytes, new for new bytes whatever the dates."""

from __future__ import annotations

import json
import os
import shutil

from clusterphot.fingerprint import content_hash, file_fingerprints


def test_a_replaced_file_with_an_older_date_and_the_same_size_gets_a_new_hash(tmp_path):
    frame, other = tmp_path / "frame.fits", tmp_path / "other.fits"
    frame.write_bytes(b"A" * 4096)
    other.write_bytes(b"B" * 4096)
    os.utime(other, (1_000_000_000, 1_000_000_000))  # 2001: older than anything above
    cache = tmp_path / "cache.json"
    before = file_fingerprints([frame], cache)[str(frame)]
    shutil.copy2(other, frame)  # cp -p: the bytes and the old date
    assert frame.stat().st_mtime < 1_000_000_001
    after = file_fingerprints([frame], cache)[str(frame)]
    assert after != before and after == content_hash(other)


def test_a_touched_file_keeps_its_hash(tmp_path):
    frame = tmp_path / "frame.fits"
    frame.write_bytes(b"A" * 4096)
    cache = tmp_path / "cache.json"
    before = file_fingerprints([frame], cache)[str(frame)]
    os.utime(frame, (2_000_000_000, 2_000_000_000))
    assert file_fingerprints([frame], cache)[str(frame)] == before


def test_an_unchanged_file_is_not_read_again(tmp_path):
    frame = tmp_path / "frame.fits"
    frame.write_bytes(b"A" * 4096)
    cache = tmp_path / "cache.json"
    file_fingerprints([frame], cache)
    # Plant a different hash in the cache: with the file's metadata unchanged, it is what comes back.
    known = json.loads(cache.read_text())
    known[str(frame.resolve())]["hash"] = "sha256:planted"
    cache.write_text(json.dumps(known))
    assert file_fingerprints([frame], cache)[str(frame)] == "sha256:planted"


def test_a_damaged_cache_is_rebuilt_and_missing_files_are_left_out(tmp_path):
    frame = tmp_path / "frame.fits"
    frame.write_bytes(b"A" * 4096)
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    fingerprints = file_fingerprints([frame, tmp_path / "absent.fits"], cache)
    assert fingerprints == {str(frame): content_hash(frame)}
    assert str(frame.resolve()) in json.loads(cache.read_text())
