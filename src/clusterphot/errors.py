"""The errors a user can act on: bad input, not bugs.

Each is raised with a message that names the file, the config key or the cluster and filter,
and says what is wrong (and, where it helps, what to set). Only these become one-line
messages in the workflow (see :func:`clusterphot.logs.clean_failure`); any other exception is
a bug and keeps its traceback in the job's log.
"""

from __future__ import annotations


class ClusterphotError(Exception):
    """Input the workflow cannot use; the message says which and why."""


class ConfigError(ClusterphotError):
    """A configuration the workflow cannot run; the message names the key (and the file)."""


class FrameError(ClusterphotError):
    """A frame that cannot be measured; the message names the file and the problem."""


class ZeropointError(ClusterphotError):
    """No zero point in the chosen system can be had for a frame; the message says what is missing."""


class RegistrationError(ClusterphotError):
    """A frame whose transform onto the reference cannot be solved from its stars."""


class FetchError(ClusterphotError):
    """A frame that could not be fetched; the message names the URL and what went wrong."""
