"""`stochtp bench`: how fast each method trains, against the machine's own limit (design section 13).

One run measures, on this machine and in this order:
  (a) the float32 GEMM rate of the BLAS in use at the shapes the presets train with: for each
      layer, the three products of a mini-batch (x @ W, x.T @ grad, grad @ W.T); a preset's
      limit is its products' FLOPs over their time (the practical limit for dense networks);
  (b) sampling-kernel throughput against NumPy (`stochtp.kernels` vs `np.random.Generator`);
  (c) seconds per epoch of every paper preset and of every registered gradient method that no
      preset trains (ARM, plug-ins) on the stochastic network, timed on the first `batches` mini-batches of an epoch and extrapolated to the
      whole epoch (labelled so; the epoch's shuffle, paid once, is timed apart and added), after
      an untimed round of as many mini-batches; with the FLOPs an epoch needs
      (`Method.flops_per_batch`), the achieved GFLOP/s and its fraction of the GEMM limit at the
      preset's shapes, measured again before each timed round and after the last (best of
      those), so that the epochs and their limit see the same minutes of a machine whose speed
      drifts;
  (d) the peak resident memory of a one-epoch `paper-stochastic-dtp` run, in a child process;
  (e) optionally, the PyTorch peer script's DTP and ST epochs (`--peer`), for the ratio: run
      before and after (c), its faster time kept, so that load on the machine favours the peer.
Timings are best-of-`repeat` wall times (5 by default; the JSON keeps every epoch round); the
machines are shared, so compare ratios taken in one run rather than absolute numbers. The limit
is each product's best of 20 rounds at every measurement, a best case of the machine, which
few epoch rounds would catch less often. The report names the BLAS's kernel set and the
OPENBLAS_* variables in the environment, those the stochtp command set marked so:
OPENBLAS_CORETYPE forces a kernel set (some machines set it for older OpenBLAS builds), and
every rate, the limit included, follows it.
"""
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from threadpoolctl import threadpool_info

from . import config as config_module
from . import batching, data, experiment, methods, process, train
from .errors import ConfigError
from .kernels import bernoulli, normal, sigmoid_bernoulli, uniform

PRESETS = [  # every MNIST paper preset (a test checks), the stochastic network's first
    "paper-stochastic-dtp",
    "paper-stochastic-st",
    "paper-stochastic-reinforce",
    "paper-stochastic-reinforce-ema",
    "paper-stochastic-disarm",
    "paper-stochastic-arm",
    "paper-discrete-dtp",
    "paper-discrete-dtp-ortho",
    "paper-discrete-bp",
    "paper-discrete-bp-cont",
    "paper-deep-tanh-dtp",
    "paper-deep-tanh-tp",
    "paper-deep-tanh-bp",
    "paper-deep-relu-dtp",
    "paper-deep-relu-bp",
    "paper-dae-dtp",
    "paper-dae-bp",
]
ESTIMATOR_BASE = "paper-stochastic-disarm"  # the stochastic network, and its estimator preset, for the other estimators
PEER_PRESETS = {"paper-stochastic-dtp": "dtp_epoch_s", "paper-stochastic-st": "st_epoch_s"}
SEED = 12345
LIMIT_ROUNDS = 20  # rounds of a layer's three products each time the limit is measured beside a preset's epochs


def best_seconds(functions, repeat):
    """Minimum wall time of each function over `repeat` rounds, after one untimed warm-up call each.

    The functions alternate within a round, so background load affects them alike.
    """
    for function in functions:
        function()
    best = [float("inf")] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


# ---------------------------------------------------------------------- (a) GEMM rate


def layer_shapes(config):
    """(batch, n_in, n_out) of every layer of the config's network."""
    net = experiment.build_network(config)
    return [(config.batch_size, layer.n_in, layer.n_out) for layer in net.layers]


