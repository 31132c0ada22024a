"""Sub-sampling and the dynamic window: an epoch's stream of kept tokens, with numpy.

One epoch: every token is kept with its word's keep-probability; each kept centre
draws an effective window b uniformly from 1..window; its contexts are the kept
tokens at distance ≤ b in the same sentence. Skip-gram trains on the (centre,
context) pairs, CBOW on (context window, centre).

The host produces only the stream (one id, sentence id and window per kept token,
vectorised, no Python loop over words); the trainer cuts it into spans and forms
the pairs on device (``w2v_jax.train``). :func:`pairs_of` spells the pairs out on the
host, for tests and for reading.

All randomness comes from a ``numpy.random.Generator`` passed in; the trainer seeds it
from (seed, epoch), so a seed reproduces an epoch exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def subsample(ids: np.ndarray, keep_prob: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Positions of the tokens that survive sub-sampling.

    Args:
      ids: i32[N] token ids; keep_prob: f64[V] per-word keep-probability.
    Returns:
      i64[M] sorted positions into ``ids`` of the kept tokens.
    """
    if np.all(keep_prob >= 1.0):
        return np.arange(ids.size)
    keep_prob = keep_prob.astype(np.float32)
    step = 1 << 20  # in slices, so that no corpus-sized float temporaries are alive
    return np.concatenate([
        start + np.flatnonzero(rng.random(min(step, ids.size - start), dtype=np.float32)
                               < keep_prob[ids[start:start + step]])
        for start in range(0, ids.size, step)])


@dataclasses.dataclass(frozen=True)
class EpochStream:
    """One epoch's sub-sampled token stream: what the trainer's windows are cut from.

    Attributes:
      ids: i32[M] ids of the kept tokens, in corpus order.
      sent: i32[M] their sentence ids.
      reach: i32[M] each kept token's dynamic window b, uniform in 1..window.
      progress: f32[M] each kept token's position in the epoch, in [0, 1).
    """

    ids: np.ndarray
    sent: np.ndarray
    reach: np.ndarray
    progress: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def epoch_stream(ids: np.ndarray, sent: np.ndarray, keep_prob: np.ndarray, window: int,
                 rng: np.random.Generator, base: int = 0,
                 total: int | None = None) -> EpochStream:
    """Sub-samples one epoch (or one chunk of it) and draws every kept token's window.

    The (centre, context) pairs of the epoch are then fixed: kept tokens i and j form a
    pair, with i the centre, iff 0 < |i − j| ≤ reach[i] and sent[i] = sent[j]
    (:func:`pairs_of` spells them out). The trainer builds them on device from this
    stream, so the host ships one int per token rather than one per pair.

    ``ids`` may be a chunk starting at token ``base`` of an epoch of ``total`` tokens
    (default: the whole epoch); ``progress`` is then the position in the whole epoch.
    """
    kept = subsample(ids, keep_prob, rng)
    total = ids.size if total is None else total
    return EpochStream(ids=ids[kept].astype(np.int32), sent=sent[kept].astype(np.int32),
                       reach=rng.integers(1, window + 1, size=kept.size, dtype=np.int32),
                       progress=((base + kept) / max(total, 1)).astype(np.float32))


CHUNK_TOKENS = 1 << 18  # corpus tokens sub-sampled at a time: bounds the host's memory
PIECE_TOKENS = 8192  # corpus tokens a lane contributes before the next lane's turn


