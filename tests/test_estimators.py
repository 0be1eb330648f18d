"""REINFORCE, ARM and DisARM against the exact oracle, straight-through's bias detected by the same
test, and `stochtp estimators`."""
import math

import numpy as np
import pytest
from test_exact import small_problem

from stochtp import Network, cli, estimators, kernels, methods, report, results
from stochtp.batching import MiniBatch
from stochtp.errors import ConfigError

UNBIASED = ("reinforce-none", "reinforce-ema", "reinforce-loo-M2", "arm", "disarm")
DRAWS = 2000
# Per (network, method) family: one z-test per coordinate of all layers, Bonferroni-corrected
# (p_bonferroni = D P(|Z| > max |z|)), so an unbiased estimator is flagged with probability
# at most ALPHA; the seeds are fixed, so the outcome is too.
ALPHA = 1e-3


# Bernoulli networks, then stochastic sign ones (one mixed with a Bernoulli layer, k != 1 on one).
SCORED_NETWORKS = [("3-3b-3b-2s", 1.0), ("4-4b-3s", 1.5), ("3-4b:n-2t-2b-2s", 1.0), ("3-3p-3p-2s", 1.0), ("4-4p-2t-2b-3s", 1.5)]


@pytest.fixture(scope="module", params=SCORED_NETWORKS, ids=lambda p: p[0])
def scored(request):
    spec, slope = request.param
    net, x, y = small_problem(spec, slope, seed=2, batch=4)
    return estimators.score(net, x, y, estimators.standard_methods(net), draws=DRAWS, seed=11)


@pytest.mark.slow
def test_score_function_and_antithetic_estimators_are_unbiased(scored):
    for label in UNBIASED:
        stats = scored["methods"][label]
        assert stats["p_bonferroni"][-1] >= ALPHA, f"{label} looks biased on {scored['network']}"
        assert stats["bias_se"][-1] < 0.1 * scored["exact_norm"][-1], "too few draws for the test to see a bias"


@pytest.mark.slow
def test_the_same_test_detects_the_bias_of_straight_through_and_of_the_zero_derivative(scored):
    """ST's surrogates, and back-propagation, whose true zero derivative through the samples
    leaves every layer below the top stochastic one without gradient."""
    biased = [label for label in scored["methods"] if label.startswith("st-")] + ["bp"]
    assert len(biased) > 1
    for label in biased:
        assert scored["methods"][label]["p_bonferroni"][-1] < ALPHA, f"{label}'s bias went unnoticed on {scored['network']}"


@pytest.mark.parametrize("name", ["st", "arm", "disarm"])
def test_more_samples_per_example_average_single_sample_estimates(name):
    """`samples = 2`: the same expectation (ARM, DisARM stay unbiased; ST keeps its own mean) and
    half the variance of one sample (2000 draws measure the ratio to a few per cent)."""
    net, x, y = small_problem("3-3b-3b-2s", 1.0, seed=2, batch=4)
    pair = {"one": methods.get(name), "two": methods.get(name, samples=2)}
    for method in pair.values():
        method.bind(net)
    stats = estimators.score(net, x, y, pair, draws=DRAWS, seed=11)["methods"]
    ratio = stats["two"]["variance"][-1] / stats["one"]["variance"][-1]
    assert 0.4 < ratio < 0.6, f"variance ratio {ratio:.3f}"
    if name != "st":
        assert stats["two"]["p_bonferroni"][-1] >= ALPHA


def test_tp_and_dtp_are_left_out_where_they_cannot_train_the_network():
    """A hidden layer of sign units has no local loss: the estimators are scored, TP and DTP not."""
    labels = set(estimators.standard_methods(Network.from_spec("4-3b-3n-2s")))
    assert {"bp", "reinforce-none", "arm", "disarm", "st-identity"} <= labels and not labels & {"tp", "dtp"}


