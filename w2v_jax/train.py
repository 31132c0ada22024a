"""Training: a pure, jitted multi-step update over a TrainState pytree, and the host loop.

The device side is one function, ``run_steps(state, table, block) -> (state, stats)``:
a ``lax.scan`` over ``steps_per_call`` SGD steps, compiled once, with the state donated
so the two V×d tables are updated in place. Each step gathers the rows it needs,
computes closed-form gradients with ``w2v_jax.objectives`` (vmapped over groups of S
pairs that share one draw of negatives) and scatter-adds sparse updates into the touched
rows only.

The host side reads examples from ``w2v_jax.batching`` in a background thread (numpy
releases the GIL, so this uses the second core), packs them into fixed-shape blocks,
attaches the learning rate of each step (linear decay from ``alpha`` to ``min_alpha``
over all training words) and reports loss and words/s a call late, so the device never
waits for the host.
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
from w2v_jax.batching import Examples, epoch_examples
from w2v_jax.config import Config
from w2v_jax.corpus import Corpus
from w2v_jax.errors import W2VError
from w2v_jax.vocab import Vocab


class TrainState(NamedTuple):
    """Everything that changes during training.

    Attributes:
      w_in: f32[V, d] input (centre) vectors: the embeddings users keep.
      w_out: f32[V, d] output (context) vectors.
      step: i32[] SGD steps taken.
      key: the run's PRNG key; step t draws its negatives with ``fold_in(key, t)``.
    """

    w_in: jax.Array
    w_out: jax.Array
    step: jax.Array
    key: jax.Array


def init_state(key: jax.Array, vocab_size: int, vector_size: int) -> TrainState:
    """word2vec's initialisation: W_in ~ U(−0.5/d, 0.5/d), W_out = 0."""
    k_init, k_run = jax.random.split(key)
    half = 0.5 / vector_size
    w_in = jax.random.uniform(k_init, (vocab_size, vector_size), jnp.float32, -half, half)
    return TrainState(w_in, jnp.zeros_like(w_in), jnp.zeros((), jnp.int32), k_run)


def learning_rate(config: Config, epoch: int, progress: np.ndarray) -> np.ndarray:
    """Linear decay from alpha to min_alpha over all epochs; ``progress`` ∈ [0, 1) within ``epoch``."""
    done = (epoch + np.asarray(progress, np.float64)) / config.epochs
    a0 = config.learning_rate
    return np.maximum(a0 - (a0 - config.min_alpha) * done, config.min_alpha).astype(np.float32)


# ----------------------------------------------------------------------------------
# Device side
# ----------------------------------------------------------------------------------


def _ns_update(w_out, key, h, targets, valid, cfg: Config, table):
    """Shared NS part of SG and CBOW: returns (loss, d_h f[B, d], new w_out).

    h: f[B, d] hidden vectors; targets: i32[B] positive output rows; valid: f[B] 1/0.
    """
    b, d = h.shape
    s, k = cfg.shared_negatives, cfg.negative
    g = b // s
    negs = sampling.draw(cfg.sampler, table, key, (g, k))  # i32[G, K]
    c_pos = w_out[targets] * valid[:, None]
    c_neg = w_out[negs]  # f[G, K, d]
    h = h * valid[:, None]
    loss, (d_h, d_pos, d_neg) = jax.vmap(objectives.ns_block_value_and_grads)(
        h.reshape(g, s, d), c_pos.reshape(g, s, d), c_neg)
    # Padded pairs have h = c_pos = 0: their loss is K·log 2 + log 2, their d_h is not 0.
    loss = jnp.sum(loss) - (b - jnp.sum(valid)) * (k + 1) * jnp.log(2.0)
    d_h = d_h.reshape(b, d) * valid[:, None]
    rows = jnp.concatenate([targets, negs.reshape(-1)])
    grads = jnp.concatenate([d_pos.reshape(b, d), d_neg.reshape(g * k, d)])
    return loss, d_h, rows, grads


