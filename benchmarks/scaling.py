"""Scaling of the trainer: raw words/s against the number of devices and the vocabulary size.

    python benchmarks/scaling.py                                  # defaults, ~10 min on 2 cores
    python benchmarks/scaling.py --devices 1,2 --vocab 1000,100000 --words 500000

Two measurements, each training run in its own subprocess (``XLA_FLAGS`` must hold
``--xla_force_host_platform_device_count=D`` before JAX starts, and peak RSS is then the
run's own). Every child sets ``XLA_FLAGS`` to the CLI's speed flags (``tune_xla_cpu``:
no YNNPACK fusions, single-threaded Eigen) plus that device count.

1. **Devices.** The first ``--words`` words of the corpus (default: the shared bench
   corpus, else the embedded KJV corpus), one epoch of SG and of CBOW with negative
   sampling and the Config defaults (d 100, window 5, K 5, sample 1e-3, min_count 5),
   for every D of ``--devices`` and both table layouts (``replicated``, ``sharded``
   along the vocabulary). D = 1 is the plain one-device trainer whatever the layout
   (``make_parallel`` returns None), so it runs once per mode and is the baseline of
   the "vs D=1" ratio. Each step takes C centres per device, so a D-device step is one
   step of D·C centres: fewer, larger steps, and the final loss is not quite comparable.
2. **Vocabulary.** Synthetic corpora of V word types ``w0 … w{V-1}``: every type occurs
   at least once (so all V pass min_count 1), the rest of the tokens follow a Zipf(1)
   law (count of rank i ∝ 1/i), shuffled, 25 words a line; ``max(--vocab-words, 3·V)``
   tokens. SG with negative sampling on D = 1 and on D = 2 with sharded tables.
   Reported: words/s and the child's peak RSS (``VmHWM``: corpus, vocabulary,
   tables and XLA's buffers together).

How words/s is measured (steady state, JIT compile excluded): ``train`` reports a
``Progress`` after each device call, one call late, once that call has finished; the
rate is (raw words at the last report − raw words at the 2nd report) / (time between
them), i.e. the calls after the first two (the first one compiles). "incl. compile" is
the whole call's raw words / its training seconds, for reference. Runs with fewer than
three reports fall back to the whole-run rate and are flagged.

How to read it: forced host devices are not extra hardware; they split the same CPU
cores (2 on the machine these results were measured on), so D > 1 cannot scale
linearly here: the ratios show what the data-parallel paths (collectives: all_gather
of every device's row ids and updates; for sharded tables also a psum_scatter per row
lookup) cost relative to the one-device trainer. On real accelerators each device has
its own compute and the picture differs. Against V, negative sampling's per-pair cost
is flat (K + 1 rows), so words/s should stay roughly flat until the V×d tables stop
fitting in cache; RSS grows with V (two V×d f32 tables, 0.8 GB at V = 1M, d = 100).
The machine may be shared with other jobs: the load average at start and end is in
the JSON; rerun before reading much into differences of ±10–20 %.

Writes ``scaling.{md,json,png}`` into ``--out`` (default ``benchmarks/out``) and copies
them to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import peak_rss_mb  # benchmarks/ is the script's directory

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "bench-corpus.txt.gz"
RESULTS = ROOT / "benchmarks" / "results"
SPEED_FLAGS = "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_multi_thread_eigen=false"
HYPER = dict(vector_size=100, window=5, negative=5, sample=1e-3)  # the Config defaults
SKIP_REPORTS = 1  # the steady-state interval starts at the 2nd report (after 2 calls)
LINE_WORDS = 25  # synthetic corpus: words per line (sentence)


# --------------------------------------------------------------------------- child
# Runs in a fresh subprocess with XLA_FLAGS already set; prints one JSON line.


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    import jax
    import numpy as np

    from w2v_jax import Config, load_corpus
    from w2v_jax.train import Progress, train

    t0 = time.perf_counter()
    cfg = Config(**HYPER, sg=int(spec["mode"] == "sg"), epochs=1, min_count=spec["min_count"],
                 devices=spec["devices"], tables=spec["tables"])
    vocab, data = load_corpus(spec["corpus"], cfg.min_count)
    t1 = time.perf_counter()
    reports: list[Progress] = []
    state = train(cfg, vocab, data, on_progress=reports.append)
    np.asarray(state.w_in)
    t2 = time.perf_counter()

    res = {"load_s": t1 - t0, "train_s": t2 - t1, "vocab": len(vocab),
           "words": data.raw_words, "jax_devices": len(jax.devices())}
    res.update(rates(reports, data.raw_words * cfg.epochs, t2 - t1))
    res["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res), flush=True)


def rates(reports: list, words: int, train_s: float) -> dict:
    """Words/s of a run from its ``Progress`` reports (see the module docstring):
    steady state between the 2nd and the last report, else the whole run's (flagged)."""
    res = {"calls": len(reports), "final_loss": reports[-1].loss,
           "words_per_sec_incl_compile": words / train_s, "first_call_s": reports[0].elapsed}
    if len(reports) > SKIP_REPORTS + 1:
        a, b = reports[SKIP_REPORTS], reports[-1]
        res["words_per_sec"] = (b.words - a.words) / (b.elapsed - a.elapsed)
        res["steady"] = True
        res["steady_words"] = b.words - a.words
    else:
        res["words_per_sec"] = res["words_per_sec_incl_compile"]
        res["steady"] = False
    return res