@pytest.mark.parametrize("name", ["reinforce", "arm", "disarm"])
def test_estimators_need_stochastic_hidden_layers(name):
    net = Network.from_spec("3-4t-2s")
    method = methods.get(name)
    with pytest.raises(ConfigError, match="needs stochastic"):
        method.bind(net)
    with pytest.raises(ConfigError, match="needs stochastic"):
        method.gradient(net, np.zeros((2, 3), np.float32), np.zeros(2, int), seed=0)


@pytest.mark.parametrize(
    "options, message",
    [({"baseline": "loo"}, "needs samples >= 2"), ({"baseline": "mean"}, "baseline must be one of"), ({"samples": 0}, "between 1 and 16777216"), ({"ema_decay": 1.0}, r"\[0, 1\)")],
)
def test_reinforce_rejects_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        methods.get("reinforce", **options)


def test_ema_baseline_is_updated_after_use_and_checkpointed():
    net, x, y = small_problem("3-3b-3b-2s", 1.0)
    ema, none = methods.get("reinforce", baseline="ema"), methods.get("reinforce")
    streams = [kernels.stream_id("draw", k) for k in range(4)]
    first, reference = ema.gradient(net, x, y, 0, streams[0]), none.gradient(net, x, y, 0, streams[0])
    for (W, b), (rW, rb) in zip(first, reference):  # no earlier batch: c = 0, as without a baseline
        np.testing.assert_array_equal(W, rW)
        np.testing.assert_array_equal(b, rb)
    ema.gradient(net, x, y, 0, streams[1])
    resumed = methods.get("reinforce", baseline="ema")
    resumed.bind(net)
    ema.bind(net)
    resumed.load_state_dict(ema.state_dict())
    assert resumed.ema_steps == 2
    for (W, b), (rW, rb) in zip(ema.gradient(net, x, y, 0, streams[2]), resumed.gradient(net, x, y, 0, streams[2])):
        np.testing.assert_array_equal(W, rW)
        np.testing.assert_array_equal(b, rb)
    assert not np.array_equal(ema.gradient(net, x, y, 0, streams[3])[0][0], none.gradient(net, x, y, 0, streams[3])[0][0])


def test_one_sample_sees_the_forward_pass_and_several_samples_train():
    net, x, y = small_problem("4-4b-3s", 1.0, dtype=np.float32)
    x = x.astype(np.float32)
    _, trace = methods.get("reinforce").estimate(net, MiniBatch(9, x, y), 5)
    np.testing.assert_array_equal(trace.h[0], net.forward(x, 5, 9).h[0])
    method = methods.get("reinforce", baseline="loo", samples=3)
    method.bind(net)
    loss_sum, errors, count = method.step(net, MiniBatch(9, x, y), 5)
    assert count == len(x) and np.isfinite(loss_sum) and 0 <= errors <= count
    assert all(array.dtype == np.float32 for array in net.parameters())


