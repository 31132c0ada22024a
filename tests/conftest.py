"""Shared fixtures: tiny corpora made on the fly, so tests need no downloaded data."""

import os

# The data-parallel tests need several devices: split the host's CPU into 4 before JAX
# starts (single-device code uses the first). Subprocesses inherit it.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=4").strip()

# The CLI keeps compiled programs on disk; tests that call it in-process leave it off
# (one test turns it on in a subprocess, with its own directory).
os.environ.setdefault("W2V_JAX_XLA_CACHE", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def bitwise_reproducible() -> bool:
    """Whether two runs with one seed give bit-identical tables on JAX's default backend.

    On CPU they do. On GPU a step's scatter-adds are atomic additions whose order varies
    from run to run (a same-seed run on an H200 differed by up to 4e-5), unless XLA is
    told to use deterministic ops (``--xla_gpu_deterministic_ops=true``, ~5× slower).
    Other backends (TPU) are not counted as reproducible: not checked there.
    """
    import jax

    return (jax.default_backend() == "cpu"
            or "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", ""))


# For tests that compare two runs bit for bit (same seed, resume): what they check does
# not hold on a GPU without deterministic ops, by design of its scatter-add.
needs_bitwise_reproducibility = pytest.mark.skipif(
    not bitwise_reproducible(),
    reason="atomic scatter-adds on this backend: set XLA_FLAGS=--xla_gpu_deterministic_ops=true")


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
