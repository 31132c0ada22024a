"""Peak memory against corpus length: the memory-mapped dataset path vs the in-memory one.

    python benchmarks/memory.py                        # defaults (1×, 4×, 16×), ~10 min on 2 cores
    python benchmarks/memory.py --repeats 1,2 --keep   # quicker; keep the corpora and caches

Run from the repository root after ``pip install -e ".[dev]"``. The bench corpus
(``--corpus``, default ``../shared/data/bench-corpus.txt.gz``, ~7.55M words) is
decompressed and written N times end to end as one plain ``.txt`` file (``--work``,
default ``benchmarks/out/memory-work``) for every N of ``--repeats`` (default 1,4,16:
up to ~120M words, ~0.7 GB of text). For each N, every measurement is its own
subprocess, so its peak memory is its own:

1. **prepare**: ``w2v_jax.dataset.load_dataset_corpus(FILE, cache_dir=CACHE)`` with the
   trainer's defaults (min_count 5): Hugging Face ``datasets`` converts the text to Arrow,
   counts words (pass 1), writes memory-mapped int32 ids (pass 2) into a fresh cache.
2. **train**: ``w2v-jax train --dataset FILE --cache-dir CACHE --sg 0 --epochs 1
   --no-checkpoints --no-progress`` (CBOW, every other hyper-parameter the default:
   d 100, window 5, K 5, sample 1e-3). The cache entry of step 1 is hit (checked in the
   log), so this is the trainer reading the memory-mapped ids, ``CHUNK_TOKENS`` at a time.
   No checkpoints are written (a checkpoint copies the tables to host memory).
3. **in-memory load** (contrast): ``w2v_jax.corpus.load_corpus(FILE)``, what ``--corpus``
   does before training: the whole token stream as an int32 array in memory.

Also measured once per N, in a small subprocess: the Python size of the vocabulary
(``Vocab.load`` of the cache entry's vocab.txt, by ``tracemalloc``), and once in all a
**baseline**: a process that imports w2v_jax, datasets and JAX and runs one JAX op.

Memory numbers, all in MB (2^20 bytes):

* ``peak RSS``: the child's ``ru_maxrss`` from ``os.wait4`` (the kernel's exact peak of
  the resident set). The resident set includes *file-backed* pages: pages of a
  memory-mapped file that the process has touched (the cached ids, datasets' Arrow
  file) count in RSS until the kernel reclaims them, although they are page cache that
  the kernel may drop at any time, not memory the process allocated.
* ``peak anon``: the largest ``RssAnon`` (anonymous memory: heap, NumPy arrays, XLA
  buffers) seen by the parent polling ``/proc/PID/status`` every ``--poll`` seconds
  (default 0.05). A sampled peak: a spike shorter than the interval can be missed. This
  is the memory that has to fit; it is what should not grow with the corpus.
* ``tables``: 2·V·d·4 bytes, the two f32 embedding tables of V words and d = 100
  dimensions; V grows with N here, since words rarer than min_count = 5 in the bench
  corpus pass it once repeated. ``beyond`` = peak anon − tables − vocabulary: the part
  that should stay flat.

Writes ``memory.{md,json,png}`` into ``--out`` (default ``benchmarks/out``) and copies
them to ``benchmarks/results`` (unless ``--no-copy``). The repeated corpora, caches and
run directories are deleted at the end unless ``--keep``. The machine may be shared:
the load average at start and end is in the JSON.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "bench-corpus.txt.gz"
RESULTS = ROOT / "benchmarks" / "results"
MB = 1 << 20
VECTOR_SIZE = 100  # the Config default; the train command does not change it
TRAIN_FLAGS = ["--sg", "0", "--epochs", "1", "--no-checkpoints", "--no-progress"]


# --------------------------------------------------------------------------- children
# Each runs in a fresh subprocess and prints one line "RESULT {json}".


def _result(res: dict) -> None:
    print("RESULT " + json.dumps(res), flush=True)


def child_prepare(path: str, cache: str) -> None:
    from w2v_jax.dataset import cache_entry, load_dataset_corpus

    t0 = time.perf_counter()
    vocab, corpus = load_dataset_corpus(path, cache_dir=cache)
    secs = time.perf_counter() - t0
    entry = cache_entry(path, cache_dir=cache)
    _result({"seconds": secs, "vocab": len(vocab), "raw_words": corpus.raw_words,
             "tokens": int(corpus.ids.size), "sentences": int(corpus.sentence_lengths.size),
             "entry": str(entry),
             "cache_mb": sum(f.stat().st_size for f in entry.iterdir()) / MB})


def child_vocab(vocab_txt: str) -> None:
    import tracemalloc

    tracemalloc.start()
    from w2v_jax.vocab import Vocab

    base = tracemalloc.get_traced_memory()[0]
    vocab = Vocab.load(vocab_txt)
    _result({"vocab": len(vocab), "vocab_mb": (tracemalloc.get_traced_memory()[0] - base) / MB})


def child_load(path: str) -> None:
    from w2v_jax.corpus import load_corpus

    t0 = time.perf_counter()
    vocab, corpus = load_corpus(path)
    _result({"seconds": time.perf_counter() - t0, "vocab": len(vocab),
             "raw_words": corpus.raw_words, "tokens": int(corpus.ids.size)})


def child_baseline() -> None:
    from w2v_jax.cli import tune_xla_cpu

    tune_xla_cpu()
    import datasets  # noqa: F401
    import jax
    import jax.numpy as jnp

    import w2v_jax.train  # noqa: F401

    jnp.ones(8).sum().block_until_ready()
    _result({"jax_devices": len(jax.devices())})


CHILDREN = {"prepare": child_prepare, "vocab": child_vocab, "load": child_load,
            "baseline": child_baseline}


# --------------------------------------------------------------------------- measuring


def _status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem of a live process, in kB ({} once it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def measure(cmd: list[str], log_path: Path, timeout: float, poll: float) -> dict:
    """Runs cmd to the end, polling its /proc status; returns its peaks, seconds, exit code
    and the parsed RESULT line (if any). stdout+stderr go to log_path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    samples, series = 0, []
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            st = _status(p.pid)
            for k, v in st.items():
                peaks[k] = max(peaks[k], v)
            if st and samples % 20 == 0:  # every ~1 s: is memory flat within the run?
                series.append([round(time.perf_counter() - t0, 1), st.get("RssAnon", 0) >> 10,
                               st.get("RssFile", 0) >> 10])
            samples += 1
            if time.perf_counter() - t0 > timeout and not timed_out:
                timed_out = True
                os.kill(p.pid, signal.SIGKILL)  # the child we started, by its pid
            time.sleep(poll)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen quiet
    row = {"wall_s": time.perf_counter() - t0, "returncode": p.returncode,
           "peak_rss_mb": ru.ru_maxrss / 1024, "peak_anon_mb": peaks["RssAnon"] / 1024,
           "peak_file_mb": peaks["RssFile"] / 1024,
           "peak_sampled_rss_mb": peaks["VmRSS"] / 1024, "samples": samples,
           "series_s_anon_file_mb": series}
    text = log_path.read_text(errors="replace")
    lines = [x for x in text.splitlines() if x.startswith("RESULT ")]
    if lines:
        row.update(json.loads(lines[-1][7:]))
    if timed_out:
        row["error"] = f"timed out after {timeout:.0f} s"
    elif p.returncode != 0:
        tail = [x for x in text.strip().splitlines() if x.strip()] or [f"exit {p.returncode}"]
        row["error"] = tail[-1][:300]
        row["log_tail"] = "\n".join(tail[-30:])
    row["log"] = str(log_path)
    return row


