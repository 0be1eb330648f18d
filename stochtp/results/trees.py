"""Parameters ("layer_0/W" -> array) and checkpoints (nested dicts) as HDF5 groups and datasets."""
import dataclasses
import re
from collections.abc import Mapping

import h5py
import numpy as np

from .storage import _check_name, _set_text_attrs

# Attribute marking checkpoint values that HDF5 cannot hold as they are: "none" for None,
# "int" for a Python integer beyond 64 bits (stored as its decimal string).
_VALUE_KIND_ATTR = "stochtp_value_kind"
_INT64 = np.iinfo(np.int64)
_ESCAPED_CHARACTERS = {"25": "%", "2F": "/", "2E": "."}


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """A value ready for one dataset; `kind` is "" or a _VALUE_KIND_ATTR value; `units` and
    `description` become the dataset's attributes of those names."""

    data: object
    kind: str = ""
    units: str = ""
    description: str = ""


_PARAMETER_PATH = re.compile(r"layer_(\d+)/([Wb])|inverse_(\d+)/([Vc])")
_PARAMETERS = {
    "W": "weights W of layer {i} of the network, counted from 0 (rows: its inputs, columns: its units)",
    "b": "biases b of layer {i} of the network, counted from 0 (one per unit)",
    "V": "weights V of the learned inverse g of layer {i}, which maps layer {i}'s values back to layer {below}'s (rows: layer {i}'s units, columns: layer {below}'s)",
    "c": "biases c of the learned inverse g of layer {i} (one per unit of layer {below})",
}
_CHECKPOINT_ENTRIES = {
    "epoch": ("epochs", "the epoch after which the checkpoint was taken"),
    "best": ("as in metrics/", "the best epoch so far on the selection metric: its epoch, value and test errors"),
    "method": ("varies", "the method's state (optimisers, inverses, baselines...) that --resume restores"),
}


def _parameter_leaf(path, data):
    """`data` as the leaf of parameter `path` ("layer_0/W"), described from its name."""
    match = _PARAMETER_PATH.fullmatch(path)
    if match is None:
        return _Leaf(data, units="dimensionless", description=f"parameter {path} of the method")
    layer, name = int(match[1] or match[3]), match[2] or match[4]
    return _Leaf(data, units="dimensionless", description=_PARAMETERS[name].format(i=layer, below=layer - 1))


def _checkpoint_description(keys):
    """(units, description) of the checkpoint entry under `keys` (top level first)."""
    if keys[0] == "params":
        parameter = _parameter_leaf("/".join(keys[1:]), None)
        return parameter.units, f"at the checkpoint's epoch, {parameter.description}"
    return _CHECKPOINT_ENTRIES.get(keys[0], ("varies", "state that --resume restores"))


def _flatten_params(arrays):
    """("layer_0/W" -> array) into the set of groups and the dict of leaves to write."""
    groups, leaves = set(), {}
    for path, value in arrays.items():
        if not isinstance(path, str):
            raise ValueError(f"parameter names are paths such as 'layer_0/W', not {path!r}")
        parts = path.split("/")
        for part in parts:
            _check_name(part, "parameter path part")
        data = np.asarray(value)
        if data.dtype.kind not in "biufc":
            raise ValueError(f"parameter {path!r} must be a numeric array, not {data.dtype}")
        groups.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        leaves[path] = _parameter_leaf(path, data)
    both = sorted(groups & leaves.keys())
    if both:
        raise ValueError(f"parameter name {both[0]!r} is both an array and a group of arrays")
    return groups, leaves


def _flatten_checkpoint(tree, keys, groups, leaves):
    """Collect the groups and leaves of the nested dict `tree`, found under `keys`."""
    if not isinstance(tree, Mapping):
        raise ValueError(f"a checkpoint must be a dict, not {type(tree).__name__}")
    for key, value in tree.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"checkpoint keys must be non-empty strings, not {key!r}")
        _check_utf8(f"key {key!r}", key)
        path = "/".join(_escape_key(part) for part in (*keys, key))
        if isinstance(value, Mapping):
            groups.add(path)
            _flatten_checkpoint(value, (*keys, key), groups, leaves)
        else:
            units, description = _checkpoint_description((*keys, key))
            leaves[path] = dataclasses.replace(_checkpoint_leaf(" -> ".join((*keys, key)), value), units=units, description=description)


def _escape_key(key):
    """A dict key as an HDF5 link name: '%' becomes %25, '/' %2F, and a lone '.' %2E, so
    that keys such as "layer_0/W" come back unchanged."""
    escaped = key.replace("%", "%25").replace("/", "%2F")
    return "%2E" if escaped == "." else escaped


def _unescape_key(name):
    return re.sub("%(25|2F|2E)", lambda match: _ESCAPED_CHARACTERS[match.group(1)], name)


