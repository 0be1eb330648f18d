"""Opening, creating, checking and locking a results file (see the package docstring on crash
safety and concurrency)."""
import contextlib
import errno
import fcntl
import io
import json
import os
import re
import tempfile
import time

import h5py
import numpy as np

from stochtp.errors import DiskFull, ResultsError

FORMAT = "stochtp-results"
FORMAT_VERSION = 1

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_READ_ATTEMPTS = 6
_FIRST_RETRY_DELAY_S = 0.02
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024


def _check_name(name, what):
    """An HDF5 link name we create: non-empty, without '/', not '.'."""
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"{what} {name!r} is not a valid name (a non-empty string without '/')")


def _set_text_attrs(h5object, attrs):
    """Set attributes of text (a str, or a list of them) as fixed-length UTF-8 strings, which
    h5py reads back as bytes. Not variable-length ones: HDF5 never frees those of a deleted
    dataset's attributes, and checkpoint entries are deleted and written anew every epoch."""
    for key, value in attrs.items():
        encoded = [text.encode() for text in ([value] if isinstance(value, str) else value)]
        dtype = h5py.string_dtype("utf-8", max([1, *map(len, encoded)]))
        h5object.attrs.create(key, encoded[0] if isinstance(value, str) else encoded, dtype=dtype)


def has_hdf5_signature(path):
    """Whether `path` is a regular file that starts with the HDF5 signature at 0, 512, 1024,
    2048... (user block)."""
    if not os.path.isfile(path):
        return False
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


def replace_text(path, text, what):
    """Write `text` to the file `path` whole or not at all: into a temporary file beside it, then
    renamed over it, so that a fault (a full disk) leaves the old file as it was. A symbolic link
    is followed (the file it names is replaced); what is not a regular file (a pipe, a device) is
    written to directly. An HDF5 file (a results file, perhaps one being written) is never
    replaced by text. ResultsError, one line starting with `what`, where it cannot be written."""
    path = os.path.realpath(path)
    if os.path.isdir(path):
        raise ResultsError(f"{what}: is a folder")
    if os.path.exists(path) and not os.path.isfile(path):
        try:
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(text)
        except OSError as error:
            raise _text_write_error(error, path, what) from None
        return
    if has_hdf5_signature(path):
        raise ResultsError(f"{what}: is an HDF5 file (a results file?); text is never written over one")
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".part")
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 is for secrets; these files are for reading
        os.replace(temporary, path)
    except OSError as error:
        raise _text_write_error(error, path, what) from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def _text_write_error(error, path, what):
    """DiskFull for a full disk (a failing file system, not bad input: the CLI exits 1), else a
    ResultsError starting with `what`."""
    full = _out_of_space(error, path)
    return full if isinstance(full, DiskFull) else ResultsError(f"{what}: cannot write it ({error.strerror or error})")


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


_RUN_TEXT_ATTRS = ("name", "method", "dataset", "network", "status", "error", "started_at", "finished_at", "config", "config_hash")
_RUN_STATUSES = ("running", "completed", "failed", "interrupted")
_RUN_GROUPS = ("metrics", "diagnostics", "params", "best", "checkpoint", "checkpoint.spare", "checkpoint.retired")
_COLUMN_DIMENSIONS = {"metrics": 1, "diagnostics": 2}


class _DamagedLayout(ResultsError):
    """A results file whose layout is not what stochtp writes (perhaps only while a writer is
    part-way through a write: readers try again before they give up)."""


