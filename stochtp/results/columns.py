"""Metrics and diagnostics of a run: extendable datasets with one row per logged epoch, each
with the attributes that say what it holds (`Column`)."""
import collections

import h5py
import numpy as np

from .storage import _check_name, _set_text_attrs

_METRIC_CHUNK_ROWS = 256
_DIAGNOSTIC_CHUNK_ROWS = 64

Column = collections.namedtuple("Column", "units description layers", defaults=(None,))
Column.__doc__ = """What a metric or diagnostic dataset holds, stored as its attributes: `units`, a
`description` and, for a diagnostic, `layers`: the label of each of its columns (None: layer_0,
layer_1, ..., the network's layers as params/ names them)."""

_MEAN_OF_UNITS = "the layer's unit means (probabilities of stochastic units)"

# The columns the training loop and the methods of this package log (docs/results-format.md). A
# column logged without a description of its own gets the one here, or UNDESCRIBED.
STANDARD_COLUMNS = {
    "epoch": Column("epochs", "the epoch after which this row was logged, counted from 1"),
    "wall_time": Column("s", "seconds from the start of training to the end of this epoch's training, the evaluations of earlier epochs included; summed over the processes that trained a resumed run"),
    "epoch_time": Column("s", "seconds spent training this epoch, its evaluation not included"),
    "train_loss": Column("per example", "the loss per training example, averaged over the epoch's mini-batches on the forward passes they were trained with: nats for a softmax output (nll), squared error summed over the output units otherwise (mse)"),
    "train_error": Column("fraction", "fraction of the epoch's training examples misclassified, on the forward passes they were trained with"),
    "valid_error": Column("fraction", "fraction of the validation examples misclassified after this epoch, on one sample of a stochastic network"),
    "test_error": Column("fraction", "fraction of the test examples misclassified after this epoch, on one sample of a stochastic network"),
    "valid_error_k": Column("fraction", "fraction of the validation examples misclassified after this epoch by the class probabilities averaged over eval_samples samples (config); NaN where it was not measured (eval_samples_every)"),
    "test_error_k": Column("fraction", "fraction of the test examples misclassified after this epoch by the class probabilities averaged over eval_samples samples (config); NaN where it was not measured (eval_samples_every)"),
    "inverse_error": Column("squared L2 norm per example", f"reconstruction error ||g(f(h~)) - h~||^2 of the inverse of each layer (inverse_<i> in params/) on noisy inputs h~, in the space of the layer below ({_MEAN_OF_UNITS}), averaged over the epoch's examples; NaN for a layer without an inverse"),
    "target_distance": Column("L2 norm per example", f"distance ||v - v_hat|| of each layer's value to its target ({_MEAN_OF_UNITS}), averaged over the epoch's examples; NaN above the top hidden layer"),
    "bp_angle": Column("degrees", "angle between each layer's update and the back-propagation gradient, on the epoch's first mini-batch; NaN for networks with discrete units"),
}
UNDESCRIBED = Column("unknown", "not described by the code that logged it")
TRAIN_LOSS = {
    "nll": Column("nats per example", "negative log-likelihood of the label per training example, averaged over the epoch's mini-batches on the forward passes they were trained with"),
    "mse": Column("squared error per example", "squared error summed over the output units per training example, averaged over the epoch's mini-batches on the forward passes they were trained with"),
}


def training_columns(loss_name):
    """The description of each column the training loop logs, for a network with loss `loss_name`."""
    return {**STANDARD_COLUMNS, "train_loss": TRAIN_LOSS.get(loss_name, STANDARD_COLUMNS["train_loss"])}


def _column_attrs(name, width, columns):
    """The attributes of a new metric (`width` None) or diagnostic dataset `name`: its description
    in `columns`, else in STANDARD_COLUMNS, else UNDESCRIBED; a diagnostic's `layers` labels
    its `width` columns."""
    column = columns.get(name) or STANDARD_COLUMNS.get(name, UNDESCRIBED)
    attrs = {"units": column.units, "description": column.description}
    if width is not None:
        layers = [f"layer_{index}" for index in range(width)] if column.layers is None else [str(label) for label in column.layers]
        if len(layers) != width:
            raise ValueError(f"diagnostic {name!r} has {width} values per row but {len(layers)} layer labels")
        attrs["layers"] = layers
    return attrs


