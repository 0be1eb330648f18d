"""`stochtp bench` and the FLOP counts it divides by (speed is measured there, never asserted here)."""
import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stochtp import Network, bench, config, methods, process
from stochtp.cli import main


def flops(name, spec, batch=10, **options):
    net = Network.from_spec(spec, seed=0, dtype=np.float64)
    method = methods.get(name, **options)
    method.bind(net, 0)
    return method.flops_per_batch(net, batch)


def test_bench_times_every_paper_preset_and_every_other_gradient_method():
    """Every paper-* preset on MNIST (the bench reads MNIST only), every estimator method on
    the stochastic network, and every registered gradient method that no preset trains (none of
    the built-ins: ARM has its preset)."""
    assert sorted(bench.PRESETS) == [name for name in config.presets() if name.startswith("paper-") and config.load(preset=name).dataset == "mnist"]
    timed_methods = {config.load(preset=name).method["name"] for name in bench.PRESETS if "stochastic" in name}
    assert timed_methods == {"dtp", "st", "reinforce", "disarm", "arm"}
    assert bench.extra_estimators() == {}


def test_flop_counts_of_the_methods_by_hand():
    """784-200b-200b-10s with B rows: products of 784x200, 200x200, 200x10 (2 B n_in n_out each).
    Only the products a method takes count: none into a layer whose gradient is injected (the
    score-function estimators) or zero (back-propagation through samples or sign)."""
    B = 10
    a, b, c = 2 * B * 784 * 200, 2 * B * 200 * 200, 2 * B * 200 * 10
    spec = "784-200b-200b-10s"
    assert flops("st", spec) == (a + b + c) + (a + b + c) + (b + c)  # forward; weight gradients; gradients into layers 1, 2
    assert flops("reinforce", spec, samples=4) == 4 * ((a + b + c) + (a + b + c))  # forward; weight gradients
    assert flops("arm", spec) == (a + b + c) + (a + b + c) + 2 * ((b + c) + c)  # and two passes above each stochastic layer
    assert flops("bp", spec) == (a + b + c) + c  # the output layer's weights only: no gradient crosses a sample

    class Undeclared(methods.GradientMethod):  # an estimator that does not say how it back-propagates
        def estimate(self, net, batch, seed):
            raise NotImplementedError

    assert Undeclared().flops_per_batch(Network.from_spec(spec, seed=0), B) == flops("st", spec)  # through every layer
    A, H, C = 2 * B * 784 * 500, 2 * B * 500 * 500, 2 * B * 500 * 10
    discrete = "784-500t:n-500t-10s"
    assert flops("bp", discrete) == (A + H + C) + (C + C + H)  # weights of layers 2 and 1, the gradient into layer 1
    assert flops("bp", discrete, train_transmission=False) == 2 * (A + H + C) + (H + C)  # trained without sign: all of it
    inverse = a + 3 * b  # layer 0, then f_1, g_1 and g_1's gradient
    forward = 2 * (a + b + c) + c + 2 * b  # forward, weight gradients, dL/dh_1, g_1 on 2B rows
    assert flops("dtp", spec) == inverse + forward


