"""Scoring credit-assignment methods against the exact oracle (`stochtp.exact`).

`score(net, x, y, methods, draws, seed)` draws every method's gradient estimate `draws` times on
one mini-batch, with COMMON RANDOM NUMBERS: draw k of every method uses stream
stream_id("draw", k) of `seed`, so with one sample per example all of them see the same
forward sample. Gradient methods (`methods.GradientMethod`: bp, st, reinforce, arm, disarm)
are scored as estimators of the exact gradient g = d E[L] / d theta; other methods (target-style,
`methods.Method`: dtp, tp) are scored for direction only, on their `update` (their other
statistics are NaN). Stateful methods keep their
state across draws (the ema baseline warms up as in training).

Statistics, per layer i (theta_i = (W_i, b_i) flattened, D_i coordinates) and for all layers
together ("all"), with d_k = estimate of draw k - g and N draws:
  bias_norm     ||mean_k d_k||
  bias_se       sqrt(sum_j var_j / N): the size ||bias|| would have from noise alone
  z_rms, z_max  of z_j = bias_j / sqrt(var_j / N); about 1 and at most a few if unbiased
  p_bonferroni  min(1, D_i P(|Z| > z_max)): family-wise p-value of "no coordinate is biased"
  variance      sum_j var_j, the trace of the covariance (var_j with N - 1 in the denominator)
  mse           mean_k ||d_k||^2
  cos_mean      cosine of the mean estimate to g
  mean_cos      mean over draws of the cosine of one estimate to g (0 for an all-zero estimate)
A cosine is NaN where g is zero.

`run(config)` is `stochtp estimators`: it scores every registered method (`standard_methods`:
the variants each declares, plug-ins included; a [method] table of tp or dtp, as in
the estimators preset (presets/estimators.toml), sets both's options, any other method it configures is scored beside
them unless a variant equals it) on the first `batch_size` training examples,
and `write` appends the scores to a results file (docs/results-format.md) as one run:
    attrs     method = "estimators"; config = the resolved config plus "estimators":
              {"methods": [labels], "layers": ["0", ..., "all"], "draws": N, "expected_loss": E[L]}
    metrics/  one row per method: method_index (into config["estimators"]["methods"]), draws,
              expected_loss
    diagnostics/<statistic>  rows = methods, columns = layers then "all"; also exact_norm, ||g||
              (each dataset's units and description: COLUMNS)
    params/   the network that was scored (layer_<i>/W, layer_<i>/b)
"""
import contextlib
import math
from pathlib import Path

import numba
import numpy as np

from . import config as config_module
from . import exact, experiment, kernels, methods, results
from .errors import ConfigError

DEFAULT_PRESET = "estimators"
DEFAULT_OUT = Path("results") / "estimators.h5"
DEFAULT_DRAWS = 2000
STATISTICS = ("bias_norm", "bias_se", "z_rms", "z_max", "p_bonferroni", "variance", "mse", "cos_mean", "mean_cos")
# What each column of a scores run holds (the results file's `units` and `description` attributes);
# a diagnostic's row is a method, its columns the layers then "all".
_GRADIENT = "gradient norm (loss per unit of parameter)"
_SQUARED_GRADIENT = "squared gradient norm"
COLUMNS = {
    "method_index": ("index", 'the method of this row: its index into config["estimators"]["methods"]'),
    "draws": ("draws", "gradient estimates drawn of each method, with common random numbers"),
    "expected_loss": ("per example", "exact expected loss E[L] of the scored mini-batch (nats for a softmax output), from the oracle"),
    "bias_norm": (_GRADIENT, "||mean_k d_k||, d_k = estimate of draw k - exact gradient g"),
    "bias_se": (_GRADIENT, "sqrt(sum_j var_j / N): the size ||bias|| would have from noise alone"),
    "z_rms": ("standard errors", "root mean square over coordinates of z_j = bias_j / sqrt(var_j / N); about 1 if unbiased"),
    "z_max": ("standard errors", "largest |z_j| over coordinates; at most a few if unbiased"),
    "p_bonferroni": ("probability", 'min(1, D P(|Z| > z_max)): family-wise p-value of "no coordinate is biased"'),
    "variance": (_SQUARED_GRADIENT, "sum_j var_j, the trace of the estimate's covariance (N - 1 in the denominator)"),
    "mse": (_SQUARED_GRADIENT, "mean_k ||d_k||^2, the mean squared error of one estimate"),
    "cos_mean": ("cosine", "cosine of the mean estimate to g; NaN where g is zero"),
    "mean_cos": ("cosine", "mean over draws of the cosine of one estimate to g; NaN where g is zero"),
    "exact_norm": (_GRADIENT, "||g||, the exact gradient's norm (the same on every row)"),
}
ROUNDING = 16  # machine epsilons of max|g|: the smallest standard error a z-statistic divides by


