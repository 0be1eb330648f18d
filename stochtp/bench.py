"""`stochtp bench`: how fast each method trains, against the machine's own limit (docs/performance.md).

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
  (e) optionally, the PyTorch peer's DTP and ST epochs (`--peer`: benchmarks/torch_peer.py, or
      another script), for the ratio: run before and after (c), its faster time kept, so that
      load on the machine favours the peer;
  (f) the epoch a real run pays, beside (c)'s training epoch: from a real `train.train_run`
      writing a results file (`user_epoch`), its 1-sample evaluation, its results-file writes
      and its K-sample evaluation, amortised over its schedule (every `eval_samples_every`
      epochs and at the last); and from those the hours the paper's grid takes on this machine,
      every paper preset at its epochs, `GRID_SEEDS` seeds each, on `GRID_WORKERS` one-thread
      workers. The CIFAR-10 presets, whose data the bench does not read, are estimated from
      their FLOPs at the rate of the MNIST preset of the same method and units (`CIFAR_STAND_INS`).
Timings are best-of-`repeat` wall times (5 by default; the JSON keeps every epoch round); the
machines are shared, so compare ratios taken in one run rather than absolute numbers. The limit
is each product's best of 20 rounds at every measurement, a best case of the machine, which
few epoch rounds would catch less often. The report names the BLAS's kernel set and the
OPENBLAS_* variables in the environment, those the stochtp command set marked so:
OPENBLAS_CORETYPE forces a kernel set (some machines set it for older OpenBLAS builds), and
every rate, the limit included, follows it.
"""
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_info

from . import config as config_module
from . import batching, callbacks, data, experiment, methods, process, train
from .data import cifar
from .errors import ConfigError
from .kernels import ahead, bernoulli, normal, sigmoid_bernoulli, uniform

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
DEFAULT_PEER = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_peer.py"
CIFAR_STAND_INS = {"paper-cifar-dtp": "paper-deep-tanh-dtp", "paper-cifar-bp": "paper-deep-tanh-bp"}  # same method, tanh layers
CIFAR_TRAIN_EXAMPLES = len(cifar.TRAIN_BATCHES) * 10_000 * (cifar.VALID_FRACTION - 1) // cifar.VALID_FRACTION  # 45 000
GRID_SEEDS, GRID_WORKERS = 10, 2
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


def peer_epochs(script, python, threads, data_dir=None):
    """The PyTorch peer's {"dtp_epoch_s": .., "st_epoch_s": ..} (best of its 2 epochs each), from
    the JSON object on the last line it prints; ValueError, with its last words, if it fails.
    It is called as `SCRIPT --threads T --epochs 2`, with `--data-dir DIR` where one is given.

    It runs in the environment the bench was started with: without the thread settings that
    the stochtp command added (`process.environment_added()`), which are stochtp's, not torch's."""
    dropped = {*process.environment_added(), process.ADDED_VARIABLE}
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    try:
        command = [python, str(script), "--threads", str(threads), "--epochs", "2", *(["--data-dir", str(data_dir)] if data_dir else [])]
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
        measured = json.loads((out.stdout.strip().splitlines() or [""])[-1])
    except subprocess.CalledProcessError as error:
        raise ValueError(f"the peer script {script} failed (exit {error.returncode}): {_last_line(error.stderr)}") from None
    except json.JSONDecodeError:
        raise ValueError(f"the peer script {script} did not end its output with a JSON line of epoch times") from None
    if not isinstance(measured, dict):
        raise ValueError(f"the peer script {script} did not end its output with a JSON object of epoch times")
    return measured


# ---------------------------------------------------------------------- (f) the user's epoch, the grid


class PhaseSeconds(callbacks.Callback):
    """Keeps the run's per-epoch phase times (`train.Run.phase_seconds`) for after the run."""

    def on_train_begin(self, run):
        self.epochs = run.phase_seconds