def gemm_seconds(shape, repeat):
    """Best time of a mini-batch's three float32 products of one layer: x @ W, x.T @ grad, grad @ W.T."""
    batch, n_in, n_out = shape
    rng = np.random.default_rng(0)
    x, W, grad = (rng.random(s, dtype=np.float32) for s in ((batch, n_in), (n_in, n_out), (batch, n_out)))
    products = [lambda: x @ W, lambda: x.T @ grad, lambda: grad @ W.T]
    return sum(best_seconds(products, repeat))


def gemm_limit(shapes, times):
    """GFLOP/s of the BLAS on a list of layer shapes: their products' FLOPs over their measured time."""
    flops = sum(3 * 2 * b * n_in * n_out for b, n_in, n_out in shapes)
    return flops / sum(times[shape] for shape in shapes) / 1e9


# ---------------------------------------------------------------------- (b) kernels


def kernel_comparisons(n):
    """(kernel, peer name, stochtp call, peer call) for every benchmarked kernel on n float32 values.

    Both sides write into arrays made once (each its own): what is timed is the drawing. A
    fresh array of 10^7 float32 values (40 MB, above what glibc recycles) is page-faulted anew
    at every call, which on the virtual machines stochtp is developed on cost from 4 to 45 ms by
    itself (more than the drawing), and more when two threads fault it in at once."""
    inputs = np.random.default_rng(0)
    p = inputs.random(n, dtype=np.float32)
    a = inputs.standard_normal(n, dtype=np.float32)
    rng = np.random.default_rng(SEED)
    mine = {"u": np.empty(n, np.float32), "v": np.empty(n, np.float32), "h": np.empty(n, np.float32), "b": np.empty(n, np.uint8)}
    theirs = {"u": np.empty(n, np.float32), "v": np.empty(n, np.float32), "b": np.empty(n, np.bool_)}

    def numpy_bernoulli():
        return np.less(rng.random(n, dtype=np.float32, out=theirs["u"]), p, out=theirs["b"])

    def numpy_sigmoid_bernoulli():
        probability = np.exp(np.negative(a, out=theirs["v"]), out=theirs["v"])
        probability += 1
        np.divide(1, probability, out=probability)  # 1 / (1 + exp(-a))
        return probability, np.greater(probability, rng.random(n, dtype=np.float32, out=theirs["u"]), out=theirs["b"])

    rows = [
        ("bernoulli", "numpy rng.random < p", lambda: bernoulli(p, SEED, out=mine["b"]), numpy_bernoulli),
        ("uniform", "numpy rng.random", lambda: uniform(n, SEED, out=mine["u"]), lambda: rng.random(n, dtype=np.float32, out=theirs["u"])),
        ("normal", "numpy rng.standard_normal", lambda: normal(n, SEED, out=mine["u"]), lambda: rng.standard_normal(n, dtype=np.float32, out=theirs["u"])),
        ("sigmoid_bernoulli", "numpy sigmoid, rng.random", lambda: sigmoid_bernoulli(a, SEED, p_out=mine["v"], h_out=mine["h"]), numpy_sigmoid_bernoulli),
    ]
    try:
        import torch
    except ImportError:
        return rows
    torch.set_num_threads(numba.get_num_threads())
    p_tensor, samples = torch.from_numpy(p), torch.empty(n)
    generator = torch.Generator().manual_seed(SEED)
    rows.append(("bernoulli", "torch.bernoulli", lambda: bernoulli(p, SEED, out=mine["b"]), lambda: torch.bernoulli(p_tensor, generator=generator, out=samples)))
    return rows


def kernel_throughput(n=10_000_000, repeat=7):
    """One dict per (kernel, peer): seconds of each side, speed-up = peer / stochtp, values per second."""
    rows = []
    for kernel, peer, stochtp_call, peer_call in kernel_comparisons(n):
        stochtp_s, peer_s = best_seconds([stochtp_call, peer_call], repeat)
        rows.append({
            "kernel": kernel, "peer": peer, "n": n, "threads": numba.get_num_threads(),
            "stochtp_s": stochtp_s, "peer_s": peer_s, "speedup": peer_s / stochtp_s,
            "stochtp_values_per_s": n / stochtp_s, "peer_values_per_s": n / peer_s,
        })
    return rows


# ---------------------------------------------------------------------- (c) epochs


