"""Pure word2vec losses and their closed-form gradients.

Every function here takes one example (one positive pair, one CBOW window); batch
them with ``jax.vmap`` and compile with ``jax.jit``. Notation follows
``docs/math.md``: ``h`` is the hidden vector (the centre's ``W_in`` row for
skip-gram, the mean of the context rows for CBOW), ``c_pos`` the positive output row,
``c_neg`` the K negative output rows, σ the logistic function.

The closed-form gradients are what the trainer applies; ``tests/test_objectives.py``
checks each against ``jax.grad`` of its loss in float64 (see ``w2v_jax.gradcheck``).

Shapes: ``f[d]`` is a float vector of length d; K negatives, S pairs sharing one draw
of negatives, C context slots of a CBOW window (padded, with a boolean mask).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _check_shapes(fn: str, **args: tuple[Array, str]) -> None:
    """Refuses arguments whose shapes disagree with the docstring's, naming them.

    ``args`` maps a name to (array, its axes as letters, e.g. "K d"; "" for a scalar);
    a letter stands for one size across all the arguments. Checked when traced, so it
    costs nothing under ``jit`` and sees one example's shapes under ``vmap``. Without it
    some mismatches broadcast silently into a wrong loss.
    """
    sizes: dict[str, tuple[int, str]] = {}
    for name, (x, axes) in args.items():
        dims, shape = axes.split(), jnp.shape(x)
        if len(shape) != len(dims):
            want = f"[{', '.join(dims)}]" if dims else "[] (a scalar)"
            raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(shape)}")
        for dim, n in zip(dims, shape):
            if dim in sizes and sizes[dim][0] != n:
                raise ValueError(f"{fn}: {name} has {dim} = {n} but {sizes[dim][1]} has "
                                 f"{dim} = {sizes[dim][0]}")
            sizes.setdefault(dim, (n, name))


# ----------------------------------------------------------------------------------
# Negative sampling (skip-gram form: one hidden vector, one positive, K negatives)
# ----------------------------------------------------------------------------------


def ns_loss(h: Array, c_pos: Array, c_neg: Array) -> Array:
    """J = -log σ(c_pos·h) - Σ_k log σ(-c_neg[k]·h).

    Args:
      h: f[d] hidden vector.
      c_pos: f[d] output row of the positive word.
      c_neg: f[K, d] output rows of the negatives.
    Returns:
      f[] the loss; finite for any finite scores (log-sigmoid is computed stably).
    """
    _check_shapes("ns_loss", h=(h, "d"), c_pos=(c_pos, "d"), c_neg=(c_neg, "K d"))
    return -jax.nn.log_sigmoid(c_pos @ h) - jnp.sum(jax.nn.log_sigmoid(-(c_neg @ h)))


def ns_grads(h: Array, c_pos: Array, c_neg: Array) -> tuple[Array, Array, Array]:
    """Closed-form gradients of :func:`ns_loss`.

    With prediction errors e_j = σ(c_j·h) - t_j (t = 1 for the positive, 0 for negatives):
    ∂J/∂c_j = e_j h and ∂J/∂h = Σ_j e_j c_j.

    Returns:
      (d_h: f[d], d_c_pos: f[d], d_c_neg: f[K, d]).
    """
    _check_shapes("ns_grads", h=(h, "d"), c_pos=(c_pos, "d"), c_neg=(c_neg, "K d"))
    e_pos = jax.nn.sigmoid(c_pos @ h) - 1.0  # f[]
    e_neg = jax.nn.sigmoid(c_neg @ h)  # f[K]
    d_h = e_pos * c_pos + e_neg @ c_neg
    return d_h, e_pos * h, e_neg[:, None] * h[None, :]


def ns_block_loss(h: Array, c_pos: Array, c_neg: Array) -> Array:
    """NS loss of S pairs that share one draw of K negatives (summed over the pairs).

    Args:
      h: f[S, d] hidden vectors; c_pos: f[S, d] positive rows; c_neg: f[K, d] shared negatives.
    Returns:
      f[] Σ_s ns_loss(h[s], c_pos[s], c_neg).
    """
    return jnp.sum(jax.vmap(ns_loss, in_axes=(0, 0, None))(h, c_pos, c_neg))


def ns_block_value_and_grads(h: Array, c_pos: Array,
                             c_neg: Array) -> tuple[Array, tuple[Array, Array, Array]]:
    """:func:`ns_block_loss` and its closed-form gradients from one set of scores.

    The scores of the shared negatives form one small matmul (S×d by d×K), which is
    what makes sharing fast (Intel's HogBatch). With S = 1 this is :func:`ns_grads`.

    Returns:
      (loss: f[], (d_h: f[S, d], d_c_pos: f[S, d], d_c_neg: f[K, d])).
    """
    _check_shapes("ns_block", h=(h, "S d"), c_pos=(c_pos, "S d"), c_neg=(c_neg, "K d"))
    s_pos = jnp.sum(h * c_pos, axis=-1)  # f[S]
    s_neg = h @ c_neg.T  # f[S, K]
    loss = -jnp.sum(jax.nn.log_sigmoid(s_pos)) - jnp.sum(jax.nn.log_sigmoid(-s_neg))
    e_pos = jax.nn.sigmoid(s_pos) - 1.0
    e_neg = jax.nn.sigmoid(s_neg)
    d_h = e_pos[:, None] * c_pos + e_neg @ c_neg
    return loss, (d_h, e_pos[:, None] * h, e_neg.T @ h)


def ns_block_grads(h: Array, c_pos: Array, c_neg: Array) -> tuple[Array, Array, Array]:
    """Closed-form gradients of :func:`ns_block_loss`: (d_h: f[S, d], d_c_pos: f[S, d], d_c_neg: f[K, d])."""
    return ns_block_value_and_grads(h, c_pos, c_neg)[1]


def ns_update(w_in: Array, w_out: Array, center: Array, context: Array,
              negatives: Array, lr: float | Array) -> tuple[Array, Array]:
    """One SGD step of skip-gram NS for one positive pair, exactly as in the spec.

    Both gradients are computed from the old values and applied together; rows not
    named are unchanged. A row named twice (say a negative drawn twice) receives the
    sum of its gradients, which is the gradient of the summed loss.

    Args:
      w_in: f[V, d]; w_out: f[V, d]; center: i[] row of w_in; context: i[] positive
      row of w_out; negatives: i[K] rows of w_out; lr: the learning rate η.
    Returns:
      The updated (w_in, w_out).
    """
    _check_shapes("ns_update", w_in=(w_in, "V d"), w_out=(w_out, "V d"), center=(center, ""),
                  context=(context, ""), negatives=(negatives, "K"))
    w_in, w_out = jnp.asarray(w_in), jnp.asarray(w_out)  # numpy tables too
    d_h, d_pos, d_neg = ns_grads(w_in[center], w_out[context], w_out[negatives])
    w_in = w_in.at[center].add(-lr * d_h)
    w_out = w_out.at[context].add(-lr * d_pos).at[negatives].add(-lr * d_neg)
    return w_in, w_out


# ----------------------------------------------------------------------------------
# Vanilla (full) softmax: every output row is touched, O(V) per pair
# ----------------------------------------------------------------------------------


def softmax_loss(h: Array, w_out: Array, target: Array) -> Array:
    """-log p(target | h) with p = softmax(w_out @ h).

    Args:
      h: f[d]; w_out: f[V, d]; target: i[] the correct output word.
    Returns:
      f[] the loss (log-sum-exp is max-shifted, so it is finite for large scores).
    """
    _check_shapes("softmax_loss", h=(h, "d"), w_out=(w_out, "V d"), target=(target, ""))
    scores = w_out @ h
    return jax.nn.logsumexp(scores) - scores[target]


def softmax_grads(h: Array, w_out: Array, target: Array) -> tuple[Array, Array]:
    """Closed-form gradients of :func:`softmax_loss`.

    With e = softmax(w_out @ h) - one_hot(target): ∂J/∂h = w_outᵀ e and
    ∂J/∂w_out = e ⊗ h (every row of w_out gets a gradient).

    Returns:
      (d_h: f[d], d_w_out: f[V, d]).
    """
    _check_shapes("softmax_grads", h=(h, "d"), w_out=(w_out, "V d"), target=(target, ""))
    e = jax.nn.softmax(w_out @ h)
    e = e.at[target].add(-1.0)
    return e @ w_out, e[:, None] * h[None, :]


def softmax_batch_loss(h: Array, w_out: Array, targets: Array, weight: Array) -> Array:
    """Σ_c Σ_t weight[c, t] · (-log p(targets[c, t] | h[c])): C hidden vectors, T targets each.

    The batched form the trainer uses: a skip-gram centre's 2W context words share one
    softmax, so its normaliser is computed once per centre, not once per pair.

    Args:
      h: f[C, d]; w_out: f[V, d]; targets: i[C, T]; weight: f[C, T] (0 for padding).
    Returns:
      f[] the summed loss.
    """
    _check_shapes("softmax_batch_loss", h=(h, "C d"), w_out=(w_out, "V d"),
                  targets=(targets, "C T"), weight=(weight, "C T"))
    scores = h @ w_out.T  # f[C, V]
    lse = jax.nn.logsumexp(scores, axis=1)
    picked = jnp.take_along_axis(scores, targets, axis=1)  # f[C, T]
    return jnp.sum(weight * (lse[:, None] - picked))


def softmax_batch_grads(h: Array, w_out: Array, targets: Array,
                        weight: Array) -> tuple[Array, Array]:
    """Closed-form gradients of :func:`softmax_batch_loss`, as two matmuls.

    With G = n ⊙ softmax(h w_outᵀ) - Y, where n[c] = Σ_t weight[c, t] and Y[c, v] the
    weight of v among row c's targets: ∂J/∂h = G w_out and ∂J/∂w_out = Gᵀ h (dense).

    Returns:
      (d_h: f[C, d], d_w_out: f[V, d]).
    """
    _check_shapes("softmax_batch_grads", h=(h, "C d"), w_out=(w_out, "V d"),
                  targets=(targets, "C T"), weight=(weight, "C T"))
    c = h.shape[0]
    p = jax.nn.softmax(h @ w_out.T, axis=1)  # f[C, V]
    n = jnp.sum(weight, axis=1)
    g = (n[:, None] * p).at[jnp.arange(c)[:, None], targets].add(-weight)
    return g @ w_out, g.T @ h


# ----------------------------------------------------------------------------------
# Hierarchical softmax: p(w | h) = Π_l σ((1 - 2·code_l) · node_l·h) along w's Huffman path
# (w2v_jax.huffman builds the codes and the inner-node ids; the trainer keeps the V - 1
# inner-node vectors in the rows of W_out). O(log V) rows per pair.
# ----------------------------------------------------------------------------------


def hs_loss(h: Array, nodes: Array, codes: Array, mask: Array) -> Array:
    """-log p(w | h) = -Σ_l mask_l · log σ((1 - 2·codes_l) · nodes_l·h).

    Args:
      h: f[d]; nodes: f[L, d] the inner-node vectors on the word's path (root first);
      codes: f[L] the branch taken at each node (0 or 1); mask: f[L] 1 on the path, 0 on
      padding beyond its length.
    Returns:
      f[] the loss.
    """
    _check_shapes("hs_loss", h=(h, "d"), nodes=(nodes, "L d"), codes=(codes, "L"),
                  mask=(mask, "L"))
    return -jnp.sum(mask * jax.nn.log_sigmoid((1.0 - 2.0 * codes) * (nodes @ h)))


def hs_grads(h: Array, nodes: Array, codes: Array, mask: Array) -> tuple[Array, Array]:
    """Closed-form gradients of :func:`hs_loss`.

    With g_l = mask_l · (σ(nodes_l·h) - (1 - codes_l)) (word2vec C's ``1 - code - f``,
    negated): ∂J/∂h = Σ_l g_l nodes_l and ∂J/∂nodes_l = g_l h.

    Returns:
      (d_h: f[d], d_nodes: f[L, d]).
    """
    _check_shapes("hs_grads", h=(h, "d"), nodes=(nodes, "L d"), codes=(codes, "L"),
                  mask=(mask, "L"))
    g = mask * (jax.nn.sigmoid(nodes @ h) - (1.0 - codes))
    return g @ nodes, g[:, None] * h[None, :]


def hs_batch_loss(h: Array, nodes: Array, codes: Array, mask: Array) -> Array:
    """Σ_c :func:`hs_loss` (h[c], nodes[c], codes[c], mask[c]) over a batch of C examples.

    Args:
      h: f[C, d]; nodes: f[C, L, d] the path's inner-node rows of each example's target;
      codes: f[C, L]; mask: f[C, L] (path length and example weight together).
    """
    _check_shapes("hs_batch_loss", h=(h, "C d"), nodes=(nodes, "C L d"), codes=(codes, "C L"),
                  mask=(mask, "C L"))
    x = jnp.einsum("cd,cld->cl", h, nodes)
    return -jnp.sum(mask * jax.nn.log_sigmoid((1.0 - 2.0 * codes) * x))


def hs_batch_grads(h: Array, nodes: Array, codes: Array, mask: Array) -> tuple[Array, Array]:
    """Closed-form gradients of :func:`hs_batch_loss`: (d_h: f[C, d], d_nodes: f[C, L, d]).

    d_nodes[c, l] belongs to W_out row ``points[c, l]``; scatter-add them (rows repeat).
    """
    _check_shapes("hs_batch_grads", h=(h, "C d"), nodes=(nodes, "C L d"), codes=(codes, "C L"),
                  mask=(mask, "C L"))
    g = mask * (jax.nn.sigmoid(jnp.einsum("cd,cld->cl", h, nodes)) - (1.0 - codes))
    return jnp.einsum("cl,cld->cd", g, nodes), g[..., None] * h[:, None, :]


# ----------------------------------------------------------------------------------
# CBOW: the hidden vector is the mean of the (masked) context rows
# ----------------------------------------------------------------------------------


def cbow_hidden(ctx: Array, mask: Array) -> Array:
    """Mean of the context rows that the mask keeps.

    Args:
      ctx: f[C, d] context rows of W_in (padded); mask: bool[C], at least one True.
    Returns:
      f[d] the mean of the kept rows.
    """
    _check_shapes("cbow_hidden", ctx=(ctx, "C d"), mask=(mask, "C"))
    m = mask.astype(ctx.dtype)
    return (m @ ctx) / jnp.maximum(jnp.sum(m), 1.0)


def _spread(d_h: Array, mask: Array) -> Array:
    """∂J/∂ctx for h = mean(ctx[mask]): each kept row gets d_h / count."""
    m = mask.astype(d_h.dtype)
    return (m / jnp.maximum(jnp.sum(m), 1.0))[:, None] * d_h[None, :]


def cbow_ns_loss(ctx: Array, mask: Array, c_pos: Array, c_neg: Array) -> Array:
    """NS loss of a CBOW window: :func:`ns_loss` at h = mean of the kept context rows."""
    return ns_loss(cbow_hidden(ctx, mask), c_pos, c_neg)


def cbow_ns_grads(ctx: Array, mask: Array, c_pos: Array,
                  c_neg: Array) -> tuple[Array, Array, Array]:
    """Closed-form gradients of :func:`cbow_ns_loss`.

    Returns:
      (d_ctx: f[C, d] (zero on padded rows, d_h / count on kept rows),
       d_c_pos: f[d], d_c_neg: f[K, d]).
    Note: word2vec C and gensim (``cbow_mean=1``) add the full d_h to every context
    row instead of d_h / count; the trainer offers both (``Config.cbow_update``).
    """
    d_h, d_pos, d_neg = ns_grads(cbow_hidden(ctx, mask), c_pos, c_neg)
    return _spread(d_h, mask), d_pos, d_neg


def cbow_softmax_loss(ctx: Array, mask: Array, w_out: Array, target: Array) -> Array:
    """Full-softmax loss of a CBOW window."""
    return softmax_loss(cbow_hidden(ctx, mask), w_out, target)


def cbow_softmax_grads(ctx: Array, mask: Array, w_out: Array,
                       target: Array) -> tuple[Array, Array]:
    """Closed-form gradients of :func:`cbow_softmax_loss`: (d_ctx: f[C, d], d_w_out: f[V, d])."""
    d_h, d_w_out = softmax_grads(cbow_hidden(ctx, mask), w_out, target)
    return _spread(d_h, mask), d_w_out