def test_each_kernel_row_draws_into_buffers_made_once_and_both_sides_draw_the_same_law():
    """The kernel comparison times the drawing, not the page faults of fresh arrays: a second call
    writes where the first did. Both sides draw what the row names (5-sigma bounds, n = 10^5,
    seeded: a false alarm has probability below 1e-5); the inputs are the bench's, from seed 0."""
    n = 100_000
    inputs = np.random.default_rng(0)
    p, a = inputs.random(n, dtype=np.float32), inputs.standard_normal(n, dtype=np.float32)
    sigmoid = 1 / (1 + np.exp(-a.astype(np.float64)))
    tolerance = 5 / np.sqrt(n)
    for kernel, peer, *calls in bench.kernel_comparisons(n):
        for call in calls:
            first, second = (result if isinstance(result, tuple) else (result,) for result in (call(), call()))
            assert all(np.shares_memory(a, b) for a, b in zip(first, second)), (kernel, peer)
            draws = np.asarray(second[-1], dtype=np.float64)  # the draws (sigmoid_bernoulli returns (p, h)); a tensor on torch's row
            if kernel == "normal":
                assert abs(draws.mean()) < tolerance and abs(draws.std() - 1) < tolerance, peer
            elif kernel == "uniform":
                assert draws.min() >= 0 and draws.max() < 1 and abs(draws.mean() - 0.5) < tolerance, peer
            else:
                probability = p if kernel == "bernoulli" else second[0]
                if kernel == "sigmoid_bernoulli":
                    np.testing.assert_allclose(probability, sigmoid, rtol=1e-6, err_msg=peer)
                assert set(np.unique(draws)) <= {0.0, 1.0} and abs((draws - probability).mean()) < tolerance, peer
                assert abs((draws - probability)[probability > 0.9].mean()) < 5 / np.sqrt((probability > 0.9).sum()), peer


