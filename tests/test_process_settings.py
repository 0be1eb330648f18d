"""What `import stochtp` sets for the process (stochtp/__init__.py): thread-pool defaults that a
user's environment overrides, and glibc keeping freed memory for reuse. Each check runs in a fresh
interpreter, since the settings act when a process starts its pools and allocates."""
import os
import subprocess
import sys

import pytest

FAULTS_OF_A_REALLOCATION = """
import resource
import numpy as np
import stochtp

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

block = np.ones(5 << 20, np.float32)  # 20 MB, the size of a chunk of noisy MNIST inputs
del block
before = faults()
block = np.ones(5 << 20, np.float32)
print(faults() - before)
"""


def python(code, **env):
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("MALLOC_", "OPENBLAS_", "OMP_"))}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_thread_defaults_are_set_unless_the_user_set_them():
    show = "import os, stochtp; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], os.environ['OMP_WAIT_POLICY'])"
    assert python(show) == "21 PASSIVE"
    assert python(show, OPENBLAS_THREAD_TIMEOUT="4", OMP_WAIT_POLICY="ACTIVE") == "4 ACTIVE"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_freed_chunk_array_is_reused_without_page_faults_unless_the_user_tunes_malloc():
    """By default glibc returns the freed 20 MB to the system and the next one page-faults (about
    500 faults here); after `import stochtp` it comes back from the heap. A user's MALLOC_*
    setting (here one that does not touch the thresholds) leaves glibc's behaviour alone."""
    reused = int(python(FAULTS_OF_A_REALLOCATION))
    fresh = int(python(FAULTS_OF_A_REALLOCATION, MALLOC_ARENA_MAX="8"))
    assert reused < 10, reused
    assert fresh > reused + 5, (fresh, reused)  # fewer than 500 where the kernel backs it with huge pages


CAUGHT_ON_IMPORT = """
import warnings
{before}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import stochtp
print([type(w.message).__name__ for w in caught])
"""


def test_importing_stochtp_after_numpy_warns_that_openblas_missed_the_setting():
    """OpenBLAS reads its thread timeout when NumPy loads it: imported later, stochtp cannot set
    it and says so; not when stochtp comes first, nor when the user set the variable, nor when
    OpenBLAS runs a single thread (nothing spins)."""
    threaded_openblas = "import numpy, threadpoolctl; print(any(p['internal_api'] == 'openblas' and p['num_threads'] > 1 for p in threadpoolctl.threadpool_info()))"
    if python(threaded_openblas) != "True":
        pytest.skip("NumPy's BLAS here is not OpenBLAS with more than one thread")
    assert python(CAUGHT_ON_IMPORT.format(before="import numpy")) == "['SlowSettingsWarning']"
    assert python(CAUGHT_ON_IMPORT.format(before="import numpy"), OPENBLAS_THREAD_TIMEOUT="21") == "[]"
    assert python(CAUGHT_ON_IMPORT.format(before="import numpy"), OPENBLAS_NUM_THREADS="1") == "[]"
    assert python(CAUGHT_ON_IMPORT.format(before="")) == "[]"
