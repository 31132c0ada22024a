"""Side-by-side race: w2v-jax against gensim (and fastText where installed).

Every peer trains on the same corpus with the same hyper-parameters, each in its own
subprocess (so peak RSS is its own), one after the other in one run of this script;
then one evaluator (``w2v_jax.evaluate``) scores every peer's saved vectors.

    python benchmarks/compare_peers.py                      # bench corpus, SG and CBOW, 5 epochs
    python benchmarks/compare_peers.py --epochs 1 --modes sg --peers w2v-jax gensim-file
    python benchmarks/compare_peers.py --peers gensim-file-1w   # corpus_file, one worker
    python benchmarks/compare_peers.py --modes sg --peers w2v-jax gensim-file --seeds 1 2 3
    python benchmarks/compare_peers.py --merge A/peers.json B/peers.json --out C

A single run's analogy score moves by ±0.5–1 point with the seed, for gensim as for
w2v-jax; ``--seeds`` runs every peer once per seed (a round of peers per seed) and adds
a mean ± sd table; ``--merge`` puts saved runs (e.g. seeds run at different times) into
one table and plot.

Writes ``benchmarks/out/peers.{md,json,png}`` and prints the table. Columns: train
seconds (the training call only; w2v-jax's includes its JIT compile), end-to-end
seconds (read corpus + vocabulary + training + saving word2vec binary), raw words/s
(epochs × corpus words / train seconds), peak RSS (the child's own VmHWM), peak
anonymous memory (RSS less file-backed pages such as shared libraries' code, sampled
by the driver; ``peak_memory``), vocabulary size, analogy accuracy (3CosAdd over the
30k most frequent words, gensim's convention of accuracy over the questions answered;
every peer's rows in one order, ``rank_order``, so that ties at
rank 30k cannot give peers different questions), WordSim-353 Spearman.

gensim and fastText are benchmark dependencies only (``pip install gensim fasttext``).

Read gensim's two modes with this in mind: with ``workers`` > 1, ``corpus_file`` mode
does not follow the configured learning-rate schedule. Each worker decays alpha by its
own share of the epoch (``word2vec_corpusfile.pyx``: ``get_next_alpha`` is given the
worker's ``total_sentences`` against the whole epoch's ``expected_examples``, and a
worker stops at ``expected_words / workers``), so with 2 workers alpha falls only half as
far within each epoch as configured, saw-tooths back up at the next, and ends at about
a tenth of its start rather than at ``min_alpha``. The iterable mode follows the schedule,
and so does ``corpus_file`` with one worker (peer ``gensim-file-1w``, run when named).
Peer ``w2v-jax-file-schedule`` (run when named) trains w2v-jax the way that mode runs:
the corpus read in ``workers`` lanes side by side (``Config.lanes``), each at the alpha
its gensim worker would use, so the two trainers can also be compared as gensim ran.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "bench-corpus.txt.gz"
HYPER = dict(vector_size=100, window=5, negative=5, sample=1e-4, min_count=5)
ALPHA = {"sg": 0.025, "cbow": 0.05}
PEERS = ("w2v-jax", "w2v-jax-tuned", "w2v-jax-categorical", "gensim-file", "gensim-iter",
         "fasttext", "gensim-file-1w", "w2v-jax-file-schedule", "gensim-iter-file-schedule")
# Not run unless named: "w2v-jax-tuned" (below) and "gensim-file-1w", gensim's corpus_file
# mode with one worker, the one setting of that mode that follows the configured alpha
# schedule (see the module docstring); it shows what the 2-worker schedule is worth.
# "w2v-jax-file-schedule" is the converse: w2v-jax reading the corpus in ``--workers``
# lanes, each at the alpha corpus_file mode's worker on that part applies
# (``corpus_file_schedule``); "gensim-iter-file-schedule" gives gensim's iterable mode
# that mode's per-worker decay over its slices one after another (what the schedule
# alone is worth to gensim).
OPT_IN = ("w2v-jax-tuned", "gensim-file-1w", "w2v-jax-file-schedule",
          "gensim-iter-file-schedule")
# "w2v-jax-tuned" (SG only) departs from the shared hyper-parameters on purpose and says
# so: the batched trainer sums a step's gradients, and measured best at alpha 0.035 with
# a row-term cap of 20 (gensim itself was not re-tuned).
TUNED_SG = {"alpha": 0.035, "max_row_terms": 20.0}


# --------------------------------------------------------------------------- runners
# Each runner executes in a fresh subprocess and prints one JSON line.


def corpus_file_schedule(workers: int):
    """The learning rate gensim's ``corpus_file`` mode applies with ``workers`` workers,
    as a drop-in for ``w2v_jax.train.learning_rate`` when the corpus is read in
    ``workers`` lanes side by side (``Config.lanes``), as those workers read it.

    Worker w trains the w-th of ``workers`` equal slices of each epoch and computes its
    progress as its own words over the whole epoch's (``get_next_alpha``). Read in lanes,
    at progress p ∈ [0, 1] of epoch e every lane has read p of its slice, so the rate is
    alpha − (alpha − min_alpha) · (e + p / workers) / epochs: within each epoch alpha
    falls 1/workers as far as configured.
    """
    import numpy as np

    def learning_rate(config, epoch: int, progress: np.ndarray) -> np.ndarray:
        a0 = config.learning_rate
        done = (epoch + np.asarray(progress, np.float64) / workers) / config.epochs
        return np.maximum(a0 - (a0 - config.min_alpha) * done, config.min_alpha).astype(np.float32)

    return learning_rate


def run_w2v_jax(corpus: str, mode: str, epochs: int, out: str, sampler: str, seed: int = 1,
                tuned: bool = False, schedule_workers: int | None = None) -> dict:
    from w2v_jax.cli import tune_xla_cpu
    from w2v_jax.heap import return_large_buffers

    tune_xla_cpu()  # as the CLI does, before JAX starts
    return_large_buffers()  # as the CLI does, before the corpus is read
    import numpy as np

    from w2v_jax import Config, KeyedVectors, load_corpus, train

    if schedule_workers is not None:  # benchmark-only: the trainer looks it up per block
        sys.modules["w2v_jax.train"].learning_rate = corpus_file_schedule(schedule_workers)

    t0 = time.perf_counter()
    hyper = dict(HYPER, sg=int(mode == "sg"), alpha=ALPHA[mode], epochs=epochs, sampler=sampler,
                 seed=seed)
    if schedule_workers is not None:
        hyper["lanes"] = schedule_workers
    cfg = Config(**(hyper | (TUNED_SG if tuned else {})))
    vocab, data = load_corpus(corpus, cfg.min_count)
    t1 = time.perf_counter()
    state = train(cfg, vocab, data)
    w_in = np.asarray(state.w_in)
    t2 = time.perf_counter()
    KeyedVectors(vocab.words, w_in).save_word2vec_format(out, binary=True)
    t3 = time.perf_counter()
    return {"train_s": t2 - t1, "e2e_s": t3 - t0, "vocab": len(vocab), "words": data.raw_words,
            "config": {k: v for k, v in cfg.to_dict().items() if k in (
                "sampler", "steps_per_call", "alpha", "max_row_terms", "init_scale", "seed")}
            | {"batch_size": cfg.centres_per_step, "shared_negatives": cfg.negatives_shared_by}}


def run_gensim(corpus: str, mode: str, epochs: int, out: str, workers: int, file_mode: bool,
               seed: int = 1, file_schedule: bool = False) -> dict:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    t0 = time.perf_counter()
    kw = dict(HYPER, sg=int(mode == "sg"), alpha=ALPHA[mode], epochs=epochs, workers=workers,
              seed=seed)
    model = Word2Vec(**kw)
    if file_mode:
        model.build_vocab(corpus_file=corpus)
    else:
        model.build_vocab(LineSentence(corpus))
    t1 = time.perf_counter()
    if file_mode:
        model.train(corpus_file=corpus, total_examples=model.corpus_count,
                    total_words=model.corpus_total_words, epochs=epochs)
    elif file_schedule:
        # corpus_file's per-worker decay in the iterable mode, the slices one after
        # another: each is one train() call decaying alpha as that slice's worker would.
        lines = list(LineSentence(corpus))
        a0, a1 = model.alpha, model.min_alpha
        rate = lambda x: a0 - (a0 - a1) * x / epochs  # noqa: E731
        for epoch in range(epochs):
            for w in range(workers):
                part = lines[len(lines) * w // workers:len(lines) * (w + 1) // workers]
                model.train(part, total_examples=len(part), epochs=1,
                            start_alpha=rate(epoch), end_alpha=rate(epoch + 1 / workers))
    else:
        model.train(LineSentence(corpus), total_examples=model.corpus_count, epochs=epochs)
    t2 = time.perf_counter()
    model.wv.save_word2vec_format(out, binary=True)
    t3 = time.perf_counter()
    return {"train_s": t2 - t1, "e2e_s": t3 - t0, "vocab": len(model.wv),
            "words": model.corpus_total_words, "config": {"workers": workers}}


def run_fasttext(corpus: str, mode: str, epochs: int, out: str, workers: int) -> dict:
    """fastText's Python API takes no seed (its own is fixed): runs differ only by its
    threads' timing."""
    import fasttext
    import numpy as np

    from w2v_jax import KeyedVectors

    t0 = time.perf_counter()
    # fastText builds its vocabulary inside train_unsupervised; its train time is e2e here.
    model = fasttext.train_unsupervised(
        corpus, model="skipgram" if mode == "sg" else "cbow", dim=HYPER["vector_size"],
        ws=HYPER["window"], neg=HYPER["negative"], t=HYPER["sample"], minCount=HYPER["min_count"],
        lr=ALPHA[mode], epoch=epochs, minn=0, maxn=0, thread=workers, verbose=0)
    t1 = time.perf_counter()
    words = model.get_words()
    KeyedVectors(words, np.stack([model.get_word_vector(w) for w in words])).save_word2vec_format(
        out, binary=True)
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "e2e_s": t2 - t0, "vocab": len(words), "words": None,
            "config": {"thread": workers}}


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    peer = spec.pop("peer")
    if peer.startswith("w2v-jax"):
        res = run_w2v_jax(spec["corpus"], spec["mode"], spec["epochs"], spec["out"],
                          "categorical" if peer.endswith("categorical") else "alias",
                          seed=spec["seed"], tuned=peer == "w2v-jax-tuned",
                          schedule_workers=spec["workers"] if peer == "w2v-jax-file-schedule" else None)
    elif peer.startswith("gensim"):
        res = run_gensim(spec["plain"], spec["mode"], spec["epochs"], spec["out"],
                         1 if peer == "gensim-file-1w" else spec["workers"],
                         file_mode=peer.startswith("gensim-file"), seed=spec["seed"],
                         file_schedule=peer == "gensim-iter-file-schedule")
    else:
        res = run_fasttext(spec["plain"], spec["mode"], spec["epochs"], spec["out"], spec["workers"])
    from peak_memory import peak_rss_mb  # the child runs with benchmarks/ on sys.path

    res["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res), flush=True)


# --------------------------------------------------------------------------- driver


def available(peer: str) -> bool:
    mod = "gensim" if peer.startswith("gensim") else "fasttext" if peer == "fasttext" else None
    if mod is None:
        return True
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def rank_order(corpus: str) -> tuple[list[str], int]:
    """The vocabulary every peer is scored in: corpus count descending, ties by word; and
    the corpus's raw word count (the words/s of a peer that reports none, fastText).

    Analogies search only the 30k first rows, and each tool breaks the ties among equal
    counts its own way (gensim puts the last-seen word first, w2v-jax the first-seen); on
    the bench corpus 1,621 words share the count at rank 30,000, and scoring each peer in
    its own row order gave gensim 10,014 questions and w2v-jax 10,383, a different and
    harder set. One order makes it one question set.
    """
    from w2v_jax import load_corpus

    vocab, data = load_corpus(corpus, HYPER["min_count"])
    ranked = sorted(zip(vocab.counts.tolist(), vocab.words), key=lambda cw: (-cw[0], cw[1]))
    return [w for _, w in ranked], data.raw_words


def prepare_corpus(corpus: Path, tmp: Path) -> tuple[Path, list[str], int]:
    """(plain-text copy, ``rank_order``'s order and word count); a corpus that cannot be
    read ends the script in one line. gensim's corpus_file mode and fastText read plain
    text only, so a .gz is decompressed into ``tmp`` once, untimed."""
    try:
        plain = corpus
        if corpus.suffix == ".gz":
            plain = tmp / corpus.stem
            with gzip.open(corpus, "rb") as f, open(plain, "wb") as g:
                shutil.copyfileobj(f, g, 1 << 24)
        return (plain, *rank_order(str(corpus)))
    except (OSError, EOFError, ValueError) as e:  # W2VError, bad gzip or UTF-8
        sys.exit(f"compare_peers: cannot use corpus {corpus}: {e}")


def in_order(kv, order: list[str]):
    """``kv`` with its rows put in ``order``; rows ``order`` lacks (fastText's
    end-of-line token) go last, in their own order."""
    import numpy as np

    from w2v_jax.vectors import KeyedVectors

    ranked = set(order)
    words = [w for w in order if w in kv] + [w for w in kv.index_to_key if w not in ranked]
    return KeyedVectors(words, kv.vectors[np.asarray([kv.key_to_index[w] for w in words])])


def evaluate(path: str, order: list[str]) -> dict:
    """Scores of the vectors at ``path`` with their rows in ``order``."""
    from w2v_jax.evaluate import standard_scores
    from w2v_jax.vectors import KeyedVectors

    return standard_scores(in_order(KeyedVectors.load_word2vec_format(path, binary=True), order))


def table(rows: list[dict], seeds: bool = False) -> str:
    """One markdown row per run; ``seeds`` adds a seed column (runs with several seeds)."""
    head = ("| peer | mode |" + (" seed |" if seeds else "") + " epochs | train s | end-to-end s "
            "| raw words/s | peak RSS MB | peak anon MB | vocab | analogy 3CosAdd | WordSim-353 |\n|"
            + "---|" * (12 if seeds else 11) + "\n")
    lines = []
    for r in rows:
        first = f"| {r['peer']} | {r['mode']} |" + (f" {r['seed']} |" if seeds else "")
        if "error" in r:
            lines.append(f"{first} {r['epochs']} | failed: {r['error']} | | | | | | | |")
            continue
        anon = f"{r['peak_anon_mb']:.0f}" if "peak_anon_mb" in r else "—"  # older runs: —
        # None: no analogy question answered, or under two WordSim pairs covered
        analogy = "n/a" if r["analogy"] is None else f"{100 * r['analogy']:.2f}%"
        wordsim = "n/a" if r["wordsim"] is None else f"{r['wordsim']:.3f}"
        lines.append(
            f"{first} {r['epochs']} | {r['train_s']:.1f} | {r['e2e_s']:.1f} "
            f"| {r['words_per_sec'] / 1e6:.2f}M | {r['peak_rss_mb']:.0f} | {anon} | {r['vocab']:,} "
            f"| {analogy} | {wordsim} |")
    return head + "\n".join(lines) + "\n"


def by_peer(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """The successful runs of each (peer, mode), in the order they first appear."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["peer"], r["mode"]), []).append(r)
    return groups


def summary(rows: list[dict]) -> str:
    """Mean ± sample sd over the runs of each (peer, mode) (several seeds, or repeats).

    Single runs of one trainer vary by ±0.5–1 analogy point from seed to seed (its
    sub-sampling, windows and negatives), so a gap of that size needs several seeds.
    """
    import numpy as np

    keys = [("train_s", "train s", 1, 1), ("words_per_sec", "raw words/s (M)", 1e-6, 2),
            ("peak_rss_mb", "peak RSS MB", 1, 0), ("peak_anon_mb", "peak anon MB", 1, 0),
            ("analogy", "analogy 3CosAdd %", 100, 2),
            ("wordsim", "WordSim-353", 1, 3)]
    head = ("| peer | mode | runs | " + " | ".join(k[1] for k in keys) + " |\n|"
            + "---|" * (3 + len(keys)) + "\n")
    lines = []
    for (peer, mode), rs in by_peer(rows).items():
        cells = []
        for key, _, scale, digits in keys:
            if any(key not in r for r in rs):  # older runs lack the memory breakdown
                cells.append("—")
                continue
            if any(r[key] is None for r in rs):  # a score some run could not give
                cells.append("n/a")
                continue
            x = np.asarray([r[key] for r in rs], np.float64) * scale
            sd = f" ± {x.std(ddof=1):.{digits}f}" if x.size > 1 else ""
            cells.append(f"{x.mean():.{digits}f}{sd}")
        lines.append(f"| {peer} | {mode} | {len(rs)} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Bars per (peer, mode): the mean over its runs, with ± sd whiskers where there are
    several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = by_peer(rows)
    labels = [f"{peer}\n{mode}" for peer, mode in groups]
    colors = ["tab:blue" if peer.startswith("w2v-jax") else "tab:gray" for peer, _ in groups]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for ax, key, title, scale in [(axes[0], "words_per_sec", "raw words/s (millions)", 1e-6),
                                  (axes[1], "analogy", "analogy accuracy, 3CosAdd 30k (%)", 100),
                                  (axes[2], "wordsim", "WordSim-353 Spearman", 1),
                                  (axes[3], "peak_rss_mb", "peak RSS MB (hatched: of it "
                                   "anonymous)", 1)]:
        vals = [np.asarray([np.nan if r[key] is None else r[key] * scale for r in rs])
                for rs in groups.values()]
        ax.bar(range(len(vals)), [v.mean() for v in vals], color=colors,
               yerr=[v.std(ddof=1) if v.size > 1 else 0.0 for v in vals], capsize=3)
        ax.set_xticks(range(len(vals)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(title)
    anon = [np.mean([r.get("peak_anon_mb", np.nan) for r in rs]) for rs in groups.values()]
    axes[3].bar(range(len(anon)), anon, color="none", edgecolor="black", hatch="//")
    epochs = rows[0]["epochs"] if rows else "?"
    runs = max((len(rs) for rs in groups.values()), default=1)
    fig.suptitle(f"w2v-jax vs peers, {epochs} epochs, same corpus and hyper-parameters"
                 + (f" (mean ± sd of {runs} runs)" if runs > 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["sg", "cbow"], choices=["sg", "cbow"])
    p.add_argument("--peers", nargs="+", default=[x for x in PEERS if x not in OPT_IN],
                   choices=PEERS)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--seeds", nargs="+", type=int, default=[1],
                   help="run every peer once per seed (each round of peers one after "
                   "another) and add a mean ± sd table")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    p.add_argument("--merge", nargs="+", metavar="PEERS_JSON",
                   help="train nothing: write one table and plot from these saved runs")
    args = p.parse_args()
    if args.merge:
        return merge_main(args.merge, Path(args.out))
    for name in ("epochs", "workers"):  # gensim with workers=0 trains nothing, silently
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")

    corpus = Path(args.corpus)
    if corpus.is_dir():
        sys.exit(f"compare_peers: corpus {corpus} is a directory; pass --corpus FILE")
    if not corpus.is_file():
        sys.exit(f"compare_peers: corpus {corpus} not found; pass --corpus PATH")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from peak_memory import run_watched  # benchmarks/ is on sys.path: this is a script
    rows = []
    seeds = len(args.seeds) > 1  # a seed column in the progress lines
    tmp = Path(tempfile.mkdtemp(prefix="w2v-bench-"))
    try:
        plain, order, corpus_words = prepare_corpus(corpus, tmp)
        for mode, seed, peer in itertools.product(args.modes, args.seeds, args.peers):
            if not available(peer):
                print(f"skip {peer}: not installed", file=sys.stderr)
                continue
            if peer in ("w2v-jax-categorical", "w2v-jax-tuned") and mode == "cbow":
                continue  # the sampler comparison is made once, on SG; tuning is SG's
            vec = tmp / f"{peer}-{mode}-{seed}.bin"
            spec = {"peer": peer, "corpus": str(corpus), "plain": str(plain), "mode": mode,
                    "epochs": args.epochs, "out": str(vec), "workers": args.workers,
                    "seed": seed}
            print(f"running {peer} {mode} seed {seed} ...", file=sys.stderr, flush=True)
            r, memory = run_watched([sys.executable, __file__, "--child", json.dumps(spec)])
            row = {"peer": peer, "mode": mode, "seed": seed, "epochs": args.epochs}
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if r.returncode != 0 or not line:
                row["error"] = (r.stderr.strip().splitlines() or ["?"])[-1][:120]
            else:
                row.update(json.loads(line[-1][7:]))
                row.update(memory)
                row["words"] = row["words"] or corpus_words  # fastText reports none
                row["words_per_sec"] = args.epochs * row["words"] / row["train_s"]
                try:
                    row.update(evaluate(str(vec), order))
                except Exception as e:  # noqa: BLE001 (one peer's bad vectors end its row only)
                    row = {k: row[k] for k in ("peer", "mode", "seed", "epochs")}
                    row["error"] = f"scoring: {type(e).__name__}: {e}"[:120]
                vec.unlink(missing_ok=True)
            rows.append(row)
            print(table([row], seeds).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} cores, {platform.processor() or platform.platform()}",
            "corpus": str(corpus), "hyper": HYPER, "alpha": ALPHA, "epochs": args.epochs,
            "seeds": args.seeds}
    print(write_results(rows, meta, out))


def write_results(rows: list[dict], meta: dict, out: Path) -> str:
    """Writes ``out``/peers.{md,json,png} and returns the markdown."""
    seeds = sorted({r.get("seed", 1) for r in rows})
    answered = sorted({r["analogy_answered"] for r in rows if "error" not in r})
    md = (f"Measured {meta['date']} on {meta['machine']}; corpus {Path(meta['corpus']).name}, "
          f"{meta['epochs']} epochs, {HYPER}, alpha SG {ALPHA['sg']} / CBOW {ALPHA['cbow']}. "
          "Every peer's rows are put in one order (corpus count, ties by word) before "
          f"scoring, so all answer the same analogy questions ({answered} answered).\n\n"
          + table(rows, len(seeds) > 1))
    if any(len(rs) > 1 for rs in by_peer(rows).values()):  # some peer ran more than once
        md += f"\nMean ± sd over the runs of each peer (seeds {seeds}):\n\n" + summary(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.md").write_text(md)
    (out / "peers.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    plot(rows, out / "peers.png")
    return md


def merge_main(paths: list[str], out: Path) -> None:
    """Re-renders the tables and plot of several saved runs (``peers.json``) as one, e.g.
    seeds run at different times; rows keep their own seeds, and the date lists every
    run's."""
    if len({Path(p).resolve() for p in paths}) < len(paths):
        sys.exit("compare_peers: --merge was given the same file twice (its runs would count twice)")
    runs = []
    for p in paths:
        try:
            run = json.loads(Path(p).read_text())
            run["meta"]["corpus"], run["meta"]["epochs"], run["meta"]["date"], run["rows"]  # noqa: B018 (the keys a run must have)
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"compare_peers: cannot merge {p}: not a peers.json this script wrote "
                     f"({type(e).__name__}: {e})")
        runs.append(run)
    meta = dict(runs[0]["meta"])
    if len({(r["meta"]["corpus"], r["meta"]["epochs"]) for r in runs}) > 1:
        sys.exit("compare_peers: --merge needs runs of one corpus and number of epochs")
    meta["date"] = ", ".join(r["meta"]["date"] for r in runs)
    meta["seeds"] = sorted({r.get("seed", 1) for run in runs for r in run["rows"]})
    rows = [{"seed": 1} | r for run in runs for r in run["rows"]]  # older runs: seed 1
    print(write_results(rows, meta, out))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
