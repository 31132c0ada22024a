"""Full softmax and hierarchical softmax: Huffman tree, closed forms vs autodiff, and one
trainer step against the per-pair pure functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import one_step_block
from w2v_jax import objectives as obj
from w2v_jax.config import Config
from w2v_jax.gradcheck import check_gradients_at_scales
from w2v_jax.huffman import build_huffman


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=60))
def test_huffman_is_a_prefix_code_with_optimal_length(counts):
    import heapq

    tree = build_huffman(np.array(counts))
    codes = ["".join(map(str, tree.codes[w, :tree.lengths[w]])) for w in range(len(counts))]
    assert len(set(codes)) == len(codes)
    assert not any(a != b and b.startswith(a) for a in codes for b in codes)
    # Σ count·length equals the Huffman optimum (sum of all merge costs).
    heap = list(counts)
    heapq.heapify(heap)
    optimum = 0
    while len(heap) > 1:
        m = heapq.heappop(heap) + heapq.heappop(heap)
        optimum += m
        heapq.heappush(heap, m)
    assert int(np.dot(tree.lengths, counts)) == optimum
    assert tree.points[:, 0].tolist() == [len(counts) - 2] * len(counts)  # the root first
    assert tree.points.max() <= len(counts) - 2


def test_hs_probabilities_sum_to_one():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 100, 37)
    tree = build_huffman(counts)
    nodes = rng.standard_normal((36, 5))
    h = rng.standard_normal(5)
    p = [np.exp(-float(obj.hs_loss(h, nodes[tree.points[w]], tree.codes[w].astype(float),
                                   (np.arange(tree.depth) < tree.lengths[w]).astype(float))))
         for w in range(37)]
    assert abs(sum(p) - 1.0) < 1e-5


def _hs_args(rng, scale, L=6, d=5):
    return (rng.standard_normal(d) * scale, rng.standard_normal((L, d)) * scale,
            rng.integers(0, 2, L).astype(float), (np.arange(L) < 4).astype(float))


def test_hs_closed_form_matches_autodiff_at_all_scales():
    check_gradients_at_scales(obj.hs_loss, obj.hs_grads, _hs_args, argnums=(0, 1))


def test_softmax_batch_closed_form_matches_autodiff_at_all_scales():
    def args(rng, scale, c=4, t=3, v=11, d=5):
        return (rng.standard_normal((c, d)) * scale, rng.standard_normal((v, d)) * scale,
                rng.integers(0, v, (c, t)), rng.integers(0, 2, (c, t)).astype(float))
    check_gradients_at_scales(obj.softmax_batch_loss, obj.softmax_batch_grads, args,
                              argnums=(0, 1))


def test_softmax_batch_equals_the_per_pair_softmax():
    rng = np.random.default_rng(1)
    h, w_out = rng.standard_normal((3, 4)), rng.standard_normal((9, 4))
    targets, weight = rng.integers(0, 9, (3, 2)), np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    want = sum(obj.softmax_loss(h[c], w_out, targets[c, t]) * weight[c, t]
               for c in range(3) for t in range(2))
    np.testing.assert_allclose(obj.softmax_batch_loss(h, w_out, targets, weight), want, rtol=1e-5)


def test_hs_batch_closed_form_matches_autodiff_at_all_scales():
    def args(rng, scale, c=3, L=4, d=5):
        return (rng.standard_normal((c, d)) * scale, rng.standard_normal((c, L, d)) * scale,
                rng.integers(0, 2, (c, L)).astype(float), rng.integers(0, 2, (c, L)).astype(float))
    check_gradients_at_scales(obj.hs_batch_loss, obj.hs_batch_grads, args, argnums=(0, 1))


def test_check_gradients_at_scales_catches_a_wrong_gradient():
    def wrong(h, nodes, codes, mask):  # drops the mask: wrong on padding rows
        return obj.hs_grads(h, nodes, codes, np.ones_like(mask))
    with pytest.raises(AssertionError, match="argument"):
        check_gradients_at_scales(obj.hs_loss, wrong, _hs_args, argnums=(0, 1))


@pytest.mark.parametrize("objective", ["softmax", "hs"])
@pytest.mark.parametrize("sg", [1, 0])
def test_trainer_step_equals_per_pair_objectives(objective, sg):
    from w2v_jax.train import _window_mask, objective_aux, run_steps
    from w2v_jax.vocab import Vocab

    v, d, w, c = 30, 6, 2, 8
    cfg = Config(sg=sg, vector_size=d, window=w, batch_size=c, steps_per_call=1, min_count=1,
                 objective=objective)
    rng = np.random.default_rng(0)
    vocab = Vocab(tuple(f"w{i}" for i in range(v)), np.arange(v, 0, -1) * 3)
    tok, sent, reach, block, state = one_step_block(rng, v, d, w, c, lr=0.1)
    lr = 0.1
    w_in, w_out = np.asarray(state.w_in, np.float64), np.asarray(state.w_out, np.float64)
    aux = objective_aux(cfg, vocab)
    # Full f32 products: on GPUs JAX's default is TF32 (10-bit mantissa), which missed
    # these tolerances on an H100 (rel. error 5e-3); the math is what is checked here.
    with jax.default_matmul_precision("highest"):
        new, (loss, count) = run_steps(state, aux, block, cfg=cfg)

    tree = build_huffman(vocab.counts)

    def pair(h, target):
        """(loss, d_h, dense d_w_out) of one (h, target) example from the pure functions."""
        if objective == "softmax":
            return (float(obj.softmax_loss(h, w_out, target)),
                    *map(np.asarray, obj.softmax_grads(h, w_out, target)))
        pts, code = tree.points[target], tree.codes[target].astype(float)
        m = (np.arange(tree.depth) < tree.lengths[target]).astype(float)
        d_h, d_nodes = map(np.asarray, obj.hs_grads(h, w_out[pts], code, m))
        d_out = np.zeros_like(w_out)
        np.add.at(d_out, pts, d_nodes)
        return float(obj.hs_loss(h, w_out[pts], code, m)), d_h, d_out

    mask = np.asarray(_window_mask(jnp.asarray(sent), jnp.asarray(reach), w))
    offs = np.array([o for o in range(-w, w + 1) if o != 0])
    ctx_pos = w + np.arange(c)[:, None] + offs[None, :]
    centres = tok[w:w + c]
    exp_in, exp_out, exp_loss = w_in.copy(), w_out.copy(), 0.0
    for ci in range(c):
        if sg:
            for j in np.flatnonzero(mask[ci]):
                centre, ctx = centres[ci], tok[ctx_pos[ci, j]]
                if objective == "hs":  # word2vec C's form: the context's row predicts the centre
                    centre, ctx = ctx, centre
                l, d_h, d_out = pair(w_in[centre], ctx)
                exp_in[centre] -= lr * d_h
                exp_out -= lr * d_out
                exp_loss += l
        elif mask[ci].any():
            ctx = tok[ctx_pos[ci][mask[ci]]]
            l, d_h, d_out = pair(w_in[ctx].mean(axis=0), centres[ci])
            np.add.at(exp_in, ctx, -lr * d_h)  # word2vec's CBOW update: full d_h per row
            exp_out -= lr * d_out
            exp_loss += l
    np.testing.assert_allclose(np.asarray(new.w_in), exp_in, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new.w_out), exp_out, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(loss), exp_loss, rtol=1e-4)
    assert int(count) == (mask.sum() if sg else mask.any(axis=1).sum())