def child_cmd(name: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", name, *args]


def train_metrics(run: Path) -> dict:
    """From the run's metrics.jsonl: the summary and a steady-state words/s (progress
    records after the first two, so the JIT compile is excluded)."""
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    done = [r for r in recs if r.get("event") == "done"]
    prog = [r for r in recs if "words_per_sec" in r and "elapsed" in r and "event" not in r]
    out = {}
    if done:
        d = done[-1]
        out.update(load_s=d.get("load_seconds"), train_s=d.get("train_seconds"),
                   words_per_sec_incl_compile=d.get("words_per_sec"), vocab=d.get("vocab_size"),
                   raw_words=d.get("raw_words"))
    if len(prog) >= 3:
        a, b = prog[1], prog[-1]
        if b["elapsed"] > a["elapsed"]:
            out["words_per_sec"] = (b["words"] - a["words"]) / (b["elapsed"] - a["elapsed"])
    return out


# --------------------------------------------------------------------------- corpora


def write_repeated(text: bytes, n: int, path: Path) -> int:
    """path ← text written n times; returns its size in bytes."""
    if not text.endswith(b"\n"):
        text += b"\n"  # a repeat must not glue its first line onto the last one
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(text)
    return path.stat().st_size


# --------------------------------------------------------------------------- report


def fmt(v, spec=",.0f") -> str:
    return "–" if v is None else format(v, spec)


def table(rows: list[dict], baseline: dict | None) -> str:
    head = ("| N | words | vocab V | tables MB | vocab MB | prepare s | prepare peak RSS | "
            "prepare peak anon | train s | words/s | train peak RSS | train peak anon | "
            "train beyond | load s | load peak RSS | load peak anon |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        p, t, m = r["prepare"], r["train"], r["load"]

        def cell(x, key, spec=",.0f"):
            return f"failed: {x['error'][:60]}" if "error" in x else fmt(x.get(key), spec)

        lines.append(
            f"| {r['n']}× | {fmt(r.get('words'))} | {fmt(r.get('vocab'))} "
            f"| {fmt(r.get('tables_mb'))} | {fmt(r.get('vocab_mb'), ',.1f')} "
            f"| {cell(p, 'seconds', ',.1f')} | {cell(p, 'peak_rss_mb')} | {cell(p, 'peak_anon_mb')} "
            f"| {cell(t, 'wall_s', ',.1f')} | {cell(t, 'words_per_sec')} | {cell(t, 'peak_rss_mb')} "
            f"| {cell(t, 'peak_anon_mb')} | {fmt(r.get('train_beyond_mb'))} "
            f"| {cell(m, 'seconds', ',.1f')} | {cell(m, 'peak_rss_mb')} | {cell(m, 'peak_anon_mb')} |")
    return head + "\n".join(lines) + "\n"


def growth(rows: list[dict]) -> dict:
    """MB from the smallest N to the largest, per measurement (None if either failed)."""
    ok = lambda r, ph, k: r[ph].get(k) if "error" not in r[ph] else None  # noqa: E731
    a, b = rows[0], rows[-1]
    out = {}
    for ph in ("prepare", "train", "load"):
        for k in ("peak_rss_mb", "peak_anon_mb", "peak_file_mb"):
            x, y = ok(a, ph, k), ok(b, ph, k)
            out[f"{ph}.{k}"] = None if x is None or y is None else y - x
    for k in ("tables_mb", "vocab_mb", "train_beyond_mb"):
        x, y = a.get(k), b.get(k)
        out[k] = None if x is None or y is None else y - x
    return out


def plot(rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    series = [("prepare", "peak_rss_mb", "prepare (dataset build): peak RSS", "tab:green", "-o"),
              ("prepare", "peak_anon_mb", "prepare: peak anon", "tab:green", ":o"),
              ("train", "peak_rss_mb", "train from cache (memmap): peak RSS", "tab:blue", "-s"),
              ("train", "peak_anon_mb", "train from cache: peak anon", "tab:blue", ":s"),
              ("load", "peak_rss_mb", "--corpus in-memory load: peak RSS", "tab:red", "-^"),
              ("load", "peak_anon_mb", "--corpus in-memory load: peak anon", "tab:red", ":^")]
    for ph, key, label, color, style in series:
        pts = [(r["words"] / 1e6, r[ph][key]) for r in rows
               if "error" not in r[ph] and r.get("words") and r[ph].get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), style, color=color, label=label)
    pts = [(r["words"] / 1e6, r["train_beyond_mb"]) for r in rows
           if r.get("train_beyond_mb") is not None]
    if pts:
        ax.plot(*zip(*pts), "--D", color="black",
                label="train: peak anon − tables (2·V·d·4) − vocabulary")
    for r in rows:
        if r.get("words"):
            ax.annotate(f"{r['n']}×, V={r.get('vocab') or 0:,}", (r["words"] / 1e6, 0),
                        textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    if meta.get("baseline_rss_mb"):
        ax.axhline(meta["baseline_rss_mb"], color="grey", lw=0.8, ls="-.",
                   label="baseline: python + w2v_jax + datasets + JAX")
    ax.set_xlabel("corpus words (millions; bench corpus repeated N×)")
    ax.set_ylabel("MB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("w2v-jax peak memory vs corpus length (CBOW, 1 epoch, d=100)")
    fig.suptitle(f"{meta['date']}, {meta['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine() -> dict:
    u = platform.uname()
    return {"uname": " ".join(u), "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": importlib.metadata.version("jax"),
            "jaxlib": importlib.metadata.version("jaxlib"),
            "datasets": importlib.metadata.version("datasets"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"}


def _late_anon(x: dict) -> float | None:
    """Largest sampled RssAnon over the last 3/4 of a run (None without a series)."""
    ser = x.get("series_s_anon_file_mb") or []
    if len(ser) < 8:
        return None
    return max(a for _, a, _ in ser[len(ser) // 4:])


def reading(rows: list[dict], g: dict, meta: dict) -> str:
    a, b = rows[0], rows[-1]
    f = lambda v: "–" if v is None else f"{v:+,.0f} MB"  # noqa: E731
    ok = lambda r, ph: "error" not in r[ph]  # noqa: E731
    steps = ", ".join(f"{r['n']}×: {r['train_beyond_mb']:,.0f}" for r in rows
                      if r.get("train_beyond_mb") is not None)
    text = (f"From {a['n']}× to {b['n']}× ({a.get('words') or 0:,} → {b.get('words') or 0:,} "
            f"words) the vocabulary grew from {a.get('vocab') or 0:,} to {b.get('vocab') or 0:,} "
            f"words (repeating the corpus lifts rare words over min_count 5), i.e. "
            f"{f(g['tables_mb'])} of embedding tables and {f(g['vocab_mb'])} of vocabulary "
            f"objects. ")
    if ok(a, "train") and ok(b, "train"):
        text += (f"Training from the memory-mapped cache grew {f(g['train.peak_anon_mb'])} in "
                 f"peak anonymous memory; less the tables and the vocabulary, \"beyond\" was "
                 f"{steps} MB; the part that grows is V-sized (host copies of the tables, "
                 f"the sampler's table), not corpus-sized. ")
        ids_growth = (b.get("words") or 0) * 4 / MB - (a.get("words") or 0) * 4 / MB
        if g["train.peak_file_mb"] is not None and g["train.peak_file_mb"] > 0.5 * ids_growth:
            text += (f"Its peak RSS grew {f(g['train.peak_rss_mb'])}: the file-backed part "
                     f"(RssFile) grew {f(g['train.peak_file_mb'])}, about the {ids_growth:,.0f} "
                     f"MB difference of the int32 id files: pages of the memory-mapped ids that "
                     f"the epoch has read stay mapped and count in RSS. ")
        else:
            text += (f"Its peak RSS grew {f(g['train.peak_rss_mb'])}, its file-backed part "
                     f"(RssFile) {f(g['train.peak_file_mb'])} although the id files differ by "
                     f"{ids_growth:,.0f} MB: the trainer reads each chunk of the memory-mapped "
                     f"ids with read(), so no corpus pages stay mapped. ")
        late = [(_late_anon(r["train"]), r["n"]) for r in rows if ok(r, "train")]
        if all(v is not None for v, _ in late):
            text += ("Largest anonymous memory over the last three quarters of each training "
                     "run: " + ", ".join(f"{n}×: {v:,.0f} MB" for v, n in late) + ". ")
    if ok(a, "prepare") and ok(b, "prepare"):
        text += (f"The dataset build's anonymous peak grew {f(g['prepare.peak_anon_mb'])}, its "
                 f"peak RSS {f(g['prepare.peak_rss_mb'])} (file-backed pages of the Arrow copy "
                 f"of the text that datasets memory-maps, {f(g['prepare.peak_file_mb'])}). ")
    if ok(a, "load") and ok(b, "load") and a.get("words") and b.get("words"):
        per = g["load.peak_anon_mb"] * MB / (b["words"] - a["words"])
        text += (f"The in-memory `--corpus` load grew {f(g['load.peak_rss_mb'])} "
                 f"({per:,.1f} bytes of anonymous memory per extra word), before training "
                 f"even starts: that path scales with the corpus.")
    return text


def write_report(rows: list[dict], meta: dict, out: Path, no_copy: bool) -> None:
    """memory.{md,json,png} into out, copied to benchmarks/results unless no_copy."""
    g = growth(rows)
    md = (f"Measured {meta['date']} on {meta['machine']} (jax {meta['jax']}, datasets "
          f"{meta['datasets']}); load average {meta['loadavg_start'][0]:.1f} at start, "
          f"{meta['loadavg_end'][0]:.1f} at end; whole benchmark "
          f"{meta['wall_s'] / 60:.1f} min.\n\n"
          f"Corpus: {Path(meta['corpus']).name} written N times into one plain .txt. "
          f"**prepare** = `load_dataset_corpus(FILE, cache_dir=CACHE)` (dataset build, fresh "
          f"cache); **train** = `{meta['train_command']}` (cache hit; CBOW, 1 epoch, defaults, "
          f"no checkpoints; s = the whole process, words/s = steady state from "
          f"metrics.jsonl, compile excluded); **load** = `load_corpus(FILE)`, the "
          f"`--corpus` path's reading, for contrast. Each in its own subprocess. "
          f"Peak RSS = `ru_maxrss` (includes touched pages of memory-mapped files); "
          f"peak anon = largest sampled `RssAnon` (every {meta['poll_s']:g} s); tables = "
          f"2·V·d·4 bytes (d = {VECTOR_SIZE}); vocab MB = `Vocab.load` by tracemalloc; "
          f"train beyond = train peak anon − tables − vocab. All in MB (2^20 bytes). "
          f"Baseline process (python + w2v_jax + datasets + JAX, one op): "
          f"{fmt(meta.get('baseline_rss_mb'))} MB peak RSS.\n\n"
          + table(rows, meta.get("baseline"))
          + "\nGrowth from the smallest to the largest N (MB): "
          + ", ".join(f"{k} {fmt(v, '+,.0f')}" for k, v in g.items()) + ".\n\n"
          + reading(rows, g, meta) + "\n")
    (out / "memory.md").write_text(md)
    (out / "memory.json").write_text(json.dumps(
        {"meta": meta, "rows": rows, "growth": g}, indent=2, default=str))
    plot(rows, meta, out / "memory.png")
    if not no_copy and out.resolve() != RESULTS.resolve():
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in ("memory.md", "memory.json", "memory.png"):
            shutil.copy(out / name, RESULTS / name)
    print(md)


# --------------------------------------------------------------------------- driver


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                   help="base corpus, plain or .gz (default: the shared bench corpus)")
    p.add_argument("--repeats", type=ints, default=[1, 4, 16],
                   help="comma-separated repeat counts N (default: 1,4,16)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "memory-work"),
                   help="where the repeated corpora, caches and runs go")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    p.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    p.add_argument("--poll", type=float, default=0.05, help="seconds between /proc samples")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: prepare,train,load")
    p.add_argument("--keep", action="store_true", help="keep the corpora, caches and runs")
    p.add_argument("--no-copy", action="store_true", help="do not copy to benchmarks/results")
    p.add_argument("--report", metavar="JSON",
                   help="only rewrite memory.{md,png} (into --out) from an earlier memory.json")
    args = p.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_report(saved["rows"], saved["meta"], Path(args.out), args.no_copy)
        return

    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"memory: corpus {corpus} not found; pass --corpus")
    skip = set(filter(None, args.skip.split(",")))
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if work.exists():
        shutil.rmtree(work)  # stale corpora would hit a stale cache
    work.mkdir(parents=True)
    started = time.perf_counter()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), **machine(), "corpus": str(corpus),
            "repeats": args.repeats, "loadavg_start": os.getloadavg(),
            "train_command": "w2v-jax train --dataset FILE --cache-dir CACHE --out RUN "
            + " ".join(TRAIN_FLAGS), "vector_size": VECTOR_SIZE, "poll_s": args.poll,
            "mb": "2^20 bytes"}

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    opener = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rb") as fh:
        text = fh.read()
    rows: list[dict] = []
    try:
        say("baseline ...")
        base = measure(child_cmd("baseline"), work / "baseline.log", args.timeout, args.poll)
        meta["baseline"] = base
        meta["baseline_rss_mb"] = base.get("peak_rss_mb") if "error" not in base else None
        say(f"baseline: peak RSS {base['peak_rss_mb']:.0f} MB, anon {base['peak_anon_mb']:.0f} MB")
        for n in args.repeats:
            path = work / f"corpus-{n}x.txt"
            cache = work / f"cache-{n}x"
            run = work / f"run-{n}x"
            size = write_repeated(text, n, path)
            row = {"n": n, "file": str(path), "file_mb": size / MB}
            say(f"{n}×: wrote {path.name} ({size / MB:,.0f} MB)")
            none = {"error": "skipped"}

            row["prepare"] = none if "prepare" in skip else measure(
                child_cmd("prepare", str(path), str(cache)), work / f"prepare-{n}x.log",
                args.timeout, args.poll)
            say(f"{n}× prepare: {json.dumps({k: row['prepare'].get(k) for k in ('seconds', 'peak_rss_mb', 'peak_anon_mb', 'peak_file_mb', 'error')})}")
            if "entry" in row["prepare"]:
                voc = measure(child_cmd("vocab", str(Path(row["prepare"]["entry"]) / "vocab.txt")),
                              work / f"vocab-{n}x.log", args.timeout, args.poll)
                row["vocab_mb"] = voc.get("vocab_mb")

            if "train" in skip:
                row["train"] = none
            else:
                cmd = [sys.executable, "-m", "w2v_jax.cli", "train", "--dataset", str(path),
                       "--cache-dir", str(cache), "--out", str(run), *TRAIN_FLAGS]
                t = measure(cmd, work / f"train-{n}x.log", args.timeout, args.poll)
                log_text = Path(t["log"]).read_text(errors="replace")
                t["cache_hit"] = "using cached corpus" in log_text
                if "error" not in t:
                    t.update(train_metrics(run))
                row["train"] = t
            say(f"{n}× train: {json.dumps({k: row['train'].get(k) for k in ('wall_s', 'words_per_sec', 'peak_rss_mb', 'peak_anon_mb', 'peak_file_mb', 'cache_hit', 'error')})}")

            row["load"] = none if "load" in skip else measure(
                child_cmd("load", str(path)), work / f"load-{n}x.log", args.timeout, args.poll)
            say(f"{n}× load: {json.dumps({k: row['load'].get(k) for k in ('seconds', 'peak_rss_mb', 'peak_anon_mb', 'error')})}")

            src = next((x for x in (row["prepare"], row["train"], row["load"])
                        if "error" not in x and x.get("vocab")), {})
            row["words"] = src.get("raw_words")
            row["vocab"] = src.get("vocab")
            if row["vocab"]:
                row["tables_mb"] = 2 * row["vocab"] * VECTOR_SIZE * 4 / MB
                t = row["train"]
                if "error" not in t and t.get("peak_anon_mb"):
                    row["train_beyond_mb"] = (t["peak_anon_mb"] - row["tables_mb"]
                                              - (row.get("vocab_mb") or 0))
            rows.append(row)
            if not args.keep:  # free the disk as we go; the logs stay until the end
                path.unlink(missing_ok=True)
                shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(run, ignore_errors=True)
    finally:
        meta["loadavg_end"] = os.getloadavg()
        meta["wall_s"] = time.perf_counter() - started
        if rows:
            write_report(rows, meta, out, args.no_copy)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        CHILDREN[sys.argv[2]](*sys.argv[3:])
    else:
        main()