@pytest.mark.parametrize("argv, message", [
    (["bench", "--batches", "0"], "--batches must be positive"),
    (["bench", "no-such-preset", "--no-memory"], "unknown benchmark no-such-preset"),
    (["bench", "--peer-script", "/no/such/peer.py"], "no such file"),
    (["bench", "--peer-script", __file__, "--peer-python", "/no/such/python"], "cannot run it"),
    (["bench", "--peer", "--peer-python", "/no/such/python"], "cannot run it"),
])
def test_bad_bench_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.mnist
def test_bench_reports_every_measurement_as_json(mnist_dir, capsys):
    argv = ["bench", "paper-stochastic-st", "--batches", "3", "--repeat", "1", "--kernel-n", "10000", "--no-memory",
            "--data-dir", str(mnist_dir), "--json", "--threads", "1"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert {row["kernel"] for row in report["kernels"]} >= {"bernoulli", "normal", "sigmoid_bernoulli", "uniform"}
    assert {(row["batch"], row["n_in"], row["n_out"]) for row in report["gemm"]} == {(100, 784, 200), (100, 200, 200), (100, 200, 10)}
    (epoch,) = report["epochs"]
    assert epoch["name"] == "paper-stochastic-st" and epoch["extrapolated_from_batches"] == 3 and epoch["batches_per_epoch"] == 500
    assert epoch["gflop_per_epoch"] == pytest.approx(500 * flops("st", "784-200b-200b-10s", batch=100) / 1e9)
    assert epoch["gflops"] == pytest.approx(epoch["gflop_per_epoch"] / epoch["s_per_epoch"])
    assert epoch["s_per_epoch"] == min(epoch["rounds_s_per_epoch"]) and len(epoch["rounds_s_per_epoch"]) == 1
    assert epoch["fraction_of_limit"] == pytest.approx(epoch["gflops"] / epoch["gemm_limit_gflops"])
    user = epoch["user_epoch"]
    assert user["train_s"] == epoch["s_per_epoch"] and user["k_evaluations"] == 100 and user["epochs"] == 1000
    assert user["s"] == pytest.approx(user["train_s"] + user["evaluate_1_s"] + user["record_s"] + user["evaluate_k_s"] / 10)
    assert [preset["name"] for preset in report["grid"]["presets"]] == ["paper-stochastic-st"]
    assert "paper-stochastic-dtp" in report["grid"]["not_measured"]
    assert bench.format_report(report).count("paper-stochastic-st") == 2  # (c) and (f)


def test_the_limit_is_measured_between_the_timed_rounds_and_keeps_each_shapes_best(tiny_config_path, monkeypatch):
    """Rounds and limit measurements alternate (limit, round, limit, round, limit); each shape's best time counts."""
    from stochtp import config, data

    cfg = config.load(tiny_config_path)
    dataset = data.load(cfg.dataset, **cfg.data)
    events, seconds = [], iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(bench, "gemm_seconds", lambda shape, rounds: events.append("limit") or next(seconds))
    real_round = bench.epoch_round
    monkeypatch.setattr(bench, "epoch_round", lambda *args: events.append("round") or real_round(*args))
    shape = (cfg.batch_size, 3, 2)
    rounds, per_epoch, flops, limit = bench.epoch_and_limit(cfg, dataset, [shape], batches=2, repeat=2)
    assert events == ["round", "limit", "round", "limit", "round", "limit"]  # the first round warms up, untimed
    assert limit == pytest.approx(3 * 2 * cfg.batch_size * 3 * 2 / 1.0 / 1e9)
    assert len(rounds) == 2 and min(rounds) > 0 and per_epoch == len(dataset.train) // cfg.batch_size and flops > 0


def test_an_epochs_shuffle_is_counted_once_not_extrapolated(tiny_config_path, monkeypatch):
    """Building an epoch's mini-batches (a sort of the whole training set) is paid once per epoch:
    the training time of the timed mini-batches is scaled to the epoch, the shuffle added as it
    is. Every round, the untimed warm-up included, trains as many mini-batches (a warm-up of two
    left the first timed round paying the heap's growth), with the heap frozen as in training."""
    from stochtp import config, data

    cfg = config.load(tiny_config_path)
    dataset = data.load(cfg.dataset, **cfg.data)
    per_epoch = len(dataset.train) // cfg.batch_size
    times = iter([(0.0, 0.0), (5.0, 2.0), (1.0, 3.0)])  # warm-up, then two timed rounds
    calls = []
    monkeypatch.setattr(bench, "epoch_round", lambda *args: calls.append((args[-1], gc.get_freeze_count() > 0)) or next(times))
    rounds, *_ = bench.epoch_seconds(cfg, dataset, batches=2, repeat=2)
    assert rounds == [5.0 + 2.0 * per_epoch / 2, 1.0 + 3.0 * per_epoch / 2]
    assert calls == [(2, True)] * 3
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        bench.epoch_seconds(cfg, dataset, batches=2, repeat=0)


def test_the_report_keeps_every_round_and_the_best_as_the_epochs_time(tiny_config_path, monkeypatch):
    """s/epoch is the fastest round; the rounds are kept as measured, in order."""
    cfg = config.load(tiny_config_path)
    monkeypatch.setattr(bench, "bench_configs", lambda names: {"tiny": cfg})
    monkeypatch.setattr(bench, "kernel_throughput", lambda n, repeat: [])
    monkeypatch.setattr(bench, "layer_shapes", lambda config: [(cfg.batch_size, 3, 2)])
    monkeypatch.setattr(bench, "gemm_seconds", lambda shape, rounds: 1.0)
    monkeypatch.setattr(bench, "epoch_and_limit", lambda *args: ([3.0, 1.0, 2.0], 10, 4e9, 8.0))
    (row,) = bench.run(repeat=3, memory=False, progress=lambda message: None)["epochs"]
    assert row["rounds_s_per_epoch"] == [3.0, 1.0, 2.0] and row["s_per_epoch"] == 1.0
    assert row["gflops"] == 4.0 and row["fraction_of_limit"] == 0.5


def test_the_report_names_the_blas_kernel_settings_of_the_environment(monkeypatch):
    """A forced kernel set (OPENBLAS_CORETYPE) changes every rate, so the report says what was set,
    and which of the settings the stochtp command made."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "21")
    monkeypatch.setenv(process.ADDED_VARIABLE, "OPENBLAS_THREAD_TIMEOUT")
    monkeypatch.setattr(bench, "bench_configs", lambda names: {})
    monkeypatch.setattr(bench, "kernel_throughput", lambda n, repeat: [])
    report = bench.run(memory=False, progress=lambda message: None)
    assert report["machine"]["blas_environment"]["OPENBLAS_CORETYPE"] == "Haswell"
    machine_line = bench.format_report(report).splitlines()[0]
    assert "OPENBLAS_CORETYPE=Haswell " in machine_line and "OPENBLAS_CORETYPE=Haswell (set by stochtp)" not in machine_line
    assert "OPENBLAS_THREAD_TIMEOUT=21 (set by stochtp)" in machine_line


def fake_interpreter(folder, body):
    """An executable that stands in for the peer's Python: `body` is its shell script."""
    path = folder / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_a_failing_or_mute_peer_is_one_clear_error(tmp_path):
    """An interpreter without torch is refused before any measuring; a peer that fails or prints
    no JSON gives a ValueError with its last words, not a traceback from subprocess or json."""
    failing = fake_interpreter(tmp_path, 'echo "ModuleNotFoundError: no torch here" >&2; exit 3')
    with pytest.raises(ValueError, match="cannot import torch .ModuleNotFoundError: no torch here"):
        bench.check_peer_python(failing)
    with pytest.raises(ValueError, match=r"failed \(exit 3\): ModuleNotFoundError: no torch here"):
        bench.peer_epochs(__file__, failing, 1)
    mute = fake_interpreter(tmp_path, 'echo "epoch 1 done"')
    bench.check_peer_python(mute)
    with pytest.raises(ValueError, match="JSON"):
        bench.peer_epochs(__file__, mute, 1)


def test_the_peer_runs_without_the_thread_settings_stochtp_added(tmp_path, monkeypatch):
    """The stochtp command sets OMP_WAIT_POLICY=PASSIVE (unless the user set it), which made the
    PyTorch peer's OpenMP threads sleep between operations (1.6-2.0x slower epochs): the peer gets
    the environment without what stochtp added, and with what the user set."""
    monkeypatch.setenv(process.ADDED_VARIABLE, "OMP_WAIT_POLICY OPENBLAS_THREAD_TIMEOUT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "21")
    monkeypatch.setenv("STOCHTP_USER_SETTING", "kept")
    peer = fake_interpreter(tmp_path, 'echo "{\\"wait\\": \\"${OMP_WAIT_POLICY-unset}\\", \\"timeout\\": \\"${OPENBLAS_THREAD_TIMEOUT-unset}\\", \\"user\\": \\"$STOCHTP_USER_SETTING\\"}"')
    assert bench.peer_epochs(__file__, peer, 2) == {"wait": "unset", "timeout": "unset", "user": "kept"}


def test_the_command_records_the_variables_it_added():
    """What the user set is theirs (kept for the peer); what the command set is listed."""
    environment = {name: value for name, value in os.environ.items() if name not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", process.ADDED_VARIABLE)}
    code = ("import os, sys; sys.argv = ['stochtp', 'show', 'no-such-file.h5']; from stochtp import __main__ as command, process; command.main(); "
            "print(process.environment_added(), os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    out = subprocess.run([sys.executable, "-c", code], env={**environment, "OPENBLAS_THREAD_TIMEOUT": "18"}, check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["('OMP_WAIT_POLICY',)", "PASSIVE", "18"]


# Records the OpenBLAS setting at the moment something first imports NumPy, then loads a script as a module.
_NUMPY_LOAD_WATCH = """
import importlib.abc, importlib.util, os, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"))
sys.meta_path.insert(0, Watch())
spec = importlib.util.spec_from_file_location("script", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(seen[0] if seen else "numpy not loaded")
"""


@pytest.mark.parametrize("script", ["bench_kernels.py", "epoch_pieces.py", "k_sample_eval.py", "user_wait.py"])
def test_benchmark_scripts_apply_the_command_s_tunings_before_numpy_loads(script):
    """The scripts that time threaded kernels in their own process time what `stochtp run` runs:
    OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, as NumPy loads it, and with its default spin
    (0.1 s) its idle worker takes a core from the kernel after each product."""
    environment = {name: value for name, value in os.environ.items() if name not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", process.ADDED_VARIABLE)}
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", script)
    out = subprocess.run([sys.executable, "-c", _NUMPY_LOAD_WATCH, path], env=environment, check=True, capture_output=True, text=True)
    assert out.stdout.split() == [process.THREAD_DEFAULTS["OPENBLAS_THREAD_TIMEOUT"]]


def test_a_real_loops_epoch_is_timed_by_phase_with_its_numbers_unchanged(tiny_config_path):
    """The loop records each epoch's phases: training, 1-sample evaluation, K-sample evaluation
    on the epochs it is due (2 and 4 of 4, every 2), the callbacks' recording; the run's metrics
    are those of the same run without anyone reading the phases. `loop_phases` times the second
    of two epochs, the last (K-sample due), and extrapolates its training to the whole set."""
    from stochtp import data, experiment, train

    cfg = config.load(tiny_config_path)
    dataset = data.load(cfg.dataset, **cfg.data)
    histories, phase_lists = [], []
    for phases in (bench.PhaseSeconds(), None):
        net, method = experiment.build_model(cfg)
        _, history = train.train_run(cfg, dataset, net, method, callbacks=[phases] if phases else [])
        histories.append(history.metrics)
        phase_lists.append(phases and phases.epochs)
    assert [sorted(epoch) for epoch in phase_lists[0]] == [["evaluate_1", "record", "train"], ["evaluate_1", "evaluate_k", "record", "train"]] * 2
    assert all(seconds >= 0 for epoch in phase_lists[0] for seconds in epoch.values())
    for key in histories[1]:
        if key not in ("wall_time", "epoch_time"):
            np.testing.assert_array_equal(histories[0][key], histories[1][key], err_msg=key)
    phases = bench.loop_phases(cfg, dataset, batches=2)
    assert sorted(phases) == ["evaluate_1", "evaluate_k", "record", "train"]
    deterministic = config.load(tiny_config_path, overrides=["network='8-6t-3s'"])
    assert sorted(bench.loop_phases(deterministic, dataset, batches=2)) == ["evaluate_1", "record", "train"]


@pytest.mark.parametrize("epochs, every, runs", [(1000, 10, 100), (25, 10, 3), (4, 10, 1), (10, 10, 1)])
def test_the_k_sample_evaluation_is_spread_over_the_epochs_that_run_it(epochs, every, runs):
    """A run evaluates K-sample errors every `eval_samples_every` epochs and at its last: the
    user's epoch pays one of those times their number over the epochs; parts add up to the whole."""
    cfg = config.Config(epochs=epochs, eval_samples_every=every)
    epoch = bench.user_epoch(2.0, {"train": 2.5, "evaluate_1": 0.5, "evaluate_k": 30.0, "record": 0.25}, cfg)
    assert epoch["k_evaluations"] == runs and epoch["evaluate_k_per_epoch_s"] == pytest.approx(30.0 * runs / epochs)
    assert epoch["s"] == pytest.approx(2.0 + 0.5 + 0.25 + 30.0 * runs / epochs) and epoch["loop_train_s"] == 2.5
    assert bench.user_epoch(2.0, {"train": 2.5, "evaluate_1": 0.5, "record": 0.25}, cfg)["s"] == 2.75  # a deterministic network


def user_row(name, seconds=2.0, gflops=5.0):
    """A bench row with the fields the grid reads: a user's epoch of `seconds`, half of it training."""
    return {"name": name, "s_per_epoch": seconds / 2, "gflops": gflops, "user_epoch": {"s": seconds, "epochs": config.load(preset=name).epochs}}


def test_the_paper_grid_covers_every_paper_preset_the_cifar_ones_estimated():
    """Every paper preset is in the grid, at its epochs, 10 seeds, on 2 workers; a CIFAR preset
    (its data unread) from its FLOPs at its MNIST stand-in's rate, overhead in the same
    proportion; a preset not measured is named and left out of the total."""
    paper = [name for name in config.presets() if name.startswith("paper-")]
    assert set(paper) == set(bench.PRESETS) | set(bench.CIFAR_STAND_INS)
    assert set(bench.CIFAR_STAND_INS.values()) <= set(bench.PRESETS) and bench.CIFAR_TRAIN_EXAMPLES == 45_000
    rows = [user_row(name) for name in bench.PRESETS if name != "paper-discrete-bp"]
    grid = bench.paper_grid(rows, threads=1)
    assert grid["not_measured"] == ["paper-discrete-bp"] and grid["seeds"] == 10 and grid["workers"] == 2
    by_name = {preset["name"]: preset for preset in grid["presets"]}
    assert set(by_name) == set(paper) - {"paper-discrete-bp"}
    for name in bench.CIFAR_STAND_INS:
        estimate = by_name[name]
        assert estimate["estimated_from"] == bench.CIFAR_STAND_INS[name] and estimate["epochs"] == config.load(preset=name).epochs
        assert estimate["train_s"] == pytest.approx(estimate["gflop_per_epoch"] / 5.0) and estimate["s"] == pytest.approx(2 * estimate["train_s"])
    assert by_name["paper-stochastic-dtp"]["worker_hours"] == pytest.approx(10 * 1000 * 2.0 / 3600)
    assert grid["hours"] == pytest.approx(sum(preset["worker_hours"] for preset in grid["presets"]) / 2)
    text = bench.format_user_epochs({"grid": grid, "epochs": []})
    assert "not measured, left out: paper-discrete-bp" in text and "estimated from paper-deep-tanh-dtp" in text


def test_the_peer_is_the_repositorys_script_by_default_and_gets_the_data_folder(tmp_path, monkeypatch):
    """`--peer` alone times benchmarks/torch_peer.py; the data folder the bench reads is passed on."""
    assert bench.DEFAULT_PEER.is_file() and bench.DEFAULT_PEER.parent.name == "benchmarks"
    peer = fake_interpreter(tmp_path, 'echo "{\\"args\\": \\"$*\\"}"')
    assert bench.peer_epochs("peer.py", peer, 1, "/data")["args"] == "peer.py --threads 1 --epochs 2 --data-dir /data"
    assert bench.peer_epochs("peer.py", peer, 1)["args"] == "peer.py --threads 1 --epochs 2"
    timed = []
    monkeypatch.setattr(bench, "check_peer_python", lambda python: None)
    monkeypatch.setattr(bench, "run", lambda *args, **kwargs: timed.append(kwargs["peer"]) or {})
    monkeypatch.setattr(bench, "format_report", lambda report: "")
    assert main(["bench", "--peer", "--no-memory"]) == 0 and main(["bench", "--peer-script", __file__]) == 0 and main(["bench"]) == 0
    assert timed == [bench.DEFAULT_PEER, __file__, None]


def test_the_peers_optimiser_is_stochtps_centred_rmsprop():
    """The PyTorch peer's CentredRMSprop (eps inside the square root) takes stochtp's steps."""
    torch = pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location("torch_peer", bench.DEFAULT_PEER)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    from stochtp import optim

    rng = np.random.default_rng(0)
    theta = rng.standard_normal((3, 4))
    ours = optim.make("centred_rmsprop", [theta.copy()], 0.01)
    parameter = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    theirs = peer.CentredRMSprop([parameter], 0.01)
    for _ in range(5):
        grad = rng.standard_normal(theta.shape)
        ours.step([grad])
        parameter.grad = torch.from_numpy(grad)
        theirs.step()
    np.testing.assert_allclose(parameter.detach().numpy(), ours.params[0], rtol=1e-12, atol=1e-14)