# --------------------------------------------------------------------------- corpora


def first_words(src: Path, dst: Path, n: int) -> int:
    """Copies the first n words of src (plain or .gz) to dst, keeping line breaks."""
    opener = gzip.open if src.suffix == ".gz" else open
    done = 0
    with opener(src, "rt", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        for line in f:
            words = line.split()
            if not words:
                continue
            words = words[:n - done]
            g.write(" ".join(words) + "\n")
            done += len(words)
            if done >= n:
                break
    return done


def zipf_counts(vocab_size: int, tokens: int):
    """i64[V] counts max(1, ⌊A/i⌋) for ranks i = 1..V, A chosen so they sum to ~tokens."""
    import numpy as np

    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    lo, hi = 0.0, float(tokens)
    for _ in range(60):  # bisection on A
        a = (lo + hi) / 2
        if np.maximum(np.floor(a / ranks), 1).sum() > tokens:
            hi = a
        else:
            lo = a
    return np.maximum(np.floor(lo / ranks), 1).astype(np.int64)


def synthetic_corpus(path: Path, vocab_size: int, tokens: int, seed: int = 0) -> dict:
    """Writes a shuffled Zipfian corpus of ``vocab_size`` types ``w{i}``; returns its stats."""
    import numpy as np

    counts = zipf_counts(vocab_size, tokens)
    ids = np.repeat(np.arange(vocab_size, dtype=np.int64), counts)
    np.random.default_rng(seed).shuffle(ids)
    names = np.asarray([f"w{i}" for i in range(vocab_size)], dtype=object)
    with open(path, "w", encoding="utf-8") as f:
        step = LINE_WORDS * 4000
        for start in range(0, ids.size, step):
            chunk = names[ids[start:start + step]]
            lines = [" ".join(chunk[i:i + LINE_WORDS]) for i in range(0, chunk.size, LINE_WORDS)]
            f.write("\n".join(lines) + "\n")
    return {"tokens": int(ids.size), "top_share": float(counts[0] / ids.size),
            "singletons": int((counts == 1).sum())}


# --------------------------------------------------------------------------- driver


def run_child(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"{SPEED_FLAGS} "
               f"--xla_force_host_platform_device_count={spec['devices']}")
    env.setdefault("PYTHONPATH", str(ROOT))
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                           capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    row = {"wall_s": time.perf_counter() - t0}
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        err = r.stderr.strip().splitlines() or [f"exit {r.returncode}"]
        row["error"] = err[-1][:200]
        row["stderr_tail"] = "\n".join(err[-40:])
    else:
        row.update(json.loads(line[-1][7:]))
    return row


def fmt_rate(r: dict) -> str:
    s = f"{r['words_per_sec'] / 1e3:,.0f}k"
    return s if r.get("steady", True) else s + " (incl. compile)"


def devices_table(rows: list[dict]) -> str:
    head = ("| mode | devices | tables | words/s (steady) | vs D=1 | words/s incl. compile "
            "| first call s | calls | final loss | peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        lead = f"| {r['mode']} | {r['devices']} | {r['tables']} "
        if "error" in r:
            lines.append(lead + f"| failed: {r['error']} | | | | | | |")
            continue
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else "–"
        lines.append(lead + f"| {fmt_rate(r)} | {ratio} "
                     f"| {r['words_per_sec_incl_compile'] / 1e3:,.0f}k | {r['first_call_s']:.1f} "
                     f"| {r['calls']} | {r['final_loss']:.3f} | {r['peak_rss_mb']:.0f} |")
    return head + "\n".join(lines) + "\n"


def vocab_table(rows: list[dict]) -> str:
    head = ("| V | tokens | vocab kept | devices | tables | words/s (steady) "
            "| words/s incl. compile | final loss | peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        lead = f"| {r['V']:,} | {r['tokens']:,} "
        if "error" in r:
            lines.append(lead + f"| | {r['devices']} | {r['tables']} | failed: {r['error']} | | | |")
            continue
        lines.append(lead + f"| {r['vocab']:,} | {r['devices']} | {r['tables']} | {fmt_rate(r)} "
                     f"| {r['words_per_sec_incl_compile'] / 1e3:,.0f}k | {r['final_loss']:.3f} "
                     f"| {r['peak_rss_mb']:.0f} |")
    return head + "\n".join(lines) + "\n"


def plot(dev_rows: list[dict], voc_rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"sg": "tab:blue", "cbow": "tab:orange"}
    for mode in ("sg", "cbow"):
        base = [r for r in dev_rows if r["mode"] == mode and r["devices"] == 1 and "error" not in r]
        for tables, style in (("replicated", "-o"), ("sharded", "--s")):
            pts = base + [r for r in dev_rows if r["mode"] == mode and r["tables"] == tables
                          and r["devices"] > 1 and "error" not in r]
            if pts:
                a.plot([r["devices"] for r in pts], [r["words_per_sec"] / 1e3 for r in pts],
                       style, color=colors[mode], label=f"{mode.upper()}, {tables}")
    ds = sorted({r["devices"] for r in dev_rows})
    a.set_xticks(ds)
    a.set_xlabel("forced host devices D (same CPU cores)")
    a.set_ylabel("raw words/s, steady state (thousands)")
    a.set_title(f"words/s vs devices ({meta['devices_words']:,} words, 1 epoch)")
    a.set_ylim(bottom=0)
    a.grid(alpha=0.3)
    a.legend()

    for (d, tables), style in (((1, "replicated"), "-o"), ((2, "sharded"), "--s")):
        pts = [r for r in voc_rows if r["devices"] == d and "error" not in r]
        if not pts:
            continue
        xs, ys = [r["V"] for r in pts], [r["words_per_sec"] / 1e3 for r in pts]
        b.plot(xs, ys, style, label=f"SG, D={d}" + (f" {tables}" if d > 1 else ""))
        for x, y, r in zip(xs, ys, pts):
            b.annotate(f"{r['peak_rss_mb']:.0f} MB", (x, y), textcoords="offset points",
                       xytext=(0, 8 if d == 1 else -14), ha="center", fontsize=8)
    b.set_xscale("log")
    b.set_xlabel("vocabulary size V (synthetic Zipfian corpus)")
    b.set_ylabel("raw words/s, steady state (thousands)")
    b.set_title("words/s vs V, SG negative sampling (labels: peak RSS)")
    b.set_ylim(bottom=0)
    b.grid(alpha=0.3, which="both")
    b.legend()
    fig.suptitle(f"w2v-jax scaling, {meta['date']}, {meta['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine() -> dict:
    u = platform.uname()
    return {"processor": platform.processor(), "uname": " ".join(u), "cores": os.cpu_count(),
            "python": platform.python_version(), "jax": importlib.metadata.version("jax"),
            "jaxlib": importlib.metadata.version("jaxlib")}


def ints(s: str) -> list[int]:
    return [int(float(x)) for x in s.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                   help="corpus of the devices measurement (default: the shared bench corpus, "
                   "else the embedded KJV corpus)")
    p.add_argument("--devices", type=ints, default=[1, 2, 4], help="comma-separated, e.g. 1,2,4")
    p.add_argument("--vocab", type=ints, default=[1000, 10_000, 100_000, 1_000_000],
                   help="comma-separated vocabulary sizes of the synthetic corpora")
    p.add_argument("--words", type=int, default=1_500_000,
                   help="words of the corpus used by the devices measurement")
    p.add_argument("--vocab-words", type=int, default=1_000_000,
                   help="tokens of each synthetic corpus (at least 3·V)")
    p.add_argument("--modes", default="sg,cbow", help="devices measurement: sg,cbow")
    p.add_argument("--parts", default="devices,vocab", help="devices,vocab")
    p.add_argument("--timeout", type=float, default=600, help="seconds per training subprocess")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    p.add_argument("--no-copy", action="store_true", help="do not copy to benchmarks/results")
    args = p.parse_args()

    corpus = Path(args.corpus)
    if not corpus.is_file():
        from w2v_jax.corpus import embedded_corpus_path

        print(f"scaling: corpus {corpus} not found; using the embedded corpus", file=sys.stderr)
        corpus = embedded_corpus_path()
    parts = set(args.parts.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="w2v-scaling-"))
    started = time.perf_counter()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), **machine(),
            "loadavg_start": os.getloadavg(), "xla_flags": SPEED_FLAGS
            + " --xla_force_host_platform_device_count=D", "hyper": HYPER,
            "words_per_sec": "steady state: raw words between the 2nd and the last Progress "
            "report / time between them (compile excluded)"}
    meta["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.processor() or platform.platform()}")
    dev_rows: list[dict] = []
    voc_rows: list[dict] = []

    def log(text):
        print(text.splitlines()[-1], file=sys.stderr, flush=True)

    try:
        if "devices" in parts:
            head = tmp / "head.txt"
            n = first_words(corpus, head, args.words)
            meta.update(devices_corpus=str(corpus), devices_words=n)
            for mode in args.modes.split(","):
                base = None
                for d in args.devices:
                    for tables in (("replicated",) if d == 1 else ("replicated", "sharded")):
                        spec = {"corpus": str(head), "mode": mode, "devices": d,
                                "tables": tables, "min_count": 5}
                        print(f"running devices: {mode} D={d} {tables} ...", file=sys.stderr,
                              flush=True)
                        row = {"mode": mode, "devices": d,
                               "tables": tables if d > 1 else "(one device)"}
                        row.update(run_child(spec, args.timeout))
                        if d == 1 and "error" not in row:
                            base = row["words_per_sec"]
                        if "error" not in row:
                            row["ratio"] = row["words_per_sec"] / base if base else None
                        dev_rows.append(row)
                        log(devices_table([row]))
        if "vocab" in parts:
            for v in args.vocab:
                path = tmp / f"zipf-{v}.txt"
                stats = synthetic_corpus(path, v, max(args.vocab_words, 3 * v))
                for d, tables in ((1, "replicated"), (2, "sharded")):
                    spec = {"corpus": str(path), "mode": "sg", "devices": d, "tables": tables,
                            "min_count": 1}
                    print(f"running vocab: V={v:,} D={d} {tables} ...", file=sys.stderr,
                          flush=True)
                    row = {"V": v, "devices": d, "tables": tables if d > 1 else "(one device)",
                           **stats}
                    row.update(run_child(spec, args.timeout))
                    voc_rows.append(row)
                    log(vocab_table([row]))
                path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.perf_counter() - started
    md = (f"Measured {meta['date']} on {meta['machine']} (jax {meta['jax']}, jaxlib "
          f"{meta['jaxlib']}); load average {meta['loadavg_start'][0]:.1f} at start, "
          f"{meta['loadavg_end'][0]:.1f} at end; whole run {meta['wall_s'] / 60:.1f} min. "
          f"Negative sampling, {HYPER}, 1 epoch. Devices are forced host devices "
          f"(`--xla_force_host_platform_device_count`), which share the machine's "
          f"{os.cpu_count()} cores. words/s (steady) = raw words between the 2nd and the last "
          f"progress report / the time between them (JIT compile excluded); \"incl. compile\" "
          f"= all raw words / the whole train() call.\n\n")
    if dev_rows:
        md += (f"### words/s vs devices\n\nFirst {meta['devices_words']:,} words of "
               f"{Path(meta['devices_corpus']).name}, min_count 5. D=1 is the one-device trainer "
               f"(the table layout does not apply) and the baseline of \"vs D=1\".\n\n"
               + devices_table(dev_rows) + "\n")
    if voc_rows:
        md += ("### words/s vs vocabulary size\n\nSynthetic Zipf(1) corpora (every type at "
               "least once, shuffled), SG, min_count 1. Peak RSS is the whole training "
               "process's.\n\n" + vocab_table(voc_rows))
    (out / "scaling.md").write_text(md)
    (out / "scaling.json").write_text(json.dumps(
        {"meta": meta, "devices": dev_rows, "vocab": voc_rows}, indent=2))
    meta.setdefault("devices_words", 0)
    plot(dev_rows, voc_rows, meta, out / "scaling.png")
    if not args.no_copy and out.resolve() != RESULTS.resolve():
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in ("scaling.md", "scaling.json", "scaling.png"):
            shutil.copy(out / name, RESULTS / name)
    print(md)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