def epoch_chunks(ids: np.ndarray, sentence_ids, keep_prob: np.ndarray, window: int,
                 seed: int, epoch: int, start: int = 0, stop: int | None = None,
                 chunk_tokens: int = CHUNK_TOKENS, lanes: int = 1,
                 piece_tokens: int = PIECE_TOKENS):
    """One epoch of ``ids[start:stop]`` as a sequence of streams, ``chunk_tokens`` at a time.

    Memory is bounded by the chunk, not the corpus: ``ids`` may be a memory-mapped file
    (``w2v_jax.dataset``) and ``sentence_ids(a, b)`` gives the sentence ids of
    ``ids[a:b]`` (``Corpus.sentence_ids``). Concatenated, the chunks are one epoch's
    stream; ``progress`` runs over [start, stop) in the order the stream reads it.

    With ``lanes`` = 1 the stream is the corpus in order: sentence ids are global, so
    windows reach across chunk boundaries, and each chunk draws from its own generator,
    seeded by (seed, epoch, chunk start). With ``lanes`` = L > 1 the range is cut into L
    equal lanes read side by side, ``piece_tokens`` of each in turn (:func:`lane_pieces`;
    fewer lanes where the range holds fewer than L pieces, none under two),
    as word2vec's and gensim's threads each read their own part of the file. A chunk is
    then whole pieces, drawing from a generator seeded by (seed, epoch, its start in
    reading order), and sentences are renumbered so that no window reaches into the next
    piece.

    Yields:
      :class:`EpochStream` per chunk, in stream order.
    """
    stop = ids.size if stop is None else stop
    lanes = min(lanes, (stop - start) // piece_tokens)  # no lane shorter than a piece
    if lanes <= 1:
        for a in range(start, stop, chunk_tokens):
            b = min(a + chunk_tokens, stop)
            rng = np.random.default_rng([seed, epoch, a])
            yield epoch_stream(_read(ids, a, b), sentence_ids(a, b), keep_prob, window, rng,
                               base=a - start, total=stop - start)
        return
    pieces, done, i = lane_pieces(start, stop, lanes, piece_tokens), 0, 0
    while i < len(pieces):  # a chunk: the next pieces in reading order, chunk_tokens or more
        n, first = 0, i
        while i < len(pieces) and n < chunk_tokens:
            n, i = n + pieces[i][1] - pieces[i][0], i + 1
        chunk = pieces[first:i]
        tok, sent = _read_pieces(ids, sentence_ids, chunk)
        # Renumbered in reading order, each piece's first sentence one past the last of the
        # piece before; a piece spans at most as many sentences as tokens, so the ids keep
        # rising from chunk to chunk.
        size = np.array([b - a for a, b in chunk])
        ends = np.cumsum(size)
        first_sent, last_sent = sent[ends - size], sent[ends - 1]
        shift = done + np.cumsum(last_sent - first_sent + 1) - (last_sent - first_sent + 1)
        sent = (sent - np.repeat(first_sent - shift, size)).astype(np.int32)
        yield epoch_stream(tok, sent, keep_prob, window,
                           np.random.default_rng([seed, epoch, start + done]), base=done,
                           total=stop - start)
        done += n


def _read_pieces(ids: np.ndarray, sentence_ids, pieces: list[tuple[int, int]]):
    """(ids, sentence ids) of ``pieces``, concatenated in the order given.

    The pieces of one lane in a chunk are contiguous: each such run is read once, and
    the pieces are cut from it (per-piece reads made the host, not the device, the bound
    of GPU throughput at large C).
    """
    runs: list[list[int]] = []  # [a, b] of each contiguous run, in corpus order
    where = {}  # piece start -> (run index, offset in the run)
    for a, b in sorted(pieces):
        if not runs or runs[-1][1] != a:
            runs.append([a, a])
        where[a] = (len(runs) - 1, a - runs[-1][0])
        runs[-1][1] = b
    tok = [_read(ids, a, b) for a, b in runs]
    sent = [sentence_ids(a, b) for a, b in runs]
    cut = [(where[a][0], where[a][1], where[a][1] + b - a) for a, b in pieces]
    return (np.concatenate([tok[r][o:e] for r, o, e in cut]),
            np.concatenate([sent[r][o:e] for r, o, e in cut]))


def lane_pieces(start: int, stop: int, lanes: int, piece_tokens: int) -> list[tuple[int, int]]:
    """The order in which ``lanes`` interleaved lanes read ``[start, stop)``.

    The range is cut into ``lanes`` near-equal contiguous lanes; the result lists their
    pieces of ``piece_tokens`` as ``(a, b)`` ranges, the first piece of every lane, then
    every lane's second, and so on. Each token lies in exactly one piece.
    """
    edges = [start + (stop - start) * j // lanes for j in range(lanes + 1)]
    longest = max(edges[j + 1] - edges[j] for j in range(lanes))
    return [(edges[j] + r, min(edges[j] + r + piece_tokens, edges[j + 1]))
            for r in range(0, longest, piece_tokens)
            for j in range(lanes) if edges[j] + r < edges[j + 1]]


def _read(ids: np.ndarray, a: int, b: int) -> np.ndarray:
    """``ids[a:b]`` in memory. A memory-mapped file's chunk is read with ``read()``
    rather than through the mapping: pages touched through a mapping stay in the
    process's RSS until the kernel needs them, so an epoch over a memory-mapped corpus
    would show an RSS that grows with the corpus."""
    if (isinstance(ids, np.memmap) and ids.filename is not None
            and ids.base is getattr(ids, "_mmap", None)):  # the whole mapping, not a view
        return np.fromfile(ids.filename, dtype=ids.dtype, count=b - a,
                           offset=ids.offset + a * ids.itemsize)
    return np.asarray(ids[a:b])


def pairs_of(stream: EpochStream, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference expansion of a stream into (centre ids, context ids), centre by centre.

    Memory is O(pairs): for tests and small corpora, not for the training path.
    """
    off = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    pos = np.arange(len(stream))
    ctx = pos[:, None] + off[None, :]
    valid = (np.abs(off)[None, :] <= stream.reach[:, None]) & (ctx >= 0) & (ctx < len(stream))
    ctx = np.clip(ctx, 0, max(len(stream) - 1, 0))
    valid &= stream.sent[ctx] == stream.sent[:, None]
    r, c = np.nonzero(valid)
    return stream.ids[r], stream.ids[ctx[r, c]]
