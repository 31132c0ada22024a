"""Training: a pure, jitted multi-step update over a TrainState pytree, and the host loop.

The device side is one function, ``run_steps(state, aux, block, cfg) -> (state, stats)``:
a ``lax.scan`` over ``steps_per_call`` SGD steps, compiled once per config, with the
state donated so the two V×d tables are updated in place. A step takes C consecutive
centres of the epoch's sub-sampled stream, gathers the rows of the span around them
once, forms the pairs (SG) or windows (CBOW) as static shifts of the span, computes the
closed-form gradients of ``w2v_jax.objectives`` (the same math; tests check that one
step equals the pure functions) and returns one update per touched row, which
:class:`Tables` scatter-adds (``w2v_jax.parallel`` combines them across devices). The
objective (negative sampling, full softmax, hierarchical softmax) picks the step
function from ``STEPS``; everything else is shared.

The host side sub-samples each epoch chunk by chunk (``w2v_jax.batching``, memory
bounded by the chunk, not the corpus) in a background thread,
cuts the stream into fixed-shape blocks with the learning rate of each step (linear
decay from ``alpha`` to ``min_alpha`` over all training words), and reads loss and
words/s a call late, so the device never waits for the host. Blocks are resumable:
``train(start=Position(epoch, block))`` regenerates the epoch's stream and skips to the
block, and a ``Checkpointer`` saves the state between calls (``w2v_jax.checkpoint``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax import objectives, sampling
from w2v_jax.batching import CHUNK_TOKENS, EpochStream, epoch_chunks
from w2v_jax.config import Config
from w2v_jax.corpus import Corpus
from w2v_jax.checkpoint import Checkpointer, Position
from w2v_jax.errors import Interrupted, W2VError
from w2v_jax.heap import mmap_threshold, release_free_heap, return_large_buffers
from w2v_jax.huffman import build_huffman
from w2v_jax.vocab import Vocab


class TrainState(NamedTuple):
    """Everything that changes during training.

    Attributes:
      w_in: f32[V, d] input (centre) vectors: the embeddings users keep.
      w_out: f32[V, d] output (context) vectors.
      step: i32[] SGD steps taken.
      key: the run's PRNG key; a call starting at step t draws the negatives of all its
        steps with ``fold_in(key, t)``.
    """

    w_in: jax.Array
    w_out: jax.Array
    step: jax.Array
    key: jax.Array


def init_state(key: jax.Array, vocab_size: int, vector_size: int,
               scale: float) -> TrainState:
    """W_in ~ U(−scale/d, scale/d), W_out = 0; ``scale`` is ``Config.init_scale``
    (word2vec C's is 0.5, gensim's 1.0).

    W_in is drawn by numpy seeded from the key: XLA's PRNG would hold several V×d
    temporaries at once (≈ 120 MB for a 52k×100 table, the whole budget of a small run).
    """
    k_init, k_run = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_init)).ravel().tolist())
    half = scale / vector_size
    w_in = np.empty((vocab_size, vector_size), np.float32)
    for start in range(0, vocab_size, 1 << 14):  # slices: no float64 table at once
        rows = w_in[start:start + (1 << 14)]
        rows[:] = rng.uniform(-half, half, rows.shape)
    w_in = jnp.asarray(w_in)
    return TrainState(w_in, jnp.zeros_like(w_in), jnp.zeros((), jnp.int32), k_run)


def learning_rate(config: Config, epoch: int, progress: np.ndarray) -> np.ndarray:
    """Linear decay from alpha to min_alpha over all epochs; ``progress`` ∈ [0, 1) within ``epoch``."""
    done = (epoch + np.asarray(progress, np.float64)) / config.epochs
    a0 = config.learning_rate
    return np.maximum(a0 - (a0 - config.min_alpha) * done, config.min_alpha).astype(np.float32)


# ----------------------------------------------------------------------------------
# Device side
#
# A step covers C consecutive centres of the sub-sampled stream. It receives the ids
# and sentence ids of the span around them (C + 2·window tokens) and each centre's
# dynamic window; every context row is then a static shift of the span, so each W_in
# and W_out row of the span is gathered and scatter-added once per step, not once per
# pair. On XLA:CPU the row scatter is the dominant cost; this cuts it about sixfold.
# ----------------------------------------------------------------------------------


def _offsets(window: int) -> list[int]:
    return [o for o in range(-window, window + 1) if o != 0]


def _window_mask(sent: jax.Array, reach: jax.Array, window: int) -> jax.Array:
    """bool[C, 2W]: slot (c, o) is a real pair iff |o| ≤ reach[c] and same sentence.

    sent: i32[C + 2W] sentence ids of the span (−1 outside the corpus); reach: i32[C]
    (0 for padding centres).
    """
    c = reach.shape[0]
    mid = sent[window:window + c]
    return jnp.stack([(abs(o) <= reach) & (sent[window + o:window + o + c] == mid)
                      for o in _offsets(window)], axis=1)


def _materialize(x: jax.Array) -> jax.Array:
    """A scheduling barrier around x. XLA:CPU tends to fuse the dot products that make
    x into the loops that use it, recomputing each one d times; with the barrier the
    SG step measured about 20% faster (358 vs 438 µs, jaxlib 0.10.2)."""
    return jax.lax.optimization_barrier(x)


def _window_sum(span: jax.Array, weight: jax.Array, window: int) -> jax.Array:
    """Σ_o weight[:, o] · span[window + o : window + o + C] as f[C, d].

    A loop over the offset pairs ±k rather than an unrolled sum of static slices (as
    :func:`_spread` is): XLA:CPU fused the span's gather into that sum, gathering every
    row 2W times, and the CBOW step ran 1.6× slower, with or without an optimisation
    barrier on the span. Two offsets an iteration measured ~5% faster than one.
    """
    c = weight.shape[0]

    def add(k, acc):  # offsets −(k+1) and k+1: columns window−1−k and window+k
        left = jax.lax.dynamic_slice_in_dim(span, window - 1 - k, c)
        right = jax.lax.dynamic_slice_in_dim(span, window + 1 + k, c)
        w_left = jax.lax.dynamic_slice_in_dim(weight, window - 1 - k, 1, axis=1)
        w_right = jax.lax.dynamic_slice_in_dim(weight, window + k, 1, axis=1)
        return acc + w_left * left + w_right * right

    return jax.lax.fori_loop(0, window, add, jnp.zeros((c, span.shape[1]), span.dtype))


def _row_dot(a: jax.Array, b: jax.Array | None) -> jax.Array:
    """f[N]: the row-wise dot products of a, b: f[N, d] (b None: the row sums of a).

    A product with a vector of ones rather than a row sum: XLA:CPU rewrites a sum over
    d > 32 into a reduce-window tree, which measured ~13% slower on the whole CBOW step.
    """
    return (a if b is None else a * b) @ jnp.ones((a.shape[1],), a.dtype)


def _spread(weight: jax.Array, rows: jax.Array, window: int) -> jax.Array:
    """f[C + 2W, d]: the transpose of :func:`_window_sum`; span row window + o + i gets
    weight[i, o] · rows[i] from every offset o.

    One sum of static slices of the zero-padded inputs, so each output row reads its 2W
    sources in a single fused loop. The straightforward 2W in-place slice adds made
    XLA:CPU recompute ``rows`` in each add: the CBOW step measured ~25% slower.

    Args:
      weight: f[C, 2W], one column per offset of ``_offsets(window)``; rows: f[C, d].
    """
    c = rows.shape[0]
    m, pad = c + 2 * window, ((2 * window, 2 * window), (0, 0))
    rows, weight = jnp.pad(rows, pad), jnp.pad(weight, pad)
    # Output row t takes centre i = t − window − o, at padded index t + window − o.
    return sum(weight[window - o:window - o + m, j, None] * rows[window - o:window - o + m]
               for j, o in enumerate(_offsets(window)))


def _context_counts(mask: jax.Array, window: int) -> jax.Array:
    """f[C + 2W]: for each span row, the real pairs whose context it is (mask: f[C, 2W])."""
    return _spread(mask, jnp.ones((mask.shape[0], 1), mask.dtype), window)[:, 0]


def _positive(h: jax.Array, ctx: jax.Array, weight: jax.Array, lr: jax.Array):
    """One positive output row per example: (loss f[], e f[C]).

    h, ctx: f[C, d]; weight: f[C], 1 for a real pair, 0 for padding. e carries the
    learning rate: the updates are e·ctx for h and e·h for ctx (−lr times the gradients).
    """
    score = _row_dot(h, ctx)
    e = _materialize((jax.nn.sigmoid(score) - 1.0) * (weight * -lr))
    return -jnp.sum(weight * jax.nn.log_sigmoid(score)), e


def _shared_negatives(h: jax.Array, weight: jax.Array, c_neg: jax.Array, lr: jax.Array):
    """Negative terms of C examples, every G-th one sharing K negative rows (G = C/S).

    The examples sharing a draw lie G centres apart: CBOW's consecutive windows overlap
    and their hidden vectors are alike, so sharing among neighbours pushed the same
    direction S times (5 epochs of CBOW at S = 8: 14.5% analogy against 19.5% strided).

    Each example's K terms are weighted by ``weight`` (0/1 for a pair or window, n·K/M
    for a skip-gram centre's M draws).
    With few draws per group (K < 16) the C·K scores are one product f[S, G, K, d] and
    one dot with a vector of ones, and Δh is summed one negative at a time on f[C, d]
    arrays, which XLA:CPU fuses into a few loops (scoring one negative at a time instead,
    K products and K dots, made the CBOW step ~10% slower, with bit-identical results);
    with many (skip-gram's M = 30 per centre) as G batched S×d·d×K matmuls, which made
    that step ~20% faster (jaxlib 0.10.2; at K = 5 the matmuls were ~20% slower).

    Args:
      h: f[C, d]; weight: f[C]; c_neg: f[G, K, d] with G·S = C; lr: f[].
    Returns:
      (loss f[], Δh f[C, d], Δc_neg f[G, K, d]): the updates, −lr times the gradients.
    """
    c, d = h.shape
    g, k, _ = c_neg.shape
    s = c // g
    step = weight * -lr
    if k >= 16:
        hs = h.reshape(s, g, d)  # example i = s·G + g uses draw g
        score = jnp.einsum("sgd,gkd->sgk", hs, c_neg)
        loss = -jnp.sum(weight.reshape(s, g, 1) * jax.nn.log_sigmoid(-score))
        e = _materialize(jax.nn.sigmoid(score) * step.reshape(s, g, 1))
        return (loss, jnp.einsum("sgk,gkd->sgd", e, c_neg).reshape(c, d),
                jnp.einsum("sgk,sgd->gkd", e, hs))
    hs = h.reshape(s, g, 1, d)  # example i = s·G + g uses draw g
    score = _row_dot((hs * c_neg).reshape(-1, d), None).reshape(s, g, k)
    loss = -jnp.sum(weight.reshape(s, g, 1) * jax.nn.log_sigmoid(-score))
    e = _materialize(jax.nn.sigmoid(score) * step.reshape(s, g, 1))
    d_h, e_rows = 0.0, e.reshape(c, k)
    for j in range(k):
        d_h = d_h + e_rows[:, j, None] * jnp.tile(c_neg[:, j], (s, 1))
    # Δc_neg sums the S sharers as S unrolled products (up to 16 of them): as a reduce
    # over S, fused into W_out's concatenated update, XLA:CPU ran that loop element by
    # element and the CBOW step was 1.3–1.45× slower (real blocks as arguments, p20).
    if s > 16:
        return loss, d_h, jnp.sum(e[..., None] * hs, axis=0)
    return loss, d_h, sum(e[i, ..., None] * hs[i] for i in range(s))


def _row_term_cap(ids: jax.Array, terms: jax.Array, vocab_size: int, cap: float) -> jax.Array:
    """f[N]: min(1, cap / T) for each entry, T = Σ ``terms`` over all entries of its id.

    ids: i32[N] the rows a step scatter-adds to (repeats allowed); terms: f[N] the gradient
    terms summed into each entry. The step's terms of a row are all computed from its old
    value; at sample=1e-3 and alpha 0.035 the rows of the most frequent words, hit by
    tens of terms a step, diverged. Rows with few terms (nearly all) are left untouched.
    """
    total = jnp.zeros(vocab_size, terms.dtype).at[ids].add(terms)[ids]
    return jnp.minimum(1.0, cap / jnp.maximum(total, 1.0))


# An update (table, row ids i32[N] or None for a dense one, delta f[N, d] or f[V, d]):
# the amount to add, learning rate included.
Update = tuple[int, Any, jax.Array]


class Tables:
    """How a step reads the rows of W_in (0) and W_out (1) and applies its updates.

    Steps never index the tables themselves: they ask for rows and return updates, so
    the same step runs on one device (this class: plain gathers and scatter-adds) and
    data-parallel over many (``w2v_jax.parallel``: the same with collectives, on
    replicated or vocabulary-sharded tables).
    """

    def __init__(self, params: tuple[jax.Array, jax.Array], vocab_size: int):
        self.params, self.vocab_size = params, vocab_size

    def rows(self, which: int, ids: jax.Array) -> jax.Array:
        """f[*ids.shape, d]: rows ``ids`` of table ``which``."""
        return self.params[which][ids]

    def whole(self, which: int) -> jax.Array:
        """f[V, d]: the whole table (the full softmax's dense matmuls)."""
        return self.params[which]

    def apply(self, updates: list[Update]) -> tuple[jax.Array, jax.Array]:
        """The tables after adding every update (all computed from the old values)."""
        params = list(self.params)
        for which, ids, delta in updates:
            params[which] = (params[which] + delta if ids is None
                             else params[which].at[ids].add(delta))
        return params[0], params[1]


def _sg_step(tables: Tables, ex, cfg: Config):
    """Skip-gram: h = W_in[centre]; positives are the span's W_out rows at each offset.

    Negatives (``cfg.sg_negatives``): "centre" gives every centre M draws, each term
    weighted n·K/M for its n pairs (word2vec's n·K negative terms of the centre, in
    expectation); "pair" gives each context offset its own K draws, so a pair's
    negatives are shared only with the pairs at the same offset of S − 1 other centres
    (different h) and every centre sees fresh negatives for each of its pairs.
    """
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    centres = tok[w:w + c]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(jnp.float32)  # f[C, 2W]
    n = jnp.sum(mask, axis=1)  # pairs per centre
    h = tables.rows(0, centres)  # f[C, d]
    span = tables.rows(1, tok)  # f[C + 2W, d]
    negs = ex["negs"]  # i32[G, M] ("centre") or i32[2W, G, K] ("pair")
    c_negs = tables.rows(1, negs)
    per_centre = cfg.sg_negatives == "centre"
    neg_weight = n * (cfg.negative / cfg.negatives_per_centre)  # f[C], "centre"
    loss, d_h, e_pos, d_neg = 0.0, 0.0, [], []
    for j, o in enumerate(_offsets(w)):
        ctx = span[w + o:w + o + c]
        l_pos, e = _positive(h, ctx, mask[:, j], lr)
        loss, d_h = loss + l_pos, d_h + e[:, None] * ctx
        e_pos.append(e)
        if not per_centre:
            l_neg, dh_neg, dn = _shared_negatives(h, mask[:, j], c_negs[j], lr)
            loss, d_h = loss + l_neg, d_h + dh_neg
            d_neg.append(dn)
    if per_centre:
        l_neg, dh_neg, d_neg = _shared_negatives(h, neg_weight, c_negs, lr)  # f[G, M, d]
        loss, d_h = loss + l_neg, d_h + dh_neg
    else:
        d_neg = jnp.stack(d_neg)  # f[2W, G, K, d]
    d_span = _spread(jnp.stack(e_pos, axis=1), h, w)  # context rows: e·h at each offset
    rows = jnp.concatenate([tok, negs.reshape(-1)])
    d_out = jnp.concatenate([d_span, d_neg.reshape(-1, h.shape[1])])
    cap = cfg.row_term_cap(tables.vocab_size)
    if cap is not None:
        # Terms per scatter entry: pairs whose context is that span token; for a
        # negative draw, what its S centres weigh it by ("pair": their real pairs at
        # its offset).
        g = negs.shape[-2]
        t_span = _context_counts(mask, w)
        if per_centre:
            t_neg = jnp.sum(neg_weight.reshape(-1, g), axis=0)[:, None]  # f[G, 1]
        else:
            t_neg = jnp.sum(mask.T.reshape(2 * w, -1, g), axis=1)[..., None]  # f[2W, G, 1]
        v = tables.vocab_size
        d_h = d_h * _row_term_cap(centres, n, v, cap)[:, None]
        t_out = jnp.concatenate([t_span, jnp.broadcast_to(t_neg, negs.shape).reshape(-1)])
        d_out = d_out * _row_term_cap(rows, t_out, v, cap)[:, None]
    return [(0, centres, d_h), (1, rows, d_out)], (loss, jnp.sum(n))


def _spread_to_context(tok, delta_h, mask, n, cfg: Config) -> Update:
    """CBOW's W_in update: each context row of window c gets delta_h[c] (−lr·∂J/∂h[c]).

    word2vec C and gensim add the whole update of h to every context row; "exact" adds
    its 1/count share (the true gradient of the mean). One scatter over the span's rows.
    """
    if cfg.cbow_update == "exact":
        delta_h = delta_h / jnp.maximum(n, 1.0)[:, None]
    return (0, tok, _spread(mask, delta_h, cfg.window))


def _cbow_hidden(tables: Tables, ex, cfg: Config):
    """CBOW's hidden vectors: the mean of each window's W_in rows.

    Returns (mask f[C, 2W], n f[C] context words per window, valid f[C] 1 where a window
    has context, h f[C, d]).
    """
    w = cfg.window
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(jnp.float32)  # f[C, 2W]
    n = jnp.sum(mask, axis=1)
    valid = (n > 0).astype(jnp.float32)  # a window with no context trains nothing
    h = _window_sum(tables.rows(0, ex["tok"]), mask / jnp.maximum(n, 1.0)[:, None], w)
    return mask, n, valid, h


def _cbow_step(tables: Tables, ex, cfg: Config):
    """CBOW: h = mean of the span's W_in rows in the window; the target is the centre."""
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    mask, n, valid, h = _cbow_hidden(tables, ex, cfg)
    targets = tok[w:w + c]
    negs = ex["negs"]  # i32[G, K]
    ctx = tables.rows(1, targets)
    loss, e = _positive(h, ctx, valid, lr)
    l_neg, dh_neg, d_neg = _shared_negatives(h, valid, tables.rows(1, negs), lr)
    loss, d_h = loss + l_neg, e[:, None] * ctx + dh_neg
    rows = jnp.concatenate([targets, negs.reshape(-1)])
    d_out = jnp.concatenate([e[:, None] * h, d_neg.reshape(-1, h.shape[1])])
    cap = cfg.row_term_cap(tables.vocab_size)
    if cap is not None:
        # Terms per entry: 1 for a target; for a negative draw, the windows sharing it.
        g = negs.shape[0]
        t_neg = jnp.broadcast_to(jnp.sum(valid.reshape(-1, g), axis=0)[:, None], negs.shape)
        t_out = jnp.concatenate([valid, t_neg.reshape(-1)])
        d_out = d_out * _row_term_cap(rows, t_out, tables.vocab_size, cap)[:, None]
    return ([_spread_to_context(tok, _materialize(d_h), mask, n, cfg), (1, rows, d_out)],
            (loss, jnp.sum(valid)))


def _sg_softmax_step(tables: Tables, ex, cfg: Config, aux=None):
    """Skip-gram, full softmax: each centre's 2W context words share one softmax over V,
    so a step is two dense matmuls against W_out and every W_out row is updated."""
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(jnp.float32)  # f[C, 2W]
    centres = tok[w:w + c]
    targets = jnp.stack([tok[w + o:w + o + c] for o in _offsets(w)], axis=1)  # i[C, 2W]
    h, w_out = tables.rows(0, centres), tables.whole(1)
    loss = objectives.softmax_batch_loss(h, w_out, targets, mask)
    d_h, d_w_out = objectives.softmax_batch_grads(h, w_out, targets, mask)
    return [(0, centres, -lr * d_h), (1, None, -lr * d_w_out)], (loss, jnp.sum(mask))


def _cbow_softmax_step(tables: Tables, ex, cfg: Config, aux=None):
    """CBOW, full softmax: the window mean predicts the centre over all V words."""
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    mask, n, valid, h = _cbow_hidden(tables, ex, cfg)
    targets = tok[w:w + c, None]
    w_out = tables.whole(1)
    loss = objectives.softmax_batch_loss(h, w_out, targets, valid[:, None])
    d_h, d_w_out = objectives.softmax_batch_grads(h, w_out, targets, valid[:, None])
    return ([_spread_to_context(tok, -lr * d_h, mask, n, cfg), (1, None, -lr * d_w_out)],
            (loss, jnp.sum(valid)))


def _centre_paths(tree, centres, dtype):
    """The Huffman paths of the centres: (points i[C, L], codes f[C, L], on-path f[C, L])."""
    depth = tree["codes"].shape[1]
    on_path = (jnp.arange(depth) < tree["lengths"][centres][:, None]).astype(dtype)
    return tree["points"][centres], tree["codes"][centres].astype(dtype), on_path


def _sg_hs_step(tables: Tables, ex, cfg: Config, aux):
    """Skip-gram, hierarchical softmax, in word2vec C's form: each context word's W_in
    row predicts the centre along the centre's Huffman path. All 2W pairs of a centre
    share that path, so its inner-node rows are gathered and scattered once per centre."""
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(jnp.float32)
    points, codes, on_path = _centre_paths(aux, tok[w:w + c], jnp.float32)
    nodes = tables.rows(1, points)  # f[C, L, d]
    span = tables.rows(0, tok)  # f[C + 2W, d]
    loss, d_nodes = 0.0, 0.0
    d_span = jnp.zeros_like(span)
    for j, o in enumerate(_offsets(w)):
        h, m = span[w + o:w + o + c], on_path * mask[:, j, None]
        loss = loss + objectives.hs_batch_loss(h, nodes, codes, m)
        d_h, dn = objectives.hs_batch_grads(h, nodes, codes, m)
        d_span = d_span.at[w + o:w + o + c].add(d_h)
        d_nodes = d_nodes + dn
    cap = cfg.row_term_cap(tables.vocab_size)
    if cap is not None:
        # A node entry (c, l) carries the n_c pairs of centre c; a span row the pairs
        # it is the context of. Nodes near the root collect every pair of the step.
        v = tables.vocab_size
        n = jnp.sum(mask, axis=1)
        scale = _row_term_cap(points.reshape(-1), (on_path * n[:, None]).reshape(-1), v, cap)
        d_nodes = d_nodes * scale.reshape(points.shape)[..., None]
        d_span = d_span * _row_term_cap(tok, _context_counts(mask, w), v, cap)[:, None]
    updates = [(0, tok, -lr * d_span),
               (1, points.reshape(-1), -lr * d_nodes.reshape(-1, span.shape[1]))]
    return updates, (loss, jnp.sum(mask))


def _cbow_hs_step(tables: Tables, ex, cfg: Config, aux):
    """CBOW, hierarchical softmax: the window mean predicts the centre along its path."""
    w, c = cfg.window, cfg.centres_per_step
    tok, lr = ex["tok"], ex["lr"]
    mask, n, valid, h = _cbow_hidden(tables, ex, cfg)
    points, codes, on_path = _centre_paths(aux, tok[w:w + c], jnp.float32)
    nodes, m = tables.rows(1, points), on_path * valid[:, None]
    loss = objectives.hs_batch_loss(h, nodes, codes, m)
    d_h, d_nodes = objectives.hs_batch_grads(h, nodes, codes, m)
    cap = cfg.row_term_cap(tables.vocab_size)
    if cap is not None:
        scale = _row_term_cap(points.reshape(-1), m.reshape(-1), tables.vocab_size, cap)
        d_nodes = d_nodes * scale.reshape(points.shape)[..., None]
    updates = [_spread_to_context(tok, -lr * d_h, mask, n, cfg),
               (1, points.reshape(-1), -lr * d_nodes.reshape(-1, h.shape[1]))]
    return updates, (loss, jnp.sum(valid))


# The registry: objective → (skip-gram step, CBOW step). A step maps (Tables, one step's
# slice of the block, cfg, aux) to (updates, (summed loss, number of examples)). Adding
# an objective (the README's *Your own objective* has the whole list): its pure
# functions in w2v_jax.objectives, its two steps here, its name in config.OBJECTIVES
# (and config.NEGATIVE_SAMPLING if it draws negatives) and, if it needs constant
# arrays, a case in objective_aux.
STEPS = {
    "ns": (lambda t, ex, cfg, aux: _sg_step(t, ex, cfg),
           lambda t, ex, cfg, aux: _cbow_step(t, ex, cfg)),
    "softmax": (_sg_softmax_step, _cbow_softmax_step),
    "hs": (_sg_hs_step, _cbow_hs_step),
}


def draw_negatives(key: jax.Array, aux: Any, cfg: Config, steps: int) -> jax.Array | None:
    """The negatives of ``steps`` steps in one draw (None unless the objective draws
    negatives, ``cfg.draws_negatives``; ``aux`` is then the sampler's table).

    Per-step draws of a few thousand numbers spend most of their time in the PRNG's loop
    overhead on CPU. Shape i32[T, C/S, K] (CBOW), i32[T, C/S, M] (SG, "centre") or
    i32[T, 2W, C/S, K] (SG, "pair": one draw per context offset).
    """
    if not cfg.draws_negatives:
        return None
    groups = cfg.centres_per_step // cfg.negatives_shared_by
    if not cfg.sg:
        shape = (groups, cfg.negative)
    elif cfg.sg_negatives == "centre":
        shape = (groups, cfg.negatives_per_centre)
    else:
        shape = (2 * cfg.window, groups, cfg.negative)
    if cfg.sampler == "categorical":
        # Its Gumbel noise is ~64 floats per draw: draw step by step to bound memory.
        return jax.lax.map(lambda k: sampling.draw(cfg.sampler, aux, k, shape),
                           jax.random.split(key, steps))
    return sampling.draw(cfg.sampler, aux, key, (steps, *shape))


def scan_steps(tables_of: Callable[[tuple[jax.Array, jax.Array]], Tables],
               params: tuple[jax.Array, jax.Array], aux: Any, xs: dict[str, jax.Array],
               cfg: Config):
    """``lax.scan`` of the objective's step over the leading axis of ``xs``.

    Returns (params, (f32[] summed loss, f32[] number of examples)).
    """
    step_fn = STEPS[cfg.objective][0 if cfg.sg else 1]

    def body(params, ex):
        tables = tables_of(params)
        updates, stats = step_fn(tables, ex, cfg, aux)
        return tables.apply(updates), stats

    params, (losses, counts) = jax.lax.scan(body, params, xs)
    return params, (jnp.sum(losses), jnp.sum(counts))


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def run_steps(state: TrainState, aux: Any, block: dict[str, jax.Array],
              cfg: Config) -> tuple[TrainState, tuple[jax.Array, jax.Array]]:
    """Runs ``T = block['lr'].shape[0]`` SGD steps on one device.

    Args:
      state: the TrainState (donated).
      aux: the objective's constant arrays (:func:`objective_aux`): the negative
        sampler's table (ns), the Huffman tree (hs), None (softmax).
      block: for T steps of C = ``batch_size`` centres each: ``tok`` i32[T, C + 2W] and
        ``sent`` i32[T, C + 2W] the ids and sentence ids (−1: outside the corpus) of the
        span around the centres, ``reach`` i32[T, C] each centre's dynamic window
        (0: padding), ``lr`` f32[T].
      cfg: the Config (static: one compilation per config).
    Returns:
      (new state, (f32[] summed loss, f32[] number of examples: SG pairs, CBOW windows)).
    """
    t = block["lr"].shape[0]
    negs = draw_negatives(jax.random.fold_in(state.key, state.step), aux, cfg, t)
    xs = block if negs is None else dict(block, negs=negs)
    vocab_size = state.w_in.shape[0]
    params, stats = scan_steps(lambda p: Tables(p, vocab_size), (state.w_in, state.w_out),
                               aux, xs, cfg)
    return TrainState(params[0], params[1], state.step + t, state.key), stats


def objective_aux(cfg: Config, vocab: Vocab) -> Any:
    """The constant arrays ``run_steps`` needs for ``cfg.objective``, passed to its step
    functions as ``aux``: the negative sampler's table (``sampling.build``, an objective
    that draws negatives, whose steps read the draws as ``ex["negs"]``), the Huffman
    tree's arrays ("hs"), or None. A new objective that needs constants adds its case
    here (:func:`draw_negatives` reads ``aux`` as the sampler's table, so one that draws
    negatives and needs more than the table changes what that reads as well)."""
    if cfg.draws_negatives:
        return sampling.build(cfg.sampler, vocab.noise_distribution(cfg.ns_exponent))
    if cfg.objective == "hs":
        tree = build_huffman(vocab.counts)
        return {"codes": jnp.asarray(tree.codes), "points": jnp.asarray(tree.points),
                "lengths": jnp.asarray(tree.lengths)}
    return None


# ----------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------


class _StreamBuffer:
    """The kept tokens not yet cut into blocks, preceded by ``window`` tokens of left
    context; starts with ``window`` padding tokens (sentence −1: never a context)."""

    def __init__(self, window: int):
        self.ids = np.zeros(window, np.int32)
        self.sent = np.full(window, -1, np.int32)
        self.reach = np.zeros(window, np.int32)
        self.progress = np.ones(window, np.float32)
        self.real = window  # tokens from the stream (the rest is padding)

    def __len__(self) -> int:
        return self.ids.size

    def append(self, s: EpochStream) -> None:
        self.ids = np.concatenate([self.ids, s.ids])
        self.sent = np.concatenate([self.sent, s.sent])
        self.reach = np.concatenate([self.reach, s.reach])
        self.progress = np.concatenate([self.progress, s.progress])
        self.real = self.ids.size

    def pad_to(self, n: int) -> None:
        extra = n - self.ids.size
        if extra > 0:
            self.ids = np.concatenate([self.ids, np.zeros(extra, np.int32)])
            self.sent = np.concatenate([self.sent, np.full(extra, -1, np.int32)])
            self.reach = np.concatenate([self.reach, np.zeros(extra, np.int32)])
            self.progress = np.concatenate([self.progress, np.ones(extra, np.float32)])

    def drop(self, n: int) -> None:
        self.ids, self.sent = self.ids[n:], self.sent[n:]
        self.reach, self.progress = self.reach[n:], self.progress[n:]
        self.real = max(self.real - n, 0)


def epoch_blocks(chunks: EpochStream | Iterable[EpochStream], cfg: Config, epoch: int,
                 first: int = 0, devices: int | None = None
                 ) -> Iterator[tuple[int, float, dict[str, np.ndarray]]]:
    """Cuts an epoch's stream (one :class:`EpochStream` or its chunks) into device blocks.

    A block is ``steps_per_call`` steps of C centres, or of ``devices`` × C centres
    when ``devices`` is given: device d of a step takes centres d·C … (d+1)·C − 1. The stream is read chunk by chunk, so
    only a chunk and a block are in memory; the epoch's tail is padded with centres of
    reach 0 (no pairs). Yields (block index, progress in the epoch after the block,
    block) from block ``first`` on (resuming mid-epoch); the last block has progress
    1.0. The arrays are those of :func:`run_steps`, with a device axis after the step
    axis when ``devices`` is given.
    """
    if isinstance(chunks, EpochStream):
        chunks = [chunks]
    c, w, t = cfg.centres_per_step, cfg.window, cfg.steps_per_call
    n = t * (devices or 1) * c  # centres per block
    buf = _StreamBuffer(w)

    def cut(b: int, last: bool):
        lead = (t,) if devices is None else (t, devices)
        spans = np.lib.stride_tricks.sliding_window_view(buf.ids[:n + 2 * w], c + 2 * w)[::c]
        sents = np.lib.stride_tricks.sliding_window_view(buf.sent[:n + 2 * w], c + 2 * w)[::c]
        first_progress = buf.progress[w:w + n:c]  # of each (step, device)'s first centre
        block = {"tok": np.ascontiguousarray(spans).reshape(*lead, c + 2 * w),
                 "sent": np.ascontiguousarray(sents).reshape(*lead, c + 2 * w),
                 "reach": buf.reach[w:w + n].reshape(*lead, c),
                 "lr": learning_rate(cfg, epoch, first_progress).reshape(lead)}
        end = min(w + n, buf.real) - 1
        return b, (1.0 if last else float(buf.progress[end])), block

    b = 0
    for chunk in chunks:
        buf.append(chunk)
        while len(buf) >= n + 2 * w:  # a block's centres and their right context
            if b >= first:
                yield cut(b, last=False)
            buf.drop(n)
            b += 1
    while buf.real > w or b == 0:  # the tail, padded; at least one block an epoch
        last = buf.real <= w + n
        buf.pad_to(n + 2 * w)
        if b >= first:
            yield cut(b, last)
        buf.drop(n)
        b += 1


def _prefetch(it: Iterator, depth: int = 3) -> Iterator:
    """Runs an iterator in a background thread, ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class Progress(NamedTuple):
    """What the loop reports after each device call (one call late)."""

    epoch: int
    words: int  # raw words processed so far, all epochs
    total_words: int  # raw words to process in all
    loss: float  # mean loss per positive example over the last call
    lr: float
    words_per_sec: float  # this run's words over this run's time (a resumed run: since resuming)
    elapsed: float  # training seconds (not counting the compile ahead of training or the
    # pauses to evaluate or checkpoint); a resumed run goes on from ``Position.seconds``


def train(config: Config, vocab: Vocab, corpus: Corpus,
          on_progress: Callable[[Progress], None] | None = None,
          state: TrainState | None = None,
          on_epoch_end: Callable[[int, TrainState], None] | None = None,
          start: Position = Position(),
          checkpointer: Checkpointer | None = None,
          should_stop: Callable[[], bool] | None = None,
          chunk_tokens: int | None = None) -> TrainState:
    """Trains from scratch (or from ``state``) for ``config.epochs`` epochs.

    Args:
      config: hyper-parameters; vocab, corpus: from ``w2v_jax.corpus.load_corpus``.
      on_progress: called after each device call with a :class:`Progress`.
      state: optional initial TrainState (a restored checkpoint, imported vectors);
        default word2vec init.
      on_epoch_end: called with (epoch, state) after each epoch, e.g. to evaluate; its
        time is not counted in words/s. It must not keep ``state`` (it is donated on).
      start: where in the data ``state`` stands (a restored checkpoint's position).
      checkpointer: saves the state when ``checkpointer.due(words)``, when stopping, and
        at the end; a state is saved only once its loss has been checked finite.
      should_stop: polled after each device call; when true, a checkpoint is written
        and :class:`w2v_jax.errors.Interrupted` raised.
      chunk_tokens: corpus tokens sub-sampled at a time (default ``CHUNK_TOKENS``);
        the host's memory is bounded by it, not by the corpus
        (``w2v_jax.batching.epoch_chunks``).
    Returns:
      The final TrainState; ``np.asarray(state.w_in)`` are the word vectors (host
      arrays f32[V, d] after data-parallel training).

    With ``config.devices > 1`` or several processes (``jax.distributed``), training is
    data-parallel over a device mesh (``w2v_jax.parallel``); each process trains on its
    own contiguous shard of the corpus, and all advance call by call in lockstep.
    """
    corpus.check_trainable()
    return_large_buffers(mmap_threshold(jax.default_backend(), config.objective))
    release_free_heap()  # what reading the corpus left, before the compile
    cfg = config
    aux = objective_aux(cfg, vocab)
    single = cfg.devices == 1 and jax.process_count() == 1
    if single:
        compile_ahead(cfg, len(vocab), aux,
                      jax.random.key(cfg.seed) if state is None else state.key)
    if state is None:
        state = init_state(jax.random.key(cfg.seed), len(vocab), cfg.vector_size,
                           cfg.init_scale)
    keep = vocab.keep_probabilities(cfg.sample)
    processes, lo, hi, devices, parallel = 1, 0, corpus.ids.size, None, None
    if not single:
        from w2v_jax import parallel as dp

        parallel = dp.make_parallel(cfg, len(vocab))
        state = dp.place_state(state, parallel)
        processes, me, devices = jax.process_count(), jax.process_index(), parallel.local_devices
        lo, hi = corpus.ids.size * me // processes, corpus.ids.size * (me + 1) // processes

    def step(state, block):
        if parallel is None:
            return run_steps(state, aux, block, cfg=cfg)
        return dp.run_steps_parallel(state, aux, dp.place_block(block, parallel), cfg=cfg,
                                     par=parallel)

    def on_host(state):
        return state if parallel is None else dp.host_state(state, parallel)

    def host_blocks():
        for epoch in range(start.epoch, cfg.epochs):
            chunks = epoch_chunks(corpus.ids, corpus.sentence_ids, keep, cfg.window, cfg.seed,
                                  epoch, lo, hi, chunk_tokens or CHUNK_TOKENS, cfg.lanes)
            first = start.block if epoch == start.epoch else 0
            for b, prog, block in epoch_blocks(chunks, cfg, epoch, first, devices):
                yield epoch, b, prog, block

    def lockstep(items):
        """Every process runs the same calls: one whose shard of an epoch is used up
        feeds blocks with no centres until all are (a host collective per call)."""
        items, ahead = iter(items), None
        for epoch in range(start.epoch, cfg.epochs):
            b = start.block if epoch == start.epoch else 0
            while True:
                if ahead is None:
                    ahead = next(items, None)
                mine = ahead if ahead is not None and ahead[0] == epoch else None
                if not dp.any_process(mine is not None)[0]:
                    break
                if mine is None:
                    yield epoch, b, 1.0, _empty_block(cfg, devices, epoch)
                else:
                    yield mine
                    ahead = None
                b += 1

    total = cfg.epochs * corpus.raw_words
    words_at_start = start.words
    t0 = time.perf_counter()
    clock = start.seconds  # the trainer's clock when the last reported call finished

    def words_done(epoch, prog):
        return min(int(round((epoch + prog) * corpus.raw_words)), total)

    def report(call):
        """Checks and reports a finished call's loss (blocks until that call is done)."""
        if call["reported"]:
            return
        call["reported"] = True
        loss = float(call["loss"]) / max(float(call["count"]), 1.0)
        if not np.isfinite(loss):
            where = ("" if checkpointer is None or checkpointer.last_step is None else
                     f" (the last good checkpoint, step {checkpointer.last_step}, stays in "
                     f"{checkpointer.directory} until then)")
            # --resume would go on with the settings that diverged: start again instead.
            cap = ("" if cfg.objective == "softmax" else
                   ", or a lower max_row_terms (a small vocabulary's frequent rows)")
            raise W2VError(f"training diverged (loss is {loss}) in epoch {call['epoch'] + 1}; "
                           f"start again with a lower alpha or batch_size{cap} (CLI: --alpha, "
                           f"--batch-size{'' if not cap else ', --max-row-terms'}, with "
                           f"--overwrite){where}")
        nonlocal clock
        el = time.perf_counter() - t0
        if start.seconds is not None:
            clock = start.seconds + el
        if on_progress is not None:
            rate = (call["words"] - words_at_start) / max(el, 1e-9)
            on_progress(Progress(call["epoch"], call["words"], total, loss, call["lr"], rate,
                                 (start.seconds or 0.0) + el))

    def end_epoch(epoch):
        nonlocal t0
        if on_epoch_end is not None:
            paused = time.perf_counter()
            on_epoch_end(epoch, on_host(state))
            t0 += time.perf_counter() - paused

    def save(position):
        nonlocal t0
        paused = time.perf_counter()
        host = on_host(state)  # with several processes: a collective gather of the tables
        if checkpointer is not None:
            # The clock as Progress last had it (every save follows a report of the call it
            # saves), not counting the bookkeeping since; unknown stays unknown. A run
            # resumed at its end then reports the same training time as the run did.
            checkpointer.save(host, dataclasses.replace(position, seconds=clock))
        t0 += time.perf_counter() - paused

    def agreed(*flags: bool) -> tuple[bool, ...]:
        """The flags or-ed over all processes, so that all take the same decisions (only
        process 0 holds a Checkpointer; a stop signal may reach one process only)."""
        return flags if processes == 1 else dp.any_process(*flags)

    position = start
    release_free_heap()  # what making the tables left
    checkpointing, first_save = agreed(checkpointer is not None,
                                       checkpointer is not None and checkpointer.last_step is None)
    if first_save:
        save(position)  # a first good checkpoint, for runs that diverge before the first interval
    pending = None  # the call in flight: its loss is read one call late
    blocks = _prefetch(host_blocks())
    for epoch, b, prog, block in (blocks if processes == 1 else lockstep(blocks)):
        if pending is not None and epoch != pending["epoch"]:
            report(pending)
            end_epoch(pending["epoch"])
        state, (loss, count) = step(state, block)
        if pending is None:
            release_free_heap()  # the compiler's memory; the call itself runs on
        else:
            report(pending)
        pending = {"loss": loss, "count": count, "epoch": epoch, "words": words_done(epoch, prog),
                   "lr": float(np.ravel(block["lr"])[-1]), "reported": False}
        position = (Position(epoch + 1, 0, pending["words"]) if prog >= 1.0
                    else Position(epoch, b + 1, pending["words"]))
        stop, due = agreed(should_stop is not None and should_stop(),
                           checkpointer is not None and checkpointer.due(position.words))
        if checkpointing and (stop or due):
            report(pending)
            save(position)
        if stop:
            # Stopped at an epoch's last block (of every process): evaluate it now, since
            # the resumed run starts at the next epoch.
            if not agreed(prog < 1.0)[0]:
                report(pending)
                end_epoch(epoch)
            raise Interrupted(None if checkpointer is None else checkpointer.last_step)
    if pending is not None:
        report(pending)
        end_epoch(pending["epoch"])
    if checkpointing:
        save(position)
    if checkpointer is not None:
        checkpointer.wait()
    jax.block_until_ready(state)
    return on_host(state)


def _empty_block(cfg: Config, devices: int | None, epoch: int) -> dict[str, np.ndarray]:
    """A block with no centres (every reach 0): a call that changes nothing. Its arrays
    have a device axis after the step axis unless ``devices`` is None."""
    c, w, t = cfg.centres_per_step, cfg.window, cfg.steps_per_call
    lead = (t,) if devices is None else (t, devices)
    return {"tok": np.zeros((*lead, c + 2 * w), np.int32),
            "sent": np.full((*lead, c + 2 * w), -1, np.int32),
            "reach": np.zeros((*lead, c), np.int32),
            "lr": learning_rate(cfg, epoch, np.ones(lead, np.float32))}


def compile_ahead(cfg: Config, vocab_size: int, aux: Any, key: jax.Array) -> None:
    """Compiles :func:`run_steps` for ``cfg`` before the tables and the first block exist.

    XLA's compiler holds ~80–100 MB while it works (a CBOW step, bench corpus); done
    first, that transient sits on the loaded corpus alone rather than on the tables and
    the host's first chunk as well, so the run's peak memory is lower. The later call
    with arrays of these shapes finds the program in ``jit``'s cache.

    Args:
      key: the PRNG key the state will hold (only its type is used).
    """
    table = jax.ShapeDtypeStruct((vocab_size, cfg.vector_size), jnp.float32)
    state = TrainState(table, table, jax.ShapeDtypeStruct((), jnp.int32), key)
    block = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
             for k, v in _empty_block(cfg, None, 0).items()}
    run_steps.lower(state, aux, block, cfg=cfg).compile()
    release_free_heap()


def _ends_mid_line(path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # os.devnull, or nothing there yet
        return False


class MetricsWriter:
    """Appends one JSON object per line; a progress callback for :func:`train`."""

    def __init__(self, path, every_sec: float = 1.0):
        self._f = open(path, "a", encoding="utf-8")
        if _ends_mid_line(path):  # a killed writer's partial record stays on a line of its own
            self._f.write("\n")
        self._every = every_sec
        self._last = -np.inf

    def __call__(self, p: Progress) -> None:
        if p.elapsed - self._last >= self._every or p.words >= p.total_words:
            self._last = p.elapsed
            self.write(p._asdict())

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
