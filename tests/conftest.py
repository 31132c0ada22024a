"""Shared fixtures: tiny corpora made on the fly, so tests need no downloaded data."""

import os

# The data-parallel tests need several devices: split the host's CPU into 4 before JAX
# starts (single-device code uses the first). Subprocesses inherit it.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=4").strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def planted_topics_text(seed: int = 0, n_lines: int = 400, line_len: int = 20) -> str:
    """Two disjoint topic vocabularies; every line draws its words from one topic only."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]]
    lines = []
    for n in range(n_lines):
        words = topics[n % 2]
        lines.append(" ".join(rng.choice(words, size=line_len)))
    return "\n".join(lines) + "\n"


@pytest.fixture
def topic_corpus(tmp_path):
    p = tmp_path / "topics.txt"
    p.write_text(planted_topics_text())
    return p


def one_step_block(rng, v: int, d: int, w: int = 2, c: int = 8, lr: float = 0.1):
    """A hand-made one-step block (two sentences across the span) and a start state with
    random W_out, for checking one trainer step against the per-pair pure functions.

    Returns (tok, sent, reach, block, state).
    """
    import jax
    import jax.numpy as jnp

    from w2v_jax.train import init_state

    tok = rng.integers(0, v, c + 2 * w).astype(np.int32)
    sent = np.array([-1] + [0] * (c // 2 + w - 1) + [1] * (c // 2 + w - 1) + [-1], np.int32)
    reach = rng.integers(0, w + 1, c).astype(np.int32)
    block = {"tok": tok[None], "sent": sent[None], "reach": reach[None],
             "lr": np.array([lr], np.float32)}
    state = init_state(jax.random.key(0), v, d, 0.5)
    state = state._replace(w_out=jnp.asarray(rng.standard_normal((v, d)) * 0.3, jnp.float32))
    return tok, sent, reach, block, state
