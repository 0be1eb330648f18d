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
from pathlib import Path

from .process import configure_process


_NAMES = {"Network": "network", "Layer": "network", "Trace": "network", "fit": "train"}  # name -> the module defining it
_MODULES = frozenset(module.name for module in pkgutil.iter_modules(__path__) if module.name != "__main__")  # stochtp.<module>
__all__ = ["Network", "Layer", "Trace", "fit", "callbacks", "methods", "configure_process", "__version__"]


def __getattr__(name):
    """`stochtp.Network`, `stochtp.fit`, `stochtp.methods`, ...: imported on first use."""
    if name == "__version__":
        value = _version()
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'stochtp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_NAMES, *_MODULES, "__version__"})


def _version():
    """The version in pyproject.toml: from the installed package's metadata, else (a checkout on
    the path, not installed) from the pyproject.toml beside the package, else "unknown"."""
    import importlib.metadata

    try:
        return importlib.metadata.version("stochtp")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "unknown"
    return str(project["version"]) if project.get("name") == "stochtp" and "version" in project else "unknown"
