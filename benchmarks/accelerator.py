"""Throughput and quality on one accelerator (or the CPU) against the step size C.

    python benchmarks/accelerator.py                                    # the default sweep
    python benchmarks/accelerator.py --runs sg:64 sg:4096:20 --epochs 1  # chosen runs

Trains on JAX's default device (a GPU or TPU where one is installed, else the CPU), on
the bench corpus with the hyper-parameters of ``compare_peers.py`` (d 100, window 5,
K 5, sample 1e-4, min_count 5; alpha 0.025 SG, 0.05 CBOW; 5 epochs), and evaluates each
run's vectors (Google analogies 3CosAdd 30k, WordSim-353) as the peer race does.

Why a sweep over C: a step is a few dozen small kernels whatever its size, so on an
accelerator a step of the CPU's C (64 SG centres, 512 CBOW windows) is bound by kernel
launches, and throughput grows with C until the device is busy. A larger C sums more
gradients from the same old rows, which is where quality goes (the README's *Batched
SGD*); the per-row term cap (``max_row_terms``) is what keeps it. Each run is
``mode:C[:cap]`` (cap omitted: the Config's default for that mode).

All runs share one process and one loaded corpus. Words/s is the steady state between
the 2nd and the last report of ``train`` (the first call compiles), as in ``scaling.py``;
"train s" includes the compile. A call runs T steps of C (``--steps-per-call``; by
default about 2**18 centres a call but at most 256 steps: T = 256 up to C = 1024, then
64 at C = 4096 and 16 at C = 16384). ``--budget-s`` stops starting runs once that many
seconds have passed (a lent device's time is short); results are written after every
run, so a killed sweep keeps what it measured.

Writes ``accelerator.{md,json,png}`` into ``--out`` (default ``benchmarks/out``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from peak_memory import peak_rss_mb  # benchmarks/ is the script's directory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import ALPHA, DEFAULT_CORPUS, HYPER  # noqa: E402
from scaling import machine, rates  # noqa: E402

DEFAULT_RUNS = ("sg:64", "sg:1024:20", "sg:4096:20", "sg:16384:20",
                "cbow:512", "cbow:4096", "cbow:16384")


def parse_run(spec: str) -> dict:
    """"mode:C[:cap]" -> {"mode", "batch_size", "max_row_terms"}."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("sg", "cbow"):
        raise argparse.ArgumentTypeError(f"run {spec!r}: expected MODE:C[:CAP], MODE sg or cbow")
    try:
        return {"mode": parts[0], "batch_size": int(parts[1]),
                "max_row_terms": float(parts[2]) if len(parts) == 3 else None}
    except ValueError:
        raise argparse.ArgumentTypeError(f"run {spec!r}: C and CAP must be numbers") from None


def steps_per_call(c: int) -> int:
    """T for C: calls of about 2**18 centres but at least 8 and at most 256 steps (so
    fewer centres below C = 1024), so that a large C still makes many calls an epoch
    (steady-state timing, little padding)."""
    return min(256, max(8, 2 ** round(math.log2(2**18 / c))))


def device_info() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind, "devices": jax.device_count()}


