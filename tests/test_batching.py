"""Batching: sub-sampling rates, dynamic-window statistics, sentence bounds, seeding."""

import numpy as np

from w2v_jax.batching import epoch_examples, subsample


def test_subsample_keeps_each_word_at_its_probability():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, size=300_000).astype(np.int32)
    keep_prob = np.array([0.1, 0.5, 1.0])
    kept = subsample(ids, keep_prob, np.random.default_rng(1))
    assert np.all(np.diff(kept) > 0)  # positions, in order
    for w, p in enumerate(keep_prob):
        rate = np.isin(kept, np.flatnonzero(ids == w)).sum() / (ids == w).sum()
        assert abs(rate - p) < 0.01


def _pairs(ids, sent, window, seed=0, keep=None):
    keep = np.ones(ids.max() + 1) if keep is None else keep
    exs = list(epoch_examples(ids, sent, keep, window, True, np.random.default_rng(seed), chunk=997))
    return (np.concatenate([e.inputs for e in exs]), np.concatenate([e.targets for e in exs]),
            np.concatenate([e.progress for e in exs]))


def test_dynamic_window_distance_distribution():
    # Token i has id i, so a pair's distance is |centre - context|.
    n, window = 200_000, 5
    ids = np.arange(n, dtype=np.int32)
    centre, context, _ = _pairs(ids, np.zeros(n, np.int32), window)
    dist = np.abs(centre.astype(np.int64) - context)
    assert dist.min() == 1 and dist.max() == window
    # P(distance = k is used) = P(b >= k) = (window - k + 1) / window, on each side.
    freq = np.bincount(dist, minlength=window + 1)[1:] / (2 * n)
    expected = (window - np.arange(1, window + 1) + 1) / window
    np.testing.assert_allclose(freq, expected, atol=0.01)
    # Examples come in corpus order, so the learning rate can follow the position.
    assert np.all(np.diff(centre) >= 0)


def test_windows_do_not_cross_sentences():
    ids = np.arange(30, dtype=np.int32)
    sent = np.repeat([0, 1, 2], 10).astype(np.int32)
    centre, context, _ = _pairs(ids, sent, window=5)
    assert np.all(sent[centre] == sent[context])
    assert len(centre) > 0


def test_subsampled_words_are_skipped_and_window_spans_them():
    ids = np.tile(np.array([0, 1], np.int32), 5000)  # word 0 is always dropped
    centre, context, _ = _pairs(ids, np.zeros(ids.size, np.int32), 1, keep=np.array([0.0, 1.0]))
    assert set(np.unique(centre)) == {1} and set(np.unique(context)) == {1}
    assert len(centre) > 0  # adjacent kept words were 2 tokens apart in the text


def test_cbow_windows_mask_and_centres():
    ids = np.arange(50, dtype=np.int32)
    exs = list(epoch_examples(ids, np.zeros(50, np.int32), np.ones(50), 3, False,
                              np.random.default_rng(0)))
    ctx = np.concatenate([e.inputs for e in exs])
    mask = np.concatenate([e.mask for e in exs])
    centre = np.concatenate([e.targets for e in exs])
    assert ctx.shape == (50, 6) and mask.shape == (50, 6)
    d = np.abs(ctx - centre[:, None])
    assert np.all((d[mask] >= 1) & (d[mask] <= 3))
    assert np.all(ctx[~mask] == 0)
    assert mask[0, :3].sum() == 0  # nothing left of the first word


def test_same_seed_same_examples_other_seed_differs():
    ids = np.random.default_rng(0).integers(0, 50, 5000).astype(np.int32)
    sent = np.zeros(5000, np.int32)
    keep = np.full(50, 0.7)
    a = _pairs(ids, sent, 5, seed=3, keep=keep)
    b = _pairs(ids, sent, 5, seed=3, keep=keep)
    c = _pairs(ids, sent, 5, seed=4, keep=keep)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(a[0]) != len(c[0]) or not np.array_equal(a[1], c[1])
