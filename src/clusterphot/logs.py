"""Logging for workflow scripts and the command line: one place, one format, and what a failure shows."""

from __future__ import annotations

import logging
import re
import sys
import warnings
from contextlib import contextmanager
from datetime import datetime
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


# Snakemake's own log names each failed job in a block: "Error in rule photometry:", then
# indented lines, among them "    jobid: 12" and "    log: logs/photometry/demo1/F336W.log (check log
# file(s) ...)"; a job retried and then done has a "Finished jobid: 12" after it.
FAILED_RULE = re.compile(r"^Error in rule (\S+):")
FAILED_JOB_ID = re.compile(r"^\s+jobid: (\d+)")
FAILED_JOB_LOG = re.compile(r"^\s+log: (.+?) \(check log file")
FINISHED_JOB = re.compile(r"^Finished jobid: (\d+)")


def failed_job_logs(snakemake_log: str | Path) -> list[tuple[str, str]]:
    """(rule, the job's log, '' when it has none) of each job that Snakemake's log of a run says
    failed and that no retry then finished, in its order. (Snakemake's quiet mode, ``-q``, leaves
    the failures out of its log: then none; :func:`logs_with_errors` finds them.)"""
    failed: dict[str, tuple[str, str]] = {}
    rule = job = None
    for line in Path(snakemake_log).read_text(errors="replace").splitlines():
        finished = FINISHED_JOB.match(line)
        if finished:
            failed.pop(finished.group(1), None)
            continue
        started = FAILED_RULE.match(line)
        if started:
            rule, job = started.group(1), None
            continue
        if rule is None:
            continue
        numbered = FAILED_JOB_ID.match(line)
        if numbered:
            job = numbered.group(1)
            failed[job] = (rule, "")
            continue
        named = FAILED_JOB_LOG.match(line)
        if named and job is not None:
            failed[job] = (rule, named.group(1).split(", ")[0])
        elif line and not line[0].isspace():  # the block has ended
            rule = job = None
    return list(dict.fromkeys(failed.values()))


def job_error(job_log: str | Path) -> str:
    """What a failed job's log says went wrong, in one line: its first ERROR record (for a bug,
    the exception that ends its traceback), or that it has none (a job killed from outside)."""
    path = Path(job_log)
    if not path.is_file():
        return "no log written (the job did not start?)"
    lines = path.read_text(errors="replace").splitlines()
    errors = [k for k, line in enumerate(lines) if " ERROR " in line]
    if not errors:
        return ("no error in its log: stopped from outside (out of memory or time?) or before it could log "
                "(see Snakemake's output above)")
    message = lines[errors[0]].split(" ERROR ", 1)[1].split(": ", 1)[-1]
    if message.startswith(("unexpected error", "the system refused")):
        last = next((line.strip() for line in reversed(lines) if line.strip()), message)
        return f"{message.split(' (')[0]}: {last}"
    return message


CLOCK_SLACK = 2.0  # s: a file's time stamp may lag the clock (a coarse kernel clock, whole-second filesystems)


def run_started(snakemake_log: str | Path) -> float:
    """When a run began (seconds since the epoch), less ``CLOCK_SLACK``: the local time Snakemake
    names its log of it after (``2026-11-27T031751.112608.snakemake.log``, the fraction left out
    when it is 0), else the log's modification time."""
    stamp = Path(snakemake_log).name.split(".snakemake.log")[0]
    try:
        return datetime.fromisoformat(stamp).timestamp() - CLOCK_SLACK
    except ValueError:
        return Path(snakemake_log).stat().st_mtime - CLOCK_SLACK


def logs_with_errors(log_dir: str | Path, since: float, clusters: list[str]) -> list[str]:
    """The job logs of ``clusters`` under ``log_dir`` (``{rule}/{cluster}/...`` or
    ``{rule}/{cluster}.log``) written since ``since`` (seconds since the epoch) whose records hold
    an ERROR: the failed jobs of a run whose Snakemake log names none (its quiet mode, ``-q``);
    another run's clusters in the same directory are left out. A job stopped from outside
    before it could log is not among them."""
    found = []
    for path in sorted(Path(log_dir).rglob("*.log")):
        parts = path.relative_to(log_dir).parts
        if len(parts) < 2 or Path(parts[1]).stem not in clusters:
            continue
        if path.stat().st_mtime >= since and " ERROR " in path.read_text(errors="replace"):
            found.append(str(path))
    return found


def failure_summary(snakemake_logs: list[str | Path], clusters: list[str], log_dir: str | Path = "logs") -> list[str]:
    """One line per failed job of a run, from Snakemake's log(s) of it: the job's log and what it
    says went wrong; what a run that had failures ends with. When Snakemake's log names no failed
    job (``-q`` leaves them out), the job logs of ``clusters`` under ``log_dir`` that this run
    left with an error, or a line saying none has one."""
    lines = []
    for snakemake_log in snakemake_logs:
        failed = failed_job_logs(snakemake_log)
        if not failed:
            failed = [("", job_log) for job_log in logs_with_errors(log_dir, run_started(snakemake_log), clusters)]
            if not failed:
                lines.append(f"clusterphot: failed: no job log of this run holds an error; see {snakemake_log}")
        for rule, job_log in failed:
            where = job_log or f"rule {rule} (no log)"
            lines.append(f"clusterphot: failed: {where}: {job_error(job_log) if job_log else 'see above'}")
    return lines
