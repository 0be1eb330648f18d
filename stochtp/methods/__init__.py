"""Credit-assignment methods behind one interface (design section 6); `get(name, **options)` builds one."""
from ..errors import ConfigError
from .arm import Arm, DisArm
from .backprop import Backprop
from .reinforce import Reinforce
from .straight_through import StraightThrough
from .target_prop import PlainTargetProp, TargetProp

METHODS = {cls.name: cls for cls in (Backprop, TargetProp, PlainTargetProp, StraightThrough, Reinforce, Arm, DisArm)}


def get(name, **options):
    """The method called `name` (bp, tp, dtp, st, reinforce, arm, disarm) with the given options."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name](**options)
