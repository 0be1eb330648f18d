"""Metrics and diagnostics of a run: extendable datasets with one row per logged epoch."""
import h5py
import numpy as np

from .storage import _check_name

_METRIC_CHUNK_ROWS = 256
_DIAGNOSTIC_CHUNK_ROWS = 64


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


def _append_row(metrics_group, diagnostics_group, metrics, diagnostics):
    """Write one epoch. Everything is checked before anything is written."""
    metric_values = {name: _metric_value(name, value) for name, value in metrics.items()}
    diagnostic_rows = {
        name: _diagnostic_row(diagnostics_group, name, values)
        for name, values in diagnostics.items()
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
        _create_metric(metrics_group, name, column)

    for name, dataset in diagnostics_group.items():
        dataset.resize(row + 1, axis=0)
        dataset[row] = diagnostic_rows.pop(name, np.nan)
    for name, values in diagnostic_rows.items():
        table = np.full((row + 1, values.size), np.nan)
        table[row] = values
        _create_diagnostic(diagnostics_group, name, table)


def _create_metric(metrics_group, name, column):
    """A metric dataset holding `column`, extendable epoch by epoch."""
    return metrics_group.create_dataset(
        name, data=column, maxshape=(None,), chunks=(_METRIC_CHUNK_ROWS,)
    )


def _create_diagnostic(diagnostics_group, name, table):
    """A diagnostic dataset holding `table` (epochs x layers), extendable epoch by epoch."""
    layers = table.shape[1]
    return diagnostics_group.create_dataset(
        name, data=table, maxshape=(None, layers), chunks=(_DIAGNOSTIC_CHUNK_ROWS, layers)
    )


def _metric_value(name, value):
    _check_name(name, "metric")
    scalar = np.asarray(value)
    if scalar.ndim != 0 or scalar.dtype.kind not in "biuf":
        raise ValueError(f"metric {name!r} must be a single real number, not {value!r}")
    return scalar


def _convert_to_float(metrics_group, name):
    """Rewrite an integer metric as float64, for a non-integer or missing (NaN) value."""
    values = metrics_group[name][()].astype(np.float64)
    del metrics_group[name]
    return _create_metric(metrics_group, name, values)


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
