"""How the cost of a training pair grows with the vocabulary, per objective.

Vanilla softmax touches all V output rows per pair (O(V·d)), negative sampling K + 1
(O(K·d), flat in V), hierarchical softmax the ~log₂ V inner nodes on a Huffman path.
:func:`time_per_pair` measures the steady-state time of the trainer's own jitted step
(forward, backward and update: ``w2v_jax.train.run_steps``) on synthetic ids, so the
measured slopes are those of the code that trains, not of a separate model.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from w2v_jax.config import Config
from w2v_jax.heap import mmap_threshold, return_large_buffers
from w2v_jax.train import init_state, objective_aux, run_steps
from w2v_jax.vocab import Vocab


def synthetic_vocab(vocab_size: int) -> Vocab:
    """V words with Zipfian counts (count ∝ 1/rank), as in natural text."""
    counts = np.maximum((10 * vocab_size / np.arange(1, vocab_size + 1)).astype(np.int64), 1)
    return Vocab(tuple(f"w{i}" for i in range(vocab_size)), counts)


def time_per_pair(config: Config, vocab_size: int, calls: int = 3, seed: int = 0) -> float:
    """Seconds per (centre, context) pair of one jitted SG/CBOW step, steady state.

    Tokens are drawn from the Zipfian unigram distribution of :func:`synthetic_vocab`
    and every centre gets the full window, so a step has batch_size·2·window pairs (SG)
    or batch_size windows (CBOW: "pair" then means one window). The first call (the
    compilation) is not timed; the fastest of ``calls`` timed calls is returned (the
    least disturbed by other work on a shared machine). The host's heap is set as
    :func:`w2v_jax.train.train` sets it for the objective (the full softmax's per-call
    temporaries ran 2× slower as fresh mappings).
    """
    cfg = config
    return_large_buffers(mmap_threshold(jax.default_backend(), cfg.objective))
    vocab = synthetic_vocab(vocab_size)
    rng = np.random.default_rng(seed)
    p = vocab.counts / vocab.counts.sum()
    t, c, w = cfg.steps_per_call, cfg.centres_per_step, cfg.window
    block = {"tok": rng.choice(vocab_size, size=(t, c + 2 * w), p=p).astype(np.int32),
             "sent": np.zeros((t, c + 2 * w), np.int32),
             "reach": np.full((t, c), w, np.int32),
             "lr": np.full(t, 1e-3, np.float32)}
    block = jax.device_put(block)
    aux = objective_aux(cfg, vocab)
    state = init_state(jax.random.key(seed), vocab_size, cfg.vector_size, cfg.init_scale)
    state, stats = run_steps(state, aux, block, cfg=cfg)  # compile
    jax.block_until_ready(stats)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        state, stats = run_steps(state, aux, block, cfg=cfg)
        jax.block_until_ready(stats)
        times.append(time.perf_counter() - t0)
    pairs = t * c * (2 * w if cfg.sg else 1)
    return float(min(times)) / pairs


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log y against log x: the exponent of y ∝ x^slope."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


__all__ = ["loglog_slope", "synthetic_vocab", "time_per_pair"]