def peak_device_mb() -> float | None:
    """Peak bytes in use on device 0 so far (None where the backend keeps no stats)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def run_one(run: dict, vocab, data, epochs: int, steps_per_call: int,
            lanes: int | None = None) -> dict:
    import numpy as np

    from w2v_jax import Config, KeyedVectors, train
    from w2v_jax.evaluate import standard_scores

    mode = run["mode"]
    cfg = Config(**HYPER, sg=int(mode == "sg"), alpha=ALPHA[mode], epochs=epochs,
                 batch_size=run["batch_size"], max_row_terms=run["max_row_terms"],
                 steps_per_call=steps_per_call, **({} if lanes is None else {"lanes": lanes}))
    reports: list = []
    t0 = time.perf_counter()
    state = train(cfg, vocab, data, on_progress=reports.append)
    w_in = np.asarray(state.w_in)
    train_s = time.perf_counter() - t0
    del state
    row = {"mode": mode, "batch_size": cfg.centres_per_step,
           "shared_negatives": cfg.negatives_shared_by,
           "max_row_terms": cfg.row_term_cap(len(vocab)), "epochs": epochs,
           "steps_per_call": steps_per_call, "lanes": cfg.lanes, "train_s": train_s}
    row.update(rates(reports, data.raw_words * epochs, train_s))
    row.update(standard_scores(KeyedVectors(vocab.words, w_in)))
    return row


def table(rows: list[dict]) -> str:
    head = ("| mode | C | cap | train s (incl. compile) | first call s | raw words/s (steady) "
            "| final loss | analogy 3CosAdd | WordSim-353 |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        cap = "—" if r.get("max_row_terms") is None else f"{r['max_row_terms']:g}"
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['batch_size']} | {cap} | failed: {r['error']} "
                         "| | | | | |")
            continue
        lines.append(
            f"| {r['mode']} | {r['batch_size']} | {cap} | {r['train_s']:.1f} "
            f"| {r['first_call_s']:.1f} | {r['words_per_sec'] / 1e6:.2f}M"
            f"{'' if r['steady'] else ' (incl. compile)'} | {r['final_loss']:.3f} "
            f"| {100 * (r['analogy'] or 0):.2f}% | {r['wordsim'] or 0:.3f} |")
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, color in (("sg", "tab:blue"), ("cbow", "tab:orange")):
        ok = sorted((r for r in rows if r["mode"] == mode and "error" not in r),
                    key=lambda r: r["batch_size"])
        if not ok:
            continue
        c = [r["batch_size"] for r in ok]
        a.plot(c, [r["words_per_sec"] / 1e6 for r in ok], "o-", color=color, label=mode)
        b.plot(c, [100 * (r["analogy"] or 0) for r in ok], "o-", color=color, label=mode)
    for ax, label in ((a, "raw words/s, steady state (millions)"),
                      (b, "analogy accuracy, 3CosAdd 30k (%)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("C, centres (SG) or windows (CBOW) per step")
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"w2v-jax on {meta['device']['device_kind']} ({meta['date']}), "
                 f"{meta['epochs']} epochs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--runs", nargs="+", type=parse_run,
                   default=[parse_run(r) for r in DEFAULT_RUNS], help="MODE:C[:CAP] ...")
    p.add_argument("--steps-per-call", type=int, default=None,
                   help="SGD steps per device call [2**18 / C, within 8..256]")
    p.add_argument("--lanes", type=int, default=None,
                   help="lanes the epoch is read in (Config.lanes) [the Config default]")
    p.add_argument("--budget-s", type=float, default=None,
                   help="start no run after this many seconds")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = p.parse_args()

    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"accelerator: corpus {corpus} not found; pass --corpus PATH")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    from w2v_jax.cli import tune_xla_cpu

    tune_xla_cpu()  # as the CLI does, before JAX starts (CPU flags only)
    from w2v_jax import load_corpus

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "device": device_info(), "corpus": str(corpus), "hyper": HYPER, "alpha": ALPHA,
            "epochs": args.epochs}
    vocab, data = load_corpus(corpus, HYPER["min_count"])
    meta["load_s"] = time.perf_counter() - start
    meta["words"], meta["vocab"] = data.raw_words, len(vocab)
    print(f"{meta['device']} | {data.raw_words:,} words, V = {len(vocab):,}, loaded in "
          f"{meta['load_s']:.1f} s", file=sys.stderr, flush=True)

    rows: list[dict] = []
    for run in args.runs:
        if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
            print(f"budget spent: skip {run}", file=sys.stderr, flush=True)
            continue
        try:
            row = run_one(run, vocab, data, args.epochs,
                          args.steps_per_call or steps_per_call(run["batch_size"]), args.lanes)
        except Exception as e:  # a failed run is a row of the table, not the end of the sweep
            row = dict(run, epochs=args.epochs, error=f"{type(e).__name__}: {e}"[:160])
        rows.append(row)
        print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)
        meta["peak_rss_mb"] = peak_rss_mb()
        meta["peak_device_mb"] = peak_device_mb()  # the process's, over all runs so far
        md = (f"Measured {meta['date']} on {meta['device']['device_kind']} "
              f"({meta['device']['platform']}; host {meta['machine']['cores']} cores, jax "
              f"{meta['machine']['jax']}); corpus {corpus.name}, {data.raw_words:,} words, "
              f"{args.epochs} epochs, {HYPER}, alpha SG {ALPHA['sg']} / CBOW {ALPHA['cbow']}, "
              f"lanes {rows[-1].get('lanes', args.lanes)}.\n\n"
              + table(rows))
        (out / "accelerator.md").write_text(md)
        (out / "accelerator.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if rows:
        plot(rows, meta, out / "accelerator.png")
        print((out / "accelerator.md").read_text())


if __name__ == "__main__":
    main()
