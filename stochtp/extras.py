"""Optional dependencies (the extras of pyproject.toml): import one, or say how to get it."""
import importlib

from .errors import StochtpError


def require(module, extra):
    """`module`, imported; if it is missing, a StochtpError (exit code 2 on the command line)
    that names the pip extra providing it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise StochtpError(f"{package} is needed: pip install 'stochtp[{extra}]'") from None
