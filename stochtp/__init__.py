"""stochtp: target propagation and gradient estimators for discrete and stochastic binary networks."""
import os

# Thread-pool settings, read when each pool starts (so set before NumPy loads its BLAS); a
# user's own settings win. Idle OpenBLAS threads spin for 2^28 cycles (about 0.1 s) after each
# product and take a core from the parallel Numba kernel that follows; 2^21 cycles (about
# 1 ms) keeps them awake between one mini-batch's products only. Idle OpenMP (Numba) threads
# sleep instead of spinning: a spinning pool slowed the BLAS call after each kernel 40-fold.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "21")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .network import Layer, Network, Trace

__version__ = "0.1.0"
__all__ = ["Network", "Layer", "Trace", "__version__"]
