"""Compiling the long sampling kernels ahead, in a second process, while a run compiles the rest.

On a fresh install every kernel compiles on its first call, one after another, in the process
that calls it, while the machine's other cores wait. A run knows before its first mini-batch
which of the long ones it will need: a stochastic network draws its samples with
`sigmoid_bernoulli` and `bernoulli`, and its K-sample evaluation runs the passes kernel at the
end of an epoch. `start(items)` compiles those in a child process into Numba's cache, while the
run compiles its input noise, its method's kernels and its optimiser; the run's first call of
one of them waits until the child has reported it (`compiling.wait_for`), then loads it from the
cache as a later run would.

An item is a warm-up call on a tiny input that compiles the signatures the real calls use
(`WARM_UPS`; `items` names a network's). The child reports each item on stdout once its call
has returned, with how many of its kernels it compiled and how long that took, and leaves a
stamp in the cache folder (`stamp_path`), named after what decides whether Numba's cache still
holds the code (Numba's and Python's versions, the source files the items compile, the CPU), so
that later runs start no child for it. A child that fails leaves a failure stamp instead (its
error is in `stochtp-ahead.log` in the cache folder), and is not tried again for those sources.
While one child compiles it holds `stochtp-ahead.lock` there: a second child (another run's, as
a grid's workers start together) ends at once, and its run compiles for itself. `compile_here`
does a child's work in the calling process (the bench, before it times a run).

Nothing depends on the child: where it cannot start, fails or is killed, its report never
comes, the wait ends with it, and the run compiles the kernel itself, as it would without it.
`STOCHTP_COMPILE_AHEAD=0` in the environment turns it off; where Python has no `fcntl` (Windows)
it is off.
"""
import hashlib
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import binding

try:
    import fcntl  # the lock; where there is none (Windows), no child starts
except ImportError:
    fcntl = None

from . import compiling, passes, sampling


def _bernoulli_warm_up(dtype):
    from . import bernoulli, sigmoid_bernoulli  # the public kernels (their package imports this module)

    a = np.zeros(sampling.GROUP, dtype)
    sigmoid_bernoulli(a, 0)
    bernoulli(a, 0, dtype=dtype)


def _chain_warm_up():
    widths = (passes.BITS, passes.BITS, 2)
    weights = [np.zeros((n_in, n_out), np.float32) for n_in, n_out in zip(widths, widths[1:])]
    biases = [np.zeros(n_out, np.float32) for n_out in widths[1:]]
    passes.chain_sum(np.zeros((1, widths[0]), np.float32), weights, biases, 1.0, 0, [[0, 0]])


WARM_UPS = {  # item -> (the call that compiles it, the kernels whose first call waits for it)
    "bernoulli-float32": (lambda: _bernoulli_warm_up(np.float32), (sampling.sigmoid_tasks, sampling.bernoulli_tasks)),
    "bernoulli-float64": (lambda: _bernoulli_warm_up(np.float64), (sampling.sigmoid_tasks, sampling.bernoulli_tasks)),
    "chain": (_chain_warm_up, (passes.chain_totals,)),
}
SOURCES = ("ahead.py", "bits.py", "passes.py", "philox.py", "sampling.py")  # the files the items compile (and choose)
_FOLDER = os.path.dirname(os.path.abspath(__file__))


def items(dtype, chain):
    """The items of a stochastic network of `dtype` whose K-sample evaluation does (`chain`) or
    does not run the passes kernel."""
    return [f"bernoulli-{np.dtype(dtype).name}", *(["chain"] if chain else [])]


def stamp_path(item, outcome="done", sources=_FOLDER):
    """The file that says `item` was compiled into Numba's cache (`outcome` "done", by a child or
    `compile_here`) or failed to ("failed"), from the SOURCES in the folder `sources` as they are now."""
    digest = hashlib.blake2b(digest_size=8)
    for name in SOURCES:
        status = os.stat(os.path.join(sources, name))
        digest.update(f"{name}:{status.st_mtime_ns}:{status.st_size};".encode())
    try:
        features = binding.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot read them on this host (Numba then compiles without them too)
        features = ""
    digest.update(f"{numba.__version__};{sys.version};{binding.get_process_triple()};{binding.get_host_cpu_name()};{features}".encode())
    return os.path.join(_cache_folder(), f"stochtp-ahead-{item}-{outcome}-{digest.hexdigest()}")


