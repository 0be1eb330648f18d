"""Opening, creating, checking and locking a results file (see the package docstring on crash
safety and concurrency)."""
import errno
import fcntl
import io
import os
import re
import time

import h5py
import numpy as np

from stochtp.errors import ResultsError

FORMAT = "stochtp-results"
FORMAT_VERSION = 1

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_READ_ATTEMPTS = 6
_FIRST_RETRY_DELAY_S = 0.02


def _check_name(name, what):
    """An HDF5 link name we create: non-empty, without '/', not '.'."""
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"{what} {name!r} is not a valid name (a non-empty string without '/')")


def _has_hdf5_signature(path):
    """Whether the file starts with the HDF5 signature at 0, 512, 1024, 2048... (user block)."""
    try:
        with io.open(path, "rb") as raw:
            offset = 0
            while True:
                raw.seek(offset)
                head = raw.read(len(_HDF5_SIGNATURE))
                if len(head) < len(_HDF5_SIGNATURE):
                    return False
                if head == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False


def _check_format(h5file, path):
    """Raise ResultsError unless the open file is a stochtp results file this code can read."""
    file_format = h5file.attrs.get("format")
    if isinstance(file_format, bytes):
        file_format = file_format.decode(errors="replace")
    if file_format is None:
        raise ResultsError(f"{path} is not a stochtp results file (it has no 'format' attribute)")
    if file_format != FORMAT:
        raise ResultsError(
            f"{path} is not a stochtp results file (its format is {file_format!r}, not {FORMAT!r})"
        )
    version = h5file.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or version < 1:
        raise ResultsError(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ResultsError(
            f"{path} is in stochtp results format version {int(version)}, but this stochtp "
            f"only knows versions up to {FORMAT_VERSION}: upgrade stochtp to use it"
        )


def _open_checked(path, mode):
    """Open a stochtp results file without HDF5 locking and check its format.

    Raises ResultsError for a missing file, a file that is not HDF5, or one that is not a
    results file of a known version; other HDF5 failures come out as OSError.
    """
    if not os.path.exists(path):
        raise ResultsError(f"there is no results file at {path}")
    try:
        h5file = h5py.File(path, mode, locking=False)
    except OSError:
        if not _has_hdf5_signature(path):
            raise ResultsError(
                f"{path} is not a stochtp results file (it is not an HDF5 file)"
            ) from None
        raise
    try:
        _check_format(h5file, path)
    except BaseException:
        h5file.close()
        raise
    return h5file


def _completed_hashes(h5file):
    """config_hash of every completed run of an open results file (run attributes only)."""
    return {
        group.attrs["config_hash"]
        for group in h5file.get("runs", {}).values()
        if group.attrs.get("status") == "completed" and "config_hash" in group.attrs
    }


def _read_with_retries(path, read):
    """`read(h5file)` in a short read-only pass, retried while a writer may be mid-write."""
    failure = None
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(_FIRST_RETRY_DELAY_S * 2 ** (attempt - 1))
        try:
            with _open_checked(path, "r") as h5file:
                return read(h5file)
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            failure = exc
    raise ResultsError(f"cannot read {path}: {failure}")


def _create_results_file(path):
    """Create an empty results file: written under a temporary name, then renamed into place."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with h5py.File(temporary, "w", libver="earliest", locking=False) as h5file:
        h5file.attrs["format"] = FORMAT
        h5file.attrs["format_version"] = FORMAT_VERSION
        h5file.create_group("runs")
    os.replace(temporary, path)


class _WriterLock:
    """Exclusive advisory lock on `<results file>.lock`, which holds the owner's pid."""

    def __init__(self, results_path):
        self.path = results_path + ".lock"
        while True:
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ResultsError(
                    f"cannot create the lock file {self.path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
                os.close(descriptor)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise ResultsError(f"cannot lock {self.path}: {exc.strerror}") from None
                by_whom = "another process" + (f" (pid {holder})" if holder.isdigit() else "")
                raise ResultsError(
                    f"{results_path} is being written by {by_whom}; wait for it to finish "
                    "or write to another file"
                ) from None
            if self._is_current_lock_file(descriptor):
                break
            # The previous owner removed this lock file after we opened it: lock the new one.
            os.close(descriptor)
        if not re.fullmatch(rb"\d*\n?", os.pread(descriptor, 64, 0)):  # empty, or a writer's pid
            os.close(descriptor)
            raise ResultsError(f"{self.path} is in the way of {results_path}'s lock and is not a lock file; move it away or write to another file")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def _is_current_lock_file(self, descriptor):
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(descriptor)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    @property
    def held(self):
        return self._descriptor is not None

    def release(self):
        """Remove the lock file while still holding it, then let go (idempotent)."""
        if self._descriptor is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._descriptor)
        self._descriptor = None


def is_being_written(path):
    """Whether a Writer on this machine holds the results file at `path` now: its lock file
    exists and names a live process (a killed writer leaves one naming a dead pid)."""
    try:
        with io.open(os.path.realpath(os.fspath(path)) + ".lock") as lock_file:
            holder = lock_file.read().strip()
    except FileNotFoundError:
        return False
    if not holder.isdigit():  # a Writer that has not yet written its pid
        return True
    try:
        os.kill(int(holder), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