def extra_estimators():
    """paper-stochastic-NAME -> (preset, overrides) for every registered gradient method that no
    paper preset trains (ARM, and plug-ins) and that can train the stochastic network: DisARM's
    preset with `method.name=NAME` (the method's default options)."""
    trained = {config_module.load(preset=name).method["name"] for name in PRESETS}
    extras = {}
    for name, cls in methods.classes().items():
        if issubclass(cls, methods.GradientMethod) and name not in trained:
            overrides = [f"method.name={name}"]
            with contextlib.suppress(ConfigError):  # left out where the method refuses the network
                experiment.build_model(config_module.load(preset=ESTIMATOR_BASE, overrides=overrides))
                extras[f"paper-stochastic-{name}"] = (ESTIMATOR_BASE, overrides)
    return extras


def bench_configs(names=None):
    """name -> Config of every benchmarked preset (and the other estimators), or of the named ones."""
    table = {name: (name, []) for name in PRESETS}
    table.update(extra_estimators())
    chosen = list(table) if not names else names
    unknown = [name for name in chosen if name not in table]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(table)}")
    return {name: config_module.load(preset=table[name][0], overrides=table[name][1]) for name in chosen}


def epoch_seconds(config, dataset, batches, repeat, between=lambda: None):
    """(seconds per full training epoch of each of `repeat` timed rounds, extrapolated from `batches`
    mini-batches; mini-batches per epoch; FLOPs per epoch).

    `between` runs before each timed round and after the last one (the GEMM limit's measurement)."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    net, method = experiment.build_model(config)
    per_epoch = len(dataset.train) // config.batch_size
    timed = min(batches, per_epoch)
    rounds = []
    with train.frozen_heap():  # as `train.train_run` trains
        epoch_round(net, method, config, dataset.train, 1, timed)  # compiles, and grows the heap to its steady size
        for r in range(repeat):
            between()
            shuffle, training = epoch_round(net, method, config, dataset.train, 2 + r, timed)
            rounds.append(shuffle + training * per_epoch / timed)
        between()
    return rounds, per_epoch, method.flops_per_batch(net, config.batch_size) * per_epoch


def epoch_round(net, method, config, split, number, limit):
    """(seconds to shuffle epoch `number` into mini-batches, seconds to train on the first `limit`
    of them): an epoch shuffles once whatever its length, so only the training is extrapolated."""
    start = time.perf_counter()
    batches = batching.Batches(split, number, config.seed, config.batch_size, net.dtype, limit=limit)
    shuffled = time.perf_counter()
    method.train_epoch(net, batches, config.seed, number)
    return shuffled - start, time.perf_counter() - shuffled


def epoch_and_limit(config, dataset, shapes, batches, repeat):
    """`epoch_seconds`' numbers and the GEMM limit at the layer `shapes`, measured before each timed
    round and after the last (each product's best time): the epochs and their limit see the same minutes."""
    best = {}

    def measure_limit():
        for shape in shapes:
            best[shape] = min(best.get(shape, float("inf")), gemm_seconds(shape, LIMIT_ROUNDS))

    rounds, per_epoch, flops = epoch_seconds(config, dataset, batches, repeat, between=measure_limit)
    return rounds, per_epoch, flops, gemm_limit(shapes, best)


# ---------------------------------------------------------------------- (d) memory, (e) peer


def peak_memory_mb(preset, data_dir, threads):
    """Peak resident memory (MB) of `stochtp run --preset preset --epochs 1` in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "stochtp", "run", "--preset", preset, "--epochs", "1", "--quiet",
                   "--out", os.path.join(tmp, "bench.h5"), "--threads", str(threads)]
        if data_dir:
            command += ["--data-dir", str(data_dir)]
        code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def _last_line(text):
    """What a failed child process said last (its error, as a rule)."""
    return (text.strip().splitlines() or ["no message"])[-1]


def check_peer_python(python):
    """ValueError unless `python` runs and imports torch: checked before the bench's minutes of work."""
    try:
        subprocess.run([python, "-c", "import torch"], check=True, capture_output=True, text=True)
    except OSError as error:
        raise ValueError(f"--peer-python {python}: cannot run it ({error.strerror})") from None
    except subprocess.CalledProcessError as error:
        raise ValueError(f"--peer-python {python} cannot import torch ({_last_line(error.stderr)}); give an interpreter that has it") from None


def peer_epochs(script, python, threads):
    """The PyTorch peer's {"dtp_epoch_s": .., "st_epoch_s": ..} (best of its 2 epochs each), from
    the JSON object on the last line it prints; ValueError, with its last words, if it fails.

    It runs in the environment the bench was started with: without the thread settings that
    the stochtp command added (`process.environment_added()`), which are stochtp's, not torch's."""
    dropped = {*process.environment_added(), process.ADDED_VARIABLE}
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    try:
        out = subprocess.run([python, script, "--threads", str(threads), "--epochs", "2"], check=True, capture_output=True, text=True, env=environment)
        measured = json.loads((out.stdout.strip().splitlines() or [""])[-1])
    except subprocess.CalledProcessError as error:
        raise ValueError(f"the peer script {script} failed (exit {error.returncode}): {_last_line(error.stderr)}") from None
    except json.JSONDecodeError:
        raise ValueError(f"the peer script {script} did not end its output with a JSON line of epoch times") from None
    if not isinstance(measured, dict):
        raise ValueError(f"the peer script {script} did not end its output with a JSON object of epoch times")
    return measured


# ---------------------------------------------------------------------- the whole run


def run(names=None, batches=200, repeat=5, kernel_n=10_000_000, data_dir=None, peer=None, peer_python=None, memory=True, progress=print):
    """Every measurement of the module docstring, as one JSON-ready dict."""
    configs = bench_configs(names)
    threads = numba.get_num_threads()
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "threads": threads,
                    "blas": [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info() if i.get("user_api") == "blas"],
                    "blas_environment": {name: value for name, value in sorted(os.environ.items()) if name.startswith("OPENBLAS_")},
                    "set_by_stochtp": list(process.environment_added())},
        "settings": {"batches": batches, "repeat": repeat, "kernel_n": kernel_n},
    }
    progress("GEMM rate at the presets' shapes ...")
    shapes = {name: layer_shapes(config) for name, config in configs.items()}
    times = {shape: gemm_seconds(shape, max(repeat, 5) * 20) for shape in sorted({s for v in shapes.values() for s in v})}
    report["gemm"] = [{"batch": b, "n_in": i, "n_out": o, "gflops": 6 * b * i * o / t / 1e9} for (b, i, o), t in times.items()]
    progress("sampling kernels ...")
    report["kernels"] = kernel_throughput(kernel_n, repeat=max(repeat, 5))
    peer_runs = []
    if peer:
        progress("PyTorch peer (first of two runs) ...")
        peer_runs.append(peer_epochs(peer, peer_python or sys.executable, threads))
    datasets = {}
    report["epochs"] = []
    for name, config in configs.items():
        progress(f"epoch of {name} ...")
        key = (config.dataset, tuple(sorted(config.data.items())))
        if key not in datasets:
            datasets[key] = data.load(config.dataset, data_dir, **config.data)
        rounds, per_epoch, flops, limit = epoch_and_limit(config, datasets[key], shapes[name], batches, repeat)
        seconds = min(rounds)
        report["epochs"].append({
            "name": name, "method": config.method["name"], "network": config.network,
            "s_per_epoch": seconds, "rounds_s_per_epoch": rounds, "extrapolated_from_batches": min(batches, per_epoch), "batches_per_epoch": per_epoch,
            "gflop_per_epoch": flops / 1e9, "gflops": flops / seconds / 1e9, "gemm_limit_gflops": limit,
            "fraction_of_limit": flops / seconds / 1e9 / limit,
        })
    if memory:
        progress("peak memory of a one-epoch paper-stochastic-dtp run ...")
        report["memory"] = {"preset": "paper-stochastic-dtp", "epochs": 1, "peak_rss_mb": peak_memory_mb("paper-stochastic-dtp", data_dir, threads)}
    if peer:
        progress("PyTorch peer (second of two runs) ...")
        peer_runs.append(peer_epochs(peer, peer_python or sys.executable, threads))
        measured = {key: min(run[key] for run in peer_runs) for key in PEER_PRESETS.values() if all(key in run for run in peer_runs)}
        report["peer"] = {"script": str(peer), "runs": peer_runs, **measured}
        for row in report["epochs"]:
            if row["name"] in PEER_PRESETS and PEER_PRESETS[row["name"]] in measured:
                row["peer_s_per_epoch"] = measured[PEER_PRESETS[row["name"]]]
                row["speedup_vs_peer"] = row["peer_s_per_epoch"] / row["s_per_epoch"]
    return report


