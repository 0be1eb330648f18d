"""Process-wide tunings that speed up training (design section 17: the process belongs to the user).

`import stochtp` applies none of them. `configure_process()` applies them for a Python user who
asks; the `stochtp` command applies them as it starts (`start_command`).

- Thread pools, read when each pool starts; a user's own settings win. Idle OpenBLAS threads
  spin for 2^28 cycles (about 0.1 s) after each product and take a core from the parallel Numba
  kernel that follows; OPENBLAS_THREAD_TIMEOUT=21 (2^21 cycles, about 1 ms) keeps them awake
  between one mini-batch's products only. Idle OpenMP (Numba) threads sleep instead of spinning
  (OMP_WAIT_POLICY=PASSIVE): a spinning pool slowed the BLAS call after each kernel 40-fold.
- glibc keeps freed blocks in the heap for reuse (Linux only; a user's MALLOC_* or GLIBC_TUNABLES
  malloc settings win). By default glibc gives blocks over a dynamic threshold (128 KB up to
  32 MB) back to the system and takes fresh pages for the next one, which the kernel zeroes on
  first touch: the training loop's chunk arrays (4 to 16 MB, made anew every 50 mini-batches)
  cost thousands of page faults per chunk, inside the parallel kernels. Blocks up to 32 MB then
  come from the heap and up to 256 MB of free heap is kept; the peak memory is unchanged.

OpenBLAS reads its variable once, when NumPy loads it, and `import stochtp` loads NumPy; OpenMP
reads its own when Numba first starts its threads. So in a Python session configure_process()
reaches OpenBLAS only in child processes (or set OPENBLAS_THREAD_TIMEOUT=21 before starting
Python), and the OpenMP setting if called before the first parallel kernel.

The command gets all of it by re-executing itself: `start_command` applies the tunings, and if
it added a variable that a library already loaded has read (NumPy's OpenBLAS is loaded by the
time the command runs: by the console script's `import stochtp.cli`, or by `python -m stochtp`
importing the package), it replaces the process (os.execv, same process id, same arguments
from sys.orig_argv) with a fresh one that starts with the variables set; there nothing is added,
so it goes on. That costs one more interpreter start (about 0.3 s, once per command, and only
where a user has not set the variables) and keeps `import stochtp` free of side effects.
"""
import ctypes
import os
import sys

THREAD_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "21", "OMP_WAIT_POLICY": "PASSIVE"}
READ_AT_LOAD = {"OPENBLAS_THREAD_TIMEOUT": "openblas", "OMP_WAIT_POLICY": "openmp"}  # variable -> the threadpoolctl library that reads it as it loads
MALLOC_THRESHOLDS = {"M_MMAP_THRESHOLD": (-3, 32 << 20), "M_TRIM_THRESHOLD": (-1, 256 << 20)}  # mallopt parameter, value
# Names of the variables configure_process added, space-separated: kept in the environment so that
# a re-executed command and its children know them (the bench runs the PyTorch peer without them).
ADDED_VARIABLE = "STOCHTP_ADDED_ENVIRONMENT"
_malloc_tuned = False


def configure_process():
    """Apply stochtp's process tunings (the module docstring says which and why); idempotent.

    Returns what this call set, name -> value: the thread-pool variables it added to os.environ
    (those the user had not set) and the glibc malloc thresholds (M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD; Linux with glibc, unless the user tunes malloc); {} when called again.
    """
    added = {name: value for name, value in THREAD_DEFAULTS.items() if name not in os.environ}
    os.environ.update(added)
    if added:
        os.environ[ADDED_VARIABLE] = " ".join(sorted({*environment_added(), *added}))
    return {**added, **_keep_freed_memory()}


def environment_added():
    """The variables that configure_process added to this process's environment, or to that of the
    stochtp command which started it."""
    return tuple(os.environ.get(ADDED_VARIABLE, "").split())


def start_command():
    """What the `stochtp` command does as it starts: configure_process(), then re-execute itself
    if a library that was already loaded missed a variable it added (module docstring)."""
    added = configure_process()
    if os.name == "posix" and _read_already(added) and _is_the_command():
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _read_already(names):
    """Whether a library that reads one of `names` as it loads is loaded in this process."""
    wanted = {READ_AT_LOAD[name] for name in names if name in READ_AT_LOAD}
    if not wanted:
        return False
    from threadpoolctl import threadpool_info

    loaded = {pool.get(key) for pool in threadpool_info() for key in ("internal_api", "user_api")}
    return bool(wanted & loaded)


def _is_the_command():
    """Whether this process runs the stochtp command itself (its console script or `python -m
    stochtp`), not a program that calls the command's main(): only the command is re-executed."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (spec is not None and spec.name == "stochtp.__main__") or os.path.basename(sys.argv[0]) == "stochtp"


def _keep_freed_memory():
    """The malloc thresholds of the module docstring, set once; {} where not glibc, already set,
    or where the user tunes malloc."""
    global _malloc_tuned
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not Linux, or another C library
        glibc = False
    user_set = any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    if _malloc_tuned or not glibc or user_set:
        return {}
    mallopt = ctypes.CDLL(None).mallopt
    for parameter, value in MALLOC_THRESHOLDS.values():
        mallopt(parameter, value)
    _malloc_tuned = True
    return {name: value for name, (_, value) in MALLOC_THRESHOLDS.items()}
