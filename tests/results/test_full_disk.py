"""A full disk at every kind of write: one line, exit 1, nothing lost, --resume bit for bit.

The in-process tests make the disk full where a write's bytes go to it (the commit of a staged
write, `storage._StagedFile.commit`, or the lock file's pid); the tmpfs test fills a real small
file system and runs the command in a child process (skipped where mounting is not permitted).
"""
import errno
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_RUN

from stochtp import results
from stochtp.cli import main
from stochtp.results import storage

RUN_OPTIONS = ("--threads", "1", "--quiet")
TIMING = ("wall_time", "epoch_time")
NO_SPACE = OSError(errno.ENOSPC, "No space left on device")

# Write kinds, as (object, method, which call of it meets the full disk, a check of its arguments).
WRITE_KINDS = {
    "run creation": (results.Writer, "start_run", 1, None),
    "epoch metrics": (results.RunWriter, "append", 2, None),
    "best parameters": (results.RunWriter, "save_params", 2, lambda which, *rest, **options: which == "best"),
    "checkpoint": (results.RunWriter, "save_checkpoint", 3, None),
    "final parameters": (results.RunWriter, "save_params", 1, lambda which, *rest, **options: which == "params"),
    "final status": (results.RunWriter, "finish", 1, None),
}


def disk_full_during(monkeypatch, owner, method, nth, chosen):
    """Make the disk full for the `nth` call of `owner.method` that `chosen` accepts: its write is
    staged, then its commit meets ENOSPC."""
    real_method, real_commit = getattr(owner, method), storage._StagedFile.commit
    calls, inside = [], []

    def counted(self, *args, **options):
        if chosen is None or chosen(*args, **options):
            calls.append(1)
        inside.append(len(calls) == nth)
        try:
            return real_method(self, *args, **options)
        finally:
            inside.pop()

    def commit(self):
        if inside and inside[-1]:
            raise NO_SPACE
        real_commit(self)

    monkeypatch.setattr(owner, method, counted)
    monkeypatch.setattr(storage._StagedFile, "commit", commit)


def run_cli(capsys, config_path, out, *extra):
    code = main(["run", str(config_path), "--out", str(out), *RUN_OPTIONS, *extra])
    return code, capsys.readouterr().err


def comparable(run):
    """What a run's numbers are, less its timings: metrics, final and best parameters."""
    metrics = {name: column for name, column in run.metrics.items() if name not in TIMING}
    return metrics, run.params, run.best, run.best_attrs


def assert_same(left, right):
    for a, b in zip(left, right):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny run without faults, and the file bytes of a file holding one completed run."""
    folder = tmp_path_factory.mktemp("reference")
    config_path = folder / "tiny.toml"
    config_path.write_text(TINY_RUN)
    assert main(["run", str(config_path), "--out", str(folder / "r.h5"), *RUN_OPTIONS]) == 0
    (run,) = results.open(folder / "r.h5").runs
    return config_path, folder / "r.h5", comparable(run)


@pytest.mark.parametrize("kind", WRITE_KINDS)
def test_a_full_disk_at_each_write_kind_stops_with_one_line_and_loses_nothing(capsys, monkeypatch, tmp_path, reference, kind):
    config_path, reference_file, expected = reference
    out = tmp_path / "r.h5"
    shutil.copy(reference_file, out)  # an earlier, completed run in the file
    before = results.open(out).runs[0]
    disk_full_during(monkeypatch, *WRITE_KINDS[kind])
    code, stderr = run_cli(capsys, config_path, out)
    monkeypatch.undo()
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"stochtp: error: the disk holding {out} is full (No space left on device)")
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    runs = results.open(out).runs
    assert_same(comparable(runs[0]), comparable(before))
    assert not os.path.exists(f"{out}.lock")
    if kind == "run creation":
        assert len(runs) == 1
        return
    stopped = runs[1]
    assert stopped.status in ("interrupted", "running")
    logged = list(stopped.metrics["epoch"])
    assert logged == list(range(1, len(logged) + 1)) and len(logged) >= {"epoch metrics": 1, "best parameters": 1, "checkpoint": 2}.get(kind, 4)
    code, stderr = run_cli(capsys, config_path, out, "--resume")
    assert code == 0, stderr
    resumed = results.open(out).runs[1]
    assert resumed.status == "completed"
    assert_same(comparable(resumed), expected)


def test_a_full_disk_while_the_lock_is_written_leaves_no_lock_file(monkeypatch, tmp_path):
    path = tmp_path / "r.h5"
    real_pwrite = os.pwrite

    def pwrite(descriptor, data, offset):
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith(".lock"):
            raise NO_SPACE
        return real_pwrite(descriptor, data, offset)

    monkeypatch.setattr(storage.os, "pwrite", pwrite)
    with pytest.raises(OSError, match=r"the disk holding .*r\.h5\.lock is full"):
        results.Writer(path)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_full_disk_while_a_results_file_is_created_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(storage._StagedFile, "commit", lambda self: (_ for _ in ()).throw(NO_SPACE))
    with pytest.raises(OSError, match="the disk holding .* is full"):
        results.Writer(tmp_path / "r.h5")
    assert sorted(os.listdir(tmp_path)) == []


def test_a_reservation_that_meets_a_full_disk_leaves_the_file_byte_for_byte(monkeypatch, tmp_path, reference):
    """The growth of the file is reserved before a byte is written; ENOSPC there changes nothing."""
    path = tmp_path / "r.h5"
    shutil.copy(reference[1], path)
    before = path.read_bytes()
    real_allocate = os.posix_fallocate

    def allocate(descriptor, offset, length):
        real_allocate(descriptor, offset, length // 2)  # part of it, as a file system may
        raise NO_SPACE

    with results.Writer(path) as writer:
        monkeypatch.setattr(storage.os, "posix_fallocate", allocate)
        with pytest.raises(OSError, match="the disk holding .* is full"):
            writer.start_run(name="x", method="bp", dataset="teacher", network="8-3s", seed=0, config={}, provenance={})
    assert path.read_bytes() == before


def _mount_tmpfs(folder, size):
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs; skips where it cannot be mounted (not root, no mount)."""
    folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    if not _mount_tmpfs(folder, "2m"):
        pytest.skip("mounting a tmpfs is not permitted here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def _stochtp(*argv):
    """`stochtp ARGV` in a child process (a crash would show as its exit status): (code, stderr)."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "stochtp", *argv], capture_output=True, text=True, env=environment, timeout=300)
    return done.returncode, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("left_kib", [16, 40, 64])
def test_a_real_full_disk_during_a_run(small_disk, reference, left_kib):
    """A tmpfs filled to within `left_kib` KiB, and a 40-epoch run on it: one line and exit 1,
    the earlier run and every finished epoch readable, and --resume completes once there is room."""
    config_path = reference[0]
    out = small_disk / "r.h5"
    shutil.copy(reference[1], out)
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "filler", "wb") as filler:
        filler.write(bytes(max(0, free - left_kib * 1024)))
    long_run = ("run", str(config_path), "--out", str(out), *RUN_OPTIONS, "--set", "epochs=40")
    code, stderr = _stochtp(*long_run)
    assert code == 1 and stderr.count("\n") == 1 and "is full" in stderr and str(out) in stderr, stderr
    runs = results.open(out).runs
    assert runs[0].status == "completed" and len(runs) <= 2
    (small_disk / "filler").unlink()
    if len(runs) == 2:
        code, stderr = _stochtp(*long_run, "--resume")
        assert code == 0, stderr
        assert list(results.open(out).runs[1].metrics["epoch"]) == list(range(1, 41))
    assert not os.path.exists(f"{out}.lock")