def standard_methods(net, seed=0, configured=None):
    """Label -> bound method: every variant that each registered method declares for `net`
    (`Method.oracle_variants`; e.g. REINFORCE with each baseline, ST with every surrogate that
    suits `net`, TP and DTP with the options of a configured tp or dtp), bound with `seed`, less
    those that cannot train `net`. `configured` is the config's [method] table (default: bp's)."""
    configured = {"name": "bp"} if configured is None else configured
    chosen = {}
    for cls in methods.classes().values():
        for label, options in cls.oracle_variants(net, configured).items():
            method = cls(**options)
            with contextlib.suppress(ConfigError):  # left out: e.g. REINFORCE without stochastic layers, DTP on sign units
                method.bind(net, seed)
                chosen[label] = method
    return chosen


def score(net, x, y, methods_by_label, draws=DEFAULT_DRAWS, seed=0, max_bits=exact.MAX_BITS):
    """Score each method (label -> bound method) against the exact gradient; see the module docstring.

    Every draw is kept (draws x parameters float64 numbers per method) so that the variances
    are computed from deviations, not from differences of large sums.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or not 2 <= draws < 2**63:  # stored as int64
        raise ConfigError(f"the number of draws must be an integer in [2, 2**63), got {draws!r}")
    if net.input_noise > 0:
        raise ConfigError("the oracle averages over hidden units only: score a network with input_noise = 0")
    x, y = np.asarray(x), np.asarray(y)
    expected, exact_grads = exact.expectation(net, x, y, max_bits)
    g = flatten(exact_grads)
    slices = layer_slices(net)
    scores = {}
    for label, method in methods_by_label.items():
        direction_only = not isinstance(method, methods.GradientMethod)
        propose = method.update if direction_only else method.gradient
        estimates = np.stack([flatten(propose(net, x, y, seed, kernels.stream_id("draw", k))) for k in range(draws)])
        scores[label] = statistics(estimates, g, slices, direction_only)
    return {
        "network": net.spec,
        "examples": len(x),
        "draws": int(draws),
        "seed": int(seed),
        "expected_loss": expected,
        "layers": [str(i) for i in range(len(net.layers))] + ["all"],
        "exact_norm": np.array([np.linalg.norm(g[part]) for part in slices]),
        "methods": scores,
    }


def flatten(grads):
    """[(dW, db), ...] -> one float64 vector, layer by layer."""
    return np.concatenate([np.ravel(array) for pair in grads for array in pair]).astype(np.float64)


def layer_slices(net):
    """Where each layer's (W, b) sits in a flattened gradient, then a slice for all of it."""
    slices, start = [], 0
    for layer in net.layers:
        size = layer.W.size + layer.b.size
        slices.append(slice(start, start + size))
        start += size
    return slices + [slice(0, start)]


def statistics(estimates, g, slices, direction_only):
    """The module docstring's statistics of `estimates` (draws x coordinates) against `g`, per slice."""
    count = len(estimates)
    d = estimates - g
    bias = d.mean(axis=0)  # mean_k d_k
    var = d.var(axis=0, ddof=1)  # var_j
    floor = ROUNDING * np.finfo(np.float64).eps * max(np.abs(g).max(), 1e-300)
    z = np.abs(bias) / np.maximum(np.sqrt(var / count), floor)  # |z_j| = |bias_j| / se_j
    out = {name: np.full(len(slices), np.nan) for name in STATISTICS}
    for n, part in enumerate(slices):
        out["cos_mean"][n] = cosines(estimates[:, part].mean(axis=0)[None], g[part])[0]
        out["mean_cos"][n] = cosines(estimates[:, part], g[part]).mean()
        if direction_only:
            continue
        out["bias_norm"][n] = np.linalg.norm(bias[part])
        out["bias_se"][n] = math.sqrt(var[part].sum() / count)
        out["z_rms"][n] = math.sqrt((z[part] ** 2).mean())
        out["z_max"][n] = z[part].max()
        out["p_bonferroni"][n] = min(1.0, z[part].size * math.erfc(z[part].max() / math.sqrt(2)))  # D P(|Z| > z_max)
        out["variance"][n] = var[part].sum()  # trace of the covariance
        out["mse"][n] = (d[:, part] ** 2).sum(axis=1).mean()  # mean_k ||d_k||^2
    return out