def _cache_folder():
    return sampling.bernoulli_tasks.stats.cache_path


def start(names):
    """Compile the items `names` in a child process, those that no stamp covers; returns them
    (none where every one is stamped, a child is at work, it is turned off, or none can start)."""
    unknown = [name for name in names if name not in WARM_UPS]
    if unknown:
        raise ValueError(f"no kernels to compile ahead under {unknown}; known: {sorted(WARM_UPS)}")
    if os.environ.get("STOCHTP_COMPILE_AHEAD", "1") == "0" or getattr(sys, "frozen", False) or fcntl is None or compiling.expecting():
        return []
    try:
        todo = [name for name in dict.fromkeys(names) if not any(os.path.exists(stamp_path(name, outcome)) for outcome in ("done", "failed"))]
        if not todo:
            return []
        with _lock():  # free: no child of another process is at work
            pass
        with open(os.path.join(_cache_folder(), "stochtp-ahead.log"), "w") as log:
            process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, os.path.dirname(os.path.dirname(_FOLDER)), *todo],
                                       env={**os.environ, **({"NUMBA_CACHE_DIR": numba.config.CACHE_DIR} if numba.config.CACHE_DIR else {})},
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        compiling.expect(process, {kernel: name for name in reversed(todo) for kernel in WARM_UPS[name][1]})
    except Exception:  # the lock is held, the cache folder cannot be used, or no child could start: the run compiles for itself
        return []
    return todo


# The child's command: the parent's stochtp first on sys.path, in place of the working folder that -c puts there.
_LAUNCHER = ("import sys; sys.path[:1] = [sys.argv[1]] if sys.path[:1] == [''] else [sys.argv[1], *sys.path[:1]]; "
             "from stochtp.kernels.ahead import main; main(sys.argv[1], sys.argv[2:])")


@contextmanager
def _lock():
    """Hold `stochtp-ahead.lock` in the cache folder; BlockingIOError where another process holds it."""
    folder = _cache_folder()
    os.makedirs(folder, exist_ok=True)
    descriptor = os.open(os.path.join(folder, "stochtp-ahead.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def compile_here(names, report=None):
    """Each item's warm-up call in this process, then its stamp; `report(name, kernels, seconds)`
    after each: how many of its kernels it compiled (0 where the cache had them), how long."""
    for name in names:
        kernels = WARM_UPS[name][1]
        compiled_before = _compiled(kernels)
        started = time.perf_counter()
        try:
            WARM_UPS[name][0]()
        except Exception:
            _stamp(name, "failed")
            raise
        _stamp(name, "done")
        if report is not None:
            report(name, _compiled(kernels) - compiled_before, time.perf_counter() - started)


def _compiled(kernels):
    """How many signatures of `kernels` this process has compiled (not found in the cache)."""
    return sum(sum(kernel.stats.cache_misses.values()) for kernel in kernels)


def _stamp(name, outcome):
    try:
        open(stamp_path(name, outcome), "w").close()
    except OSError:  # a stamp spares later runs a child; without one they start it again
        pass


def main(package_parent, names):
    """The child: `compile_here`, each item reported on stdout, while it holds the lock; nothing
    where another child holds it, or where this is not the parent's stochtp (`package_parent`,
    the folder that holds it)."""
    if os.path.realpath(_FOLDER) != os.path.realpath(os.path.join(package_parent, "stochtp", "kernels")):
        raise SystemExit(f"stochtp.kernels.ahead: this child imported stochtp from {_FOLDER}, not from {package_parent}")
    try:
        with _lock():
            compile_here(names, lambda name, kernels, seconds: print(name, kernels, f"{seconds:.3f}", flush=True))
    except BlockingIOError:
        return
