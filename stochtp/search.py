"""Random search (experiments/README.md): the `[search]` table of a sweep file, and its trials.

    [search]
    trials = 20                  # trials 0..19
    seed = 0                     # the search's own seed (default 0), not the runs' seed
    "method.lr_f" = {low = 1e-4, high = 1e-2, scale = "log"}
    "method.sigma" = {low = 0.1, high = 0.5, scale = "linear"}
    "method.samples" = {low = 1, high = 4, scale = "linear", integer = true}

Every other key of the table is a config key (dotted like `[sweep]` keys; `[search.method]`
tables work too) with its range. Trial k's value of key is drawn from the counter-based
generator as u = uniform at position 0 of stream ("search", k, key) of the search's seed:

    linear:  low + u (high - low)
    log:     exp(log low + u (log high - log low))        (log-uniform, low > 0)

so it depends only on (seed, k, key): the same file gives the same trials, and raising
`trials` keeps the earlier ones. A value is rounded to 4 significant digits (as the paper's
hyper-parameters are written) and kept inside [low, high]. With `integer = true` (low and high
integers) the range drawn on is [low, high + 1), on the key's scale, and the value is its
floor: every integer low..high can come out.
"""
import dataclasses
import json
import math

import numpy as np

from . import kernels
from .config import Config
from .errors import ConfigError

SCALES = ("linear", "log")
RANGE_FIELDS = ("low", "high", "scale", "integer")
SETTINGS = ("trials", "seed")  # the search's own keys; every other key is a config key
MAX_TRIALS = 10_000  # a search plans every trial before the first runs: far more is a typo
SECTIONS = ("method", "data")  # the config tables a dotted key reaches into
SIGNIFICANT_DIGITS = 4
ATTRIBUTE = "search"  # the run attribute holding a trial's JSON: {"seed", "trial", "values"}
CONFIG_KEYS = tuple(field.name for field in dataclasses.fields(Config))


@dataclasses.dataclass(frozen=True)
class Range:
    """Where one config key's values are drawn: [low, high] on a linear or log scale."""

    low: float
    high: float
    scale: str
    integer: bool = False

    def value(self, u):
        """The value at u in [0, 1) (see the module docstring)."""
        top = self.high + 1 if self.integer else self.high
        if self.scale == "log":
            drawn = math.exp(math.log(self.low) + u * (math.log(top) - math.log(self.low)))
        else:
            drawn = self.low + u * (top - self.low)
        if self.integer:
            return min(max(math.floor(drawn), int(self.low)), int(self.high))
        return min(max(float(f"{drawn:.{SIGNIFICANT_DIGITS}g}"), self.low), self.high)


@dataclasses.dataclass(frozen=True)
class Search:
    """`trials` trials of the keys in `ranges` (dotted key -> Range), drawn from `seed`."""

    trials: int
    seed: int
    ranges: dict

    def values(self, trial):
        """Trial `trial`'s value of every key, in the file's order."""
        return {key: bounds.value(draw(self.seed, trial, key)) for key, bounds in self.ranges.items()}

    def attribute(self, trial):
        """The run attribute that records the trial: JSON of its seed, index and values."""
        return json.dumps({"seed": self.seed, "trial": trial, "values": self.values(trial)}, sort_keys=True)


def draw(seed, trial, key):
    """u in [0, 1) for `key` in trial `trial` of the search `seed`: position 0 of stream ("search", trial, key)."""
    return float(kernels.uniform_reference(1, seed, kernels.stream_id("search", trial, key), dtype=np.float64)[0])


def trial_of(attrs):
    """(search seed, trial, values) of a run's attributes, or None for a run that is no trial;
    ValueError where the attribute is there but is not a trial's."""
    if ATTRIBUTE not in attrs:
        return None
    text = attrs[ATTRIBUTE]
    try:
        document = json.loads(text) if isinstance(text, (str, bytes)) else None
    except ValueError:
        document = None
    if not (isinstance(document, dict) and _is_int(document.get("seed")) and _is_int(document.get("trial")) and isinstance(document.get("values"), dict)):
        raise ValueError(f"its {ATTRIBUTE} attribute is not a search trial's (JSON text of seed, trial and values)")
    return document["seed"], document["trial"], document["values"]


def parse(table, source, swept=()):
    """The Search of a `[search]` table, checked: ConfigError naming `source` and the key at the
    first mistake. `swept` are the keys of the file's [sweep] table (a key is searched or swept)."""
    where = f"{source}: [search]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of config keys with ranges, and trials = N")
    trials = table.get("trials")
    if not _is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"{where} needs trials = N, a whole number from 1 to {MAX_TRIALS}, got {trials!r}")
    seed = table.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed < 2**64:
        raise ConfigError(f"{where} seed (the search's own) must be a whole number in [0, 2**64), got {seed!r}")
    ranges = {}
    for key, spec in _flatten({key: value for key, value in table.items() if key not in SETTINGS}):
        _check_key(key, f"{where} key {key!r}", swept)
        ranges[key] = _range(spec, f"{where} key {key!r}")
    if not ranges:
        raise ConfigError(f"{where} names no config key to search (e.g. \"method.lr\" = {{low = 1e-4, high = 1e-2, scale = \"log\"}})")
    return Search(trials, seed, ranges)


def _flatten(table):
    """(dotted key, range table) pairs; a [method] or [data] table of ranges is reached into."""
    pairs = []
    for key, value in table.items():
        if key in SECTIONS and isinstance(value, dict) and not set(value) & set(RANGE_FIELDS):
            pairs += [(f"{key}.{option}", spec) for option, spec in value.items()]
        else:
            pairs.append((key, value))
    return pairs


def _check_key(key, where, swept):
    section, dot, option = key.partition(".")
    known = section in SECTIONS if dot else key in CONFIG_KEYS
    if not known or (dot and (not option or "." in option)):
        raise ConfigError(f"{where}: unknown key; search a config key ({', '.join(k for k in CONFIG_KEYS if k not in SECTIONS and k not in SETTINGS)}) or method.<option>, data.<option>")
    if key in swept:
        raise ConfigError(f"{where} is also in [sweep]: a key is either swept or searched")


def _range(spec, where):
    """A checked Range from a range table."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a range table like {{low = 1e-4, high = 1e-2, scale = \"log\"}}, got {spec!r}")
    unknown = sorted(set(spec) - set(RANGE_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown range field {', '.join(unknown)}; fields: {', '.join(RANGE_FIELDS)}")
    missing = [name for name in ("low", "high", "scale") if name not in spec]
    if missing:
        raise ConfigError(f"{where}: the range needs {', '.join(missing)} (low, high and scale = \"log\" or \"linear\")")
    low, high, scale, integer = spec["low"], spec["high"], spec["scale"], spec.get("integer", False)
    if scale not in SCALES:
        raise ConfigError(f"{where}: unknown scale {scale!r}; scales: {', '.join(SCALES)}")
    if not isinstance(integer, bool):
        raise ConfigError(f"{where}: integer must be true or false, got {integer!r}")
    for name, bound in (("low", low), ("high", high)):
        if not (_is_int(bound) if integer else _is_number(bound)):
            kind = "a whole number (integer = true)" if integer else "a finite number"
            raise ConfigError(f"{where}: {name} must be {kind}, got {bound!r}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low = {low}, high = {high}")
    if scale == "log" and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got low = {low}")
    return Range(low if integer else float(low), high if integer else float(high), scale, integer)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
