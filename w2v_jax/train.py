"""Training: a pure, jitted multi-step update over a TrainState pytree, and the host loop.

The device side is one function, ``run_steps(state, aux, block, cfg) -> (state, stats)``:
a ``lax.scan`` over ``steps_per_call`` SGD steps, compiled once per config, with the
state donated so the two V×d tables are updated in place. A step takes C consecutive
centres of the epoch's sub-sampled stream, gathers the rows of the span around them
once, forms the pairs (SG) or windows (CBOW) as static shifts of the span, computes the
closed-form gradients of ``w2v_jax.objectives`` (the same math; tests check that one
step equals the pure functions) and scatter-adds one update per touched row. The
objective (negative sampling, full softmax, hierarchical softmax) picks the step
function from ``STEPS``; everything else is shared.

The host side sub-samples each epoch (``w2v_jax.batching``) in a background thread,
cuts the stream into fixed-shape blocks with the learning rate of each step (linear
decay from ``alpha`` to ``min_alpha`` over all training words), and reads loss and
words/s a call late, so the device never waits for the host. Blocks are resumable:
``train(start=Position(epoch, block))`` regenerates the epoch's stream and skips to the
block, and a ``Checkpointer`` saves the state between calls (``w2v_jax.checkpoint``).
"""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax import objectives, sampling
from w2v_jax.batching import EpochStream, epoch_stream
from w2v_jax.config import Config
from w2v_jax.corpus import Corpus
from w2v_jax.checkpoint import Checkpointer, Position
from w2v_jax.errors import Interrupted, W2VError
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


