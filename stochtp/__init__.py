"""stochtp: target propagation and gradient estimators for discrete and stochastic binary networks."""
from .network import Layer, Network, Trace

__version__ = "0.1.0"
__all__ = ["Network", "Layer", "Trace", "__version__"]
