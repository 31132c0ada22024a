"""Check a closed-form gradient against ``jax.grad`` of its loss, in float64.

Used by our own tests and offered to users who add an objective: write the loss and
its closed-form gradients as pure functions, then

    check_gradients(my_loss, my_grads, (h, c_pos, c_neg), argnums=(0, 1, 2))

raises ``AssertionError`` naming the argument and the largest difference if they
disagree. Comparison runs in float64 (``jax.enable_x64``) so that
agreement to 1e-10 is meaningful.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax import enable_x64


def check_gradients(loss_fn: Callable, grads_fn: Callable, args: Sequence,
                    argnums: Sequence[int], rtol: float = 1e-9, atol: float = 1e-10) -> None:
    """Asserts ``grads_fn(*args)[i] == jax.grad(loss_fn, argnums)(*args)[i]`` for each i.

    Args:
      loss_fn: scalar loss of ``args``.
      grads_fn: closed form returning one gradient per entry of ``argnums``, in order.
      args: the inputs (numpy/JAX arrays; floats are cast to float64).
      argnums: positions in ``args`` that ``grads_fn`` differentiates.
    """
    with enable_x64():
        args64 = [np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating)
                  else np.asarray(a) for a in args]
        auto = jax.grad(loss_fn, argnums=tuple(argnums))(*args64)
        closed = grads_fn(*args64)
        if len(closed) != len(argnums):
            raise AssertionError(f"grads_fn returned {len(closed)} gradients for {len(argnums)} argnums")
        for i, a, c in zip(argnums, auto, closed):
            a, c = np.asarray(a), np.asarray(c)
            if a.shape != c.shape:
                raise AssertionError(f"argument {i}: shape {c.shape} != autodiff's {a.shape}")
            if not np.all(np.isfinite(c)):
                raise AssertionError(f"argument {i}: closed-form gradient is not finite")
            if not np.allclose(c, a, rtol=rtol, atol=atol):
                raise AssertionError(f"argument {i}: closed form differs from autodiff by "
                                     f"{np.max(np.abs(c - a)):.3g}")


def check_gradients_at_scales(loss_fn: Callable, grads_fn: Callable,
                              make_args: Callable[[np.random.Generator, float], Sequence[Any]],
                              argnums: Sequence[int], scales: Sequence[float] = (0.01, 1.0, 30.0),
                              seeds: Sequence[int] = (0, 1, 2), rtol: float = 1e-9,
                              atol: float = 1e-10) -> None:
    """:func:`check_gradients` on random inputs at several scales.

    Small scales test the linear regime, large ones (scores in the hundreds) the
    saturated sigmoids and softmaxes where a naive closed form overflows or cancels.

    Args:
      make_args: ``(rng, scale) -> args``; scale multiplies the float inputs it draws.
      scales, seeds: every combination is checked.
    """
    for scale in scales:
        for seed in seeds:
            args = make_args(np.random.default_rng(seed), scale)
            try:
                check_gradients(loss_fn, grads_fn, args, argnums, rtol=rtol,
                                atol=atol * max(1.0, scale ** 2))
            except AssertionError as e:
                raise AssertionError(f"{e} (scale {scale}, seed {seed})") from None