def init_state(key: jax.Array, vocab_size: int, vector_size: int) -> TrainState:
    """word2vec's initialisation: W_in ~ U(−0.5/d, 0.5/d), W_out = 0.

    W_in is drawn by numpy seeded from the key: XLA's PRNG would hold several V×d
    temporaries at once (≈ 120 MB for a 52k×100 table, the whole budget of a small run).
    """
    k_init, k_run = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_init)).ravel().tolist())
    half = 0.5 / vector_size
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

    A loop rather than an unrolled sum: XLA:CPU would otherwise fuse the sum into every
    consumer and recompute it per use (its output is not materialised otherwise).
    """
    c = weight.shape[0]
    offs = jnp.asarray(_offsets(window))

    def add(j, acc):
        rows = jax.lax.dynamic_slice_in_dim(span, window + offs[j], c)
        return acc + weight[:, j, None] * rows

    return jax.lax.fori_loop(0, 2 * window, add, jnp.zeros((c, span.shape[1]), span.dtype))


def _positive(h: jax.Array, ctx: jax.Array, weight: jax.Array):
    """One positive output row per example: (loss, d_h, d_ctx), all on f[C, d] arrays.

    weight: f[C], 1 for a real pair, 0 for padding.
    """
    score = jnp.sum(h * ctx, axis=1)
    e = _materialize((jax.nn.sigmoid(score) - 1.0) * weight)
    return -jnp.sum(weight * jax.nn.log_sigmoid(score)), e[:, None] * ctx, e[:, None] * h


def _shared_negatives(h: jax.Array, weight: jax.Array, c_neg: jax.Array):
    """Negative terms of C examples, S consecutive ones sharing K negative rows.

    Each example's K terms are weighted by ``weight`` (its number of pairs).
    Computed one negative at a time on f[C, d] arrays: XLA:CPU fuses these into a few
    loops, whereas a batch of tiny S×d·d×K matmuls runs an order of magnitude slower.

    Args:
      h: f[C, d]; weight: f[C]; c_neg: f[G, K, d] with G·S = C.
    Returns:
      (loss f[], d_h f[C, d], d_c_neg f[G, K, d]).
    """
    c, d = h.shape
    g, k, _ = c_neg.shape
    s = c // g
    loss, d_h, d_neg = 0.0, 0.0, []
    for j in range(k):
        neg = jnp.repeat(c_neg[:, j], s, axis=0)  # f[C, d]
        score = jnp.sum(h * neg, axis=1)
        loss = loss - jnp.sum(weight * jax.nn.log_sigmoid(-score))
        e = _materialize(jax.nn.sigmoid(score) * weight)
        d_h = d_h + e[:, None] * neg
        d_neg.append(jnp.sum((e[:, None] * h).reshape(g, s, d), axis=1))
    return loss, d_h, jnp.stack(d_neg, axis=1)




def _row_term_cap(ids: jax.Array, terms: jax.Array, vocab_size: int, cap: float) -> jax.Array:
    """f[N]: min(1, cap / T) for each entry, T = Σ ``terms`` over all entries of its id.

    ids: i32[N] the rows a step scatter-adds to (repeats allowed); terms: f[N] the gradient
    terms summed into each entry. The step's terms of a row are all computed from its old
    value; at sample=1e-3 and alpha 0.035 the rows of the most frequent words, hit by
    tens of terms a step, diverged. Rows with few terms (nearly all) are left untouched.
    """
    total = jnp.zeros(vocab_size, terms.dtype).at[ids].add(terms)[ids]
    return jnp.minimum(1.0, cap / jnp.maximum(total, 1.0))


def _sg_step(params, ex, cfg: Config):
    """Skip-gram: h = W_in[centre]; positives are the span's W_out rows at each offset."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok = ex["tok"]
    centres = tok[w:w + c]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(w_in.dtype)  # f[C, 2W]
    n = jnp.sum(mask, axis=1)  # pairs per centre
    h = w_in[centres]  # f[C, d]
    span = w_out[tok]  # f[C + 2W, d]
    # Each context offset has its own negatives: a pair's K negatives are shared only
    # with the pairs at the same offset of the S − 1 neighbouring centres (different h),
    # so every centre sees fresh negatives for each of its pairs, as in word2vec.
    negs = ex["negs"]  # i32[2W, G, K]
    loss, d_h, d_neg = 0.0, 0.0, []
    d_span = jnp.zeros_like(span)
    for j, o in enumerate(_offsets(w)):
        l_pos, dh_pos, dc = _positive(h, span[w + o:w + o + c], mask[:, j])
        l_neg, dh_neg, dn = _shared_negatives(h, mask[:, j], w_out[negs[j]])
        loss, d_h = loss + l_pos + l_neg, d_h + dh_pos + dh_neg
        d_span = d_span.at[w + o:w + o + c].add(dc)
        d_neg.append(dn)
    d_neg = jnp.stack(d_neg)  # f[2W, G, K, d]
    rows = jnp.concatenate([tok, negs.reshape(-1)])
    d_out = jnp.concatenate([d_span, d_neg.reshape(-1, h.shape[1])])
    if cfg.row_term_cap is not None:
        # Terms per scatter entry: pairs whose context is that span token; for a
        # negative draw, the real pairs of its S centres at its offset.
        g = negs.shape[1]
        t_span = jnp.zeros(span.shape[0], mask.dtype)
        for j, o in enumerate(_offsets(w)):
            t_span = t_span.at[w + o:w + o + c].add(mask[:, j])
        t_neg = jnp.broadcast_to(jnp.sum(mask.T.reshape(2 * w, g, -1), axis=2)[..., None],
                                 negs.shape)
        v, cap = w_in.shape[0], cfg.row_term_cap
        d_h = d_h * _row_term_cap(centres, n, v, cap)[:, None]
        d_out = d_out * _row_term_cap(rows, jnp.concatenate([t_span, t_neg.reshape(-1)]),
                                      v, cap)[:, None]
    lr = ex["lr"]
    w_in = w_in.at[centres].add(-lr * d_h)
    w_out = w_out.at[rows].add(-lr * d_out)
    return (w_in, w_out), (loss, jnp.sum(n))


