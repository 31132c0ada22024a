"""Negative samplers reproduce the noise distribution (chi-square), deterministically."""

import jax
import numpy as np
import pytest
from scipy import stats

from w2v_jax import sampling
from w2v_jax.vocab import Vocab

KINDS = ["alias", "cdf", "categorical"]


def zipf_noise(v=500, exponent=0.75):
    counts = (1e6 / np.arange(1, v + 1)).astype(np.int64) + 5
    return Vocab(tuple(map(str, range(v))), counts).noise_distribution(exponent)


@pytest.mark.parametrize("kind", KINDS)
def test_draws_follow_noise_distribution(kind):
    p = zipf_noise()
    table = sampling.build(kind, p)
    n = 400_000
    x = np.asarray(sampling.draw(kind, table, jax.random.key(0), (n // 4, 4)))
    assert x.dtype == np.int32 and x.shape == (n // 4, 4)
    assert x.min() >= 0 and x.max() < p.size
    observed = np.bincount(x.ravel(), minlength=p.size)
    chi2, pval = stats.chisquare(observed, p * n)
    assert pval > 1e-4, f"{kind}: chi2={chi2:.0f} for {p.size - 1} dof"


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_distribution_is_detected(kind):
    # The same test must reject draws from a different exponent: it has power.
    table = sampling.build(kind, zipf_noise(exponent=1.0))
    n = 400_000
    x = np.asarray(sampling.draw(kind, table, jax.random.key(1), (n,)))
    _, pval = stats.chisquare(np.bincount(x, minlength=500), zipf_noise(exponent=0.75) * n)
    assert pval < 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_same_key_same_draws_and_jit(kind):
    table = sampling.build(kind, zipf_noise(50))
    a = sampling.draw(kind, table, jax.random.key(3), (64, 5))
    b = jax.jit(lambda t, k: sampling.draw(kind, t, k, (64, 5)))(table, jax.random.key(3))
    np.testing.assert_array_equal(a, b)
    c = sampling.draw(kind, table, jax.random.key(4), (64, 5))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", KINDS)
def test_draws_ignore_the_global_threefry_setting(kind):
    # The draws use threefry's non-partitionable form whatever the user's JAX config
    # says (faster to compile and run on CPU), so a seed gives the same negatives either
    # way, and the global setting is left as it was.
    table = sampling.build(kind, zipf_noise(50))
    before = jax.config.jax_threefry_partitionable
    draws = []
    for flag in (True, False):
        with jax.threefry_partitionable(flag):
            draws.append(np.asarray(sampling.draw(kind, table, jax.random.key(5), (64, 5))))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert jax.config.jax_threefry_partitionable == before
    with jax.threefry_partitionable(True):  # and they are not the partitionable stream
        other = np.asarray(sampling._draw(kind, table, jax.random.key(5), (64, 5)))
    assert not np.array_equal(draws[0], other)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_probability_words_are_never_drawn(kind):
    p = np.array([0.5, 0.0, 0.25, 0.0, 0.25, 0.0, 0.0])  # not a square size either
    x = np.asarray(sampling.draw(kind, sampling.build(kind, p), jax.random.key(0), (50_000,)))
    assert set(np.unique(x)) <= {0, 2, 4}
    np.testing.assert_allclose(np.bincount(x, minlength=7)[[0, 2, 4]] / x.size, [0.5, 0.25, 0.25],
                               atol=0.01)


def test_single_word_vocabulary():
    for kind in KINDS:
        x = sampling.draw(kind, sampling.build(kind, np.array([1.0])), jax.random.key(0), (10,))
        np.testing.assert_array_equal(x, 0)


@pytest.mark.parametrize("kind", ["alias", "cdf"])
def test_no_word_gets_the_leftover_bit_patterns(kind):
    """2³² is not a multiple of V: the ~V patterns left over from an even split must not
    pile onto one word. The alias sampler once sent them all to the last column, the
    rarest word's: at this V it drew that word ~256× as often as any other."""
    v = 2**20 + 1
    table = sampling.build(kind, np.full(v, 1.0 / v))
    draws = np.asarray(sampling.draw(kind, table, jax.random.key(0), (2**22,)))
    counts = np.bincount(draws, minlength=v)
    assert counts.max() < 40, (counts.argmax(), counts.max())  # each ~Poisson(4)
