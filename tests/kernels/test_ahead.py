"""Kernels compiled ahead in a child process (stochtp.kernels.ahead, compiling.expect/wait_for)."""
import os
import subprocess
import sys
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


def reporting_child(script):
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("script, counted", [("print('other'); print('item')", 1), ("import sys; sys.exit(1)", 0)])
def test_a_kernel_expected_from_a_child_waits_for_its_report_or_its_end(script, counted):
    _stand_in(0, 0)
    child = reporting_child(script)
    compiling.expect(child, {_stand_in: "item"})
    with compilations() as compiled:
        compiling.wait_for(_stand_in)
        compiling.wait_for(_stand_in)  # waited for once
    child.wait()
    assert compiled.ahead == counted and compiled.kernels == 0
    assert not compiling.expecting()
    assert ("1 more in a second process alongside" in str(compiled)) == bool(counted)


def test_networks_name_the_sampling_kernels_their_runs_call():
    assert Network.from_spec("8-16t-3s", seed=0).kernels_to_compile(100) == []
    stochastic = Network.from_spec("8-16b-16b-3s", seed=0)
    assert stochastic.kernels_to_compile(100) == ["bernoulli-float32", "chain"]
    assert stochastic.kernels_to_compile(1) == ["bernoulli-float32"]
    assert Network.from_spec("8-16b-3s", seed=0, dtype=np.float64).kernels_to_compile(100) == ["bernoulli-float64"]


FRESH_RUN = """
import json, numpy as np, stochtp
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
                  "stamped": all(__import__("os").path.exists(ahead.stamp_path(i)) for i in ("bernoulli-float32", "chain")),
                  "again": ahead.start(net.kernels_to_compile(passes.MIN_SAMPLES))}))
"""


@pytest.mark.slow
def test_a_fresh_install_compiles_the_sampling_kernels_in_a_child_and_loads_them(tmp_path):
    import json

    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FRESH_RUN], capture_output=True, text=True, env=environment, check=True)
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome == {"ahead": 3, "compiled_here": 0, "loaded": 3, "stamped": True, "again": []}


def test_stamps_name_the_sources_they_were_compiled_from():
    assert ahead.stamp_path("chain") == ahead.stamp_path("chain") != ahead.stamp_path("bernoulli-float32")
    assert os.path.basename(ahead.stamp_path("chain")).startswith("stochtp-ahead-chain-")
