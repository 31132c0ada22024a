"""Batching: sub-sampling rates, dynamic-window statistics, sentence bounds, seeding,
and the trainer's device-side windows against the host reference."""

import dataclasses

import jax.numpy as jnp
import numpy as np

from w2v_jax.batching import epoch_stream, pairs_of, subsample
from w2v_jax.config import Config
from w2v_jax.train import _window_mask, epoch_blocks


def test_subsample_keeps_each_word_at_its_probability():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, size=300_000).astype(np.int32)
    keep_prob = np.array([0.1, 0.5, 1.0])
    kept = subsample(ids, keep_prob, np.random.default_rng(1))
    assert np.all(np.diff(kept) > 0)  # positions, in order
    for w, p in enumerate(keep_prob):
        rate = np.isin(kept, np.flatnonzero(ids == w)).sum() / (ids == w).sum()
        assert abs(rate - p) < 0.01


def _stream(ids, sent, window, seed=0, keep=None):
    keep = np.ones(ids.max() + 1) if keep is None else keep
    return epoch_stream(ids, sent, keep, window, np.random.default_rng(seed))


def test_dynamic_window_distance_distribution():
    # Token i has id i, so a pair's distance is |centre - context|.
    n, window = 200_000, 5
    ids = np.arange(n, dtype=np.int32)
    stream = _stream(ids, np.zeros(n, np.int32), window)
    assert stream.reach.min() == 1 and stream.reach.max() == window
    centre, context = pairs_of(stream, window)
    dist = np.abs(centre.astype(np.int64) - context)
    assert dist.min() == 1 and dist.max() == window
    # P(distance = k is used) = P(b >= k) = (window - k + 1) / window, on each side.
    freq = np.bincount(dist, minlength=window + 1)[1:] / (2 * n)
    expected = (window - np.arange(1, window + 1) + 1) / window
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_windows_do_not_cross_sentences():
    ids = np.arange(30, dtype=np.int32)
    sent = np.repeat([0, 1, 2], 10).astype(np.int32)
    centre, context = pairs_of(_stream(ids, sent, 5), 5)
    assert np.all(sent[centre] == sent[context])
    assert len(centre) > 0


def test_subsampled_words_are_skipped_and_window_spans_them():
    ids = np.tile(np.array([0, 1], np.int32), 5000)  # word 0 is always dropped
    stream = _stream(ids, np.zeros(ids.size, np.int32), 1, keep=np.array([0.0, 1.0]))
    assert set(np.unique(stream.ids)) == {1}
    centre, context = pairs_of(stream, 1)
    assert len(centre) == 2 * (len(stream) - 1)  # neighbours were 2 tokens apart in the text
    assert np.all(np.diff(stream.progress) > 0) and stream.progress[-1] < 1


def test_same_seed_same_stream_other_seed_differs():
    ids = np.random.default_rng(0).integers(0, 50, 5000).astype(np.int32)
    sent = np.zeros(5000, np.int32)
    keep = np.full(50, 0.7)
    a, b, c = (_stream(ids, sent, 5, seed=s, keep=keep) for s in (3, 3, 4))
    for x, y in zip((a.ids, a.reach), (b.ids, b.reach)):
        np.testing.assert_array_equal(x, y)
    assert len(a) != len(c) or not np.array_equal(a.reach, c.reach)


