"""The results file: one HDF5 file holding many runs (format version 1, docs/results-format.md).

Layout, readable by any HDF5 tool::

    /                       attrs: format = "stochtp-results", format_version = 1
    /runs/<run_id>/         attrs: name, method, dataset, network, seed, status, error,
                            started_at, finished_at, config, config_hash and the provenance
                            (stochtp_version, git_commit, git_dirty, python_version,
                            numpy_version, numba_version, h5py_version, platform, num_threads)
        metrics/<name>      1-D, one entry per logged epoch (int64 or float64)
        diagnostics/<name>  2-D float64, epochs x layers
        params/             final parameters, e.g. layer_0/W, layer_0/b, inverse_1/V, inverse_1/c
        best/               parameters at the best validation epoch; attrs such as epoch
        checkpoint/         what --resume needs: a nested dict as groups and datasets (in
                            keys, '%' '/' and a lone '.' are written %25 %2F %2E)
        checkpoint.spare/   the checkpoint before it, overwritten by the next one, which is
                            then swapped in by renaming: a writer killed while writing a
                            checkpoint leaves a complete one to resume from

Every dataset says what it holds in two text attributes, ``units`` and ``description``; a
diagnostic also has ``layers``, the label of each of its columns (``layer_0``, ``layer_1``...:
the network's layers as params/ names them). They are fixed-length UTF-8 strings, which h5py
reads as bytes (``.decode()``). The columns the training loop logs are described in
``STANDARD_COLUMNS``; other code describes its own (``RunWriter.append``'s ``columns``), and a
column it leaves undescribed gets ``UNDESCRIBED``. ``Run.columns`` reads them back. They need
no new format version: they change no group or dataset, and no reader depends on them. A
format-1 file without them (as stochtp wrote before it described its datasets) reads as
before, ``Run.columns`` then giving the standard description of each name it knows.

Run ids are ``<UTC time>Z-<6 hex digits>`` (``20261126T201500.123456Z-3f9a1c``), so sorting
them sorts runs by creation; ``finished_at`` is "" until the run finishes. Every metric and
diagnostic dataset of a run has one row per appended epoch: a value left out of an epoch is
written as NaN, and a metric first given at a later epoch gets NaN for the epochs before. A
metric whose values are all integers (epoch) is stored as int64, any other as float64.

Crash safety and concurrency
----------------------------
* The HDF5 file is open only for the few milliseconds of each write (``start_run``,
  ``append``, ``save_params``, ``save_checkpoint``, ``finish``, ``add_record``): open,
  write, close. Between writes nothing of the file lives in memory, so a writer killed at
  any moment between two writes (SIGKILL included; training spends nearly all its time
  there) leaves a complete, valid file with every epoch appended so far and the run's
  status still "running". Files are created with the earliest HDF5 format bounds, whose
  superblock carries no "open for writing" flag, so such a file needs no ``h5clear``
  afterwards. New files are created under a temporary name and renamed into place, so a
  half-created file is never seen. A checkpoint is never overwritten where it lies: the next
  one goes into ``checkpoint.spare/``, is marked complete last and swapped in by renaming.
* Each write is staged: HDF5 writes through h5py's file-object driver into pages held in
  memory, and only when the write has finished without an error are they put on disk, the
  space the file grows by reserved first (``posix_fallocate``), the pages past the old end
  written before those inside it. So an exception in a write (bad input, Ctrl-C) leaves the
  file as it was, and a full disk (or quota) is met before a byte is written: it raises
  ``stochtp.errors.DiskFull`` naming the file, which keeps every run and every epoch of the
  last complete write, and training stops the run as "interrupted" (when that mark still
  fits; else it stays "running") with its last checkpoint whole, so ``--resume`` continues it
  bit for bit once there is room. Writing into reserved space cannot run out of it on file
  systems that overwrite in place (ext4, xfs, tmpfs...); on copy-on-write ones (btrfs, ZFS)
  it can, and a kill while the pages are put on disk can leave part of them written.
* A file whose layout is not what stochtp writes (no /runs group of run groups, a run's
  subgroup that is not a group, metrics not 1-D or diagnostics not 2-D numeric datasets, a
  run with a status but without one of its attributes or with one of the wrong type) is
  refused by every reader and Writer with one line naming what is wrong, and never written
  to. A run without a status attribute or without some of its groups is one whose creation
  an older stochtp was killed in; it is listed, never resumed.
* A Writer holds an exclusive ``fcntl.flock`` on ``<file>.lock`` (holding its pid) for its
  whole life. A second Writer on the same file fails at once with ResultsError, before the
  results file is touched; the operating system drops the lock when its holder dies, so a
  killed writer never blocks the next one. The lock file is removed when a Writer closes.
  The lock is per name, so a file with other names (hard links) is refused for writing, and
  a ``<file>.lock`` that is not a lock (no pid in it) is refused rather than emptied.
* HDF5's own file locking is switched off (``locking=False``): our lock already excludes a
  second writer, and HDF5's would block readers while a writer has the file open.
* Readers (``open``) read all run attributes and metrics in one short pass and close the file
  again; parameters and checkpoints are read, again briefly, when first asked for
  (``completed_hashes`` reads the run attributes only). A pass
  that meets a file in the middle of a write fails or finds columns of unequal length: it is
  retried a few times, and only rows present in every column are returned.
* HDF5 SWMR is not used: it forbids creating groups and attributes while writing, which
  every new run and every status change needs.
"""
# The package's modules, each one part of the file's handling (names with an underscore are
# shared between them, not part of the API): origin (what produced a run), storage (opening,
# checking and locking the file), columns (metrics and diagnostics, one row per epoch), trees
# (parameters and checkpoints), writer and reader.
from .columns import STANDARD_COLUMNS, UNDESCRIBED, Column, training_columns
from .origin import provenance
from .reader import Results, Run, completed_hashes, open, read_record
from .storage import FORMAT, FORMAT_VERSION, has_hdf5_signature, is_being_written, replace_text
from .writer import FINAL_STATUSES, PARAMETER_GROUPS, RunWriter, Writer, check_results_path

__all__ = [
    "FINAL_STATUSES", "FORMAT", "FORMAT_VERSION", "PARAMETER_GROUPS", "STANDARD_COLUMNS", "UNDESCRIBED", "Column", "Results",
    "Run", "RunWriter", "Writer", "check_results_path", "completed_hashes", "has_hdf5_signature", "is_being_written", "open", "provenance",
    "read_record", "replace_text", "training_columns",
]
