"""Exceptions stochtp raises for bad input. Each carries one line meant for a person.

The CLI turns every `StochtpError` (and `ValueError`) into that line on stderr and exit code 2.
"""


class StochtpError(Exception):
    """Base of every error stochtp raises on purpose."""


class ConfigError(StochtpError, ValueError):
    """A configuration, network spec or option is invalid (names the key and, if any, the file)."""


class DataError(StochtpError):
    """A dataset is missing, corrupt, truncated or of the wrong format."""


class ResultsError(StochtpError):
    """A results file is not stochtp's, is of a newer format, or is locked by another writer."""


class DiskFull(ResultsError, OSError):
    """The disk holding a results file is full: the write that met it was not made, and the file
    is as the last complete write left it. An OSError too (errno ENOSPC or EDQUOT): a run it
    stops is `interrupted`, and the CLI exits with 1, not 2, as for any failing file system.
    `resumable` is set where it stopped a run that --resume can continue (the run was in the
    file before the disk filled)."""

    resumable = False


class TrainingFailed(StochtpError):
    """A run hit a non-finite loss or parameter; what was logged so far is kept."""


class PluginError(StochtpError):
    """A method class cannot be registered, or a method plugin (entry point) cannot be loaded."""
