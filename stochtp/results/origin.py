"""What produced a run: versions, platform, git commit and thread count, stored as run attributes."""
import importlib
import importlib.metadata
import os
import platform
import subprocess

import h5py
import numpy as np


def provenance(num_threads):
    """What produced a run: versions, platform, git commit, thread count (run attributes)."""
    git_commit, git_dirty = _git_provenance(os.path.dirname(os.path.abspath(__file__)))
    return {
        "stochtp_version": _stochtp_version(),
        "git_commit": git_commit,
        "git_dirty": git_dirty,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": _installed_version("numba"),
        "h5py_version": h5py.__version__,
        "platform": platform.platform(),
        "num_threads": int(num_threads),
    }


def _stochtp_version():
    """`stochtp.__version__`, imported only now so that this module does not depend on it."""
    try:
        return str(importlib.import_module("stochtp").__version__)
    except (ImportError, AttributeError):
        return "unknown"


def _installed_version(distribution):
    """Version of an installed distribution, read from its metadata without importing it."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_provenance(package_dir):
    """(commit, dirty) of the git checkout that holds `package_dir`, or ("unknown", False).

    The package directory must itself be tracked, so that an installed copy that merely
    sits inside some other repository (a virtualenv in a project) is not credited to it.
    """

    def git(*args):
        result = subprocess.run(
            ["git", "-C", package_dir, *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise subprocess.SubprocessError(result.stderr)
        return result.stdout.strip()

    try:
        if not git("ls-files", "--", "."):
            return "unknown", False
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, dirty
