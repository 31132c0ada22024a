"""Vocabulary: ordering, min_count, max_vocab_size, noise and keep-probability formulas."""

import numpy as np
import pytest

from w2v_jax.errors import W2VError
from w2v_jax.vocab import Vocab, build_vocab


def test_ids_by_descending_count_ties_by_first_appearance():
    vocab, remap = build_vocab(["c", "a", "b", "d"], np.array([3, 5, 3, 1]), min_count=2)
    assert vocab.words == ("a", "c", "b")
    assert vocab.counts.tolist() == [5, 3, 3]
    assert remap.tolist() == [1, 0, 2, -1]


def test_max_vocab_size_keeps_most_frequent():
    vocab, remap = build_vocab(list("abcde"), np.array([1, 9, 5, 7, 3]), 1, max_vocab_size=2)
    assert vocab.words == ("b", "d")
    assert (remap >= 0).sum() == 2


def test_nothing_above_min_count_is_a_clear_error():
    with pytest.raises(W2VError, match="min_count=5"):
        build_vocab(["a", "b"], np.array([2, 4]), min_count=5)
    with pytest.raises(W2VError, match="no words"):
        build_vocab([], np.array([], np.int64))


def test_noise_distribution_formula():
    v = Vocab(("a", "b", "c"), np.array([100, 10, 1]))
    p = v.noise_distribution(0.75)
    expected = np.array([100, 10, 1]) ** 0.75
    np.testing.assert_allclose(p, expected / expected.sum())
    np.testing.assert_allclose(v.noise_distribution(0.0), [1 / 3] * 3)
    np.testing.assert_allclose(v.noise_distribution(1.0), np.array([100, 10, 1]) / 111)
    # A large exponent overflowed count**x into NaNs; the largest count takes it all.
    big = Vocab(("a", "b", "c"), np.array([2928, 2000, 1])).noise_distribution(100.0)
    assert np.isfinite(big).all() and big[0] > 0.99 and abs(big.sum() - 1) < 1e-12
    zero = Vocab(("a", "b"), np.array([4, 0]))
    np.testing.assert_allclose(zero.noise_distribution(0.75), [1.0, 0.0])
    np.testing.assert_allclose(zero.noise_distribution(0.0), [0.5, 0.5])
    np.testing.assert_allclose(Vocab(("a", "b", "c"), np.array([4, 0, 1])).noise_distribution(
        -0.5), [1 / 3, 0.0, 2 / 3])


def test_keep_probabilities_formula():
    counts = np.array([10_000, 1000, 100, 10])
    v = Vocab(tuple("abcd"), counts)
    sample = 1e-3
    t = sample * counts.sum()
    expected = np.minimum((np.sqrt(counts / t) + 1) * t / counts, 1.0)
    np.testing.assert_allclose(v.keep_probabilities(sample), expected)
    assert v.keep_probabilities(sample)[0] < 0.2  # frequent word is thinned
    assert v.keep_probabilities(sample)[-1] == 1.0  # rare word always kept
    np.testing.assert_array_equal(v.keep_probabilities(0), 1.0)


def test_save_load_roundtrip(tmp_path):
    v = Vocab(("the", "über", "x"), np.array([7, 3, 3]))
    v.save(tmp_path / "vocab.txt")
    w = Vocab.load(tmp_path / "vocab.txt")
    assert w.words == v.words and w.counts.tolist() == [7, 3, 3]
    (tmp_path / "bad.txt").write_text("word-without-count\n")
    with pytest.raises(W2VError, match="bad.txt:1"):
        Vocab.load(tmp_path / "bad.txt")


@pytest.mark.parametrize("sample", [1e-3, 0.5, 3.0, 40.0])
def test_keep_probabilities_match_gensim_for_fractions_and_counts(sample):
    """gensim reads a sample of 1 or more as a word count; so does w2v-jax."""
    from gensim.models import Word2Vec as GensimW2V

    counts = np.array([5000, 900, 120, 40, 7, 3])
    words = [f"w{i}" for i in range(len(counts))]
    g = GensimW2V(vector_size=4, min_count=1, sample=sample)
    g.build_vocab_from_freq(dict(zip(words, counts.tolist())))
    theirs = np.array([g.wv.get_vecattr(w, "sample_int") for w in words]) / 2**32
    ours = Vocab(tuple(words), counts).keep_probabilities(sample)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
