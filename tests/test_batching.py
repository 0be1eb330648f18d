"""The speed plumbing (stochtp.batching): mini-batches, chunks prepared together, rows stacked
without copies, and a network that keeps no state between calls."""
import numpy as np
import pytest

from stochtp import Network, kernels, methods
from stochtp.batching import CHUNK, Batches, Chunk, MiniBatch, Recycled, chunks, stack_rows
from stochtp.data.dataset import Split


def test_batches_convert_a_chunk_at_a_time_and_yield_what_one_batch_at_a_time_gives():
    """Mini-batch k of an epoch: stream (epoch, k), its sorted rows of the epoch's permutation, as
    features; the inputs of a chunk are consecutive row blocks of one array (stacked without a copy)."""
    rng = np.random.default_rng(3)
    split = Split((rng.random((CHUNK * 4 + 30, 6)) * 255).astype(np.uint8), rng.integers(0, 3, CHUNK * 4 + 30), 1 / 255)
    batches = Batches(split, 2, 7, 4, np.float32)
    yielded = list(batches)
    assert len(yielded) == len(batches) == (CHUNK * 4 + 30) // 4
    for k, (stream, x, y) in enumerate(yielded):
        index = np.sort(batches.order[4 * k:4 * (k + 1)])
        assert stream == kernels.stream_id(2, k)
        np.testing.assert_array_equal(x, split.features(index))
        np.testing.assert_array_equal(y, split.y[index])
    first_chunk = [x for _, x, _ in yielded[:CHUNK]]
    assert np.shares_memory(stack_rows(first_chunk), first_chunk[0])


def test_recycled_hands_an_array_out_again_only_once_nothing_refers_to_it():
    recycled = Recycled()
    view = recycled.array((3, 4), np.float32)[1:]
    second = recycled.array((3, 4), np.float32)
    assert not np.shares_memory(view, second)  # a view of the first lives on
    address = view.base.__array_interface__["data"][0]
    del view
    assert recycled.array((3, 4), np.float32).__array_interface__["data"][0] == address  # the first, free again
    assert recycled.array((3, 4), np.float64).dtype == np.float64 and recycled.array((2, 4), np.float32).shape == (2, 4)


def test_a_pass_over_the_chunks_reuses_two_input_arrays_and_a_kept_mini_batch_keeps_its_rows():
    """A pass that lets go of each chunk converts and noises them into the same two arrays each;
    mini-batches that are kept (here all of them) are never written over."""
    rng = np.random.default_rng(4)
    split = Split((rng.random((CHUNK * 8, 6)) * 255).astype(np.uint8), rng.integers(0, 3, CHUNK * 8), 1 / 255)
    net = Network.from_spec("6-5b-3s", seed=2, input_noise=0.3)
    batches = Batches(split, 1, 7, 2, np.float32)
    inputs, noisy = set(), set()
    for chunk in chunks(batches):
        inputs.add(chunk.x.__array_interface__["data"][0])
        noisy.add(chunk.batches[0].inputs(net, 5).__array_interface__["data"][0])
    assert len(inputs) <= 2 and len(noisy) <= 2
    kept = list(batches)
    for k, (stream, x, _) in enumerate(kept):
        np.testing.assert_array_equal(x, split.features(np.sort(batches.order[2 * k:2 * (k + 1)])))


def test_features_fill_out_where_given_and_refuse_one_of_another_shape():
    split = Split(np.arange(24, dtype=np.uint8).reshape(4, 6), np.zeros(4, int), 1 / 255)
    index = np.array([2, 0])
    out = np.empty((2, 6), np.float32)
    assert split.features(index, out=out) is out
    np.testing.assert_array_equal(out, split.features(index))
    with pytest.raises(ValueError, match="shape"):
        split.features(index, out=np.empty((3, 6), np.float32))


def test_stack_rows_is_a_view_only_for_consecutive_row_blocks_of_one_array():
    base = np.arange(60, dtype=np.float32).reshape(12, 5)
    blocks = [base[0:4], base[4:8], base[8:10]]
    stacked = stack_rows(blocks)
    np.testing.assert_array_equal(stacked, base[:10])
    assert np.shares_memory(stacked, base) and not stacked.flags.writeable
    for others in ([base[4:8], base[0:4]], [base[0:4], base[5:9]], [base[0:4], base[4:8].copy()], [base[:, :2], base[:, 2:4]]):
        stacked = stack_rows(others)  # out of order, a gap, another array, column blocks: copied
        np.testing.assert_array_equal(stacked, np.concatenate(others))
        assert not np.shares_memory(stacked, base)


