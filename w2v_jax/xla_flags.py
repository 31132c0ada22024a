"""XLA:CPU settings that suit the trainer, set before JAX starts its backend.

Kept apart from the CLI so that Python users can apply them too (``w2v_jax.tune_xla_cpu``)
without importing the command line.
"""

from __future__ import annotations


def tune_xla_cpu() -> None:
    """Sets XLA:CPU flags that suit the trainer, unless XLA_FLAGS is already set.

    The trainer's step is ~100 small elementwise kernels. As YNNPACK fusions each costs
    a few µs of fixed overhead (the SG step ran ~30% faster without them), and splitting
    them over Eigen's threads costs more than it gains (5 epochs of CBOW on the bench
    corpus: 36.5 s single-threaded vs 45.6 s, identical vectors). Measured with jaxlib
    0.10.2, and applied only to 0.10.x, since XLA aborts on flags it does not know; must
    run before JAX starts its backend.

    The CLI and the experiment runner call it first. Python users call it themselves
    (``w2v_jax.tune_xla_cpu()`` before their first JAX computation) to train as fast as
    the CLI and get its floating-point results bit for bit: importing w2v_jax does not,
    since the flags apply to every JAX computation of the process (Eigen's matmuls then
    run on one thread).
    """
    import importlib.metadata
    import os

    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return
    if "XLA_FLAGS" not in os.environ and version.startswith("0.10."):
        os.environ["XLA_FLAGS"] = ("--xla_cpu_experimental_ynn_fusion_type= "
                                   "--xla_cpu_multi_thread_eigen=false")


__all__ = ["tune_xla_cpu"]
