"""Which methods exist, by name (docs/extending.md): the one list every other part of stochtp reads.

A method joins by its class, one of two kinds declared by its base class (`base.Method`: a
target-style method, its `update` scored for direction; `base.GradientMethod`: an estimator, its
`gradient` scored for bias and variance):

    @stochtp.methods.register
    class MyMethod(stochtp.methods.GradientMethod):
        name = "mine"
        ...

or, from another package, by an entry point in the group `stochtp.methods` of that package's
metadata (`mine = "my_package.module:MyMethod"` under `[project.entry-points."stochtp.methods"]`),
loaded the first time the registry is asked for a method or for the list. Built-in methods
register themselves in their own modules.
"""
import inspect
from importlib import metadata

from ..errors import ConfigError, PluginError
from .base import Method

ENTRY_POINT_GROUP = "stochtp.methods"
_CLASSES = {}  # name -> class, in the order of registration
_plugins_loaded = False


def register(cls):
    """Class decorator: make `cls` (a concrete subclass of `Method` with a `name`) usable by that name.

    Registering the same class again does nothing; another class under a taken name is refused,
    except a new definition of the same class (same module and qualified name: a notebook cell
    run again), which replaces it.

    >>> import numpy as np, stochtp
    >>> from stochtp.methods.backprop import backward
    >>> @stochtp.methods.register
    ... class HalfStraightThrough(stochtp.methods.GradientMethod):
    ...     # half the identity-surrogate straight-through gradient
    ...     name = "half-st"
    ...     def estimate(self, net, batch, seed):
    ...         trace = batch.forward(net, seed)
    ...         grads = backward(net, trace, net.output_grad(trace, batch.y), surrogate="identity")
    ...         return [(dW / 2, db / 2) for dW, db in grads], trace
    >>> method = stochtp.methods.get("half-st", lr=0.01)
    >>> net = stochtp.Network.from_spec("4-3b-2s", seed=0)
    >>> method.bind(net)
    >>> [dW.shape for dW, db in method.gradient(net, np.ones((6, 4)), np.zeros(6, int), seed=0)]
    [(4, 3), (3, 2)]
    """
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise PluginError(f"cannot register {cls!r} as a method: it is not a class deriving from stochtp.methods.Method or GradientMethod")
    name = cls.__dict__.get("name")
    if not (isinstance(name, str) and name.strip()):
        raise PluginError(f"cannot register method class {cls.__qualname__}: it needs a class attribute `name` of its own (a non-empty string)")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"cannot register method {name!r}: class {cls.__qualname__} does not implement {missing}")
    known = _CLASSES.get(name)
    redefined = known is not None and (known.__module__, known.__qualname__) == (cls.__module__, cls.__qualname__)
    if known is not None and known is not cls and not redefined:
        raise PluginError(f"cannot register method {name!r} ({cls.__module__}.{cls.__qualname__}): the name is taken by {known.__module__}.{known.__qualname__}")
    _CLASSES[name] = cls
    return cls


def _load_plugins():
    """Register the classes named by the `stochtp.methods` entry points, once; a broken one is a
    PluginError naming it (asked again, the registry tries again)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {entry_point.name!r} = {entry_point.value!r} (group {ENTRY_POINT_GROUP})"
        try:
            cls = entry_point.load()
        except Exception as error:  # whatever a plugin's import raises, one line naming the plugin
            raise PluginError(f"method plugin {where} cannot be loaded: {type(error).__name__}: {error}") from None
        named = getattr(cls, "name", None)
        if isinstance(named, str) and named != entry_point.name:
            raise PluginError(f"method plugin {where}: the class is named {named!r}; the entry point must carry the method's name")
        try:
            register(cls)
        except PluginError as error:
            raise PluginError(f"method plugin {where}: {error}") from None
    _plugins_loaded = True


def classes():
    """name -> class of every registered method (built-ins first, then plugins, as registered)."""
    _load_plugins()
    return dict(_CLASSES)


def names():
    """The names of the registered methods."""
    return list(classes())


def get(name, **options):
    """The registered method called `name`, built with `options` (a ConfigError for an unknown name
    or option).

    >>> import stochtp
    >>> dtp = stochtp.methods.get("dtp", eta_hat=58.44, lr_f=3.087e-3, lr_b=2.716e-6, sigma=0.5, sigma_tau=100)
    >>> dtp.options["lr_f"], isinstance(dtp, stochtp.methods.GradientMethod)
    (0.003087, False)
    """
    known = classes()
    if name not in known:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(known))}")
    return known[name](**options)