def _read_column_attrs(group, diagnostic):
    """Column of each dataset of a metrics or (`diagnostic`) diagnostics group, from its
    attributes; a dataset written without them (by an older stochtp) gets the description of its
    name in STANDARD_COLUMNS, or UNDESCRIBED, and layer_0, layer_1... as layer labels."""
    described = {}
    for name, dataset in group.items():
        if not isinstance(dataset, h5py.Dataset):
            continue
        fallback = STANDARD_COLUMNS.get(name, UNDESCRIBED)
        layers = dataset.attrs.get("layers")
        if diagnostic and layers is None:
            layers = [f"layer_{index}" for index in range(dataset.shape[1])]
        described[name] = Column(
            _text(dataset.attrs.get("units", fallback.units)),
            _text(dataset.attrs.get("description", fallback.description)),
            None if layers is None else [_text(label) for label in layers],
        )
    return described


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _datasets(group):
    return [item for item in group.values() if isinstance(item, h5py.Dataset)]


def _complete_rows(run_group):
    """Epochs present in every metric and diagnostic of a run (all of them, unless a write
    was cut short or is under way)."""
    columns = [
        dataset
        for name in ("metrics", "diagnostics")
        if name in run_group
        for dataset in _datasets(run_group[name])
    ]
    return min((dataset.shape[0] for dataset in columns), default=0)


def _read_columns(group, rows):
    return {
        name: dataset[:rows]
        for name, dataset in group.items()
        if isinstance(dataset, h5py.Dataset)
    }


def _append_row(metrics_group, diagnostics_group, metrics, diagnostics, columns):
    """Write one epoch; a column new to the run is described by `columns` (name -> Column, see
    `_column_attrs`). Everything is checked before anything is written."""
    metric_values = {name: _metric_value(name, value) for name, value in metrics.items()}
    diagnostic_rows = {
        name: _diagnostic_row(diagnostics_group, name, values)
        for name, values in diagnostics.items()
    }
    new_attrs = {
        **{name: _column_attrs(name, None, columns) for name in metric_values if name not in metrics_group},
        **{name: _column_attrs(name, row.size, columns) for name, row in diagnostic_rows.items() if name not in diagnostics_group},
    }
    row = _complete_rows(metrics_group.parent)

    for name, dataset in list(metrics_group.items()):
        value = metric_values.pop(name, np.float64(np.nan))
        if dataset.dtype.kind in "iu" and value.dtype.kind not in "biu":
            dataset = _convert_to_float(metrics_group, name)
        dataset.resize((row + 1,))
        dataset[row] = value
    for name, value in metric_values.items():
        if row == 0 and value.dtype.kind in "biu":
            column = np.array([value], dtype=np.int64)
        else:
            column = np.full(row + 1, np.nan)
            column[row] = value
        _create_metric(metrics_group, name, column, new_attrs[name])

    for name, dataset in diagnostics_group.items():
        dataset.resize(row + 1, axis=0)
        dataset[row] = diagnostic_rows.pop(name, np.nan)
    for name, values in diagnostic_rows.items():
        table = np.full((row + 1, values.size), np.nan)
        table[row] = values
        _create_diagnostic(diagnostics_group, name, table, new_attrs[name])


def _create_metric(metrics_group, name, column, attrs):
    """A metric dataset holding `column`, extendable epoch by epoch, with `attrs`."""
    dataset = metrics_group.create_dataset(
        name, data=column, maxshape=(None,), chunks=(_METRIC_CHUNK_ROWS,)
    )
    _set_text_attrs(dataset, attrs)
    return dataset


def _create_diagnostic(diagnostics_group, name, table, attrs):
    """A diagnostic dataset holding `table` (epochs x layers), extendable epoch by epoch, with `attrs`."""
    layers = table.shape[1]
    dataset = diagnostics_group.create_dataset(
        name, data=table, maxshape=(None, layers), chunks=(_DIAGNOSTIC_CHUNK_ROWS, layers)
    )
    _set_text_attrs(dataset, attrs)
    return dataset


def _metric_value(name, value):
    _check_name(name, "metric")
    scalar = np.asarray(value)
    if scalar.ndim != 0 or scalar.dtype.kind not in "biuf":
        raise ValueError(f"metric {name!r} must be a single real number, not {value!r}")
    return scalar


def _convert_to_float(metrics_group, name):
    """Rewrite an integer metric as float64, for a non-integer or missing (NaN) value."""
    values = metrics_group[name][()].astype(np.float64)
    attrs = {key: _text(value) for key, value in metrics_group[name].attrs.items()}
    del metrics_group[name]
    return _create_metric(metrics_group, name, values, attrs)


def _diagnostic_row(diagnostics_group, name, values):
    _check_name(name, "diagnostic")
    try:
        row = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"diagnostic {name!r} must be numbers, one per layer, not {values!r}"
        ) from None
    if row.ndim != 1 or row.size == 0:
        raise ValueError(f"diagnostic {name!r} must be a non-empty 1-D array (one value per layer)")
    existing = diagnostics_group.get(name)
    if existing is not None and existing.shape[1] != row.size:
        raise ValueError(
            f"diagnostic {name!r} has {existing.shape[1]} values per epoch, not {row.size}"
        )
    return row