def format_report(report, parts="abcde"):
    """The report as text tables: `parts` picks the sections (a) .. (e) present in it."""
    sections = []
    if report.get("machine"):
        machine = report["machine"]
        ours = set(machine.get("set_by_stochtp", ()))
        blas_settings = " ".join(f"{name}={value}" + (" (set by stochtp)" if name in ours else "") for name, value in machine.get("blas_environment", {}).items())
        sections.append(f"machine: {machine['processor']}, {machine['threads']} thread(s), BLAS {', '.join(machine['blas'])}" + (f"; {blas_settings}" if blas_settings else ""))
    if "a" in parts and "gemm" in report:
        lines = ["(a) float32 GEMM rate, a mini-batch's three products per layer shape"]
        lines += [f"  {row['batch']:>4} x {row['n_in']:>4} x {row['n_out']:>4}   {row['gflops']:7.1f} GFLOP/s" for row in report["gemm"]]
        sections.append("\n".join(lines))
    if "b" in parts and "kernels" in report:
        lines = ["(b) sampling kernels (best of calls on n values)", f"  {'kernel':<18} {'peer':<27} {'n':>9} {'stochtp s':>10} {'peer s':>10} {'speed-up':>9}"]
        lines += [f"  {row['kernel']:<18} {row['peer']:<27} {row['n']:>9} {row['stochtp_s']:>10.4f} {row['peer_s']:>10.4f} {row['speedup']:>9.2f}" for row in report["kernels"]]
        sections.append("\n".join(lines))
    if "c" in parts and report.get("epochs"):
        timed = report["epochs"][0]["extrapolated_from_batches"]
        lines = [f"(c) seconds per training epoch, extrapolated from the first {timed} mini-batches, the shuffle added once (best of {report['settings']['repeat']});",
                 "    limit: the GEMM rate at the preset's shapes, measured between its timed rounds",
                 f"  {'preset':<28} {'s/epoch':>8} {'GFLOP/ep':>9} {'GFLOP/s':>8} {'limit':>7} {'of limit':>9} {'peer s':>7} {'vs peer':>8}"]
        for row in report["epochs"]:
            peer = f"{row['peer_s_per_epoch']:>7.2f} {row['speedup_vs_peer']:>7.2f}x" if "peer_s_per_epoch" in row else ""
            lines.append(f"  {row['name']:<28} {row['s_per_epoch']:>8.3f} {row['gflop_per_epoch']:>9.1f} {row['gflops']:>8.1f} "
                         f"{row['gemm_limit_gflops']:>7.1f} {100 * row['fraction_of_limit']:>8.0f}% {peer}".rstrip())
        sections.append("\n".join(lines))
    if "d" in parts and "memory" in report:
        memory = report["memory"]
        sections.append(f"(d) peak resident memory of a {memory['epochs']}-epoch {memory['preset']} run: {memory['peak_rss_mb']:.0f} MB")
    if "e" in parts and "peer" in report:
        peer = report["peer"]
        sections.append(f"(e) PyTorch peer ({peer['script']}), best of a run before and a run after (c): "
                        f"DTP {peer.get('dtp_epoch_s', float('nan')):.2f} s/epoch, ST {peer.get('st_epoch_s', float('nan')):.2f} s/epoch")
    return "\n\n".join(sections)
