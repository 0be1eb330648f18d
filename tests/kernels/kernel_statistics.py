"""The kernel tests' fixed seed and false-alarm rate, and the NumPy-only statistics they test with.

Statistical tests are deterministic (fixed seeds) and each is calibrated to a stated family-wise
false-alarm rate ALPHA: a correct generator fails a given test with probability at most ALPHA
over the choice of seed. Critical values are computed with NumPy and `math` only.
"""
import math

import numpy as np

ALPHA = 1e-3
SEED = 20240611


def upper_normal_quantile(alpha):
    """z with P(Z > z) = alpha for a standard normal Z (bisection on math.erfc)."""
    low, high = 0.0, 40.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if 0.5 * math.erfc(middle / math.sqrt(2.0)) > alpha:
            low = middle
        else:
            high = middle
    return high


def two_sided_z_critical(alpha, tests=1):
    """Critical |z| for `tests` two-sided z-tests with family-wise false-alarm rate alpha (Bonferroni)."""
    return upper_normal_quantile(alpha / (2 * tests))


def chi_square_critical(degrees_of_freedom, alpha):
    """Upper-alpha quantile of chi-square, Wilson-Hilferty approximation."""
    k = degrees_of_freedom
    z = upper_normal_quantile(alpha)
    return k * (1.0 - 2.0 / (9.0 * k) + z * math.sqrt(2.0 / (9.0 * k))) ** 3


def chi_square_equal_bins(bin_index, bins):
    """Pearson chi-square statistic of integer bin indices against equally likely bins."""
    observed = np.bincount(bin_index, minlength=bins)
    assert observed.size == bins
    expected = bin_index.size / bins
    return float(((observed - expected) ** 2).sum() / expected)


def assert_uniform_bins(bin_index, bins, alpha=ALPHA):
    statistic = chi_square_equal_bins(bin_index, bins)
    critical = chi_square_critical(bins - 1, alpha)
    assert statistic < critical, f"chi-square {statistic:.1f} >= {critical:.1f} ({bins} bins, alpha={alpha})"


def correlation_z(x, y):
    """sqrt(n) * Pearson correlation: approximately N(0, 1) for independent x, y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.corrcoef(x, y)[0, 1] * math.sqrt(x.size))


def standard_normal_cdf(x):
    return 0.5 * (1.0 + np.frompyfunc(math.erf, 1, 1)(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64))


def kolmogorov_critical(n, alpha):
    """Critical KS distance for n samples at level alpha (Kolmogorov's asymptotic distribution)."""
    return math.sqrt(-0.5 * math.log(alpha / 2.0)) / math.sqrt(n)
