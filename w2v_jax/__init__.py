"""w2v-jax: word2vec (skip-gram and CBOW; negative sampling, full and hierarchical softmax) in JAX.

The data path, top to bottom: ``corpus`` (text → token ids) → ``vocab`` (counts →
ids, noise distribution, keep-probabilities) → ``batching`` (sub-sampling, dynamic
window → examples) → ``sampling`` (negatives) → ``objectives`` (pure losses and
closed-form gradients) → ``train`` (jitted steps over a TrainState) → ``vectors``
(KeyedVectors, word2vec formats). Around it: ``checkpoint`` (Orbax), ``run`` (a run
directory: resume, metrics), ``experiment`` (sweeps, summaries, plots), ``interop``
(exports, Flax layers).
"""

from w2v_jax.config import Config
from w2v_jax.corpus import Corpus, embedded_corpus_path, load_corpus
from w2v_jax.errors import W2VError
from w2v_jax.model import Word2Vec, load_vectors
from w2v_jax.objectives import (
    cbow_ns_grads,
    cbow_ns_loss,
    cbow_softmax_grads,
    cbow_softmax_loss,
    hs_grads,
    hs_loss,
    ns_block_grads,
    ns_block_loss,
    ns_grads,
    ns_loss,
    ns_update,
    softmax_grads,
    softmax_loss,
)
from w2v_jax.run import CheckpointOptions, train_run
from w2v_jax.train import TrainState, init_state, train
from w2v_jax.vectors import KeyedVectors
from w2v_jax.vocab import Vocab, build_vocab
from w2v_jax.xla_flags import tune_xla_cpu

__version__ = "0.1.0"

__all__ = [
    "CheckpointOptions", "Config", "Corpus", "KeyedVectors", "TrainState", "Vocab", "W2VError", "Word2Vec",
    "build_vocab", "cbow_ns_grads", "cbow_ns_loss", "cbow_softmax_grads", "cbow_softmax_loss",
    "embedded_corpus_path", "hs_grads", "hs_loss", "init_state", "load_corpus", "load_vectors", "ns_block_grads",
    "ns_block_loss", "ns_grads", "ns_loss", "ns_update", "softmax_grads", "softmax_loss", "train",
    "train_run", "tune_xla_cpu",
]
