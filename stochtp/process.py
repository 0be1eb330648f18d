"""Process-wide tunings that speed up training (the process belongs to the user: `import stochtp` applies none).

`import stochtp` applies none of them. `configure_process()` applies them for a Python user who
asks; the `stochtp` command applies them as it starts.

- Thread pools, read when each pool starts; a user's own settings win. Idle OpenBLAS threads
  spin for 2^28 cycles (about 0.1 s) after each product and take a core from the threaded
  kernel that follows; OPENBLAS_THREAD_TIMEOUT=21 (2^21 cycles, about 1 ms) keeps them awake
  between one mini-batch's products only. Idle OpenMP threads (Numba's own pool, which starts
  when the thread count is read or set, idle beside the kernels' Python threads; an OpenMP build
  of the BLAS) sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE): a spinning pool slowed the
  BLAS call after each kernel 40-fold.
- glibc keeps freed blocks in the heap for reuse (Linux only; a user's MALLOC_* or GLIBC_TUNABLES
  malloc settings win). By default glibc gives blocks over a dynamic threshold (128 KB up to
  32 MB) back to the system and takes fresh pages for the next one, which the kernel zeroes on
  first touch: the training loop's chunk arrays (4 to 16 MB, made anew every 50 mini-batches)
  cost thousands of page faults per chunk, inside the threaded kernels. Blocks up to 32 MB then
  come from the heap and up to 256 MB of free heap is kept; the peak memory is unchanged.

OpenBLAS reads its variable once, when NumPy loads it; OpenMP reads its own when Numba first
starts its threads. `import stochtp` loads neither, so `configure_process()` called before
NumPy is imported reaches both; called later it still sets the allocator and, before the first
OpenMP pool starts, OpenMP (set OPENBLAS_THREAD_TIMEOUT=21 before starting Python to have it all).
The `stochtp` command (`stochtp.__main__`) calls it before anything imports NumPy.
"""
import ctypes
import os

THREAD_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "21", "OMP_WAIT_POLICY": "PASSIVE"}
MALLOC_THRESHOLDS = {"M_MMAP_THRESHOLD": (-3, 32 << 20), "M_TRIM_THRESHOLD": (-1, 256 << 20)}  # mallopt parameter, value
# Names of the variables configure_process added, space-separated: kept in the environment so that
# the command's child processes know them (the bench runs the PyTorch peer without them).
ADDED_VARIABLE = "STOCHTP_ADDED_ENVIRONMENT"
_malloc_tuned = False


def configure_process():
    """Apply stochtp's process tunings (the module docstring says which and why); idempotent.

    >>> import stochtp
    >>> settings = stochtp.configure_process()
    >>> stochtp.configure_process()
    {}

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
