"""What a failure shows: input a user can fix is one line; a bug keeps its traceback in the log."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

SCRIPT = """
import sys
from clusterphot.errors import FrameError
from clusterphot.logs import clean_failure, log_to

log_to(sys.argv[1] if sys.argv[1] != "-" else None)
with clean_failure():
    if sys.argv[2] == "user":
        raise FrameError("frame.fits: EXPTIME is -5.0; it must be positive")
    {}["a key that is not there"]  # a bug
"""


def run(log: str, kind: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, log, kind], capture_output=True, text=True, timeout=60)


def test_an_error_the_user_can_fix_is_one_line_without_a_traceback(tmp_path):
    log = tmp_path / "job.log"
    result = run(str(log), "user")
    assert result.returncode == 1
    assert result.stderr.strip() == "clusterphot: error: frame.fits: EXPTIME is -5.0; it must be positive"
    text = log.read_text()
    assert "EXPTIME is -5.0" in text and "Traceback" not in text


def test_a_bug_keeps_its_traceback_in_the_log_and_the_terminal_says_where(tmp_path):
    log = tmp_path / "job.log"
    result = run(str(log), "bug")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("clusterphot: internal error (KeyError: ")
    assert f"the traceback is in {log}" in lines[0]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'a key that is not there'" in text


@pytest.mark.parametrize("kind, expected, unexpected", [
    ("user", "ERROR clusterphot: frame.fits: EXPTIME", "Traceback"),
    ("bug", "Traceback (most recent call last)", "internal error"),
])
def test_without_a_log_file_the_terminal_is_the_log(kind, expected, unexpected):
    result = run("-", kind)
    assert result.returncode == 1
    assert expected in result.stderr and unexpected not in result.stderr


def test_a_failed_jobs_log_gives_its_error_in_one_line(tmp_path):
    from clusterphot.logs import job_error

    user, bug, quiet = tmp_path / "user.log", tmp_path / "bug.log", tmp_path / "quiet.log"
    run(str(user), "user")
    run(str(bug), "bug")
    quiet.write_text("2026-11-26 10:00:00,000 INFO clusterphot.catalog: frame.fits: 1200 stars\n")
    assert job_error(user) == "frame.fits: EXPTIME is -5.0; it must be positive"
    assert job_error(bug) == "unexpected error, a bug in clusterphot: KeyError: 'a key that is not there'"
    assert job_error(quiet).startswith("no error in its log: stopped from outside")
    assert job_error(tmp_path / "absent.log").startswith("no log written")


def test_a_job_retried_and_then_done_is_no_failure(tmp_path):
    from clusterphot.logs import failed_job_logs

    # Snakemake's own log of a run (its format: an error block per failed attempt, and a
    # "Finished jobid" when an attempt succeeds)
    snakemake_log = tmp_path / "run.snakemake.log"
    snakemake_log.write_text(
        "[Thu Nov 26 23:10:40 2026]\nError in rule photometry:\n    message: None\n    jobid: 7\n"
        "    output: results/catalogs/a/F606W.ecsv\n"
        "    log: logs/photometry/a/F606W.log (check log file(s) for error details)\n\n"
        "Error in rule cosmic_rays:\n    jobid: 3\n"
        "    log: logs/cosmic_rays/b/F814W.log (check log file(s) for error details)\n\n"
        "Trying to restart job 7.\n[Thu Nov 26 23:11:02 2026]\nFinished jobid: 7 (Rule: photometry)\n"
        "Error in rule merge:\n    jobid: 9\n\nExiting because a job execution failed.\n")
    assert failed_job_logs(snakemake_log) == [("cosmic_rays", "logs/cosmic_rays/b/F814W.log"), ("merge", "")]


def test_a_quiet_runs_failures_are_found_in_the_job_logs_it_wrote(tmp_path, monkeypatch):
    """Snakemake's ``-q`` leaves the failed jobs out of its log: the summary then names the job
    logs under logs/ that this run wrote with an error, not an older run's, not another run's
    cluster's, not a job that finished; and says so when there is none."""
    import os
    import time

    from clusterphot.logs import failure_summary

    monkeypatch.chdir(tmp_path)
    started = time.time()
    for stamp in (datetime.fromtimestamp(started).isoformat().replace(":", ""),  # Snakemake's name
                  datetime.fromtimestamp(int(started)).isoformat().replace(":", "")):  # 0 microseconds
        (tmp_path / ".snakemake" / "log").mkdir(parents=True, exist_ok=True)
        snakemake_log = tmp_path / ".snakemake" / "log" / f"{stamp}.snakemake.log"
        snakemake_log.write_text("Building DAG of jobs...\nExiting because a job execution failed.\n")
        failed, older, other, fine = (tmp_path / "logs" / rule / cluster / "F606W.log" for rule, cluster in
                                      (("photometry", "a"), ("merge", "a"), ("photometry", "b"), ("cmd", "a")))
        run(str(failed), "user")
        run(str(older), "bug")
        os.utime(older, (started - 3600, started - 3600))  # a failure of an earlier run
        run(str(other), "bug")  # a concurrent run's cluster, in the same directory
        fine.parent.mkdir(parents=True, exist_ok=True)
        fine.write_text("2026-11-26 10:00:00,000 INFO clusterphot.plots: wrote the CMD\n")
        assert failure_summary([snakemake_log], ["a"]) == [
            "clusterphot: failed: logs/photometry/a/F606W.log: frame.fits: EXPTIME is -5.0; it must be positive"]
        assert failure_summary([snakemake_log], ["c"]) == [
            f"clusterphot: failed: no job log of this run holds an error; see {snakemake_log}"]
