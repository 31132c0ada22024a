"""Training end to end on tiny corpora with planted structure."""

import dataclasses

import jax
import numpy as np
import pytest

from w2v_jax import Config, load_corpus, train
from w2v_jax.train import learning_rate

SMALL = dict(vector_size=16, window=3, min_count=1, negative=5, sample=0,
             batch_size=64, shared_negatives=4, steps_per_call=16, seed=0)


def topic_separation(vocab, w_in):
    u = w_in / np.linalg.norm(w_in, axis=1, keepdims=True)
    topic = np.array([w[0] for w in vocab.words])
    sim = u @ u.T
    same = sim[topic[:, None] == topic[None, :]].mean()
    diff = sim[topic[:, None] != topic[None, :]].mean()
    return same, diff


@pytest.mark.parametrize("sg", [1, 0])
def test_planted_topics_separate_and_loss_decreases(topic_corpus, sg):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    losses = []
    cfg = Config(**SMALL, sg=sg, epochs=4)
    state = train(cfg, vocab, corpus, on_progress=lambda p: losses.append(p.loss))
    same, diff = topic_separation(vocab, np.asarray(state.w_in))
    assert same > diff + 0.3, (same, diff)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert int(state.step) > 0


@pytest.mark.parametrize("sampler", ["alias", "cdf", "categorical"])
def test_every_sampler_trains(topic_corpus, sampler):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    state = train(Config(**SMALL, sampler=sampler, epochs=3), vocab, corpus)
    same, diff = topic_separation(vocab, np.asarray(state.w_in))
    assert same > diff + 0.3


def test_same_seed_gives_identical_vectors(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    a = np.asarray(train(Config(**SMALL, epochs=1), vocab, corpus).w_in)
    b = np.asarray(train(Config(**SMALL, epochs=1), vocab, corpus).w_in)
    c = np.asarray(train(Config(**{**SMALL, "seed": 1}, epochs=1), vocab, corpus).w_in)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cbow_exact_update_differs_from_word2vec_update(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    cfg = Config(**SMALL, sg=0, epochs=1)
    a = np.asarray(train(cfg, vocab, corpus).w_in)
    b = np.asarray(train(dataclasses.replace(cfg, cbow_update="exact"), vocab, corpus).w_in)
    assert not np.allclose(a, b)


def test_learning_rate_decays_linearly_to_min_alpha():
    cfg = Config(alpha=0.025, min_alpha=0.0001, epochs=2)
    lr = learning_rate(cfg, 0, np.array([0.0, 0.5]))
    np.testing.assert_allclose(lr, [0.025, 0.025 - 0.0249 / 4], rtol=1e-6)
    np.testing.assert_allclose(learning_rate(cfg, 1, np.array([1.0])), [0.0001], rtol=1e-6)
    assert Config(sg=0).learning_rate == 0.05 and Config(sg=1).learning_rate == 0.025


def test_progress_reports_words_and_speed(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    seen = []
    train(Config(**SMALL, epochs=3), vocab, corpus, on_progress=seen.append)
    assert seen[-1].words == seen[-1].total_words == 3 * corpus.raw_words
    assert all(p.words_per_sec > 0 and np.isfinite(p.loss) for p in seen)
    assert [p.words for p in seen] == sorted(p.words for p in seen)
    assert seen[0].lr > seen[-1].lr


def test_divergence_is_reported(topic_corpus):
    from w2v_jax.errors import W2VError
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    with pytest.raises(W2VError, match="lower --alpha"):
        train(Config(**SMALL, alpha=1e30, min_alpha=1e30), vocab, corpus)