def _sg_step(params, key, ex, lr, cfg: Config, table):
    w_in, w_out = params
    centre, valid = ex["inputs"], ex["valid"]
    loss, d_h, rows, grads = _ns_update(w_out, key, w_in[centre], ex["targets"], valid, cfg, table)
    w_in = w_in.at[centre].add(-lr * d_h)
    w_out = w_out.at[rows].add(-lr * grads)
    return (w_in, w_out), loss


def _cbow_step(params, key, ex, lr, cfg: Config, table):
    w_in, w_out = params
    ctx, mask, valid = ex["inputs"], ex["mask"], ex["valid"]
    m = mask.astype(w_in.dtype)  # f[B, C]
    count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1.0)
    h = jnp.einsum("bc,bcd->bd", m, w_in[ctx]) / count
    loss, d_h, rows, grads = _ns_update(w_out, key, h, ex["targets"], valid, cfg, table)
    # word2vec C / gensim add the whole d_h to every context row; "exact" divides by count.
    scale = m if cfg.cbow_update == "word2vec" else m / count
    upd = scale[:, :, None] * d_h[:, None, :]  # f[B, C, d]
    w_in = w_in.at[ctx.reshape(-1)].add(-lr * upd.reshape(-1, h.shape[1]))
    w_out = w_out.at[rows].add(-lr * grads)
    return (w_in, w_out), loss


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def run_steps(state: TrainState, table: sampling.Table, block: dict[str, jax.Array],
              cfg: Config) -> tuple[TrainState, jax.Array]:
    """Runs ``T = block['lr'].shape[0]`` SGD steps.

    Args:
      state: the TrainState (donated).
      table: the negative sampler's table (``w2v_jax.sampling.build``).
      block: ``inputs`` i32[T, B] (SG centres) or i32[T, B, C] (CBOW contexts),
        ``mask`` bool[T, B, C] (CBOW only), ``targets`` i32[T, B], ``valid`` f32[T, B]
        (0 for padding), ``lr`` f32[T].
      cfg: the Config (static: one compilation per config).
    Returns:
      (new state, f32[] the summed loss of the valid examples).
    """
    step_fn = _sg_step if cfg.sg else _cbow_step

    def body(carry, ex):
        params, step = carry
        key = jax.random.fold_in(state.key, step)
        params, loss = step_fn(params, key, ex, ex["lr"], cfg, table)
        return (params, step + 1), loss

    (params, step), losses = jax.lax.scan(body, ((state.w_in, state.w_out), state.step), block)
    return TrainState(params[0], params[1], step, state.key), jnp.sum(losses)


# ----------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------


def _with_last(it: Iterator) -> Iterator[tuple[Any, bool]]:
    """Yields (item, is_last) pairs."""
    it = iter(it)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def _blocks(examples: Iterator[Examples], size: int) -> Iterator[tuple[Examples, int]]:
    """Re-cuts a stream of example chunks into blocks of exactly ``size`` (last one padded).

    Yields (Examples of ``size`` rows, n_valid).
    """
    buf: list[Examples] = []
    have = 0
    for ex in examples:
        buf.append(ex)
        have += len(ex)
        while have >= size:
            cat = _concat(buf)
            yield _take(cat, 0, size), size
            rest = _take(cat, size, len(cat))
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have:
        cat = _concat(buf)
        yield _pad(cat, size), have


def _concat(exs: list[Examples]) -> Examples:
    if len(exs) == 1:
        return exs[0]
    return Examples(
        inputs=np.concatenate([e.inputs for e in exs]),
        mask=None if exs[0].mask is None else np.concatenate([e.mask for e in exs]),
        targets=np.concatenate([e.targets for e in exs]),
        progress=np.concatenate([e.progress for e in exs]),
    )


def _take(ex: Examples, a: int, b: int) -> Examples:
    return Examples(ex.inputs[a:b], None if ex.mask is None else ex.mask[a:b],
                    ex.targets[a:b], ex.progress[a:b])


