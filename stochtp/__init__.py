"""stochtp: target propagation and gradient estimators for discrete and stochastic binary networks."""
import os
import sys
import warnings

# Thread-pool settings, read when each pool starts (so set before NumPy loads its BLAS); a
# user's own settings win. Idle OpenBLAS threads spin for 2^28 cycles (about 0.1 s) after each
# product and take a core from the parallel Numba kernel that follows; 2^21 cycles (about
# 1 ms) keeps them awake between one mini-batch's products only. Idle OpenMP (Numba) threads
# sleep instead of spinning: a spinning pool slowed the BLAS call after each kernel 40-fold.
_THREAD_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "21", "OMP_WAIT_POLICY": "PASSIVE"}
_blas_started_without_us = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
# The variables this import added to the environment, which child processes inherit: `stochtp
# bench` runs the PyTorch peer without them (OMP_WAIT_POLICY=PASSIVE makes torch's OpenMP
# threads sleep between operations: its epochs took 1.6-2.0x as long here).
ENVIRONMENT_ADDED = tuple(name for name in _THREAD_DEFAULTS if name not in os.environ)
os.environ.update({name: _THREAD_DEFAULTS[name] for name in ENVIRONMENT_ADDED})


def _warn_if_openblas_missed_the_setting():
    """NumPy imported before stochtp has started OpenBLAS's threads with their 0.1-s spin, which no
    call can change afterwards (stochastic DTP epochs about 10 % slower here): say so once, with
    the fix. Silent where OpenBLAS runs one thread (nothing spins: Dask workers, for one), and
    where the variable was set, which it cannot tell from one set too late, after NumPy loaded."""
    from threadpoolctl import threadpool_info

    from .errors import SlowSettingsWarning

    if any(pool.get("internal_api") == "openblas" and pool.get("num_threads", 1) > 1 for pool in threadpool_info()):
        warnings.warn(
            "stochtp was imported after NumPy, whose OpenBLAS threads therefore spin 0.1 s after each product "
            "(training about 10 % slower); import stochtp first, or set OPENBLAS_THREAD_TIMEOUT=21 before starting Python",
            SlowSettingsWarning,
            stacklevel=3,
        )


if _blas_started_without_us:
    _warn_if_openblas_missed_the_setting()


def _keep_freed_memory():
    """Have glibc keep freed blocks in the heap for reuse (Linux only; a user's MALLOC_* or
    GLIBC_TUNABLES malloc settings win).

    By default glibc gives blocks over a dynamic threshold (128 KB up to 32 MB) back to the
    system and takes fresh pages for the next one, which the kernel zeroes on first touch: the
    training loop's chunk arrays (4 to 16 MB, made anew every 50 mini-batches) cost thousands
    of page faults per chunk, inside the parallel kernels. Blocks up to 32 MB now come from the
    heap and up to 256 MB of free heap is kept; the peak memory is unchanged.
    """
    import ctypes

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not Linux, or another C library
        glibc = False
    user_set = any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    if not glibc or user_set:
        return
    mallopt = ctypes.CDLL(None).mallopt
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD


_keep_freed_memory()

from . import callbacks, methods  # noqa: E402 (after the settings above)
from .network import Layer, Network, Trace  # noqa: E402
from .train import fit  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Network", "Layer", "Trace", "fit", "callbacks", "methods", "__version__"]
