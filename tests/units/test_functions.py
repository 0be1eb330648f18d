"""The unit functions of stochtp.units.functions."""
import numpy as np


def test_tanh_keeps_float32_within_1e6_of_the_float64_value_and_the_special_values():
    """The accuracy the DTP inverses and tanh layers rely on, whichever implementation units.tanh uses."""
    from stochtp import units

    x = np.concatenate([np.linspace(-20, 20, 400001), np.logspace(-30, 1, 3000), -np.logspace(-30, 1, 3000)])
    single = units.tanh(x.astype(np.float32))
    assert single.dtype == np.float32 and units.tanh(np.arange(3)).dtype == np.float64
    np.testing.assert_allclose(single, np.tanh(x), rtol=1e-6, atol=0)
    special = units.tanh(np.array([np.nan, np.inf, -np.inf, 0.0, 50.0, -50.0], np.float32))
    np.testing.assert_array_equal(special, np.array([np.nan, 1, -1, 0, 1, -1], np.float32))
    assert units.tanh(np.zeros((3, 4), np.float32)).shape == (3, 4)