def _spread_to_context(w_in, tok, d_h, mask, n, lr, cfg: Config):
    """CBOW's W_in update: each context row of window c gets -lr·∂J/∂h[c].

    word2vec C and gensim add the whole ∂J/∂h to every context row; "exact" adds its
    1/count share (the true gradient of the mean). One scatter over the span's rows.
    """
    w, c = cfg.window, cfg.batch_size
    if cfg.cbow_update == "exact":
        d_h = d_h / jnp.maximum(n, 1.0)[:, None]
    d_span = jnp.zeros((tok.shape[0], d_h.shape[1]), d_h.dtype)
    for j, o in enumerate(_offsets(w)):
        d_span = d_span.at[w + o:w + o + c].add(mask[:, j, None] * d_h)
    return w_in.at[tok].add(-lr * d_span)


def _cbow_hidden(w_in, ex, cfg: Config):
    """CBOW's hidden vectors: the mean of each window's W_in rows.

    Returns (mask f[C, 2W], n f[C] context words per window, valid f[C] 1 where a window
    has context, h f[C, d]).
    """
    w = cfg.window
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(w_in.dtype)  # f[C, 2W]
    n = jnp.sum(mask, axis=1)
    valid = (n > 0).astype(w_in.dtype)  # a window with no context trains nothing
    h = _window_sum(w_in[ex["tok"]], mask / jnp.maximum(n, 1.0)[:, None], w)
    return mask, n, valid, h


def _cbow_step(params, ex, cfg: Config):
    """CBOW: h = mean of the span's W_in rows in the window; the target is the centre."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok = ex["tok"]
    mask, n, valid, h = _cbow_hidden(w_in, ex, cfg)
    targets = tok[w:w + c]
    negs = ex["negs"]  # i32[G, K]
    loss, d_h, d_pos = _positive(h, w_out[targets], valid)
    l_neg, dh_neg, d_neg = _shared_negatives(h, valid, w_out[negs])
    loss, d_h = loss + l_neg, d_h + dh_neg
    lr = ex["lr"]
    w_in = _spread_to_context(w_in, tok, d_h, mask, n, lr, cfg)
    rows = jnp.concatenate([targets, negs.reshape(-1)])
    w_out = w_out.at[rows].add(-lr * jnp.concatenate([d_pos, d_neg.reshape(-1, h.shape[1])]))
    return (w_in, w_out), (loss, jnp.sum(valid))


def _sg_softmax_step(params, ex, cfg: Config, aux=None):
    """Skip-gram, full softmax: each centre's 2W context words share one softmax over V,
    so a step is two dense matmuls against W_out and every W_out row is updated."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok, lr = ex["tok"], ex["lr"]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(w_in.dtype)  # f[C, 2W]
    centres = tok[w:w + c]
    targets = jnp.stack([tok[w + o:w + o + c] for o in _offsets(w)], axis=1)  # i[C, 2W]
    h = w_in[centres]
    loss = objectives.softmax_batch_loss(h, w_out, targets, mask)
    d_h, d_w_out = objectives.softmax_batch_grads(h, w_out, targets, mask)
    return (w_in.at[centres].add(-lr * d_h), w_out - lr * d_w_out), (loss, jnp.sum(mask))