@pytest.mark.slow
def test_estimators_command_prints_writes_and_orders_variances(tmp_path, capsys):
    out = tmp_path / "scores.h5"
    assert cli.main(["estimators", "--samples", "1000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8-6b-6b-3s" in printed and "disarm" in printed and "mean cos" in printed
    (run,) = results.open(out).runs
    labels = run.config["estimators"]["methods"]
    assert run.attrs["method"] == "estimators" and run.status == "completed"
    summary = report.summarise([out])  # scores, not a training run: a report leaves them out
    assert summary.groups == [] and summary.left_out == {"estimator scores": 1}
    assert list(run.metrics["method_index"]) == list(range(len(labels)))
    variance = run.diagnostics["variance"]
    assert variance.shape == (len(labels), 4)  # layers 0, 1, 2 and all
    assert run.columns["diagnostics"]["variance"] == results.Column("squared gradient norm", estimators.COLUMNS["variance"][1], ["layer_0", "layer_1", "layer_2", "all"])
    assert run.columns["metrics"]["method_index"].units == "index"
    assert {"bp", "reinforce-none", "reinforce-ema", "reinforce-loo-M2", "arm", "disarm", "st-sigmoid", "st-identity", "tp", "dtp"} == set(labels)
    mean_cos = run.diagnostics["mean_cos"]
    for label in ("tp", "dtp"):  # scored for direction only
        assert np.isnan(variance[labels.index(label)]).all() and np.isfinite(mean_cos[labels.index(label)]).all()
    assert mean_cos[labels.index("tp"), 1] == mean_cos[labels.index("dtp"), 1]  # the same first target (top hidden layer) ...
    assert mean_cos[labels.index("tp"), 0] != mean_cos[labels.index("dtp"), 0]  # ... and a difference correction below it
    # Trace of the covariance over the two Bernoulli layers. Measured margins (seeds 0-4, 1000
    # draws): none/ema >= 5, ema/loo >= 1.05, loo/disarm >= 1.7, arm/disarm >= 1.15.
    stochastic = {label: variance[i, :2].sum() for i, label in enumerate(labels)}
    assert stochastic["reinforce-none"] > max(stochastic["reinforce-ema"], stochastic["reinforce-loo-M2"])
    assert min(stochastic["reinforce-ema"], stochastic["reinforce-loo-M2"]) > stochastic["arm"] > stochastic["disarm"]


@pytest.mark.parametrize(
    "extra, message",
    [(["--samples", "1"], "integer in [2, 2**63)"), (["missing.toml"], "does not exist"), (["big.toml"], "max_bits = 20")],
)
def test_estimators_command_rejects_bad_input(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.toml").write_text('dataset = "teacher"\nnetwork = "8-21b-3s"\nbatch_size = 4\n[data]\nn_train = 20\nn_valid = 10\nn_test = 10\n[method]\nname = "dtp"\n')
    assert cli.main(["estimators", *extra, "--out", "x.h5"]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_a_whole_float_for_an_integer_option_is_that_integer():
    """`samples = 2.0` in a TOML file means 2 samples (it sizes arrays); 2.5 is refused."""
    method = methods.get("reinforce", samples=2.0)
    assert type(method.options["samples"]) is int and method.options["samples"] == 2
    net = Network.from_spec("3-2b-2s", seed=0, dtype=np.float64)
    method.bind(net)
    assert len(method.gradient(net, np.zeros((2, 3)), [0, 1], seed=0)) == 2
    with pytest.raises(ConfigError, match="'samples' must be an integer"):
        methods.get("reinforce", samples=2.5)


@pytest.mark.parametrize("spec, options, message", [
    ("3-3n-2s", {"surrogate": "tanh", "slope": 3.0}, "slope annealing acts on stochastic layers; network 3-3n-2s has none"),
    ("3-3n-2s", {"surrogate": "tanh", "slope_rate": 1.0}, "slope annealing acts on stochastic layers"),
    ("3-3b-2s", {"slope": 8.0}, "need 0 < slope <= slope_max"),
    ("3-3b-2s", {"slope_rate": -1.0}, "slope_rate >= 0"),
])
def test_slope_options_that_would_do_nothing_or_be_capped_are_refused(spec, options, message):
    """Sign and step surrogates have no slope, and k never exceeds slope_max: such options were silently ignored."""
    with pytest.raises(ConfigError, match=message):
        methods.get("st", **options).bind(Network.from_spec(spec, seed=0))


def test_the_reported_statistics_by_hand():
    """`statistics` on a 4-draw, 3-coordinate example, each number worked out by hand: what the
    estimator table reports (the unbiasedness tests use only p, so they would not notice a
    wrong |bias|, variance, MSE or a swapped cosine column)."""
    g = np.array([1.0, 0.0, 2.0])
    estimates = np.array([[1.0, 1.0, 2.0], [3.0, -1.0, 2.0], [1.0, 1.0, 4.0], [3.0, 3.0, 4.0]])
    # estimates - g has rows (0, 1, 0), (2, -1, 0), (0, 1, 2), (2, 3, 2)
    bias = np.array([1.0, 1.0, 1.0])  # its column means
    var = np.array([4.0 / 3.0, 8.0 / 3.0, 4.0 / 3.0])  # and its columns' sample variances (ddof 1)
    stats = estimators.statistics(estimates, g, [slice(0, 2), slice(0, 3)], direction_only=False)
    whole = {name: values[1] for name, values in stats.items()}
    assert whole["bias_norm"] == pytest.approx(np.sqrt(3.0))
    assert whole["bias_se"] == pytest.approx(np.sqrt(var.sum() / 4))
    assert whole["variance"] == pytest.approx(16.0 / 3.0)  # trace, not mean, of the covariance
    assert whole["mse"] == pytest.approx((1 + 5 + 5 + 17) / 4)
    z = bias / np.sqrt(var / 4)
    assert whole["z_rms"] == pytest.approx(np.sqrt((z**2).mean()))
    assert whole["z_max"] == pytest.approx(z.max())
    assert whole["p_bonferroni"] == pytest.approx(min(1.0, 3 * math.erfc(z.max() / math.sqrt(2))))
    mean = estimates.mean(axis=0)  # (2, 1, 3)
    assert whole["cos_mean"] == pytest.approx(mean @ g / (np.linalg.norm(mean) * np.linalg.norm(g)))
    per_draw = [row @ g / (np.linalg.norm(row) * np.linalg.norm(g)) for row in estimates]
    assert whole["mean_cos"] == pytest.approx(np.mean(per_draw))
    assert stats["bias_norm"][0] == pytest.approx(np.sqrt(2.0))  # the first slice: coordinates 0 and 1 only
    assert stats["variance"][0] == pytest.approx(4.0)
    assert stats["p_bonferroni"][0] == pytest.approx(min(1.0, 2 * math.erfc(max(z[:2]) / math.sqrt(2))))


def test_baselines_by_hand():
    """Leave-one-out: row m B + b gets the mean loss of example b's other M - 1 samples (M = 3,
    B = 2). EMA (decay 0.5): 0 on the first batch, then the bias-corrected average of the
    earlier batch means, i.e. exactly the first batch's mean on the second batch."""
    loss = np.array([1.0, 10.0, 2.0, 20.0, 6.0, 60.0])  # samples 0, 1, 2 of examples 0 and 1
    loo = methods.get("reinforce", baseline="loo", samples=3)
    np.testing.assert_allclose(loo.baseline(loss, 3, 2), [4.0, 40.0, 3.5, 35.0, 1.5, 15.0])
    ema = methods.get("reinforce", baseline="ema", ema_decay=0.5)
    assert ema.baseline(np.array([2.0, 4.0]), 1, 2) == 0.0
    assert ema.baseline(np.array([10.0, 10.0]), 1, 2) == pytest.approx(3.0)  # (0.5 * 3) / (1 - 0.5)
    assert ema.baseline(np.array([0.0, 0.0]), 1, 2) == pytest.approx((0.25 * 3 + 0.5 * 10) / (1 - 0.25))


def test_arm_pairs_share_the_random_numbers_above_the_layer():
    """Common random numbers above layer i: with layer 0 certain to fire (p = 1, so b = b~ for
    every unit), f(b) - f(b~) is exactly 0 and so is ARM's estimate for layer 0; drawn from two
    streams, the samples of layer 1 would differ and leave noise in it."""
    net = Network.from_spec("4-3b-3b-2s", seed=0, dtype=np.float64)
    net.layers[0].b[:] = 50.0  # sigmoid(50) rounds to 1
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 2, 8)
    arm = methods.get("arm")
    trace = net.forward(x, 5, 7)
    assert np.all(trace.p[0] == 1.0)
    assert not arm.logit_gradient(net, trace, y, 0, 5, 7).any()