def loop_phases(config, dataset, batches):
    """Wall seconds of the phases of a real epoch ("train", "evaluate_1", "evaluate_k" where the
    network is stochastic, "record"), from `train.train_run` into a results file: two epochs on
    the first `batches` mini-batches of the training set and the whole validation and test sets.
    The second is timed: the first loads the kernels and makes the file; the second, the last,
    evaluates the K-sample errors too. Its training time is extrapolated to the whole epoch."""
    per_epoch = len(dataset.train) // config.batch_size
    rows = min(batches, per_epoch) * config.batch_size
    train_split = dataset.train
    short = dataclasses.replace(dataset, train=dataclasses.replace(train_split, x=train_split.x[:rows], y=train_split.y[:rows]))
    net, method = experiment.build_model(config)
    ahead.compile_here(net.kernels_to_compile(config.eval_samples))  # so that no second process compiles them during the timed epoch
    phases = PhaseSeconds()
    with tempfile.TemporaryDirectory() as folder:
        train.train_run(dataclasses.replace(config, epochs=2), short, net, method, out=Path(folder) / "bench.h5", callbacks=[phases])
    seconds = dict(phases.epochs[-1])
    seconds["train"] *= per_epoch * config.batch_size / rows
    return seconds


def k_evaluations(config):
    """How many epochs of a run of `config` evaluate K-sample errors: every `eval_samples_every`-th, and the last."""
    return config.epochs // config.eval_samples_every + (config.epochs % config.eval_samples_every > 0)


def user_epoch(train_s, phases, config):
    """The seconds of the epoch a run of `config` pays, by part: `train_s` (the training epoch),
    the loop's 1-sample evaluation and results-file writes (`phases`, from `loop_phases`), and
    its K-sample evaluation spread over the run's epochs."""
    k_runs = k_evaluations(config) if "evaluate_k" in phases else 0
    parts = {"train_s": train_s, "evaluate_1_s": phases["evaluate_1"], "record_s": phases["record"],
             "evaluate_k_per_epoch_s": phases.get("evaluate_k", 0.0) * k_runs / config.epochs}
    return {**parts, "s": sum(parts.values()), "evaluate_k_s": phases.get("evaluate_k", 0.0), "k_evaluations": k_runs,
            "epochs": config.epochs, "loop_train_s": phases["train"]}


