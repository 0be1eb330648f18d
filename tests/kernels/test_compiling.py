"""Compilation records and the cache folder (stochtp.kernels.compiling), and the command's notice."""
import getpass
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np
import pytest

from stochtp import cli
from stochtp.kernels import compilations, compiling

ROOT = Path(__file__).resolve().parents[2]


def test_compilations_counts_and_times_what_the_block_compiles():
    @numba.njit
    def doubled(x):
        return 2 * x

    with compilations() as first:
        doubled(1.0)
    with compilations() as again:
        doubled(2.0)
    assert first.kernels == 1 and first.seconds > 0
    assert again.kernels == 0 and again.seconds == 0
    assert str(first).startswith("compiled 1 Numba kernel in ")


def kernels_compiled_by_a_fresh_process(cache):
    """How many kernels a new process compiles to take a sign, with Numba's cache in `cache`."""
    script = "import numpy as np; from stochtp import units; from stochtp.kernels import compilations\n" \
             "with compilations() as compiled: units.sign(np.zeros(3))\nprint(compiled.kernels)"
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    return int(done.stdout.split()[-1])


def test_a_kernel_loaded_from_the_cache_is_not_a_compilation(tmp_path):
    assert kernels_compiled_by_a_fresh_process(tmp_path) == 1
    assert kernels_compiled_by_a_fresh_process(tmp_path) == 0


def test_the_cache_falls_back_to_a_temporary_folder_only_where_nothing_else_can_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(compiling, "_SOURCE_CACHE", str(tmp_path / "sources"))
    assert compiling.ensure_cache_location() is None and numba.config.CACHE_DIR == ""
    monkeypatch.setattr(compiling, "_SOURCE_CACHE", str(blocker / "sources"))  # under a file: cannot be made
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    assert compiling.ensure_cache_location() is None and numba.config.CACHE_DIR == ""
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "user"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    folder = compiling.ensure_cache_location()
    assert numba.config.CACHE_DIR == folder == str(tmp_path / "temp" / f"stochtp-numba-cache-{getpass.getuser()}")


def test_the_command_says_what_it_compiled_unless_quiet(capsys):
    for quiet in (False, True):
        @numba.njit
        def negated(x):
            return -x

        with cli.compile_notice(quiet):
            negated(np.float64(1.0))
        with cli.compile_notice(quiet):
            negated(np.float64(2.0))  # compiled already: nothing to say
        err = capsys.readouterr().err
        assert err.count("compiled") == (0 if quiet else 1)
        if not quiet:  # one line as compiling starts, one with what it took
            starting, done = err.splitlines()
            assert starting == "stochtp: compiling Numba kernels (once per install; cached for later runs)"
            assert done.startswith("stochtp: compiled 1 Numba kernel in ") and done.endswith(" s (cached for next runs)")


def test_the_command_keeps_an_error_to_its_one_line(capsys):
    @numba.njit
    def halved(x):
        return x / 2

    with pytest.raises(ValueError), cli.compile_notice(False):
        halved(1.0)
        raise ValueError("bad input")
    assert "compiled" not in capsys.readouterr().err  # no summary after an error (bad input is refused before any kernel runs)
