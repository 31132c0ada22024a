"""Objectives: the spec's worked example, closed forms vs autodiff, stability, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import enable_x64

from w2v_jax import objectives as obj
from w2v_jax.gradcheck import check_gradients

# The worked example of the project's math spec (docs/math.md, *A worked example*).
W_IN = np.array([
    [-0.014, 0.135, 0.109], [-0.665, 0.669, 0.309], [0.702, 0.621, -0.981], [0.214, -0.813, -0.561],
    [-0.018, 0.404, -0.317], [0.204, -0.007, -0.733], [-0.652, -0.097, 0.499], [-0.706, 0.745, 0.002],
    [-0.492, -0.709, 0.133], [-0.628, -0.073, 0.502], [0.456, 0.767, -0.629], [0.348, 0.544, -0.740],
    [-0.627, 0.487, 0.466]], np.float32)
W_OUT = np.array([
    [-0.351, -0.812, -0.082], [0.743, -0.394, -0.824], [0.472, -0.873, -0.564], [-0.627, -0.678, 0.895],
    [-0.572, -0.588, -0.501], [0.116, 0.723, -0.689], [-0.165, -0.506, -0.341], [-0.940, 0.601, 0.146],
    [-0.622, 0.811, 0.640], [-0.077, -0.375, -0.056], [-0.028, -0.244, 0.018], [-0.411, -0.893, 0.518],
    [-0.691, 0.236, 0.363]], np.float32)
WORDS = "honorable is man most ned stark the pimples zebra idiot coins donkey machine".split()
IDX = {w: i for i, w in enumerate(WORDS)}


def test_worked_example_one_sgns_step():
    ned, stark = IDX["ned"], IDX["stark"]
    negs = np.array([IDX["pimples"], IDX["zebra"], IDX["idiot"]])
    h, c = W_IN[ned], W_OUT[[stark, *negs]]
    errors = jax.nn.sigmoid(c @ h) - np.array([1, 0, 0, 0])
    np.testing.assert_allclose(errors, [-0.376, 0.553, 0.534, 0.467], atol=1e-3)

    d_h, d_pos, d_neg = obj.ns_grads(h, c[0], c[1:])
    np.testing.assert_allclose(d_h, [-0.932, 0.319, 0.655], atol=1e-3)
    np.testing.assert_allclose(d_pos, [0.007, -0.152, 0.119], atol=1e-3)
    np.testing.assert_allclose(d_neg, [[-0.010, 0.223, -0.175], [-0.010, 0.216, -0.169],
                                       [-0.008, 0.189, -0.148]], atol=1e-3)

    w_in, w_out = obj.ns_update(jnp.asarray(W_IN), jnp.asarray(W_OUT), ned, stark, negs, 0.05)
    w_in, w_out = np.asarray(w_in), np.asarray(w_out)
    np.testing.assert_allclose(w_in[ned], [0.029, 0.388, -0.350], atol=1e-3)
    np.testing.assert_allclose(w_out[stark], [0.116, 0.731, -0.695], atol=1e-3)
    np.testing.assert_allclose(w_out[negs], [[-0.940, 0.590, 0.155], [-0.622, 0.800, 0.648],
                                             [-0.077, -0.384, -0.049]], atol=1e-3)
    untouched_in = np.arange(13) != ned
    untouched_out = ~np.isin(np.arange(13), [stark, *negs])
    np.testing.assert_array_equal(w_in[untouched_in], W_IN[untouched_in])
    np.testing.assert_array_equal(w_out[untouched_out], W_OUT[untouched_out])


def _rand(seed, *shape, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])  # 30: scores of several hundred
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ns_grads_match_autodiff(seed, scale):
    d, k = 8, 5
    args = (_rand(seed, d, scale=scale), _rand(seed + 10, d, scale=scale), _rand(seed + 20, k, d))
    check_gradients(obj.ns_loss, obj.ns_grads, args, argnums=(0, 1, 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_ns_block_grads_match_autodiff(seed):
    s, k, d = 4, 3, 6
    args = (_rand(seed, s, d), _rand(seed + 1, s, d), _rand(seed + 2, k, d))
    check_gradients(obj.ns_block_loss, obj.ns_block_grads, args, argnums=(0, 1, 2))
    loss, _ = obj.ns_block_value_and_grads(*args)
    np.testing.assert_allclose(loss, obj.ns_block_loss(*args), rtol=1e-6)


def test_ns_block_with_one_pair_is_ns():
    h, cp, cn = _rand(0, 1, 5), _rand(1, 1, 5), _rand(2, 4, 5)
    block = obj.ns_block_grads(h, cp, cn)
    single = obj.ns_grads(h[0], cp[0], cn)
    for b, s in zip(block, single):
        np.testing.assert_allclose(np.squeeze(b), s, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_softmax_grads_match_autodiff(seed):
    v, d = 11, 6
    h, w_out = _rand(seed, d), _rand(seed + 1, v, d)
    check_gradients(lambda h, w: obj.softmax_loss(h, w, 3), lambda h, w: obj.softmax_grads(h, w, 3),
                    (h, w_out), argnums=(0, 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_cbow_grads_match_autodiff(seed):
    c, d, k, v = 6, 5, 4, 9
    ctx, cp, cn, w_out = _rand(seed, c, d), _rand(seed + 1, d), _rand(seed + 2, k, d), _rand(seed + 3, v, d)
    mask = np.array([1, 1, 0, 1, 0, 1], bool)
    check_gradients(lambda x, p, n: obj.cbow_ns_loss(x, mask, p, n),
                    lambda x, p, n: obj.cbow_ns_grads(x, mask, p, n), (ctx, cp, cn), argnums=(0, 1, 2))
    check_gradients(lambda x, w: obj.cbow_softmax_loss(x, mask, w, 2),
                    lambda x, w: obj.cbow_softmax_grads(x, mask, w, 2), (ctx, w_out), argnums=(0, 1))
    d_ctx, _, _ = obj.cbow_ns_grads(ctx, mask, cp, cn)
    assert np.all(np.asarray(d_ctx)[~mask] == 0)  # padded slots get nothing


def test_cbow_hidden_is_masked_mean():
    ctx = np.arange(12, dtype=np.float32).reshape(4, 3)
    mask = np.array([True, False, True, False])
    np.testing.assert_allclose(obj.cbow_hidden(ctx, mask), (ctx[0] + ctx[2]) / 2)


@settings(max_examples=40, deadline=None)
@given(st.floats(-1000, 1000), st.floats(-1000, 1000))
def test_losses_are_finite_for_extreme_scores(a, b):
    # h·c_pos = a, h·c_neg = b exactly, with |a|,|b| up to 1000.
    h = jnp.array([1.0, 0.0])
    loss = obj.ns_loss(h, jnp.array([a, 0.0]), jnp.array([[b, 0.0]]))
    grads = obj.ns_grads(h, jnp.array([a, 0.0]), jnp.array([[b, 0.0]]))
    assert np.isfinite(loss) and loss >= 0
    assert all(np.all(np.isfinite(g)) for g in grads)
    sm = obj.softmax_loss(h, jnp.array([[a, 0.0], [b, 0.0]]), 0)
    assert np.isfinite(sm) and sm >= 0


def test_extreme_scores_in_float64_match_autodiff():
    h = np.array([10.0, -20.0, 5.0])
    c_pos = np.array([-30.0, 40.0, 1.0])  # score -1100
    c_neg = np.array([[30.0, -40.0, 0.0], [0.1, 0.2, 0.3]])  # score +1100
    check_gradients(obj.ns_loss, obj.ns_grads, (h, c_pos, c_neg), argnums=(0, 1, 2))


def test_vmap_and_jit_agree_with_single_examples():
    b, k, d = 7, 3, 4
    h, cp, cn = _rand(0, b, d), _rand(1, b, d), _rand(2, b, k, d)
    batched = jax.jit(jax.vmap(obj.ns_grads))(h, cp, cn)
    losses = jax.jit(jax.vmap(obj.ns_loss))(h, cp, cn)
    for i in range(b):
        single = obj.ns_grads(h[i], cp[i], cn[i])
        for bg, sg in zip(batched, single):
            np.testing.assert_allclose(bg[i], sg, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses[i], obj.ns_loss(h[i], cp[i], cn[i]), rtol=1e-5)


def test_ns_update_accumulates_repeated_rows():
    # The same negative drawn twice gets twice the gradient: the gradient of the summed loss.
    with enable_x64():
        w_in, w_out = jnp.asarray(W_IN, jnp.float64), jnp.asarray(W_OUT, jnp.float64)
        negs = jnp.array([7, 7])
        new_in, new_out = obj.ns_update(w_in, w_out, 4, 5, negs, 0.1)
        _, _, d_neg = obj.ns_grads(w_in[4], w_out[5], w_out[negs])
        np.testing.assert_allclose(new_out[7], w_out[7] - 0.1 * (d_neg[0] + d_neg[1]), rtol=1e-12)


def test_ns_update_takes_numpy_tables():
    w_in, w_out = np.asarray(W_IN, np.float32), np.asarray(W_OUT, np.float32)
    got = obj.ns_update(w_in, w_out, 4, 5, np.array([7, 8]), 0.1)
    want = obj.ns_update(jnp.asarray(w_in), jnp.asarray(w_out), 4, 5, jnp.array([7, 8]), 0.1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not np.array_equal(got[0], w_in)  # the inputs are not changed, the result is


@pytest.mark.parametrize("call, match", [
    # hs: codes f[1] against 4 nodes broadcast silently into a wrong loss
    (lambda: obj.hs_loss(jnp.ones(3), jnp.ones((4, 3)), jnp.ones(1), jnp.ones(4)),
     "hs_loss: codes has L = 1 but nodes has L = 4"),
    (lambda: obj.softmax_batch_loss(jnp.ones((2, 3)), jnp.ones((5, 3)),
                                    jnp.zeros((2, 4), jnp.int32), jnp.ones(4)),
     r"softmax_batch_loss: weight must have shape \[C, T\], got \(4,\)"),
    (lambda: obj.ns_grads(jnp.ones(3), jnp.ones(3), jnp.ones(3)),
     r"ns_grads: c_neg must have shape \[K, d\], got \(3,\)"),
    (lambda: obj.ns_loss(jnp.ones(3), jnp.ones(4), jnp.ones((2, 3))),
     "ns_loss: c_pos has d = 4 but h has d = 3"),
    (lambda: obj.ns_update(jnp.ones((5, 3)), jnp.ones((5, 4)), 0, 1, jnp.array([2]), 0.1),
     "ns_update: w_out has d = 4 but w_in has d = 3"),
])
def test_mismatched_shapes_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_shape_checks_see_one_example_under_vmap_and_cost_nothing_under_jit():
    h, c_pos, c_neg = jnp.ones((6, 3)), jnp.ones((6, 3)), jnp.ones((6, 2, 3))
    out = jax.jit(jax.vmap(obj.ns_loss))(h, c_pos, c_neg)
    assert out.shape == (6,)
