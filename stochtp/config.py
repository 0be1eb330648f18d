"""Experiment configuration (docs/cli.md): TOML in, a validated `Config` out.

A config file may start from a preset (`preset = "paper-stochastic-dtp"`); its other keys
override the preset's, so a user's file can be three lines. Presets are the TOML files of
the package's `presets/` folder (stochtp/presets/, one file per preset, named after it),
installed with it and read through importlib.resources. `--set
key=value` overrides one key (dotted for the method section: `method.lr_f=0.01`); its value
is read as TOML, so `--set epochs=5` is an int and `--set method.name=dtp` a string.

Method options are checked when the method is built (`stochtp.methods.get`), which knows
them; every other key is checked here, with the key and the file named in the message.
"""
import copy
import dataclasses
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import ConfigError
from .network import check_input_noise, parse_spec

PRESETS = resources.files(__package__) / "presets"
DTYPES = ("float32", "float64")
SCORING_CONFIGS = ("estimators",)  # configs in experiments/ that `stochtp estimators` reads: no preset to train


@dataclass(frozen=True)
class Config:
    """One run, fully resolved. `method` holds the method's name and options, `data` the dataset's options."""

    name: str = "run"
    dataset: str = "mnist"
    network: str = "784-500t-500t-10s"
    init: str = "glorot"
    input_noise: float = 0.0
    dtype: str = "float32"
    seed: int = 0
    epochs: int = 10
    batch_size: int = 100
    eval_samples: int = 100
    eval_samples_every: int = 10
    method: dict = field(default_factory=lambda: {"name": "bp"})
    data: dict = field(default_factory=dict)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def hash(self):
        """sha256 of the resolved config: runs with equal hashes are the same experiment."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_POSITIVE = ("epochs", "batch_size", "eval_samples", "eval_samples_every")


def _type_name(expected):
    return {int: "an integer", float: "a number", str: "a string", dict: "a table", bool: "true or false"}[expected]


def _has_control_characters(text):
    """Control characters (NUL, tabs, newlines) or lone surrogates (undecodable command-line
    bytes): what HDF5 cannot store as text or a file name should not hold; other Unicode is fine."""
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def check_value(key, value, source):
    expected = _FIELDS[key].type
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{source}: key {key!r} must be {_type_name(expected)}, got {value!r}")
    if key in _POSITIVE and value < 1:
        raise ConfigError(f"{source}: key {key!r} must be at least 1, got {value}")
    if key == "seed" and not 0 <= value < 2**64:
        raise ConfigError(f"{source}: key 'seed' must be in [0, 2**64), got {value}")
    if key in _POSITIVE and value >= 2**63:  # epoch numbers are stored as int64 and go into 64-bit stream ids
        raise ConfigError(f"{source}: key {key!r} must be below 2**63, got {value}")
    if key == "input_noise":
        check_input_noise(value, f"{source}: key 'input_noise'")
    if key == "name" and not (value.strip() and not _has_control_characters(value) and "/" not in value and "\\" not in value and value not in (".", "..")):
        raise ConfigError(f"{source}: key 'name' must be a non-empty name without slashes or control characters (it names results/<name>.h5), got {value!r}")
    if key == "dtype" and value not in DTYPES:
        raise ConfigError(f"{source}: key 'dtype' must be one of {', '.join(DTYPES)}, got {value!r}")
    if key == "network":
        try:
            parse_spec(value)
        except ConfigError as error:
            raise ConfigError(f"{source}: key 'network': {error}") from None
    return value


def presets():
    """Names of the presets to train (`SCORING_CONFIGS` left out: a config file may still start
    from one of those, e.g. `preset = "estimators"` for `stochtp estimators`)."""
    return [name for name in preset_files() if name not in SCORING_CONFIGS]


def preset_files():
    """Names of every preset file, those to train and the scoring configs."""
    return sorted(item.name.removesuffix(".toml") for item in PRESETS.iterdir() if item.name.endswith(".toml"))


def read_toml(path):
    """The table of a TOML file (a path, or a preset's `importlib.resources` Traversable), or
    ConfigError naming the file (missing, unreadable, not TOML)."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read ({error.strerror})") from None


def preset_path(name):
    """The file of preset `name` (an `importlib.resources` Traversable: a Path where the package
    is installed as files); ConfigError for a name that is not a preset."""
    if name not in preset_files():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(presets())}")
    return PRESETS / f"{name}.toml"


def _resolve(table, source, seen=()):
    """A plain dict of config keys: the preset chain first, then the table's own keys."""
    table = dict(table)
    base = {}
    if "preset" in table:
        name = table.pop("preset")
        if not isinstance(name, str):
            raise ConfigError(f"{source}: key 'preset' must be a string, got {name!r}")
        if name in seen:
            raise ConfigError(f"{source}: presets form a cycle through {name!r}")
        path = preset_path(name)
        base = _resolve(read_toml(path), str(path), (*seen, name))
    for key, value in table.items():
        _set(base, key, value, source)
    return base


def _set(resolved, key, value, source):
    """Check `value` and put it under `key`; a [method] or [data] table is merged into the one
    already there (a method of another name starts with none of the old method's options)."""
    if key not in _FIELDS:
        raise ConfigError(f"{source}: unknown key {key!r}; known keys: preset, {', '.join(_FIELDS)}")
    value = check_value(key, value, source)
    if key in ("method", "data"):
        current = resolved.get(key, _FIELDS[key].default_factory())
        if key == "method" and value.get("name", current.get("name")) != current.get("name"):
            current = {}
        value = {**current, **value}
        if key == "method" and not isinstance(value.get("name"), str):
            from . import methods  # the registry's names, for this message only: configs load without the methods

            raise ConfigError(f"{source}: key 'method.name' must be a string, one of {', '.join(methods.names())}")
    resolved[key] = value


def parse_override(text):
    """`key=value` -> (key path, value), the value read as TOML (bare words as strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def source_name(path=None, preset=None):
    """How messages name where a config comes from: its file, else its preset, else "defaults"."""
    if path is not None:
        return str(path)
    return f"preset {preset!r}" if preset is not None else "defaults"


def load(path=None, preset=None, overrides=(), **fields):
    """The resolved Config of a file and/or preset, with `key=value` overrides and explicit fields on top."""
    if path is not None and preset is not None:
        raise ConfigError("give a config file or a preset, not both")
    source = source_name(path, preset)
    table = {}
    if path is not None:
        table = read_toml(path)
    elif preset is not None:
        table = {"preset": preset}
    resolved = _resolve(table, source)
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) == 2 and keys[0] in ("method", "data"):
            keys, value = keys[:1], {keys[1]: value}
        if keys == ["preset"]:
            raise ConfigError(f"--set {text}: a preset is chosen with --preset (or `preset = ...` in a config file), not --set")
        if len(keys) != 1:
            raise ConfigError(f"--set {text}: unknown key {'.'.join(keys)!r}; known keys: {', '.join(_FIELDS)}, method.<option>, data.<option>")
        _set(resolved, keys[0], value, f"--set {text}")
    for key, value in fields.items():
        if value is not None:
            _set(resolved, key, value, f"--{key}")
    if "name" not in resolved:
        resolved["name"] = preset or (Path(path).stem if path else Config.name)
    return Config(**copy.deepcopy(resolved))


def from_dict(table, source="config"):
    """A Config from a plain dict (e.g. the JSON stored in a results file)."""
    return Config(**_resolve(table, source))