def test_a_chunk_s_noisy_inputs_are_what_forward_draws_for_each_mini_batch_alone():
    """The whole chunk's noise in one call, each mini-batch's rows from its own stream: bit for bit
    what `net.forward(x, seed, stream)` feeds, and the same forward pass."""
    net = Network.from_spec("7-5b-3s", seed=2, input_noise=0.3)
    base = np.random.default_rng(1).random((12, 7)).astype(np.float32)
    triples = [(20 + k, base[4 * k:4 * (k + 1)], np.arange(4) % 3) for k in range(3)]
    chunk = Chunk(triples)
    assert np.shares_memory(chunk.x, base)
    for batch, (stream, x, _) in zip(chunk, triples):
        alone = net.forward(x, 5, stream)
        noise = kernels.normal(x.shape, 5, kernels.stream_id(stream, "input-noise"))
        np.testing.assert_array_equal(alone.x, noise * np.float32(0.3) + x)  # x + 0.3 z, rounded as written
        np.testing.assert_array_equal(batch.inputs(net, 5), alone.x)
        np.testing.assert_array_equal(batch.forward(net, 5).h[0], alone.h[0])
    assert np.shares_memory(chunk.batches[1].inputs(net, 5), chunk.noisy_inputs)  # rows of the one prepared array


def test_a_chunk_prepared_for_one_noise_level_or_seed_draws_anew_for_another():
    net = Network.from_spec("7-5b-3s", seed=2, input_noise=0.3)
    other = Network(net.layers, input_noise=0.1)
    x = np.random.default_rng(1).random((4, 7)).astype(np.float32)
    batch = Chunk([(3, x, np.zeros(4, int))]).batches[0]
    batch.inputs(net, 5)
    np.testing.assert_array_equal(batch.inputs(other, 5), other.forward(x, 5, 3).x)
    np.testing.assert_array_equal(batch.inputs(net, 6), net.forward(x, 6, 3).x)
    np.testing.assert_array_equal(MiniBatch(3, x, np.zeros(4, int)).inputs(net, 5), net.forward(x, 5, 3).x)


def test_chunks_group_mini_batches_and_split_where_the_size_changes():
    x = np.zeros((30, 2))
    sizes = [4, 4, 4, 2, 4]
    triples, start = [], 0
    for k, size in enumerate(sizes):
        triples.append((k, x[start:start + size], np.zeros(size, int)))
        start += size
    got = [[batch.stream for batch in chunk] for chunk in chunks(triples, size=4)]
    assert got == [[0, 1, 2], [3], [4]]


def test_forward_depends_only_on_parameters_and_arguments():
    """No state carries from one call to the next: a pass gives the same numbers after any other."""
    net = Network.from_spec("6-5b-4b-3s", seed=1, input_noise=0.3)
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    first = net.forward(x, 3, 9)
    net.forward(x + 1, 3, 9)
    net.forward(x, 4, 10, train=False)
    again = net.forward(x, 3, 9)
    for i in range(3):
        np.testing.assert_array_equal(first.h[i], again.h[i])
    np.testing.assert_array_equal(first.x, again.x)


@pytest.mark.parametrize("name, options", [("st", {"slope": 1.0, "slope_rate": 1.0}), ("bp", {"train_transmission": False})])
def test_methods_train_views_and_leave_the_network_as_it_was(name, options):
    """Straight-through's slope annealing and back-propagation without sign transmissions train
    views sharing the parameters (`Network.replace`): the network's own attributes never change."""
    spec = "6-5b-4b-3s" if name == "st" else "6-5t:n-4t-3s"
    net = Network.from_spec(spec, seed=1)
    method = methods.get(name, **options)
    method.bind(net)
    rng = np.random.default_rng(0)
    batches = [(k, rng.random((4, 6)).astype(np.float32), rng.integers(0, 3, 4)) for k in range(3)]
    before = net.parameters()[0].copy()
    for epoch in (1, 2, 3):
        method.train_epoch(net, batches, 0, epoch)
    assert net.slope == 1.0 and [layer.transmission for layer in net.layers] == [("sign" if name == "bp" else "identity"), "identity", "identity"]
    assert not np.array_equal(before, net.parameters()[0])  # the shared parameters did train


def test_straight_through_fires_at_its_configured_slope_from_the_start():
    """The oracle scores a method before any epoch: st(slope=3) is then ST at slope 3."""
    net = Network.from_spec("4-5b-3s", seed=0, dtype=np.float64)
    x, y = np.random.default_rng(1).random((6, 4)), np.arange(6) % 3
    sloped = methods.get("st", slope=3.0, slope_rate=0.0)
    sloped.bind(net)
    expected = methods.get("st").gradient(net.replace(slope=3.0), x, y, seed=2)
    for (dW, db), (eW, eb) in zip(sloped.gradient(net, x, y, seed=2), expected):
        np.testing.assert_array_equal(dW, eW)
        np.testing.assert_array_equal(db, eb)