def _cbow_softmax_step(params, ex, cfg: Config, aux=None):
    """CBOW, full softmax: the window mean predicts the centre over all V words."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok, lr = ex["tok"], ex["lr"]
    mask, n, valid, h = _cbow_hidden(w_in, ex, cfg)
    targets = tok[w:w + c, None]
    loss = objectives.softmax_batch_loss(h, w_out, targets, valid[:, None])
    d_h, d_w_out = objectives.softmax_batch_grads(h, w_out, targets, valid[:, None])
    w_in = _spread_to_context(w_in, tok, d_h, mask, n, lr, cfg)
    return (w_in, w_out - lr * d_w_out), (loss, jnp.sum(valid))


def _centre_paths(tree, centres, dtype):
    """The Huffman paths of the centres: (points i[C, L], codes f[C, L], on-path f[C, L])."""
    depth = tree["codes"].shape[1]
    on_path = (jnp.arange(depth) < tree["lengths"][centres][:, None]).astype(dtype)
    return tree["points"][centres], tree["codes"][centres].astype(dtype), on_path


def _sg_hs_step(params, ex, cfg: Config, aux):
    """Skip-gram, hierarchical softmax, in word2vec C's form: each context word's W_in
    row predicts the centre along the centre's Huffman path. All 2W pairs of a centre
    share that path, so its inner-node rows are gathered and scattered once per centre."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok, lr = ex["tok"], ex["lr"]
    mask = _window_mask(ex["sent"], ex["reach"], w).astype(w_in.dtype)
    points, codes, on_path = _centre_paths(aux, tok[w:w + c], w_in.dtype)
    nodes = w_out[points]  # f[C, L, d]
    span = w_in[tok]  # f[C + 2W, d]
    loss, d_nodes = 0.0, 0.0
    d_span = jnp.zeros_like(span)
    for j, o in enumerate(_offsets(w)):
        h, m = span[w + o:w + o + c], on_path * mask[:, j, None]
        loss = loss + objectives.hs_batch_loss(h, nodes, codes, m)
        d_h, dn = objectives.hs_batch_grads(h, nodes, codes, m)
        d_span = d_span.at[w + o:w + o + c].add(d_h)
        d_nodes = d_nodes + dn
    if cfg.row_term_cap is not None:
        # A node entry (c, l) carries the n_c pairs of centre c; a span row the pairs
        # it is the context of. Nodes near the root collect every pair of the step.
        v, cap = w_in.shape[0], cfg.row_term_cap
        n = jnp.sum(mask, axis=1)
        scale = _row_term_cap(points.reshape(-1), (on_path * n[:, None]).reshape(-1), v, cap)
        d_nodes = d_nodes * scale.reshape(points.shape)[..., None]
        t_span = jnp.zeros(span.shape[0], mask.dtype)
        for j, o in enumerate(_offsets(w)):
            t_span = t_span.at[w + o:w + o + c].add(mask[:, j])
        d_span = d_span * _row_term_cap(tok, t_span, v, cap)[:, None]
    w_out = w_out.at[points.reshape(-1)].add(-lr * d_nodes.reshape(-1, span.shape[1]))
    return (w_in.at[tok].add(-lr * d_span), w_out), (loss, jnp.sum(mask))


def _cbow_hs_step(params, ex, cfg: Config, aux):
    """CBOW, hierarchical softmax: the window mean predicts the centre along its path."""
    w_in, w_out = params
    w, c = cfg.window, cfg.batch_size
    tok, lr = ex["tok"], ex["lr"]
    mask, n, valid, h = _cbow_hidden(w_in, ex, cfg)
    points, codes, on_path = _centre_paths(aux, tok[w:w + c], w_in.dtype)
    nodes, m = w_out[points], on_path * valid[:, None]
    loss = objectives.hs_batch_loss(h, nodes, codes, m)
    d_h, d_nodes = objectives.hs_batch_grads(h, nodes, codes, m)
    if cfg.row_term_cap is not None:
        scale = _row_term_cap(points.reshape(-1), m.reshape(-1), w_in.shape[0], cfg.row_term_cap)
        d_nodes = d_nodes * scale.reshape(points.shape)[..., None]
    w_in = _spread_to_context(w_in, tok, d_h, mask, n, lr, cfg)
    w_out = w_out.at[points.reshape(-1)].add(-lr * d_nodes.reshape(-1, h.shape[1]))
    return (w_in, w_out), (loss, jnp.sum(valid))


