"""Credit-assignment methods behind one interface (docs/concepts.md, docs/extending.md).

`get(name, **options)` builds a registered method; `names()` and `classes()` list them;
`register` (a class decorator) or the entry-point group `stochtp.methods` adds one (see
`stochtp.methods.registry`). A method derives from `Method` (target-style: `step`, and the
`update` the oracle scores for direction) or `GradientMethod` (estimators: `estimate`, and the
`gradient` the oracle scores for bias and variance).
"""
from . import backprop, reinforce, arm, straight_through, target_prop, dae  # noqa: F401, I001 (each registers its methods, in this order: the order lists show)
from .base import GradientMethod, Method
from .registry import ENTRY_POINT_GROUP, classes, get, names, register

__all__ = ["Method", "GradientMethod", "register", "get", "names", "classes", "ENTRY_POINT_GROUP"]
