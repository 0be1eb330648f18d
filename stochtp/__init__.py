"""stochtp: target propagation and gradient estimators for discrete and stochastic binary networks.

Importing stochtp changes nothing of the process (environment, allocator, garbage collector) and
prints nothing; `configure_process()` applies the tunings the `stochtp` command uses (see
`stochtp.process`).
"""
from .network import Layer, Network, Trace
from .process import configure_process

__version__ = "0.1.0"
__all__ = ["Network", "Layer", "Trace", "configure_process", "__version__"]