def cifar_estimate(name, stand_in):
    """The user's epoch of CIFAR preset `name`, estimated from the measured row `stand_in` of the
    MNIST preset with its method and units: the training epoch from its FLOPs at that row's
    GFLOP/s, the other parts in the same proportion to it as that row's."""
    config = config_module.load(preset=name)
    net, method = experiment.build_model(config)
    flops = method.flops_per_batch(net, config.batch_size) * (CIFAR_TRAIN_EXAMPLES // config.batch_size)
    train_s = flops / stand_in["gflops"] / 1e9
    return {"train_s": train_s, "s": train_s * stand_in["user_epoch"]["s"] / stand_in["s_per_epoch"], "epochs": config.epochs,
            "estimated_from": stand_in["name"], "gflop_per_epoch": flops / 1e9}


def paper_grid(rows, threads, seeds=GRID_SEEDS, workers=GRID_WORKERS):
    """Hours the paper's grid takes: every paper preset at its epochs, `seeds` seeds each, on
    `workers` workers of one thread (the epochs were timed on `threads` threads), from the
    measured user's epochs of `rows`; the CIFAR presets estimated (`cifar_estimate`); the
    presets not measured are listed, left out of the total."""
    measured = {row["name"]: row for row in rows}
    presets, missing = [], []
    for name in (preset for preset in config_module.presets() if preset.startswith("paper-")):
        if name in measured:
            epoch = {"s": measured[name]["user_epoch"]["s"], "epochs": measured[name]["user_epoch"]["epochs"]}
        elif measured.get(CIFAR_STAND_INS.get(name)):
            epoch = cifar_estimate(name, measured[CIFAR_STAND_INS[name]])
        else:
            missing.append(name)
            continue
        presets.append({"name": name, **epoch, "worker_hours": seeds * epoch["epochs"] * epoch["s"] / 3600})
    return {"seeds": seeds, "workers": workers, "threads_per_worker": 1, "timed_threads": threads,
            "hours": sum(preset["worker_hours"] for preset in presets) / workers, "presets": presets, "not_measured": missing}


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
        peer_runs.append(peer_epochs(peer, peer_python or sys.executable, threads, data_dir))
    datasets = {}
    report["epochs"] = []
    for name, config in configs.items():
        progress(f"epoch of {name} ...")
        key = (config.dataset, tuple(sorted(config.data.items())))
        if key not in datasets:
            datasets[key] = data.load(config.dataset, data_dir, **config.data)
        rounds, per_epoch, flops, limit = epoch_and_limit(config, datasets[key], shapes[name], batches, repeat)
        seconds = min(rounds)
        progress(f"real loop of {name} (evaluation, results file) ...")
        report["epochs"].append({
            "name": name, "method": config.method["name"], "network": config.network,
            "s_per_epoch": seconds, "rounds_s_per_epoch": rounds, "extrapolated_from_batches": min(batches, per_epoch), "batches_per_epoch": per_epoch,
            "gflop_per_epoch": flops / 1e9, "gflops": flops / seconds / 1e9, "gemm_limit_gflops": limit,
            "fraction_of_limit": flops / seconds / 1e9 / limit,
            "user_epoch": user_epoch(seconds, loop_phases(config, datasets[key], batches), config),
        })
    report["grid"] = paper_grid(report["epochs"], threads)
    if memory:
        progress("peak memory of a one-epoch paper-stochastic-dtp run ...")
        report["memory"] = {"preset": "paper-stochastic-dtp", "epochs": 1, "peak_rss_mb": peak_memory_mb("paper-stochastic-dtp", data_dir, threads)}
    if peer:
        progress("PyTorch peer (second of two runs) ...")
        peer_runs.append(peer_epochs(peer, peer_python or sys.executable, threads, data_dir))
        measured = {key: min(run[key] for run in peer_runs) for key in PEER_PRESETS.values() if all(key in run for run in peer_runs)}
        report["peer"] = {"script": str(peer), "runs": peer_runs, **measured}
        for row in report["epochs"]:
            if row["name"] in PEER_PRESETS and PEER_PRESETS[row["name"]] in measured:
                row["peer_s_per_epoch"] = measured[PEER_PRESETS[row["name"]]]
                row["speedup_vs_peer"] = row["peer_s_per_epoch"] / row["s_per_epoch"]
    return report


def format_report(report, parts="abcdef"):
    """The report as text tables: `parts` picks the sections (a) .. (f) present in it."""
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
    if "f" in parts and report.get("epochs"):
        sections.append(format_user_epochs(report))
    return "\n\n".join(sections)


def format_user_epochs(report):
    """Section (f): each preset's epoch as a run pays it, by part, and the paper grid's hours."""
    grid = report["grid"]
    lines = ["(f) seconds per epoch of a real run (stochtp run): training (c), 1-sample evaluation, results-file writes,",
             "    and the K-sample evaluation (one, measured) spread over the epochs that run it",
             f"  {'preset':<30} {'train':>7} {'eval 1':>7} {'record':>7} {'eval K':>7} {'runs':>5} {'per ep':>7} {'s/epoch':>8} {'epochs':>6} {'grid h':>7}"]
    hours = {preset["name"]: preset["worker_hours"] / grid["workers"] for preset in grid["presets"]}
    for row in report["epochs"]:
        epoch = row["user_epoch"]
        k_sample = f"{epoch['evaluate_k_s']:>7.2f} {epoch['k_evaluations']:>5} {epoch['evaluate_k_per_epoch_s']:>7.3f}" if epoch["k_evaluations"] else f"{'-':>7} {'-':>5} {'-':>7}"
        grid_hours = f"{hours[row['name']]:>7.1f}" if row["name"] in hours else ""
        lines.append(f"  {row['name']:<30} {epoch['train_s']:>7.3f} {epoch['evaluate_1_s']:>7.3f} {epoch['record_s']:>7.3f} {k_sample} "
                     f"{epoch['s']:>8.3f} {epoch['epochs']:>6} {grid_hours}".rstrip())
    for preset in grid["presets"]:
        if "estimated_from" in preset:
            lines.append(f"  {preset['name']:<30} {preset['train_s']:>7.3f} {'estimated from ' + preset['estimated_from'] + ' (FLOPs)':<44} "
                         f"{preset['s']:>8.3f} {preset['epochs']:>6} {hours[preset['name']]:>7.1f}")
    covered = f"{len(grid['presets'])} of the {len(grid['presets']) + len(grid['not_measured'])} paper presets" if grid["not_measured"] else "every paper preset"
    lines.append(f"  paper grid: {grid['hours']:.1f} h for {covered}, each at its epochs, {grid['seeds']} seeds each, on {grid['workers']} one-thread workers"
                 + (f" (epochs timed on {grid['timed_threads']} threads)" if grid["timed_threads"] != 1 else "")
                 + (f"; not measured, left out: {', '.join(grid['not_measured'])}" if grid["not_measured"] else ""))
    return "\n".join(lines)