def _check_layout(h5file, path):
    """ResultsError naming the first thing of the open file's layout that stochtp did not write
    so: /runs a group of run groups; a run's metrics 1-D and diagnostics 2-D numeric datasets;
    its parameter and checkpoint groups groups; a run with a status (one not cut short while it
    was being made) has all of its attributes, of their types. A run may lack groups: one an
    older stochtp was killed while making, listed but never resumed (`Writer.find_run`)."""
    runs = h5file.get("runs")
    if not isinstance(runs, h5py.Group):
        raise _DamagedLayout(f"{path} is damaged: {'it has no /runs group' if runs is None else '/runs is not a group'}")
    for run_id, run in runs.items():
        where = f"{path} is damaged: run {run_id}"
        if not isinstance(run, h5py.Group):
            raise _DamagedLayout(f"{where} is not a group")
        for name in _RUN_GROUPS:
            if name in run and not isinstance(run.get(name), h5py.Group):
                raise _DamagedLayout(f"{where}: {name} is not a group")
        for name, dimensions in _COLUMN_DIMENSIONS.items():
            for column, dataset in run.get(name, {}).items():
                if not (isinstance(dataset, h5py.Dataset) and dataset.ndim == dimensions and dataset.dtype.kind in "biuf"):
                    raise _DamagedLayout(f"{where}: {name}/{column} is not a {dimensions}-D numeric dataset")
        if "status" in run.attrs:
            _check_run_attrs(run, where)


def _check_run_attrs(run, where):
    missing = [name for name in (*_RUN_TEXT_ATTRS, "seed") if name not in run.attrs]
    if missing:
        raise _DamagedLayout(f"{where} has no attribute {', '.join(missing)}")
    for name in _RUN_TEXT_ATTRS:
        if not isinstance(run.attrs[name], str):
            raise _DamagedLayout(f"{where}: attribute {name} is not text")
    if not isinstance(run.attrs["seed"], (int, np.integer)):
        raise _DamagedLayout(f"{where}: attribute seed is not an integer")
    if run.attrs["status"] not in _RUN_STATUSES:
        raise _DamagedLayout(f"{where}: status {run.attrs['status']!r} is not one of {', '.join(_RUN_STATUSES)}")
    try:
        config = json.loads(run.attrs["config"])
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise _DamagedLayout(f"{where}: attribute config is not a JSON object")


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
        if not has_hdf5_signature(path):
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
                _check_layout(h5file, path)
                return read(h5file)
        except _DamagedLayout as exc:
            failure = exc
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            failure = ResultsError(f"cannot read {path}: {exc}")
    raise failure


