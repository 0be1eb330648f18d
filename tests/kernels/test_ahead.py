"""Kernels compiled ahead in a child process (stochtp.kernels.ahead, compiling.expect/wait_for)."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest

from stochtp import Network
from stochtp.kernels import ahead, compilations, compiling

ROOT = Path(__file__).resolve().parents[2]


@numba.njit
def _stand_in(first, stop):
    return False


@pytest.fixture
def no_child(monkeypatch):
    """The module's record of a child, fresh for the test (a real one of the suite stays apart)."""
    monkeypatch.setattr(compiling, "_AHEAD", None)
    _stand_in(0, 0)  # compiled before the tests' compilations() blocks


def expect_child(script, items=("item",)):
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    compiling.expect(child, {_stand_in: items[0]})
    return child


@pytest.mark.parametrize("script, ahead_kernels", [("print('other 5 1.0'); print('item two 1.5'); print('item 2 1.5'); import time; time.sleep(0.2)", 2),
                                                   ("import sys; sys.exit(1)", 0)])
def test_a_kernel_expected_from_a_child_waits_for_its_report_or_its_end(no_child, script, ahead_kernels):
    with compilations() as compiled:
        child = expect_child(script)
        compiling.wait_for(_stand_in)
        reported = compiled.ahead
        compiling.wait_for(_stand_in)  # only the first call waits
        child.wait()
    assert reported == ahead_kernels and compiled.kernels == 0
    assert compiled.ahead_seconds == (1.5 if ahead_kernels else 0.0)
    assert ("2 in a second process alongside (1.5 s)" in str(compiled)) == bool(ahead_kernels)


def test_a_child_that_does_not_report_in_time_is_stopped(no_child, monkeypatch):
    monkeypatch.setattr(compiling, "WAIT_LIMIT", 0.3)
    child = expect_child("import time; time.sleep(60)")
    started = time.perf_counter()
    compiling.wait_for(_stand_in)
    assert time.perf_counter() - started < 10
    assert child.wait(10) != 0 and not compiling.expecting()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_neither_waits_for_its_parents_child_nor_counts_it(no_child):
    child = expect_child("import time; time.sleep(60)")
    pid = os.fork()
    if pid == 0:  # the forked copy: returns at once, expects nothing of its own
        started = time.perf_counter()
        compiling.wait_for(_stand_in)
        os._exit(0 if time.perf_counter() - started < 1 and not compiling.expecting() else 1)
    _, status = os.waitpid(pid, 0)
    child.kill()
    child.wait()
    assert os.waitstatus_to_exitcode(status) == 0


def test_networks_name_the_sampling_kernels_their_runs_call():
    assert Network.from_spec("8-16t-3s", seed=0).kernels_to_compile(100) == []
    stochastic = Network.from_spec("8-16b-16b-3s", seed=0)
    assert stochastic.kernels_to_compile(100) == ["bernoulli-float32", "chain"]
    assert stochastic.kernels_to_compile(1) == ["bernoulli-float32"]
    assert Network.from_spec("8-16b-3s", seed=0, dtype=np.float64).kernels_to_compile(100) == ["bernoulli-float64"]
    assert set(ahead.items(np.float32, chain=True)) <= set(ahead.WARM_UPS)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own for the stamps, the lock and the log."""
    monkeypatch.setattr(ahead, "_cache_folder", lambda: str(tmp_path))
    return tmp_path


def test_start_refuses_unknown_items_and_can_be_turned_off(no_child, cache, monkeypatch):
    with pytest.raises(ValueError, match="no kernels to compile ahead under \\['bernoulli-int8'\\]"):
        ahead.start(["bernoulli-int8"])
    monkeypatch.setenv("STOCHTP_COMPILE_AHEAD", "0")
    assert ahead.start(["chain"]) == [] and not list(cache.iterdir())


def test_while_one_child_holds_the_lock_no_other_starts_or_compiles(no_child, cache, capsys):
    with open(cache / "stochtp-ahead.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert ahead.start(["chain"]) == []
        ahead.main(str(ROOT), ["chain"])  # a child that finds the lock held ends at once
    assert not compiling.expecting() and capsys.readouterr().out == "" and not list(cache.glob("stochtp-ahead-chain-*"))


def test_a_child_that_imported_another_stochtp_compiles_nothing(cache, tmp_path):
    with pytest.raises(SystemExit, match="not from"):
        ahead.main(str(tmp_path), ["chain"])
    assert not list(cache.glob("stochtp-ahead-chain-*"))


def test_a_child_that_cannot_run_leaves_the_kernels_to_the_run(no_child, cache, monkeypatch, tmp_path):
    failing = tmp_path / "failing-python"
    failing.write_text("#!/bin/sh\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(ahead.sys, "executable", str(failing))
    assert ahead.start(["bernoulli-float32"]) == ["bernoulli-float32"]
    from stochtp.kernels import bernoulli

    with compilations() as compiled:
        samples = bernoulli(np.full(256, 0.5, np.float32), 1, 2)
    assert compiled.ahead == 0 and samples.mean() == pytest.approx(0.5, abs=0.15)
    assert not list(cache.glob("stochtp-ahead-bernoulli-float32-*"))  # not stamped: tried again next time


def test_stamps_follow_the_sources_they_compile(tmp_path):
    for name in ahead.SOURCES:
        shutil.copy2(Path(ahead.__file__).with_name(name), tmp_path / name)
    stamp = ahead.stamp_path("chain", sources=tmp_path)
    assert stamp == ahead.stamp_path("chain", sources=tmp_path) != ahead.stamp_path("chain", "failed", sources=tmp_path)
    assert os.path.basename(stamp).startswith("stochtp-ahead-chain-done-")
    os.utime(tmp_path / "passes.py", ns=(0, 0))
    assert ahead.stamp_path("chain", sources=tmp_path) != stamp


FRESH_RUN = """
import json, os, numpy as np, stochtp
from stochtp.kernels import ahead, compilations, passes, sampling
rng = np.random.default_rng(0)
X, y = rng.random((120, 16)).astype(np.float32), rng.integers(0, 4, 120)
net = stochtp.Network.from_spec("16-16b-16b-4s", seed=0)
with compilations() as compiled:
    stochtp.fit(net, stochtp.methods.get("st", lr=0.01), train=(X[:80], y[:80]), valid=(X[80:100], y[80:100]),
                test=(X[100:], y[100:]), epochs=1, batch_size=20, eval_samples=passes.MIN_SAMPLES)
kernels = (sampling.sigmoid_tasks, sampling.bernoulli_tasks, passes.chain_totals)
print(json.dumps({"ahead": compiled.ahead, "compiled_here": sum(sum(k.stats.cache_misses.values()) for k in kernels),
                  "loaded": sum(sum(k.stats.cache_hits.values()) for k in kernels),
                  "stamped": all(os.path.exists(ahead.stamp_path(i)) for i in ahead.items(np.float32, chain=True)),
                  "again": ahead.start(net.kernels_to_compile(passes.MIN_SAMPLES))}))
"""


@pytest.mark.slow
def test_a_fresh_install_compiles_the_sampling_kernels_in_a_child_and_loads_them(tmp_path):
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    environment.pop("STOCHTP_COMPILE_AHEAD", None)
    done = subprocess.run([sys.executable, "-c", FRESH_RUN], capture_output=True, text=True, env=environment, check=True)
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome == {"ahead": 3, "compiled_here": 0, "loaded": 3, "stamped": True, "again": []}