def test_device_windows_equal_reference_pairs():
    # The trainer forms pairs from spans of the stream on device; they must be exactly
    # the pairs the reference expansion gives, across step and block boundaries.
    rng = np.random.default_rng(0)
    n, window = 3000, 4
    ids = rng.integers(0, 40, n).astype(np.int32)
    sent = np.repeat(np.arange(n // 50), 50).astype(np.int32)
    stream = _stream(ids, sent, window, keep=np.full(40, 0.8))
    cfg = Config(window=window, batch_size=64, shared_negatives=1, steps_per_call=8)
    got = []
    for _, _, block in epoch_blocks(stream, cfg, epoch=0):
        for tok, sen, reach in zip(block["tok"], block["sent"], block["reach"]):
            mask = np.asarray(_window_mask(jnp.asarray(sen), jnp.asarray(reach), window))
            offs = np.array([o for o in range(-window, window + 1) if o != 0])
            r, c = np.nonzero(mask)
            got += list(zip(tok[window + r], tok[window + r + offs[c]]))
    want = list(zip(*pairs_of(stream, window)))
    assert got == want


def test_chunked_epoch_is_one_stream_cut_into_the_same_blocks():
    # Chunks are sub-sampled separately but concatenate into one stream: the blocks cut
    # from them must hold exactly that stream's pairs, windows crossing chunk bounds.
    from w2v_jax.batching import epoch_chunks
    from w2v_jax.corpus import Corpus

    rng = np.random.default_rng(1)
    n, window = 5000, 3
    corpus = Corpus(rng.integers(0, 30, n).astype(np.int32), np.full(n // 100, 100), n)
    keep = np.full(30, 0.7)
    chunks = list(epoch_chunks(corpus.ids, corpus.sentence_ids, keep, window, seed=2, epoch=0,
                               chunk_tokens=700))
    assert len(chunks) == 8
    whole = _concat(chunks)
    assert np.all(np.diff(whole.progress) > 0) and 0 <= whole.progress[0] and whole.progress[-1] < 1
    pos = np.rint(whole.progress.astype(np.float64) * n).astype(int)  # corpus positions
    np.testing.assert_array_equal(whole.ids, corpus.ids[pos])
    np.testing.assert_array_equal(whole.sent, corpus.sentence_ids()[pos])
    cfg = Config(window=window, batch_size=16, steps_per_call=4)
    for devices in (None, 2):
        got = []
        for _, _, block in epoch_blocks(iter(chunks), cfg, epoch=0, devices=devices):
            for tok, sen, reach in zip(block["tok"].reshape(-1, block["tok"].shape[-1]),
                                       block["sent"].reshape(-1, block["sent"].shape[-1]),
                                       block["reach"].reshape(-1, 16)):
                mask = np.asarray(_window_mask(jnp.asarray(sen), jnp.asarray(reach), window))
                offs = np.array([o for o in range(-window, window + 1) if o != 0])
                r, c = np.nonzero(mask)
                got += list(zip(tok[window + r], tok[window + r + offs[c]]))
        assert got == list(zip(*pairs_of(whole, window)))
    # Resuming at block b yields exactly the blocks from b on.
    full = list(epoch_blocks(iter(chunks), cfg, epoch=0))
    tail = list(epoch_blocks(iter(chunks), cfg, epoch=0, first=5))
    assert [b for b, _, _ in tail] == list(range(5, len(full))) and full[-1][1] == 1.0
    for (_, p1, x), (_, p2, y) in zip(full[5:], tail):
        assert p1 == p2 and all(np.array_equal(x[k], y[k]) for k in x)


def _concat(chunks):
    from w2v_jax.batching import EpochStream

    return EpochStream(*(np.concatenate([getattr(c, f) for c in chunks])
                         for f in ("ids", "sent", "reach", "progress")))


def test_lanes_read_each_token_once_side_by_side_and_windows_stay_in_their_piece():
    # L lanes: the epoch is read from L evenly spaced places in turn, piece by piece;
    # every token exactly once, progress in reading order, no window across pieces.
    from w2v_jax.batching import epoch_chunks, lane_pieces
    from w2v_jax.corpus import Corpus

    pieces = lane_pieces(10, 110, 3, 15)
    assert [a for a, _ in pieces[:3]] == [10, 43, 76]  # each lane's first piece first
    assert sorted(t for a, b in pieces for t in range(a, b)) == list(range(10, 110))
    rng = np.random.default_rng(3)
    n, window = 2000, 3
    corpus = Corpus(rng.integers(0, 30, n).astype(np.int32), np.full(n // 250, 250), n)
    pieces = lane_pieces(0, n, 4, 64)
    order = np.concatenate([np.arange(a, b) for a, b in pieces])

    def stream(keep, chunk_tokens=300):
        return _concat(list(epoch_chunks(corpus.ids, corpus.sentence_ids, np.full(30, keep),
                                         window, seed=5, epoch=1, chunk_tokens=chunk_tokens,
                                         lanes=4, piece_tokens=64)))

    whole = stream(1.0)
    np.testing.assert_array_equal(whole.ids, corpus.ids[order])
    np.testing.assert_allclose(whole.progress, np.arange(n) / n, atol=1e-6)
    assert np.all(np.diff(whole.sent) >= 0)
    per_piece = [pairs_of(dataclasses.replace(whole, **{
        f: getattr(whole, f)[i:i + b - a] for f in ("ids", "sent", "reach", "progress")}), window)
        for i, (a, b) in zip(np.cumsum([0] + [b - a for a, b in pieces]), pieces)]
    want = (np.concatenate([c for c, _ in per_piece]), np.concatenate([x for _, x in per_piece]))
    got = pairs_of(whole, window)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # Chunked otherwise, the same reading order; sub-sampled, reproducible from the seed.
    other = stream(1.0, 1000)
    for f in ("ids", "progress"):
        np.testing.assert_array_equal(getattr(whole, f), getattr(other, f))
    np.testing.assert_array_equal(np.diff(whole.sent) > 0, np.diff(other.sent) > 0)
    a, b = stream(0.6), stream(0.6)
    assert 0.5 * n < len(a) < 0.7 * n and np.all(np.diff(a.progress) > 0)
    for f in ("ids", "sent", "reach", "progress"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
