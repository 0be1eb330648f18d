"""Compiling the long sampling kernels ahead, in a second process, while a run compiles the rest.

On a fresh install every kernel compiles on its first call, one after another, in the process
that calls it, while the machine's other cores wait. A run knows before its first mini-batch
which of the long ones it will need: a stochastic network draws its samples with
`sigmoid_bernoulli` and `bernoulli` (about 4 s to compile on a 2-core machine), and its
K-sample evaluation runs the passes kernel (about 4.5 s) at the end of an epoch. `start(items)`
compiles those in a child process into Numba's cache, while the run compiles its input noise,
its methods' kernels and its optimiser; the run's first call of one of them waits until the
child has reported it (`compiling.wait_for`), then loads it from the cache as a later run would.

An item is a warm-up call on a tiny input that compiles the signatures the real calls use
(`WARM_UPS`). The child prints an item's name once its call has returned, and leaves a stamp
in the cache folder (`stamp_path`), named after what decides whether Numba's cache still holds
the code (Numba's and Python's versions, the kernels' source files, the CPU), so that later
runs start no child for it.

Nothing depends on the child: where it cannot start, fails or is killed, its line never comes,
the wait ends with its output, and the run compiles the kernel itself, as it would without it.
"""
import hashlib
import os
import subprocess
import sys

import numba
import numpy as np
from llvmlite import binding

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


def stamp_path(item):
    """The file that says a child compiled `item` into Numba's cache from these sources."""
    digest = hashlib.blake2b(digest_size=8)
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            status = os.stat(os.path.join(folder, name))
            digest.update(f"{name}:{status.st_mtime_ns}:{status.st_size};".encode())
    digest.update(f"{numba.__version__};{sys.version};{binding.get_process_triple()};{binding.get_host_cpu_name()};"
                  f"{binding.get_host_cpu_features().flatten()}".encode())
    return os.path.join(sampling.bernoulli_tasks.stats.cache_path, f"stochtp-ahead-{item}-{digest.hexdigest()}")


def start(items):
    """Compile the `WARM_UPS` items that no stamp covers in a child process; returns those it
    compiles (none where every item is stamped, a child is still at work, or none can start)."""
    if compiling.expecting():
        return []
    todo = [item for item in dict.fromkeys(items) if not os.path.exists(stamp_path(item))]
    if not todo:
        return []
    environment = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, environment.get("PYTHONPATH")]))
    if numba.config.CACHE_DIR:
        environment["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
    try:
        process = subprocess.Popen([sys.executable, "-m", "stochtp.kernels.ahead", *todo], env=environment, text=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return []
    compiling.expect(process, {kernel: item for item in reversed(todo) for kernel in WARM_UPS[item][1]})
    return todo


def _main(items):
    """The child: each item's warm-up call, then its stamp and its name on stdout."""
    for item in items:
        WARM_UPS[item][0]()
        with open(stamp_path(item), "w"):
            pass
        print(item, flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
