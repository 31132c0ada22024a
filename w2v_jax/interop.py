"""Vectors out of a run for other tools: word2vec files of W_in, W_out or W_in + W_out,
and Flax embedding layers initialised from trained vectors.

The word2vec text and binary formats (``w2v_jax.vectors``) are what gensim
(``KeyedVectors.load_word2vec_format``), word2vec C and fastText read; the tests
round-trip them through gensim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from w2v_jax.checkpoint import CHECKPOINTS, restore_latest
from w2v_jax.errors import W2VError
from w2v_jax.vectors import KeyedVectors

WHICH = ("in", "out", "sum")


def run_vectors(run_dir: str | os.PathLike, which: str = "in") -> KeyedVectors:
    """The vectors of a run directory.

    Args:
      run_dir: a w2v-jax run directory.
      which: "in" (W_in, the usual word vectors), "out" (W_out, the context vectors) or
        "sum" (W_in + W_out, which some find better on similarity tasks).
    Returns:
      KeyedVectors with the run's vocabulary, most frequent word first. "in" comes from
      vectors.bin when the run finished; "out" and "sum" need its latest checkpoint.
    """
    if which not in WHICH:
        raise W2VError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    run = Path(run_dir)
    if not run.is_dir():
        raise W2VError(f"{run} is not a run directory")
    finished = (run / "vectors.bin").exists()
    if which == "in" and finished:
        return KeyedVectors.load_word2vec_format(run / "vectors.bin", binary=True)
    only_in = ("only --which in can be exported" if finished else
               "nothing can be exported; train it again with --overwrite")
    try:
        restored = restore_latest(run / CHECKPOINTS)
    except W2VError:  # every checkpoint corrupt
        lost = "its W_out is" if finished else "its tables are"
        raise W2VError(f"no checkpoint of {run} reads back intact, so {lost} lost; "
                       f"{only_in}") from None
    if restored is None:
        raise W2VError(f"{run} has no checkpoint, so its W_out was not kept (trained with "
                       "--no-checkpoints?); only --which in can be exported")
    epochs = restored.meta.get("config", {}).get("epochs")
    if finished and epochs is not None and restored.position.epoch < epochs:
        # The final checkpoint is unreadable: an older W_out would not match vectors.bin.
        raise W2VError(f"the checkpoint at the end of {run} is unusable (the latest intact "
                       f"one is from epoch {restored.position.epoch + 1} of {epochs}), so the "
                       f"final W_out is lost; {only_in}")
    if which != "in" and restored.meta.get("config", {}).get("objective") == "hs":
        raise W2VError(f"{run} was trained with hierarchical softmax: its W_out rows are the "
                       "Huffman tree's inner nodes, not words; only --which in can be exported")
    words = restored.meta["vocab"]["words"]
    table = {"in": restored.w_in, "out": restored.w_out, "sum": restored.w_in + restored.w_out}
    return KeyedVectors(words, table[which])


def export(run_dir: str | os.PathLike, path: str | os.PathLike, which: str = "in",
           binary: bool = True) -> KeyedVectors:
    """Writes a run's vectors (see :func:`run_vectors`) as a word2vec text or binary file."""
    if Path(path).resolve() == (Path(run_dir) / "vectors.bin").resolve():
        raise W2VError(f"{path} is the run's own vectors file; export to another path")
    kv = run_vectors(run_dir, which)
    kv.save_word2vec_format(path, binary=binary)
    return kv


def _table(vectors: KeyedVectors | np.ndarray) -> np.ndarray:
    return np.asarray(vectors.vectors if isinstance(vectors, KeyedVectors) else vectors,
                      np.float32)


def nnx_embed(vectors: KeyedVectors | np.ndarray, rngs=None):
    """A ``flax.nnx.Embed`` whose table is the trained vectors (f32[V, d]).

    Row i is word ``vectors.index_to_key[i]``; look ids up with ``vectors.index(word)``.
    The table is an ``nnx.Param``: trainable downstream unless the caller freezes it.
    """
    from flax import nnx

    table = jnp.asarray(_table(vectors))

    def init(key, shape, dtype=jnp.float32):
        del key
        if tuple(shape) != table.shape:
            raise W2VError(f"embedding shape {shape} != vectors {table.shape}")
        return table.astype(dtype)

    return nnx.Embed(table.shape[0], table.shape[1], embedding_init=init,
                     rngs=rngs if rngs is not None else nnx.Rngs(0))


def linen_params(vectors: KeyedVectors | np.ndarray) -> dict[str, Any]:
    """``{"params": {"embedding": f32[V, d]}}`` for ``flax.linen.Embed(V, d).apply``."""
    return {"params": {"embedding": jnp.asarray(_table(vectors))}}


__all__ = ["WHICH", "export", "linen_params", "nnx_embed", "run_vectors"]