def _checkpoint_leaf(where, value):
    if value is None:
        return _Leaf(h5py.Empty("f8"), "none")
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError(f"checkpoint entry {where!r} is a string with a NUL character")
        _check_utf8(f"entry {where!r}", value)
        return _Leaf(value)
    is_python_int = isinstance(value, int) and not isinstance(value, bool)
    if is_python_int and not _INT64.min <= value <= _INT64.max:
        return _Leaf(str(value), "int")
    data = np.asarray(value)
    if data.dtype.kind not in "biufc":
        raise ValueError(
            f"checkpoint entry {where!r} is a {type(value).__name__}; use numbers, strings, "
            "None, NumPy arrays or dicts"
        )
    return _Leaf(data)


def _check_utf8(what, text):
    """ValueError unless `text` can be stored: HDF5 keeps strings as UTF-8, which has no lone
    surrogates (what os.fsdecode makes of undecodable bytes). Checked before the file is touched."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"checkpoint {what} is not valid UTF-8 text (it holds a lone surrogate)") from None


def _replace_tree(group, groups, leaves):
    """Make `group` hold exactly `groups` and `leaves` (paths relative to it).

    Datasets of unchanged shape and dtype are overwritten in place: HDF5 does not reuse the
    space of deleted objects once the file is closed, so deleting and recreating a
    checkpoint every epoch would grow the file without bound.
    """
    existing = []
    group.visit(existing.append)
    for path in existing:
        item = group.get(path)
        if item is None:  # went with a parent deleted earlier in this loop
            continue
        if isinstance(item, h5py.Group) and path in groups:
            continue
        if isinstance(item, h5py.Dataset) and path in leaves and _can_overwrite(item, leaves[path]):
            continue
        del group[path]
    for path in sorted(groups, key=lambda path: path.count("/")):
        group.require_group(path)
    for path, leaf in leaves.items():
        if path in group:
            group[path][()] = leaf.data
        else:
            dataset = group.create_dataset(path, data=leaf.data)
            if leaf.kind:
                dataset.attrs[_VALUE_KIND_ATTR] = leaf.kind
            _set_text_attrs(dataset, {"units": leaf.units, "description": leaf.description})


# A checkpoint is written into a spare group, marked complete last, then swapped in by renaming
# (link moves: nothing is copied, and the spare is overwritten in place next time, so the file
# does not grow). A process killed at any moment leaves a complete checkpoint to resume from.
CHECKPOINT, _SPARE, _RETIRED = "checkpoint", "checkpoint.spare", "checkpoint.retired"
_COMPLETE_ATTR = "stochtp_complete"


def _write_checkpoint(run_group, groups, leaves):
    """Make the run's checkpoint hold exactly `groups` and `leaves`, crash-safely (see above)."""
    _settle_checkpoint(run_group)
    spare = run_group.require_group(_SPARE)
    spare.attrs[_COMPLETE_ATTR] = False
    _replace_tree(spare, groups, leaves)
    spare.attrs[_COMPLETE_ATTR] = True
    if CHECKPOINT in run_group:
        run_group.move(CHECKPOINT, _RETIRED)
    run_group.move(_SPARE, CHECKPOINT)
    if _RETIRED in run_group:
        run_group.move(_RETIRED, _SPARE)


def _settle_checkpoint(run_group):
    """Finish the swap of a writer killed between two renames."""
    if CHECKPOINT not in run_group and _complete(run_group.get(_SPARE)):
        run_group.move(_SPARE, CHECKPOINT)
    if _RETIRED in run_group:
        if _SPARE in run_group:
            del run_group[_RETIRED]
        else:
            run_group.move(_RETIRED, _SPARE)


def _current_checkpoint(run_group):
    """The group of the newest complete checkpoint, None if there is none; also in a file whose
    writer was killed mid-swap (read-only readers cannot settle it)."""
    for name in (CHECKPOINT, _SPARE, _RETIRED):
        if _complete(run_group.get(name)):
            return run_group[name]
    return None


def _read_checkpoint(run_group):
    """The run's newest complete checkpoint as a nested dict ({} if none was saved)."""
    current = _current_checkpoint(run_group)
    return {} if current is None else _read_tree(current)


def _complete(group):
    return group is not None and bool(group.attrs.get(_COMPLETE_ATTR, True))  # files from before the mark: complete


def _can_overwrite(dataset, leaf):
    return (
        not leaf.kind
        and _VALUE_KIND_ATTR not in dataset.attrs
        and isinstance(leaf.data, np.ndarray)
        and dataset.shape == leaf.data.shape
        and dataset.dtype == leaf.data.dtype
    )


def _read_flat(group):
    """A parameter group as a flat dict: "layer_0/W" -> array."""
    arrays = {}

    def collect(path, item):
        if isinstance(item, h5py.Dataset):
            arrays[path] = item[()]

    group.visititems(collect)
    return arrays


def _read_tree(group):
    """A checkpoint group as the nested dict it was saved from."""
    return {
        _unescape_key(name): _read_tree(item) if isinstance(item, h5py.Group) else _read_leaf(item)
        for name, item in group.items()
    }


def _read_leaf(dataset):
    kind = dataset.attrs.get(_VALUE_KIND_ATTR, "")
    if kind == "none":
        return None
    if kind == "int":
        return int(dataset.asstr()[()])
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return dataset.asstr()[()]
    return dataset[()]
