"""Check a closed-form gradient against ``jax.grad`` of its loss, in float64.

Used by our own tests and offered to users who add an objective: write the loss and
its closed-form gradients as pure functions, then

    check_gradients(my_loss, my_grads, (h, c_pos, c_neg), argnums=(0, 1, 2))

raises ``AssertionError`` naming the argument and the largest difference if they
disagree. Comparison runs in float64 (``jax.enable_x64``) so that
agreement to 1e-10 is meaningful.
"""

from __future__ import annotations

from typing import Callable, Sequence

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
