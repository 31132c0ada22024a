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
                 rng: np.random.Generator) -> EpochStream:
    """Sub-samples one epoch and draws every kept token's dynamic window.

    The (centre, context) pairs of the epoch are then fixed: kept tokens i and j form a
    pair, with i the centre, iff 0 < |i − j| ≤ reach[i] and sent[i] = sent[j]
    (:func:`pairs_of` spells them out). The trainer builds them on device from this
    stream, so the host ships one int per token rather than one per pair.
    """
    kept = subsample(ids, keep_prob, rng)
    return EpochStream(ids=ids[kept].astype(np.int32), sent=sent[kept].astype(np.int32),
                       reach=rng.integers(1, window + 1, size=kept.size, dtype=np.int32),
                       progress=kept.astype(np.float32) / np.float32(max(ids.size, 1)))


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