def _create_results_file(path):
    """Create an empty results file: written under a temporary name, then renamed into place."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with _staged_hdf5(temporary, "w", create=True, libver="earliest") as h5file:
            h5file.attrs["format"] = FORMAT
            h5file.attrs["format_version"] = FORMAT_VERSION
            h5file.create_group("runs")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _out_of_space(error, path):
    """DiskFull naming `path` for an OSError that says its disk is full (or its quota used up);
    any other error as it is."""
    if not isinstance(error, OSError) or isinstance(error, DiskFull) or error.errno not in _OUT_OF_SPACE:
        return error
    return DiskFull(f"the disk holding {path} is full ({error.strerror}): the write was not made, and the file keeps everything written before it")


@contextlib.contextmanager
def _staged_hdf5(path, mode, create=False, **options):
    """`path` opened by h5py for writing, every write held in memory (`_StagedFile`) and made on
    disk, at once, only when the with-block ends without an exception. A full disk is met
    before the file is touched and raised as DiskFull."""
    try:
        descriptor = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
    except OSError as error:
        raise _out_of_space(error, path) from None
    try:
        staged = _StagedFile(descriptor)
        with h5py.File(staged, mode, locking=False, **options) as h5file:
            yield h5file
        try:
            staged.commit()
        except OSError as error:
            raise _out_of_space(error, path) from None
    finally:
        os.close(descriptor)


class _StagedFile(io.RawIOBase):
    """A file as HDF5 sees it through h5py's file-object driver, with the writes kept in memory.

    HDF5 cannot undo a write it could not finish: a full disk met half-way through flushing its
    metadata leaves a file it can no longer read (or a crash in h5py). Here its writes go into
    pages of memory, and reads see the file on disk with those pages over it, so until `commit`
    nothing on disk changes. `commit` reserves the space the file grows by first (where a full
    disk is met, before a byte is written), then writes the changed pages into place: on file
    systems that overwrite in place (ext4, xfs, tmpfs...), writing into reserved space cannot
    run out of it.
    """

    PAGE = 16384

    def __init__(self, descriptor):
        self._descriptor = descriptor
        self._disk_size = self._size = self._kept = os.fstat(descriptor).st_size  # _kept: bytes of the disk file not truncated away
        self._pages = {}  # page index -> bytearray(PAGE), the page as HDF5 last wrote it
        self._position = 0

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self._position = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence] + offset
        return self._position

    def tell(self):
        return self._position

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        start = self._position
        end = max(start, min(start + len(view), self._size))
        view[:end - start] = self._disk_bytes(start, end - start)
        for index in range(start // self.PAGE, -(-end // self.PAGE)):
            page = self._pages.get(index)
            if page is not None:
                first, last = max(start, index * self.PAGE), min(end, (index + 1) * self.PAGE)
                view[first - start:last - start] = page[first - index * self.PAGE:last - index * self.PAGE]
        self._position = end
        return end - start

    def write(self, data):
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            index, within = divmod(self._position + done, self.PAGE)
            count = min(self.PAGE - within, len(view) - done)
            page = self._pages.get(index) or bytearray(self._disk_bytes(index * self.PAGE, self.PAGE) if count < self.PAGE else self.PAGE)
            page[within:within + count] = view[done:done + count]
            self._pages[index] = page
            done += count
        self._position += done
        self._size = max(self._size, self._position)
        return done

    def truncate(self, size=None):
        size = self._position if size is None else size
        if size < self._size:  # what lies beyond reads as zeros should the file grow again
            self._kept = min(self._kept, size)
            for index in [index for index in self._pages if index * self.PAGE >= size]:
                del self._pages[index]
            boundary = self._pages.get(size // self.PAGE)
            if boundary is not None:
                boundary[size % self.PAGE:] = bytes(self.PAGE - size % self.PAGE)
        self._size = size
        return size

    def _disk_bytes(self, start, count):
        """`count` bytes of the disk file from `start`, zeros past what is kept of it."""
        data = bytearray()
        while len(data) < min(count, self._kept - start):
            chunk = os.pread(self._descriptor, min(count, self._kept - start) - len(data), start + len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data.ljust(count, b"\0"))

    def commit(self):
        """Make the file on disk what HDF5 wrote: the growth reserved first (OSError ENOSPC there
        leaves the file as it was), then the changed pages, then any truncation."""
        if self._size > self._disk_size:
            try:
                os.posix_fallocate(self._descriptor, self._disk_size, self._size - self._disk_size)
            except OSError as error:
                os.ftruncate(self._descriptor, self._disk_size)
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no reservation here: write as it comes
                    raise
        for start, pages in self._changed_ranges():
            for first in range(0, len(pages), _IOV_MAX):  # no copy of the pages: one system call per IOV_MAX of them
                batch = pages[first:first + _IOV_MAX]
                written = os.pwritev(self._descriptor, batch, start)
                if written < sum(map(len, batch)):  # a short write: the rest one by one
                    rest = b"".join(batch)[written:]
                    while rest:
                        count = os.pwrite(self._descriptor, rest, start + written)
                        written, rest = written + count, rest[count:]
                start += written
        if self._size < self._disk_size:
            os.ftruncate(self._descriptor, self._size)

    def _changed_ranges(self):
        """(offset, [page views]) of each run of consecutive changed pages, cut at the file's size: the
        pages past the file's old end first, which nothing on disk points to until the others
        are written."""
        ranges, end = [], None
        for index in sorted(self._pages, key=lambda index: (index * self.PAGE < self._disk_size, index)):  # new space first: a kill in between leaves it unlinked
            start = index * self.PAGE
            page = memoryview(self._pages[index])[:self._size - start]
            if start == end:
                ranges[-1][1].append(page)
            else:
                ranges.append((start, [page]))
            end = start + self.PAGE
        return ranges


class _WriterLock:
    """Exclusive advisory lock on `<results file>.lock`, which holds the owner's pid."""

    def __init__(self, results_path):
        self.path = results_path + ".lock"
        while True:
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                failure = _out_of_space(exc, self.path)
                raise failure if failure is not exc else ResultsError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
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
        self._descriptor = descriptor
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk: no lock file is left behind
            self.release()
            raise _out_of_space(exc, self.path) from None

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
