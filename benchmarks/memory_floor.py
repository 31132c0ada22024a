"""The memory a JAX trainer holds before it reads a word: issue #4's memory target against it.

    python benchmarks/memory_floor.py                  # ~30 s on 2 cores
    python benchmarks/memory_floor.py --vocab-size 71290 --gensim-peak 180

Each stage runs in its own fresh subprocess (so its peak is its own), from the bare
interpreter up to the trainer's compiled step:

1. ``python``: the interpreter and NumPy;
2. ``gensim``: NumPy plus ``import gensim`` and a ``Word2Vec`` object with no vocabulary
   (gensim's floor, where installed);
3. ``jax``: JAX as the CLI starts it (``tune_xla_cpu``) and one op on the CPU;
4. ``w2v-jax cbow`` / ``w2v-jax sg``: what ``w2v_jax.train`` does before it touches the
   corpus's ids or makes its tables, ``train.compile_ahead``: the race's step
   (``compare_peers.HYPER``, 100 dimensions, K = 5, the alias sampler) compiled for a
   vocabulary of ``--vocab-size`` words (default 51,666, the bench corpus's at
   min_count 5). The counts are a Zipf curve: a sampler's table has the same shapes
   whatever they are, and shapes are all the compiler sees.

Columns are as in ``compare_peers.py`` (MiB): peak RSS is the child's ``VmHWM``; peak
anonymous and file-backed memory are sampled from outside (``peak_memory``). The last
column divides the peak RSS by issue #4's memory bound, 1.5 × gensim's whole peak in
the race (``--gensim-peak``, default 173 MB: ``gensim-file`` CBOW and SG in the races
of 2026-11-27). Writes ``benchmarks/out/memory_floor.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("python", "gensim", "jax", "w2v-jax cbow", "w2v-jax sg")


def child(stage: str, vocab_size: int) -> None:
    """Brings this process to ``stage`` and prints its peak RSS."""
    import numpy as np

    if stage == "gensim":
        from gensim.models import Word2Vec

        Word2Vec(vector_size=100, window=5, negative=5, sample=1e-4, min_count=5, workers=2)
    elif stage == "jax":
        from w2v_jax.cli import tune_xla_cpu

        tune_xla_cpu()
        import jax.numpy as jnp

        jnp.zeros(1).block_until_ready()
    elif stage.startswith("w2v-jax"):
        import importlib

        from compare_peers import ALPHA, HYPER  # benchmarks/ is on sys.path: a script
        from w2v_jax.cli import tune_xla_cpu
        from w2v_jax.heap import return_large_buffers

        tune_xla_cpu()  # the order run_w2v_jax and the CLI keep
        return_large_buffers()
        import jax

        from w2v_jax import Config
        from w2v_jax.vocab import Vocab

        train = importlib.import_module("w2v_jax.train")  # the package's ``train`` is the function
        mode = stage.split()[1]
        cfg = Config(**HYPER, sg=int(mode == "sg"), alpha=ALPHA[mode], epochs=5)
        counts = np.maximum(10_000_000 // np.arange(1, vocab_size + 1), HYPER["min_count"])
        vocab = Vocab(tuple(f"w{i}" for i in range(vocab_size)), counts.astype(np.int64))
        train.compile_ahead(cfg, vocab_size, train.objective_aux(cfg, vocab),
                            jax.random.key(cfg.seed))
    from peak_memory import peak_rss_mb

    print("RESULT " + json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab-size", type=int, default=51_666)
    p.add_argument("--gensim-peak", type=float, default=173.0,
                   help="gensim's whole peak RSS in the race, MB; the bound is 1.5× it")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = p.parse_args()
    if args.vocab_size < 2 or args.gensim_peak <= 0:
        p.error("--vocab-size must be at least 2 and --gensim-peak positive")

    from peak_memory import run_watched

    bound = 1.5 * args.gensim_peak
    rows = []
    for stage in STAGES:
        r, memory = run_watched([sys.executable, __file__, "--child", stage,
                                 str(args.vocab_size)])
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode != 0 or not line:
            last = (r.stderr.strip().splitlines() or ["?"])[-1][:120]
            print(f"skip {stage}: {last}", file=sys.stderr)
            continue
        rows.append({"stage": stage, **json.loads(line[-1][7:]), **memory})
        print(f"{stage}: {rows[-1]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)

    md = (f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
          f"{os.cpu_count()} cores; vocabulary {args.vocab_size:,} words; bound 1.5 × "
          f"{args.gensim_peak:g} = {bound:.0f} MB.\n\n"
          "| stage | peak RSS MB | peak anon MB | peak file-backed MB | of the bound |\n"
          "|---|---|---|---|---|\n"
          + "\n".join(f"| {r['stage']} | {r['peak_rss_mb']:.0f} | {r.get('peak_anon_mb', 0):.0f} "
                      f"| {r.get('peak_file_mb', 0):.0f} | {r['peak_rss_mb'] / bound:.2f}× |"
                      for r in rows) + "\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_floor.md").write_text(md)
    (out / "memory_floor.json").write_text(json.dumps(
        {"vocab_size": args.vocab_size, "gensim_peak_mb": args.gensim_peak, "rows": rows},
        indent=2))
    print(md)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