def _pad(ex: Examples, size: int) -> Examples:
    n = size - len(ex)

    def pad(x, value=0):
        return np.concatenate([x, np.full((n,) + x.shape[1:], value, dtype=x.dtype)])

    last = ex.progress[-1] if len(ex) else 0.0
    return Examples(pad(ex.inputs), None if ex.mask is None else pad(ex.mask, False),
                    pad(ex.targets), pad(ex.progress, last))


def _device_block(ex: Examples, n_valid: int, cfg: Config, epoch: int) -> dict[str, np.ndarray]:
    t, b = cfg.steps_per_call, cfg.batch_size
    valid = np.zeros(t * b, np.float32)
    valid[:n_valid] = 1.0
    block = {
        "inputs": ex.inputs.reshape((t, b) + ex.inputs.shape[1:]).astype(np.int32),
        "targets": ex.targets.reshape(t, b).astype(np.int32),
        "valid": valid.reshape(t, b),
        "lr": learning_rate(cfg, epoch, ex.progress[::b]),
    }
    if ex.mask is not None:
        block["mask"] = ex.mask.reshape(t, b, -1)
    return block


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
          state: TrainState | None = None) -> TrainState:
    """Trains from scratch (or from ``state``) for ``config.epochs`` epochs.

    Args:
      config: hyper-parameters; vocab, corpus: from ``w2v_jax.corpus.load_corpus``.
      on_progress: called after each device call with a :class:`Progress`.
      state: optional initial TrainState (e.g. imported vectors); default word2vec init.
    Returns:
      The final TrainState; ``np.asarray(state.w_in)`` are the word vectors.
    """
    if corpus.ids.size < 2:
        raise W2VError("the corpus has fewer than 2 in-vocabulary words; nothing to train on "
                       "(use a larger corpus or lower --min-count)")
    cfg = config
    if state is None:
        state = init_state(jax.random.key(cfg.seed), len(vocab), cfg.vector_size)
    table = sampling.build(cfg.sampler, vocab.noise_distribution(cfg.ns_exponent))
    keep = vocab.keep_probabilities(cfg.sample)
    sent = corpus.sentence_ids()
    size = cfg.steps_per_call * cfg.batch_size

    def host_blocks():
        for epoch in range(cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            exs = epoch_examples(corpus.ids, sent, keep, cfg.window, bool(cfg.sg), rng)
            for (ex, n_valid), last in _with_last(_blocks(exs, size)):
                # The last block ends the epoch, whatever position its last centre had.
                prog = 1.0 if last else float(ex.progress[n_valid - 1])
                yield epoch, prog, n_valid, _device_block(ex, n_valid, cfg, epoch)

    total = cfg.epochs * corpus.raw_words
    t0 = time.perf_counter()
    pending = None  # (loss array, n_valid, epoch, progress, lr) of the call in flight

    def report(p):
        loss, n_valid, epoch, prog, lr = p
        loss = float(loss) / max(n_valid, 1)  # blocks until that call is done
        if not np.isfinite(loss):
            raise W2VError(f"training diverged (loss is {loss}) in epoch {epoch + 1}; "
                           "lower --alpha or --batch-size")
        if on_progress is not None:
            words = min(int((epoch + prog) * corpus.raw_words), total)
            el = time.perf_counter() - t0
            on_progress(Progress(epoch, words, total, loss, lr, words / max(el, 1e-9), el))

    for epoch, prog, n_valid, block in _prefetch(host_blocks()):
        state, loss = run_steps(state, table, block, cfg=cfg)
        if pending is not None:
            report(pending)
        pending = (loss, n_valid, epoch, prog, float(block["lr"][-1]))
    if pending is not None:
        report(pending)
    jax.block_until_ready(state)
    return state


class MetricsWriter:
    """Appends one JSON object per line; a progress callback for :func:`train`."""

    def __init__(self, path, every_sec: float = 1.0):
        self._f = open(path, "a", encoding="utf-8")
        self._every = every_sec
        self._last = -np.inf

    def __call__(self, p: Progress, force: bool = False) -> None:
        if force or p.elapsed - self._last >= self._every or p.words >= p.total_words:
            self._last = p.elapsed
            self.write(p._asdict())

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
