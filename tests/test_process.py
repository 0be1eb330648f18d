"""The process belongs to the user: `import stochtp` changes nothing of it;
`stochtp.configure_process()` applies the thread-pool and allocator tunings on request, and the
`stochtp` command applies them as it starts, before NumPy loads OpenBLAS. Each check runs in a
fresh interpreter, since the settings act when a process starts its pools and allocates."""
import json
import os
import subprocess
import sys

import pytest


FAULTS_OF_A_REALLOCATION = """
import resource
import numpy as np
import stochtp
{configure}

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

block = np.ones(5 << 20, np.float32)  # 20 MB, the size of a chunk of noisy MNIST inputs
del block
before = faults()
block = np.ones(5 << 20, np.float32)
print(faults() - before)
"""


def clean_environment(**env):
    """This environment without the user's malloc and thread-pool settings (and stochtp's record of
    them), plus `env`."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(("MALLOC_", "OPENBLAS_", "OMP_", "STOCHTP_ADDED"))}
    return {**kept, **env}


def python(code, *argv, **env):
    result = subprocess.run([sys.executable, *argv, "-c", code], env=clean_environment(**env), capture_output=True, text=True, check=True)
    return result.stdout.strip(), result.stderr


def test_import_changes_no_variable_and_warns_of_nothing_whatever_came_first():
    """Also under -W error, with NumPy imported first."""
    code = "import os; before = dict(os.environ); import numpy, stochtp; print(dict(os.environ) == before)"
    assert python(code, "-W", "error") == ("True", "")
    assert python(code.replace("import numpy, stochtp", "import stochtp, numpy"), "-W", "error") == ("True", "")


def test_configure_process_sets_the_thread_defaults_once_unless_the_user_set_them():
    show = ("import json, os, stochtp; first = stochtp.configure_process(); second = stochtp.configure_process(); "
            "print(json.dumps([sorted(first), second, [os.environ.get(name) for name in "
            "('OPENBLAS_THREAD_TIMEOUT', 'OMP_WAIT_POLICY', 'STOCHTP_ADDED_ENVIRONMENT')]]))")
    first, second, environment = json.loads(python(show)[0])
    assert {"OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT"} <= set(first) and second == {}
    assert environment == ["21", "PASSIVE", "OMP_WAIT_POLICY OPENBLAS_THREAD_TIMEOUT"]
    first, second, environment = json.loads(python(show, OPENBLAS_THREAD_TIMEOUT="4", OMP_WAIT_POLICY="ACTIVE")[0])
    assert not {"OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT"} & set(first) and environment == ["4", "ACTIVE", None]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_freed_chunk_array_is_reused_without_page_faults_once_configured():
    """By default glibc returns the freed 20 MB to the system and the next one page-faults (about
    500 faults here): so after a bare `import stochtp`. After configure_process() it comes back from
    the heap, unless the user tunes malloc (here a MALLOC_* setting that leaves the thresholds)."""
    reused = int(python(FAULTS_OF_A_REALLOCATION.format(configure="stochtp.configure_process()"))[0])
    untouched = int(python(FAULTS_OF_A_REALLOCATION.format(configure=""))[0])
    user_tuned = int(python(FAULTS_OF_A_REALLOCATION.format(configure="stochtp.configure_process()"), MALLOC_ARENA_MAX="8")[0])
    assert reused < 10, reused
    assert untouched > reused + 5 and user_tuned > reused + 5, (untouched, user_tuned, reused)  # fewer than 500 where the kernel backs it with huge pages


COMMAND = """
import os, sys


class NumpySpy:
    # notes the thread-pool variables when NumPy is first imported (and OpenBLAS loads with them)
    seen = None

    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and self.seen is None:
            self.seen = [os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ.get("OMP_WAIT_POLICY")]


spy = NumpySpy()
sys.meta_path.insert(0, spy)
sys.argv = ["stochtp", "show", "no-such-file.h5"]
import stochtp.__main__ as command
print("numpy loaded by the import:", "numpy" in sys.modules)
print("exit", command.main(), "numpy saw", *spy.seen, "added", os.environ.get("STOCHTP_ADDED_ENVIRONMENT"))
"""


@pytest.mark.slow
def test_the_command_applies_the_settings_before_numpy_loads():
    """`python -m stochtp` and the `stochtp` script run `stochtp.__main__.main`: importing the
    package loads no NumPy, and the command sets the variables before it does; with the user's own
    settings it leaves them as they are."""
    out, _ = python(COMMAND)
    assert out.splitlines() == ["numpy loaded by the import: False", "exit 2 numpy saw 21 PASSIVE added OMP_WAIT_POLICY OPENBLAS_THREAD_TIMEOUT"]
    out, _ = python(COMMAND, OPENBLAS_THREAD_TIMEOUT="4", OMP_WAIT_POLICY="ACTIVE")
    assert out.splitlines()[1] == "exit 2 numpy saw 4 ACTIVE added None"


def test_import_stochtp_loads_no_numpy_until_a_name_needs_it():
    code = "import sys, stochtp; print('numpy' in sys.modules); stochtp.Network; print('numpy' in sys.modules)"
    assert python(code)[0].split() == ["False", "True"]


def test_every_module_is_reached_from_the_lazy_package():
    code = "import pkgutil, stochtp; print(all(getattr(stochtp, m.name).__name__ == 'stochtp.' + m.name for m in pkgutil.iter_modules(stochtp.__path__) if m.name != '__main__'))"
    assert python(code)[0] == "True"
