"""``w2v-jax``: the command line, thin over the library.

    w2v-jax train [--corpus PATH] --out DIR [--sg 1|0 --vector-size ... ]
    w2v-jax train --resume DIR
    w2v-jax eval RUN_DIR_OR_VECTORS [--analogies FILE] [--similarity FILE ...]
    w2v-jax similar RUN_DIR WORD [--topn N]
    w2v-jax analogy RUN_DIR A B C [--topn N]
    w2v-jax export RUN_DIR FILE [--which in|out|sum] [--text]

User errors print one line (``w2v-jax: error: ...``) and exit 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

from w2v_jax.config import CBOW_UPDATES, OBJECTIVES, SAMPLERS, SG_NEGATIVES, TABLE_MODES, Config
from w2v_jax.errors import UnknownWord, W2VError, memory_advice, out_of_memory
from w2v_jax.run import CheckpointOptions
from w2v_jax.xla_flags import tune_xla_cpu

# Flags named like gensim's arguments, with dashes; defaults from Config.
_TRAIN_FLAGS = [
    ("sg", int, "1 = skip-gram, 0 = CBOW"),
    ("vector_size", int, "embedding dimension"),
    ("window", int, "maximum context distance (the effective window is drawn from 1..window)"),
    ("negative", int, "negatives per positive pair"),
    ("ns_exponent", float, "noise distribution exponent"),
    ("sample", float, "sub-sampling threshold (0 = off; 1 or more: a word count, as gensim)"),
    ("min_count", int, "drop words rarer than this"),
    ("max_vocab_size", int, "keep at most this many words"),
    ("epochs", int, "passes over the corpus"),
    ("alpha", float, "initial learning rate (default 0.025 SG, 0.05 CBOW)"),
    ("min_alpha", float, "final learning rate"),
    ("batch_size", int, "consecutive centres per SGD step (default: 64 SG, 512 CBOW, 128 CBOW softmax)"),
    ("shared_negatives", int, "centres sharing one draw of negatives (default: 8 SG, 4 CBOW)"),
    ("steps_per_call", int, "SGD steps per jitted dispatch"),
    ("lanes", int, "places the epoch is read from side by side, a piece of each in turn "
     "(1 = in corpus order)"),
    ("max_row_terms", float, "cap on the gradient terms one row's update counts per step "
     "(default: 10 CBOW ns, more under ~1,200 words; 20 hs; otherwise none; steadies large "
     "steps, higher --alpha, hs)"),
    ("seed", int, "random seed"),
    ("init_scale", float, "W_in starts uniform in ±init_scale/vector_size "
     "(word2vec C: 0.5, gensim: 1.0)"),
    ("devices", int, "devices to train on data-parallel (C centres per device and step)"),
]


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train word vectors",
                       description="Train skip-gram or CBOW with negative sampling, full softmax or "
                       "hierarchical softmax (--objective).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--corpus", help="text file (plain, .gz, .bz2 or .xz; a pipe works "
                     "too), one sentence per line; default: the embedded KJV corpus")
    src.add_argument("--dataset", metavar="PATH_OR_NAME",
                     help="a Hugging Face dataset: a local text/JSON/Parquet file or a quoted "
                     "glob of them, a directory written by save_to_disk, or a hub name "
                     "(downloaded; offline, only one already in the local cache); "
                     "tokenised once and cached as memory-mapped ids")
    p.add_argument("--text-column", default=None, help="the dataset's text column (default: text)")
    p.add_argument("--streaming", action="store_true",
                   help="read the dataset in streaming mode (never whole in memory)")
    p.add_argument("--num-proc", type=int, default=None,
                   help="processes that tokenise and count the dataset (default: 1)")
    p.add_argument("--lowercase", action="store_true", help="lowercase the dataset's text")
    p.add_argument("--cache-dir", default=None,
                   help="where tokenised datasets are cached (default: $W2V_JAX_CACHE or "
                   "~/.cache/w2v_jax)")
    p.add_argument("--tables", choices=TABLE_MODES, default=None,
                   help="embedding tables on the devices: replicated, or sharded along the "
                   "vocabulary (default: replicated)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="multi-process training: process 0's address (jax.distributed); "
                   "'auto' on clusters JAX detects; or $W2V_JAX_COORDINATOR")
    p.add_argument("--num-processes", type=int, default=None,
                   help="multi-process training: number of processes ($W2V_JAX_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None,
                   help="multi-process training: this process's index ($W2V_JAX_PROCESS_ID)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="run directory to write")
    where.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its latest usable checkpoint")
    defaults = Config()
    # Config flags default to None so that a flag given with --resume can be told apart.
    for name, kind, help_ in _TRAIN_FLAGS:
        default = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                       help=help_ if default is None else f"{help_} (default: {default})")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="ns (negative sampling), softmax (vanilla full softmax) or hs "
                   f"(hierarchical softmax) (default: {defaults.objective})")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help=f"negative sampler (default: {defaults.sampler})")
    p.add_argument("--sg-negatives", choices=SG_NEGATIVES, default=None,
                   help="skip-gram negatives: centre (K·(window+1) draws per centre, weighted "
                   "by its pairs: faster) or pair (K per pair, word2vec's scheme) "
                   f"(default: {defaults.sg_negatives})")
    p.add_argument("--cbow-update", choices=CBOW_UPDATES, default=None,
                   help="CBOW context update: full gradient per row (word2vec) or divided by "
                   "count (exact) (default: word2vec)")
    p.add_argument("--init-vectors", metavar="FILE",
                   help="word2vec text/binary vectors that initialise W_in where they have the word")
    ck, kept = CheckpointOptions(), "; --resume: as the run was started"
    p.add_argument("--checkpoint-every-words", type=int, default=None,
                   help=f"save a checkpoint every N raw words (default: off{kept})")
    p.add_argument("--checkpoint-every-minutes", type=float, default=None,
                   help=f"save a checkpoint every M minutes, 0 = off (default: "
                   f"{ck.every_minutes:g}{kept})")
    p.add_argument("--keep-checkpoints", type=int, default=None,
                   help=f"checkpoints kept (default: {ck.keep}{kept})")
    p.add_argument("--no-checkpoints", action="store_true",
                   help="write no checkpoints (the run cannot be resumed)")
    p.add_argument("--eval-each-epoch", action="store_true", default=None,
                   help="after each epoch, score the bundled analogy (3CosAdd, 30k) and "
                   "WordSim-353 sets and log them to metrics.jsonl (--resume goes on as the "
                   "run was started)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or unfinished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


class _StopFlag:
    """Turns the first SIGINT/SIGTERM into a stop request the trainer polls; a second
    SIGINT interrupts at once."""

    def __init__(self):
        import signal

        self.signum = None
        self._signal = signal
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == self._signal.SIGINT:
            import logging

            # The checkpoint save this aborts logs its thread's traceback through absl;
            # the previous checkpoint is intact, and the user asked for a quick exit.
            logging.getLogger("absl").setLevel(logging.CRITICAL + 1)
            raise KeyboardInterrupt
        if self.signum is not None:  # a repeated SIGTERM: the stop is under way already
            return
        self.signum = signum
        print(f"\nw2v-jax: {self._signal.Signals(signum).name} received; saving a checkpoint "
              "and stopping (Ctrl-C again to abort at once)", file=sys.stderr)

    def __call__(self) -> bool:
        return self.signum is not None

    def restore(self) -> None:
        for s, h in self._old.items():
            self._signal.signal(s, h)


def _remove_if_abandoned(out: Path) -> None:
    """Removes ``out`` if it holds nothing but a lock file that no process holds (another
    process that started on the same new directory may be training there)."""
    from w2v_jax.checkpoint import LOCK, RunLock

    with contextlib.suppress(OSError, W2VError):
        if [p.name for p in out.iterdir()] != [LOCK]:
            return
        with RunLock(out) as lock:  # W2VError if another process holds it
            lock.path.unlink()
        out.rmdir()


def _checkpoint_options(args) -> CheckpointOptions | None:
    """The flags given, over the run's saved options (--resume) or the defaults; None
    with --resume and no checkpoint flag: the run goes on as it was started."""
    from w2v_jax.checkpoint import CHECKPOINTS, latest_meta

    given = {k: v for k, v in (("every_words", args.checkpoint_every_words),
                               ("every_minutes", args.checkpoint_every_minutes),
                               ("keep", args.keep_checkpoints)) if v is not None}
    if given.get("every_minutes") == 0:
        given["every_minutes"] = None  # off
    if args.no_checkpoints:
        given["enabled"] = False
    if args.resume and not given:
        return None
    base = CheckpointOptions()
    if args.resume:
        saved = (latest_meta(Path(args.resume) / CHECKPOINTS) or {}).get("checkpoints")
        base = base if saved is None else CheckpointOptions(**saved)
    return dataclasses.replace(base, **given)


def _train(args) -> int:
    import signal

    import jax
    from tqdm import tqdm

    from w2v_jax.errors import Interrupted
    from w2v_jax.parallel import initialize_distributed
    from w2v_jax.run import DatasetOptions, train_run

    for flag in ("corpus", "dataset", "out", "resume", "init_vectors", "cache_dir"):
        value = getattr(args, flag, None)
        if value is not None and not value.strip():
            raise W2VError(f"--{flag.replace('_', '-')} is empty; give a path")
    initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    dataset = None
    if args.resume and args.dataset is not None:
        raise W2VError("--resume continues on the checkpoint's dataset and its settings; "
                       "drop --dataset (and its flags)")
    if args.dataset is not None and args.no_progress:
        import datasets

        datasets.disable_progress_bars()
    if args.dataset is not None:
        column = "text" if args.text_column is None else args.text_column
        dataset = DatasetOptions(args.dataset, text_column=column,
                                 streaming=args.streaming, num_proc=args.num_proc,
                                 lowercase=args.lowercase, cache_dir=args.cache_dir)
    else:  # a resumed run's dataset options come from its checkpoint
        for flag in ("text_column", "streaming", "num_proc", "lowercase", "cache_dir"):
            if getattr(args, flag) is not None and getattr(args, flag) is not False:
                raise W2VError(f"--{flag.replace('_', '-')} applies to --dataset only; drop it"
                               + ("" if args.resume else " or read the corpus with --dataset"))

    fields = {f.name for f in dataclasses.fields(Config)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.resume and args.overwrite:
        raise W2VError("--resume continues the run in its directory and --overwrite replaces "
                       "it; pass one of them")
    if args.resume and args.init_vectors:
        raise W2VError("--init-vectors starts a new run; it cannot be combined with --resume")
    checkpoints = _checkpoint_options(args)
    out = args.resume or args.out
    bar, epochs = None, 0

    def on_start(config, start, total):
        nonlocal bar, epochs
        epochs = config.epochs
        bar = tqdm(total=total, initial=start.words, unit="w", unit_scale=True,
                   disable=args.no_progress, dynamic_ncols=True, smoothing=0.1)

    def on_progress(p):
        bar.update(p.words - bar.n)
        bar.set_postfix_str(f"epoch {p.epoch + 1}/{epochs} loss {p.loss:.3f} "
                            f"lr {p.lr:.5f} {p.words_per_sec / 1e3:.0f}k w/s", refresh=False)

    def log(msg):
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    stop = _StopFlag()
    new_dir = not Path(out).exists()
    try:
        summary = train_run(out, None if args.resume else Config(**given), args.corpus,
                            dataset=dataset, resume=bool(args.resume), resume_expect=given,
                            overwrite=args.overwrite, init_vectors=args.init_vectors,
                            checkpoints=checkpoints, eval_each_epoch=args.eval_each_epoch,
                            on_progress=on_progress, on_start=on_start, should_stop=stop,
                            log=log)
    except Interrupted as e:
        if e.step is not None:
            where = f"checkpoint at step {e.step} saved; continue with: w2v-jax train --resume {out}"
            if args.corpus and not Path(args.corpus).is_file():  # a pipe: read it again
                where += " --corpus <the same text, e.g. <(zcat FILE.gz)>"
        elif jax.distributed.is_initialized() and jax.process_index() > 0:
            where = "process 0 saved the checkpoint; continue every process with --resume"
        else:
            where = "no checkpoint was written (--no-checkpoints)"
        # Without a signal of its own, another process of the run was stopped.
        signum = stop.signum or signal.SIGTERM
        by = signal.Signals(stop.signum).name if stop.signum else "another process's stop"
        print(f"w2v-jax: stopped by {by}; {where}", file=sys.stderr)
        return 128 + signum
    except BaseException:
        if new_dir:  # a run that failed before writing anything leaves no empty --out
            _remove_if_abandoned(Path(out))
        raise
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
    if not summary.get("already_finished") and (not jax.distributed.is_initialized()
                                                or jax.process_index() == 0):
        print(f"trained in {summary['train_seconds']:.1f}s "
              f"({summary['words_per_sec'] / 1e3:.0f}k words/s); wrote {out}", file=sys.stderr)
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="analogy accuracy and word-similarity correlation",
                       description="Evaluate vectors (a run directory or a word2vec file).")
    p.add_argument("vectors", help="run directory or word2vec .bin/.txt file")
    p.add_argument("--analogies", default=None,
                   help="Google-format analogy file (default: the bundled questions-words.txt)")
    p.add_argument("--similarity", nargs="*", default=None,
                   help="word-similarity files 'w1 w2 score' (default: the bundled WordSim-353)")
    p.add_argument("--restrict-vocab", type=int, default=30000,
                   help="answers searched among the N most frequent words (default: 30000)")
    p.add_argument("--method", choices=("3cosadd", "3cosmul", "both"), default="both")
    p.add_argument("--json", action="store_true", help="print the full results as JSON")
    p.set_defaults(func=_eval)


def _eval(args) -> int:
    from w2v_jax.evaluate import bundled_eval_path, evaluate_analogies, evaluate_similarity
    from w2v_jax.model import load_vectors

    kv = load_vectors(args.vectors)
    analogies = (bundled_eval_path("questions-words.txt") if args.analogies is None
                 else args.analogies)  # "" is a path to refuse, not the default
    sims = args.similarity if args.similarity else [bundled_eval_path("wordsim353.txt")]
    methods = ("3cosadd", "3cosmul") if args.method == "both" else (args.method,)
    results = {"vectors": str(args.vectors), "analogy": {}, "similarity": {}}
    for m in methods:
        results["analogy"][m] = evaluate_analogies(kv, analogies, args.restrict_vocab, method=m)
    for path in sims:
        results["similarity"][str(path)] = evaluate_similarity(kv, path)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    for m, r in results["analogy"].items():
        print(f"analogy {m} (restrict_vocab={r['restrict_vocab']}): {pct(r['accuracy'])} "
              f"({r['correct']}/{r['answered']} answered, {r['oov']} of {r['total']} OOV); "
              f"semantic {pct(r['semantic']['accuracy'])}, syntactic {pct(r['syntactic']['accuracy'])}")
    for path, r in results["similarity"].items():
        rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.4f}"
        print(f"similarity {path}: Spearman {rho} ({r['covered']}/{r['pairs']} pairs covered)")
    return 0


def _add_neighbours(sub) -> None:
    p = sub.add_parser("similar", help="nearest neighbours of a word")
    p.add_argument("vectors", help="run directory or word2vec file")
    p.add_argument("word")
    p.add_argument("--topn", type=int, default=10)
    p.set_defaults(func=lambda a: _neighbours(a, [a.word], []))
    p = sub.add_parser("analogy", help="a is to b as c is to ?")
    p.add_argument("vectors", help="run directory or word2vec file")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("c")
    p.add_argument("--topn", type=int, default=10)
    p.set_defaults(func=lambda a: _neighbours(a, [a.b, a.c], [a.a]))


def _neighbours(args, positive: list[str], negative: list[str]) -> int:
    from w2v_jax.model import load_vectors

    if args.topn < 1:
        raise W2VError(f"--topn must be at least 1, got {args.topn}")
    kv = load_vectors(args.vectors)
    missing = [w for w in (*negative, *positive) if w not in kv]  # analogy: A, B, C in order
    if missing:
        raise UnknownWord(f"not in the vocabulary of {args.vectors} ({len(kv):,} words): "
                          + ", ".join(map(repr, dict.fromkeys(missing))))
    if len(kv) <= len(set(positive + negative)):
        raise W2VError(f"{args.vectors} holds no word besides the query; nothing to rank")
    for word, score in kv.most_similar(positive, negative, topn=args.topn):
        print(f"{word}\t{score:.4f}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a run's vectors as a word2vec file",
                       description="Export W_in, W_out or W_in + W_out of a run in the word2vec "
                       "binary or text format (read by gensim, word2vec C and fastText).")
    p.add_argument("run", help="run directory")
    p.add_argument("path", help="file to write")
    p.add_argument("--which", choices=("in", "out", "sum"), default="in",
                   help="W_in (word vectors, default), W_out (context vectors) or their sum")
    p.add_argument("--text", action="store_true", help="text format instead of binary")
    p.set_defaults(func=_export)


def _export(args) -> int:
    from w2v_jax.interop import export

    kv = export(args.run, args.path, args.which, binary=not args.text)
    print(f"wrote {len(kv):,} × {kv.vector_size} {args.which} vectors to {args.path}",
          file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line like every other error (exit 2)."""

    def error(self, message):
        self.exit(2, f"w2v-jax: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="w2v-jax", description="Train and query word2vec vectors (skip-gram, CBOW) with JAX.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_eval(sub)
    _add_neighbours(sub)
    _add_export(sub)
    return p


def enable_compilation_cache() -> None:
    """Keeps XLA's compiled programs on disk between runs, in ``$W2V_JAX_XLA_CACHE`` or
    ``$W2V_JAX_CACHE/xla`` (default ``~/.cache/w2v_jax/xla``); ``W2V_JAX_XLA_CACHE=0``
    turns it off.

    A run whose step was compiled before (same config shapes, vocabulary size, JAX and
    device) loads it instead: on the bench corpus, one SG epoch took 14.8–16.6 s against
    17.3–18.3 s end to end and peaked at 361 MB against 391–410 MB (two tries each,
    2026-11-26), the compiler's transient memory. Programs that compile in under 0.3 s
    are not kept.
    """
    import os

    setting = os.environ.get("W2V_JAX_XLA_CACHE", "")
    if setting.lower() in ("0", "off", "false", "no"):
        return
    path = Path(setting or Path(os.environ.get("W2V_JAX_CACHE") or "~/.cache/w2v_jax") / "xla")
    try:
        path.expanduser().mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable cache costs only the compile
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path.expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: a user-facing warning is one line, without
    the source location and code line that Python adds."""
    print(f"w2v-jax: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():  # restores Python's own display when main returns
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tune_xla_cpu()
    enable_compilation_cache()
    from w2v_jax.heap import return_large_buffers

    return_large_buffers()  # before the corpus is read: its temporaries go back too
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag already reported in one line
        return e.code if isinstance(e.code, int) else 0
    return guarded(lambda: args.func(args), "w2v-jax", args.debug)


def guarded(work: Callable[[], int], prog: str, debug: bool) -> int:
    """Runs a command's ``work`` and turns what escapes it into one line and an exit
    status: 2 for bad input (a W2VError, running out of memory), 130 for Ctrl-C, 141 for
    a closed pipe, 1 for a bug; ``debug`` re-raises instead, for the traceback."""
    try:
        return work()
    except W2VError as e:
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of ours
        # Python would fail again flushing stdout at exit; point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as if killed by SIGPIPE, what a C tool would report
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        if out_of_memory(e):
            print(f"{prog}: error: {memory_advice(e)}", file=sys.stderr)
            return 2
        print(f"{prog}: internal error: {type(e).__name__}: {e} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