def cosines(rows, target):
    """cos(row, target) for each row: 0 for an all-zero row, NaN for a zero target."""
    if not target.any():
        return np.full(len(rows), np.nan)
    norms = np.linalg.norm(rows, axis=1)
    return (rows @ target) / (np.where(norms > 0, norms, 1.0) * np.linalg.norm(target))


def format_table(scores):
    """The scores as a text table: one line per method and layer."""
    header = (
        f"E[L] = {scores['expected_loss']:.6g} on {scores['examples']} examples of {scores['network']}; "
        f"{scores['draws']} draws per method, common random numbers (seed {scores['seed']})\n"
        "exact |grad| per layer: " + ", ".join(f"{name}: {norm:.3g}" for name, norm in zip(scores["layers"], scores["exact_norm"]))
    )
    columns = f"{'method':18} {'layer':>5} {'|bias|':>9} {'se|bias|':>9} {'z_rms':>7} {'z_max':>7} {'p_bonf':>7} {'variance':>9} {'mse':>9} {'cos(mean)':>9} {'mean cos':>9}"
    lines = [header, columns]
    for label, stats in scores["methods"].items():
        for n, layer in enumerate(scores["layers"]):
            row = [stats[name][n] for name in STATISTICS]
            cells = [_cell(value, spec) for value, spec in zip(row, (".2e", ".2e", "z", "z", ".1e", ".2e", ".2e", ".4f", ".4f"))]
            widths = (9, 9, 7, 7, 7, 9, 9, 9, 9)
            lines.append(f"{label:18} {layer:>5} " + " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths)))
    return "\n".join(lines)


def _cell(value, spec):
    """`value` formatted by `spec`; "z" is a z-score: 2 decimals, or 2 digits where it is huge (a
    bias measured without noise, as back-propagation's zero gradient)."""
    if math.isnan(value):
        return "-"
    if spec == "z":
        spec = ".2f" if abs(value) < 1000 else ".1e"
    return format(value, spec)


def write(path, scores, net, config, name="estimators", dataset=""):
    """Append `scores` to the results file `path` as one run (layout in the module docstring); returns its id."""
    labels = list(scores["methods"])
    meta = {key: scores[key] for key in ("draws", "expected_loss", "layers")}
    with results.Writer(path) as writer:
        run = writer.start_run(
            name=name,
            method="estimators",
            dataset=dataset,
            network=scores["network"],
            seed=scores["seed"],
            config={**config, "estimators": {**meta, "methods": labels}},
            provenance=results.provenance(numba.get_num_threads()),
        )
        layers = [f"layer_{name}" if name.isdigit() else name for name in scores["layers"]]
        columns = {name: results.Column(units, description, layers) for name, (units, description) in COLUMNS.items()}
        for index, label in enumerate(labels):
            metrics = {"method_index": index, "draws": scores["draws"], "expected_loss": scores["expected_loss"]}
            run.append(metrics, {**scores["methods"][label], "exact_norm": scores["exact_norm"]}, columns)
        run.save_params("params", {f"layer_{i}/{key}": getattr(layer, key) for i, layer in enumerate(net.layers) for key in ("W", "b")})
        run.finish("completed")
        return run.id


def run(path=None, draws=None, out=None, seed=None, data_dir=None):
    """`stochtp estimators`: score on the config's first mini-batch, write the results; returns (scores, out, run id)."""
    preset = DEFAULT_PRESET if path is None else None
    source = config_module.source_name(path, preset)
    cfg = config_module.load(path, preset, seed=seed)
    dataset, net, own_method = experiment.build(cfg, data_dir, source=source)
    if len(dataset.train) < cfg.batch_size:
        raise ConfigError(f"{source}: batch_size {cfg.batch_size} exceeds the {len(dataset.train)} training examples")
    x = dataset.train.features(slice(0, cfg.batch_size), net.dtype)
    y = dataset.train.y[: cfg.batch_size]
    try:
        scored = standard_methods(net, cfg.seed, configured=cfg.method)
        if not any(type(method) is type(own_method) and method.options == own_method.options for method in scored.values()):
            own_label = cfg.method["name"]
            scored[own_label if own_label not in scored else f"{own_label}-config"] = own_method
        scores = score(net, x, y, scored, DEFAULT_DRAWS if draws is None else draws, cfg.seed)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    out = DEFAULT_OUT if out is None else Path(out)
    run_id = write(out, scores, net, cfg.to_dict(), name=cfg.name, dataset=cfg.dataset)
    return scores, out, run_id
