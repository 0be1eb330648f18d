"""stochtp: target propagation and gradient estimators for discrete and stochastic binary networks.

    >>> import stochtp
    >>> net = stochtp.Network.from_spec("784-200b-200b-10s", seed=0)
    >>> [layer.unit for layer in net.layers]
    ['bernoulli', 'bernoulli', 'softmax']

Importing stochtp changes nothing of the process (environment, allocator, garbage collector),
prints nothing, and loads NumPy only when a name that needs it is first used (`stochtp.Network`,
`stochtp.fit`, `stochtp.methods`, ...): so `stochtp.configure_process()`, called before NumPy is
imported, applies every tuning the `stochtp` command uses (see `stochtp.process`).
"""
import importlib
import pkgutil

from .process import configure_process

__version__ = "0.1.0"

_NAMES = {"Network": "network", "Layer": "network", "Trace": "network", "fit": "train"}  # name -> the module defining it
_MODULES = frozenset(module.name for module in pkgutil.iter_modules(__path__) if module.name != "__main__")  # stochtp.<module>
__all__ = ["Network", "Layer", "Trace", "fit", "callbacks", "methods", "configure_process", "__version__"]


def __getattr__(name):
    """`stochtp.Network`, `stochtp.fit`, `stochtp.methods`, ...: imported on first use."""
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'stochtp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_NAMES, *_MODULES})