# The registry: objective → (skip-gram step, CBOW step). A step maps (params, one step's
# slice of the block, cfg, aux) to (params, (summed loss, number of examples)); adding an
# objective is adding its pure functions to w2v_jax.objectives, its two steps here and,
# if it needs constant arrays, a case in objective_aux.
STEPS = {
    "ns": (lambda p, ex, cfg, aux: _sg_step(p, ex, cfg),
           lambda p, ex, cfg, aux: _cbow_step(p, ex, cfg)),
    "softmax": (_sg_softmax_step, _cbow_softmax_step),
    "hs": (_sg_hs_step, _cbow_hs_step),
}


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def run_steps(state: TrainState, aux: Any, block: dict[str, jax.Array],
              cfg: Config) -> tuple[TrainState, tuple[jax.Array, jax.Array]]:
    """Runs ``T = block['lr'].shape[0]`` SGD steps.

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
    xs = block
    if cfg.objective == "ns":
        # All negatives of the call in one draw: per-step draws of a few thousand numbers
        # spend most of their time in the PRNG's loop overhead on CPU.
        key = jax.random.fold_in(state.key, state.step)
        shape = (cfg.batch_size // cfg.negatives_shared_by, cfg.negative)
        if cfg.sg:
            shape = (2 * cfg.window, *shape)  # one draw per context offset
        if cfg.sampler == "categorical":
            # Its Gumbel noise is ~64 floats per draw: draw step by step to bound memory.
            negs = jax.lax.map(lambda k: sampling.draw(cfg.sampler, aux, k, shape),
                               jax.random.split(key, t))
        else:
            negs = sampling.draw(cfg.sampler, aux, key, (t, *shape))
        xs = dict(block, negs=negs)
    step_fn = STEPS[cfg.objective][0 if cfg.sg else 1]

    def body(params, ex):
        return step_fn(params, ex, cfg, aux)

    params, (losses, counts) = jax.lax.scan(body, (state.w_in, state.w_out), xs)
    new_state = TrainState(params[0], params[1], state.step + t, state.key)
    return new_state, (jnp.sum(losses), jnp.sum(counts))


def objective_aux(cfg: Config, vocab: Vocab) -> Any:
    """The constant arrays ``run_steps`` needs for ``cfg.objective``."""
    if cfg.objective == "ns":
        return sampling.build(cfg.sampler, vocab.noise_distribution(cfg.ns_exponent))
    if cfg.objective == "hs":
        tree = build_huffman(vocab.counts)
        return {"codes": jnp.asarray(tree.codes), "points": jnp.asarray(tree.points),
                "lengths": jnp.asarray(tree.lengths)}
    return None


# ----------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------


def epoch_blocks(stream: EpochStream, cfg: Config, epoch: int,
                 first: int = 0) -> Iterator[tuple[int, float, dict[str, np.ndarray]]]:
    """Cuts an epoch's stream into device blocks of ``steps_per_call`` steps.

    The tail is padded with centres of reach 0 (no pairs). Yields (block index, progress
    in the epoch after the block, block) from block ``first`` on (resuming mid-epoch),
    with the arrays documented in :func:`run_steps`; the last block has progress 1.0.
    """
    c, w, t = cfg.batch_size, cfg.window, cfg.steps_per_call
    m = len(stream)
    n_blocks = max(1, -(-m // (c * t)))
    length = n_blocks * t * c
    ids = np.zeros(length + 2 * w, np.int32)
    ids[w:w + m] = stream.ids
    sent = np.full(length + 2 * w, -1, np.int32)
    sent[w:w + m] = stream.sent
    reach = np.zeros(length, np.int32)
    reach[:m] = stream.reach
    first_progress = np.ones(n_blocks * t, np.float32)  # progress of each step's first centre
    first_progress[: -(-m // c)] = stream.progress[::c]
    spans = np.lib.stride_tricks.sliding_window_view(ids, c + 2 * w)[::c]
    sent_spans = np.lib.stride_tricks.sliding_window_view(sent, c + 2 * w)[::c]
    for b in range(first, n_blocks):
        steps = slice(b * t, (b + 1) * t)
        block = {"tok": np.ascontiguousarray(spans[steps]),
                 "sent": np.ascontiguousarray(sent_spans[steps]),
                 "reach": reach[b * t * c:(b + 1) * t * c].reshape(t, c),
                 "lr": learning_rate(cfg, epoch, first_progress[steps])}
        end = min((b + 1) * t * c, m) - 1
        yield b, (1.0 if b == n_blocks - 1 else float(stream.progress[end])), block


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
    words_per_sec: float
    elapsed: float


def train(config: Config, vocab: Vocab, corpus: Corpus,
          on_progress: Callable[[Progress], None] | None = None,
          state: TrainState | None = None,
          on_epoch_end: Callable[[int, TrainState], None] | None = None,
          start: Position = Position(),
          checkpointer: Checkpointer | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainState:
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
    Returns:
      The final TrainState; ``np.asarray(state.w_in)`` are the word vectors.
    """
    corpus.check_trainable()
    cfg = config
    if state is None:
        state = init_state(jax.random.key(cfg.seed), len(vocab), cfg.vector_size)
    aux = objective_aux(cfg, vocab)
    keep = vocab.keep_probabilities(cfg.sample)
    sent = corpus.sentence_ids()

    def host_blocks():
        for epoch in range(start.epoch, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            stream = epoch_stream(corpus.ids, sent, keep, cfg.window, rng)
            first = start.block if epoch == start.epoch else 0
            for b, prog, block in epoch_blocks(stream, cfg, epoch, first):
                yield epoch, b, prog, block
            del stream  # before the next epoch's is made: one epoch's arrays alive, not two

    total = cfg.epochs * corpus.raw_words
    words_at_start = start.words
    t0 = time.perf_counter()

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
                     f"; the last good checkpoint (step {checkpointer.last_step}) is kept in "
                     f"{checkpointer.directory}")
            raise W2VError(f"training diverged (loss is {loss}) in epoch {call['epoch'] + 1}"
                           f"{where}; lower --alpha or --batch-size")
        if on_progress is not None:
            el = time.perf_counter() - t0
            rate = (call["words"] - words_at_start) / max(el, 1e-9)
            on_progress(Progress(call["epoch"], call["words"], total, loss, call["lr"], rate, el))

    def end_epoch(epoch):
        nonlocal t0
        if on_epoch_end is not None:
            paused = time.perf_counter()
            on_epoch_end(epoch, state)
            t0 += time.perf_counter() - paused

    def save(position):
        nonlocal t0
        paused = time.perf_counter()
        checkpointer.save(state, position)
        t0 += time.perf_counter() - paused

    position = start
    if checkpointer is not None and checkpointer.last_step is None:
        save(position)  # a first good checkpoint, for runs that diverge before the first interval
    pending = None  # the call in flight: its loss is read one call late
    for epoch, b, prog, block in _prefetch(host_blocks()):
        if pending is not None and epoch != pending["epoch"]:
            report(pending)
            end_epoch(pending["epoch"])
        state, (loss, count) = run_steps(state, aux, block, cfg=cfg)
        if pending is not None:
            report(pending)
        pending = {"loss": loss, "count": count, "epoch": epoch, "words": words_done(epoch, prog),
                   "lr": float(block["lr"][-1]), "reported": False}
        position = (Position(epoch + 1, 0, pending["words"]) if prog >= 1.0
                    else Position(epoch, b + 1, pending["words"]))
        stop = should_stop is not None and should_stop()
        if checkpointer is not None and (stop or checkpointer.due(position.words)):
            report(pending)
            save(position)
        if stop:
            raise Interrupted(None if checkpointer is None else checkpointer.last_step)
    if pending is not None:
        report(pending)
        end_epoch(pending["epoch"])
    if checkpointer is not None:
        save(position)
        checkpointer.wait()
    jax.block_until_ready(state)
    return state


class MetricsWriter:
    """Appends one JSON object per line; a progress callback for :func:`train`."""

    def __init__(self, path, every_sec: float = 1.0):
        self._f = open(path, "a", encoding="utf-8")
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
