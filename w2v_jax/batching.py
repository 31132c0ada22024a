"""Sub-sampling and the dynamic window → training examples, vectorised with numpy.

One epoch: every token is kept with its word's keep-probability; each kept centre
draws an effective window b uniformly from 1..window; its contexts are the kept
tokens at distance ≤ b in the same sentence. Skip-gram emits (centre, context) pairs,
CBOW emits (context window, centre). Examples come out in corpus order, chunk by
chunk, so memory stays bounded and the learning rate can follow the corpus position.

All randomness comes from a ``numpy.random.Generator`` passed in; the trainer seeds it
from (seed, epoch), so a seed reproduces an epoch exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class Examples:
    """A run of training examples, in corpus order.

    Attributes:
      inputs: SG: i32[n] centre ids; CBOW: i32[n, 2·window] context ids (0 where masked).
      mask: CBOW only: bool[n, 2·window], True for real context slots; None for SG.
      targets: i32[n] SG: context ids; CBOW: centre ids.
      progress: f32[n] position of each example's centre in the epoch, in [0, 1).
    """

    inputs: np.ndarray
    mask: np.ndarray | None
    targets: np.ndarray
    progress: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


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
    return np.flatnonzero(rng.random(ids.size, dtype=np.float32) < keep_prob[ids])


def _offsets(window: int) -> np.ndarray:
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])


def _windows(sent: np.ndarray, start: int, stop: int, window: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Context positions and validity for centres start..stop-1 of a kept-token array.

    Returns:
      (ctx: i64[n, 2·window] positions (clipped into range), valid: bool[n, 2·window]).
    """
    n = stop - start
    b = rng.integers(1, window + 1, size=n)  # the dynamic window of each centre
    off = _offsets(window)
    pos = np.arange(start, stop)
    ctx = pos[:, None] + off[None, :]
    valid = np.abs(off)[None, :] <= b[:, None]
    valid &= (ctx >= 0) & (ctx < sent.size)
    ctx = np.clip(ctx, 0, sent.size - 1)
    valid &= sent[ctx] == sent[pos][:, None]
    return ctx, valid


def epoch_examples(ids: np.ndarray, sent: np.ndarray, keep_prob: np.ndarray, window: int,
                   sg: bool, rng: np.random.Generator,
                   chunk: int = 1 << 18) -> Iterator[Examples]:
    """All training examples of one epoch, in chunks of about ``chunk`` centres.

    Args:
      ids: i32[N] the corpus' in-vocabulary token ids; sent: i32[N] their sentence ids.
      keep_prob: f64[V] sub-sampling keep-probabilities (all ones: no sub-sampling).
      window: maximum window; sg: skip-gram pairs if True, CBOW windows if False.
      rng: the epoch's generator; chunk: centres per yielded chunk.
    """
    kept = subsample(ids, keep_prob, rng)
    k_ids = ids[kept]
    k_sent = sent[kept]
    progress = (kept / max(ids.size, 1)).astype(np.float32)
    for start in range(0, kept.size, chunk):
        stop = min(start + chunk, kept.size)
        ctx, valid = _windows(k_sent, start, stop, window, rng)
        centre = k_ids[start:stop]
        if sg:
            rows, cols = np.nonzero(valid)  # row-major: grouped by centre, in order
            yield Examples(inputs=centre[rows], mask=None, targets=k_ids[ctx[rows, cols]],
                           progress=progress[start:stop][rows])
        else:
            has = valid.any(axis=1)
            yield Examples(inputs=np.where(valid, k_ids[ctx], 0)[has].astype(np.int32),
                           mask=valid[has], targets=centre[has],
                           progress=progress[start:stop][has])
