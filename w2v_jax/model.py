"""The gensim-like front door: ``Word2Vec(corpus_file=..., vector_size=..., ...)``.

It only assembles the library: read the corpus, train, wrap the vectors, and save them
as a run directory (``w2v_jax.run``). Checkpointed, resumable training into a run
directory is ``w2v_jax.run.train_run`` (what ``w2v-jax train`` uses).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from w2v_jax.config import Config
from w2v_jax.corpus import embedded_corpus_path, load_corpus
from w2v_jax.errors import W2VError
from w2v_jax.checkpoint import CHECKPOINTS, RunLock
from w2v_jax.run import METRICS, VECTORS, clear_old_run, save_run
from w2v_jax.train import Progress, TrainState, train
from w2v_jax.vectors import KeyedVectors



# gensim arguments with no field of the same name, and what to pass instead.
_GENSIM_ONLY = {
    "sentences": "write the sentences to a text file, one per line with words separated "
                 "by spaces, and pass corpus_file",
    "hs": "pass objective='hs' (hierarchical softmax) or objective='ns' (negative sampling); "
          "w2v-jax trains one of them, where gensim's hs=1 with negative > 0 trains both",
    "workers": "w2v-jax trains one jitted step on the device (on a CPU, XLA's threads "
               "and a host thread); there are no worker threads to set",
    "cbow_mean": "CBOW always averages its context rows (gensim's cbow_mean=1)",
    "iter": "pass epochs (gensim 4's name)",
    "size": "pass vector_size (gensim 4's name)",
    "max_final_vocab": "pass max_vocab_size: it keeps exactly that many of the most "
                       "frequent words (gensim's max_final_vocab can keep fewer: it drops "
                       "every word as frequent as the first one cut)",
}


class Word2Vec:
    """Trains on construction, like gensim's ``Word2Vec``.

    Args:
      corpus_file: text (plain, gzip, bzip2 or xz), one sentence per line (default: the
        embedded KJV corpus).
      on_progress: optional callback receiving ``w2v_jax.train.Progress``.
      **hyper: any ``w2v_jax.Config`` field (``vector_size``, ``window``, ``sg``, ...).

    Attributes:
      wv: KeyedVectors of the input vectors; config, vocab, state, timings (seconds).
    """

    def __init__(self, corpus_file: str | os.PathLike | None = None,
                 on_progress: Callable[[Progress], None] | None = None, **hyper):
        for name, advice in _GENSIM_ONLY.items():
            if name in hyper:
                raise W2VError(f"Word2Vec has no argument {name!r}: {advice}")
        self.config = Config.from_dict(hyper)
        if corpus_file is not None and not str(corpus_file).strip():
            raise W2VError("corpus_file is empty; give a path, or None for the embedded corpus")
        t0 = time.perf_counter()
        self.vocab, corpus = load_corpus(corpus_file if corpus_file is not None
                                         else embedded_corpus_path(),
                                         self.config.min_count, self.config.max_vocab_size)
        t1 = time.perf_counter()
        self.state: TrainState = train(self.config, self.vocab, corpus, on_progress)
        t2 = time.perf_counter()
        self.corpus_words = corpus.raw_words
        self.timings = {"load_seconds": t1 - t0, "train_seconds": t2 - t1}
        self.wv = KeyedVectors(self.vocab.words, np.asarray(self.state.w_in))

    # gensim's two-step training and its pickles: here the constructor does it all.
    def build_vocab(self, *args, **kwargs):
        raise W2VError("w2v-jax's Word2Vec reads the corpus, builds the vocabulary and trains "
                       "when constructed: pass corpus_file=PATH to Word2Vec(...) instead of "
                       "calling build_vocab and train")

    train = build_vocab

    @classmethod
    def load(cls, *args, **kwargs):
        raise W2VError("Word2Vec.save writes a run directory of word2vec files, not a pickle: "
                       "read its vectors with w2v_jax.load_vectors(DIR)")

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> None:
        """Writes vocab.txt, config.json and (last, atomically) vectors.bin into out_dir.

        A directory that holds a ``w2v-jax train`` run (its checkpoints or metrics) is
        refused unless ``overwrite``, which removes that run first: left beside these
        vectors, its checkpoints would be read as their W_out (``export --which out``).
        Files of an earlier ``save`` are simply replaced.
        """
        out = Path(out_dir)
        trained_here = [name for name in (CHECKPOINTS, METRICS) if (out / name).exists()]
        if trained_here and not overwrite:
            raise W2VError(f"{out} holds a training run ({', '.join(trained_here)}); save "
                           "elsewhere, or pass overwrite=True to replace that run")
        if trained_here:
            with RunLock(out) as lock:  # refused while a process trains there
                clear_old_run(out)
                lock.path.unlink()
        save_run(out, self.config, self.vocab, self.wv)


def load_vectors(path: str | os.PathLike) -> KeyedVectors:
    """Vectors from a run directory (its vectors.bin) or a word2vec text/binary file."""
    p = Path(path)
    if p.is_dir():
        if not (p / VECTORS).exists():
            raise W2VError(f"{p} holds no {VECTORS}; is it a finished w2v-jax run directory?")
        p = p / VECTORS
    elif not p.exists():
        raise W2VError(f"{p} does not exist; pass a run directory or a word2vec vectors file")
    return KeyedVectors.load_word2vec_format(p)


__all__ = ["Word2Vec", "load_vectors"]
