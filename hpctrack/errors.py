"""The exception tree of hpctrack.

Every error a user can cause derives from :class:`HpctrackError`, mixed with the
builtin a caller would naturally catch. The CLI prints ``str(exc)`` on one line
and exits 1, so messages say what went wrong, where, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "HpctrackError",
    "ConfigError",
    "SubmissionError",
    "StoreError",
    "LockTimeout",
    "RunNotFoundError",
    "SweepNotFoundError",
    "FormatVersionError",
    "StoreReplacedError",
    "DiskFullError",
    "RunBusyError",
    "UnsafePathError",
]


class HpctrackError(Exception):
    """Base class. The CLI prints ``str(exc)`` on one line and exits 1."""


class ConfigError(HpctrackError, ValueError):
    """Bad user input: unknown key, malformed sweep, missing script, unwritable root."""


class UnsafePathError(ConfigError):
    """A path hpctrack would delete, overwrite or rename leads out of its run or sweep directory
    (a planted symlink), or a file a job would load could have been written by another user."""


class SubmissionError(HpctrackError, RuntimeError):
    """The backend refused the jobs; ``reason`` holds the scheduler's own words."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class StoreError(HpctrackError, OSError):
    """A run store or manifest could not be read or written."""


class LockTimeout(StoreError, TimeoutError):
    """A lock was not acquired in time; the message names the lock and its holder."""


class RunNotFoundError(StoreError, FileNotFoundError):
    """No run at the given address."""


class SweepNotFoundError(HpctrackError, LookupError):
    """No sweep matches the given id, name, path or ``latest``."""


class FormatVersionError(StoreError):
    """A file was written by a newer hpctrack than the one reading it."""


class StoreReplacedError(StoreError):
    """A run's store was removed, truncated or replaced under its writer, which stops writing to it."""


class DiskFullError(StoreError):
    """No space left (ENOSPC) or quota exceeded (EDQUOT) where a store or file is written."""


class RunBusyError(StoreError):
    """The run already has a live writer (another process holds its writer lease)."""


#: Set by the Hydra launcher on a job's exception that Hydra re-raises in the launching process: the
#: index of the job that raised it (the sweep records that failure; it is not an error of the launch).
FAILED_JOB_ATTR = "hpctrack_failed_job"
