"""A training run in a directory: lock it, resume it, checkpoint it, finish it.

``train_run`` is what ``w2v-jax train`` (and the experiment runner) calls. A run
directory holds::

    .lock            flock'ed while a process trains here (a second one refuses)
    checkpoints/     Orbax checkpoints (w2v_jax.checkpoint), the last k kept
    metrics.jsonl    progress records, per-epoch scores, resume markers, a final summary
    config.json      the config, the corpus, the effective learning rate
    vocab.txt        word<TAB>count, most frequent first
    vectors.bin      W_in in word2vec binary format, written last and atomically:
                     its presence means the run finished

A killed run (no vectors.bin, checkpoints present) is continued with
``resume=True``; it ends with the same vectors as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from w2v_jax.checkpoint import (CHECKPOINTS, Checkpointer, Position, RunLock, checkpoint_steps,
                                restore_latest, saved_config, set_aside)
from w2v_jax.config import Config, accelerator_hint
from w2v_jax.corpus import embedded_corpus_path, load_corpus
from w2v_jax.errors import W2VError
from w2v_jax.train import MetricsWriter, Progress, TrainState, init_state, train
from w2v_jax.vectors import KeyedVectors
from w2v_jax.vocab import Vocab

VECTORS = "vectors.bin"
VOCAB = "vocab.txt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """When to checkpoint: every ``every_words`` raw words and/or ``every_minutes``.

    A checkpoint is also written at the start, on a stop request and at the end;
    ``keep`` most recent ones are kept. ``enabled=False`` writes none (no resume). The
    options are saved in each checkpoint, and a resumed run goes on with them unless
    given others.
    """

    every_words: int | None = None
    every_minutes: float | None = 5.0
    keep: int = 3
    enabled: bool = True

    def __post_init__(self):
        if self.keep < 1:
            raise W2VError(f"--keep-checkpoints must be at least 1, got {self.keep}")
        for name, v in (("--checkpoint-every-words", self.every_words),
                        ("--checkpoint-every-minutes", self.every_minutes)):
            if v is not None and not v > 0:  # NaN too
                raise W2VError(f"{name} must be positive, got {v}")


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """A Hugging Face dataset as the corpus (``w2v_jax.dataset.load_dataset_corpus``).

    ``source`` is local file(s), a ``save_to_disk`` directory or a cached hub name;
    tokenised once (``num_proc`` processes) and cached as memory-mapped ids under
    ``cache_dir``.
    """

    source: str
    text_column: str = "text"
    streaming: bool = False
    num_proc: int | None = None
    lowercase: bool = False
    cache_dir: str | None = None

    def load(self, config: Config, log: Callable[[str], None]):
        from w2v_jax.dataset import load_dataset_corpus

        return load_dataset_corpus(self.source, text_column=self.text_column,
                                   min_count=config.min_count,
                                   max_vocab_size=config.max_vocab_size,
                                   streaming=self.streaming, num_proc=self.num_proc,
                                   lowercase=self.lowercase, cache_dir=self.cache_dir, log=log)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def prepare_out_dir(out_dir: str | os.PathLike, flag: str = "--out") -> Path:
    """Creates ``out_dir`` and checks that it is writable, before any work is done
    (``flag``: the option to change in the error)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A name of its own: two processes probing one directory must not collide.
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise W2VError(f"cannot write to output directory {out}: {e.strerror or e}; "
                       f"choose another {flag}") from None
    return out


def _refuse_old_run(out: Path, overwrite: bool) -> bool:
    """A new run must not mix with an old one: without ``overwrite``, refuses a directory
    that holds one (finished, resumable, or stopped before its first checkpoint).
    Returns whether there is an old run to clear (:func:`clear_old_run`)."""
    finished = (out / VECTORS).exists()
    resumable = not finished and bool(checkpoint_steps(out / CHECKPOINTS))
    leftovers = any((out / name).exists() for name in (VOCAB, CONFIG, METRICS, CHECKPOINTS))
    if not overwrite:
        if finished:
            raise W2VError(f"{out} already holds a finished run ({VECTORS}); "
                           "choose another --out or pass --overwrite")
        if resumable:
            raise W2VError(f"{out} holds an unfinished run's checkpoints; continue it with "
                           f"--resume {out} or start over with --overwrite")
        if leftovers:
            raise W2VError(f"{out} holds the files of a run that stopped before any checkpoint "
                           "(nothing to resume); start over with --overwrite or choose "
                           "another --out")
    return finished or resumable or leftovers


REPLACED = ".replaced"  # the run --overwrite replaces, kept until the new one has trained a block
_ASIDE_DONE = ".complete"  # in REPLACED: every file of the old run is in it
_DISCARDED = ".replaced.discard"  # REPLACED on its way out: whole or not, never put back


def _set_old_run_aside(out: Path) -> Path:
    """Moves an old run's files into ``out/.replaced`` (the vectors first, so that an
    interrupted move never leaves a run that looks finished) and returns that path."""
    aside = out / REPLACED
    _discard(aside)  # one left by a killed --overwrite
    aside.mkdir()
    for name in (VECTORS, VOCAB, CONFIG, METRICS, CHECKPOINTS):
        if (out / name).exists():
            (out / name).rename(aside / name)
    (aside / _ASIDE_DONE).touch()  # without it, a kill came mid-move (_recover_replaced)
    return aside


def _discard(aside: Path) -> None:
    """Deletes the set-aside run: renamed first, in one step, so that a kill partway
    through the deletion never leaves a partial ``.replaced`` to be put back."""
    shutil.rmtree(aside.parent / _DISCARDED, ignore_errors=True)
    if aside.is_dir():
        aside.rename(aside.parent / _DISCARDED)
    shutil.rmtree(aside.parent / _DISCARDED, ignore_errors=True)


def _put_back(out: Path, aside: Path) -> None:
    """Undoes :func:`_set_old_run_aside` (the vectors last). The mark goes first, so an
    interrupted put-back reads as an interrupted move; a name already in ``out`` (which
    neither leaves) is not overwritten, and keeps ``.replaced`` in place."""
    (aside / _ASIDE_DONE).unlink(missing_ok=True)
    for name in (CHECKPOINTS, METRICS, CONFIG, VOCAB, VECTORS):
        if (aside / name).exists() and not (out / name).exists():
            (aside / name).rename(out / name)
    if not any(aside.iterdir()):
        aside.rmdir()


def _recover_replaced(out: Path, log: Callable[[str], None]) -> None:
    """Gives back the run that a killed ``--overwrite`` set aside before its new run had
    saved a checkpoint; had it saved one, the new run supersedes the old for good."""
    shutil.rmtree(out / _DISCARDED, ignore_errors=True)  # a deletion a kill cut short
    aside = out / REPLACED
    if not aside.is_dir():
        return
    if (aside / _ASIDE_DONE).exists():
        if checkpoint_steps(out / CHECKPOINTS) or (out / VECTORS).exists():
            _discard(aside)
            return
        clear_old_run(out)  # what the killed run had begun to write
    # (without the mark, the kill came while the old run's files were being moved, before
    # the new run wrote anything: what is still in place is the old run's too)
    _put_back(out, aside)
    if aside.exists():
        raise W2VError(f"{aside} holds files of a run that --overwrite was replacing, and "
                       f"{out} has files of the same names; move what you want to keep and "
                       f"delete {aside}")
    log(f"w2v-jax: a run with --overwrite was stopped before it saved anything; {out} "
        "holds the run it was replacing again")


def _absolute(path: str | os.PathLike) -> Path:
    """A corpus path that resumes from any directory: resolved for a file; for a pipe
    (/dev/fd/63, which resolves to a name that does not exist), absolute only."""
    return Path(path).resolve() if Path(path).is_file() else Path(os.path.abspath(path))


def clear_old_run(out: Path) -> None:
    """Removes an old run's files. The vectors go first, so an interrupted clean-up never
    leaves a run that looks finished."""
    for name in (VECTORS, VOCAB, CONFIG, METRICS):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)


# Fields whose None stands for a default that the config resolves (``Config`` properties).
_RESOLVED = {"alpha": "learning_rate", "batch_size": "centres_per_step",
             "shared_negatives": "negatives_shared_by"}


def _same_in_effect(config: Config, field: str, value: Any) -> bool:
    """Whether setting ``field`` to ``value`` leaves ``config`` training the same way: an
    explicit ``--alpha 0.025`` resumes a run that took SG's default 0.025."""
    prop = _RESOLVED.get(field)
    if prop is None:
        return False
    try:
        other = dataclasses.replace(config, **{field: value})
    except W2VError:
        return False
    return getattr(other, prop) == getattr(config, prop)


def _same_source(a: str, b: str) -> bool:
    """Whether two corpus paths (or ``dataset:`` sources) name the same thing."""
    if a == b:
        return True
    if a.startswith("dataset:") or b.startswith("dataset:"):
        return False
    return Path(a).resolve() == Path(b).resolve()


def save_run(out_dir: str | os.PathLike, config: Config, vocab: Vocab, wv: KeyedVectors,
             extra: dict | None = None) -> None:
    """Writes vocab.txt, config.json and, last and atomically, vectors.bin."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        vocab.save(out / VOCAB)
        cfg = config.to_dict() | {"effective_alpha": config.learning_rate} | (extra or {})
        (out / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    except OSError as e:  # a file where the directory should be, no permission, a full disk
        raise W2VError(f"cannot save the run into {out} ({e.strerror or e}); it must be a "
                       "directory that can be written: choose another path") from None
    wv.save_word2vec_format(out / VECTORS, binary=True)


def initial_vectors(path: str | os.PathLike, vocab: Vocab, config: Config,
                    log: Callable[[str], None] = _stderr) -> TrainState:
    """A fresh TrainState whose W_in rows come from a word2vec file where it has the word.

    Words the file lacks keep word2vec's random initialisation; W_out starts at zero.
    """
    import jax.numpy as jnp

    kv = KeyedVectors.load_word2vec_format(path)
    if kv.vector_size != config.vector_size:
        raise W2VError(f"--init-vectors {path} has dimension {kv.vector_size} but "
                       f"--vector-size is {config.vector_size}; make them equal")
    state = init_state(jax.random.key(config.seed), len(vocab), config.vector_size,
                       config.init_scale)
    w_in = np.array(state.w_in)
    found = [(i, kv.index(w)) for i, w in enumerate(vocab.words) if w in kv]
    if found:
        ours, theirs = map(np.asarray, zip(*found))
        w_in[ours] = kv.vectors[theirs]
    log(f"initialised {len(found):,} of {len(vocab):,} vocabulary rows from {path}")
    return state._replace(w_in=jnp.asarray(w_in))


def _vocab_meta(vocab: Vocab) -> dict[str, Any]:
    return {"words": list(vocab.words), "counts": vocab.counts.tolist()}


def _check_processes_agree(config: Config, vocab: Vocab, start: Position) -> None:
    """Refuses, on every process, a group whose processes would train differently.

    Each one's config, vocabulary and starting point hashed, and the hashes gathered:
    without it, processes started with different flags or corpora met in the step's
    collectives with arrays of other shapes, and gloo aborted them all (C++, exit 134).
    """
    from jax.experimental import multihost_utils

    blob = json.dumps([config.to_dict(), _vocab_meta(vocab), dataclasses.astuple(start)],
                      sort_keys=True, default=str)
    mine = np.asarray([zlib.crc32(blob.encode())], np.uint32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1)
    odd = [i for i, h in enumerate(every) if h != every[0]]
    if odd:
        raise W2VError(f"process(es) {', '.join(map(str, odd))} would train another config, "
                       "corpus or starting point than process 0; start every process with "
                       "the same flags and corpus")


def train_run(out_dir: str | os.PathLike, config: Config | None = None,
              corpus_path: str | os.PathLike | None = None, *,
              dataset: DatasetOptions | None = None, resume: bool = False,
              resume_expect: dict[str, Any] | None = None,
              overwrite: bool = False, init_vectors: str | os.PathLike | None = None,
              checkpoints: CheckpointOptions | None = None,
              eval_each_epoch: bool | None = None,
              on_progress: Callable[[Progress], None] | None = None,
              on_start: Callable[[Config, Position, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Trains into ``out_dir`` (or continues the run there) and writes the run files.

    Args:
      out_dir: the run directory.
      config: the hyper-parameters of a new run; with ``resume``, None (the
        checkpoint's config is used) or equal to it.
      corpus_path: text file; default the embedded corpus (with ``resume``: the
        checkpoint's corpus).
      dataset: a Hugging Face dataset instead of ``corpus_path``.
      resume: continue from the latest usable checkpoint in ``out_dir``.
      resume_expect: config fields the caller asked for explicitly; with ``resume``, any
        that differ from the checkpoint's config are an error rather than ignored.
      overwrite: replace a finished or unfinished run in ``out_dir``.
      init_vectors: word2vec file whose vectors initialise W_in (new runs only).
      checkpoints: when to save checkpoints; None: as the resumed checkpoint was saved
        (a new run: ``CheckpointOptions()``).
      eval_each_epoch: score the bundled analogy and WordSim-353 sets after each epoch;
        None: as the resumed checkpoint was saved (a new run: no).
      on_progress: receives each :class:`w2v_jax.train.Progress` (also written to metrics).
      on_start: called with (config, start position, total words) before training.
      should_stop: polled between device calls; true → checkpoint and raise
        :class:`w2v_jax.errors.Interrupted`.
      log: where one-line messages go.
    Returns:
      The summary record also written to metrics.jsonl (``"resumed_from"``: the step,
      ``"already_finished"``: True if a resumed run had nothing left to do).
    """
    # With several processes (jax.distributed), all train and process 0 writes the run.
    # (Asked only then: starting JAX's backend before a dataset's worker processes are
    # forked would risk a deadlock in them.)
    multi = jax.distributed.is_initialized() and jax.process_count() > 1
    primary = not multi or jax.process_index() == 0
    if resume and not Path(out_dir).is_dir():
        raise W2VError(f"nothing to resume: {out_dir} is not a run directory; start a new "
                       "run with --out")
    out = prepare_out_dir(out_dir) if primary else Path(out_dir)
    with RunLock(out) if primary else contextlib.nullcontext():
        if primary:
            _recover_replaced(out, log)
        restored, old_run = None, False
        if resume:
            restored = restore_latest(out / CHECKPOINTS, warn=lambda m: log(f"w2v-jax: warning: {m}"))
            if restored is None:
                raise W2VError(f"nothing to resume in {out}: it has no checkpoints; start over "
                               f"with --out {out} --overwrite, or a new --out")
            saved = Config.from_dict(saved_config(restored.meta))
            asked = (config.to_dict() if config is not None else {}) | (resume_expect or {})
            diff = {k: v for k, v in asked.items()
                    if saved.to_dict()[k] != v and not _same_in_effect(saved, k, v)}
            if diff:
                flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in diff.items())
                raise W2VError(f"--resume continues the checkpoint's config; {flags} differ(s) "
                               "from it: drop them or start a new run")
            config = saved
            saved_corpus = restored.meta["corpus"]
            if (out / VECTORS).exists() and restored.position.epoch >= config.epochs:
                log(f"{out} has already finished; nothing to resume")
                return {"event": "done", "already_finished": True}
            if restored.meta.get("corpus_pipe"):  # read once from a pipe: it must come again
                if corpus_path is None:
                    raise W2VError(f"this run read its corpus from a pipe ({saved_corpus}); "
                                   "give the same text again with --corpus, e.g. --corpus "
                                   "<(zcat FILE.gz)")
                saved_corpus = str(_absolute(corpus_path))  # the vocabulary check guards it
            if corpus_path is not None and not _same_source(str(corpus_path), saved_corpus):
                raise W2VError(f"--resume continues on the checkpoint's corpus {saved_corpus}, "
                               f"not {corpus_path}")
            corpus_path = saved_corpus
            if restored.meta.get("dataset") is not None:
                dataset = DatasetOptions(**restored.meta["dataset"])
                if dataset.streaming:  # older runs kept a num_proc that a stream ignored
                    dataset = dataclasses.replace(dataset, num_proc=None)
        elif primary:
            old_run = _refuse_old_run(out, overwrite)  # before any work; cleared after checks
        config = config or Config()
        if dataset is not None:
            if restored is None:  # resumable from anywhere: paths and globs made absolute
                source = dataset.source
                if Path(source).exists():
                    source = str(Path(source).resolve())
                elif any(c in source for c in "*?["):
                    source = os.path.abspath(source)
                cache = dataset.cache_dir and os.path.abspath(dataset.cache_dir)
                dataset = dataclasses.replace(dataset, source=source, cache_dir=cache)
            corpus_path = f"dataset:{dataset.source}"
        elif corpus_path is not None and restored is None:
            corpus_path = _absolute(corpus_path)
        corpus_path = corpus_path or embedded_corpus_path()

        t0 = time.perf_counter()
        if dataset is not None:
            vocab, corpus = dataset.load(config, log)
        else:
            vocab, corpus = load_corpus(corpus_path, config.min_count, config.max_vocab_size)
        t_load = time.perf_counter() - t0
        log(f"corpus {corpus_path}: {corpus.raw_words:,} words, vocabulary {len(vocab):,} "
            f"(min_count={config.min_count}), read in {t_load:.1f}s")
        hint = accelerator_hint(config, jax.default_backend())
        if hint is not None and restored is None:
            log(hint)
        state, start = None, Position()
        if restored is not None:
            if _vocab_meta(vocab) != restored.meta["vocab"]:
                raise W2VError(f"corpus {corpus_path} has changed since the checkpoint was "
                               "written (its vocabulary differs); resume needs the same corpus")
            state, start = restored.train_state(), restored.position
            where = (f"all {config.epochs} epochs done" if start.epoch >= config.epochs
                     else f"epoch {start.epoch + 1}")
            log(f"resuming from checkpoint step {restored.step} ({where}, "
                f"{start.words:,} words done)")
        elif init_vectors is not None:
            state = initial_vectors(init_vectors, vocab, config, log)
        if multi:
            _check_processes_agree(config, vocab, start)
        if restored is not None and primary:  # an old run an earlier --overwrite replaced
            _discard(out / REPLACED)
        if restored is not None and restored.unusable and primary:
            aside = set_aside(out / CHECKPOINTS, restored.unusable)
            log(f"w2v-jax: warning: moved the unusable checkpoint(s) "
                f"{', '.join(map(str, restored.unusable))} to {aside}, so that new ones can be saved")
        replaced = None
        if restored is None and primary and old_run:
            # --overwrite, now that the new run's input has been read; set aside rather than
            # deleted until the new run has trained its first block (a failure before that
            # gives it back)
            replaced = _set_old_run_aside(out)

        last: list[Progress] = []  # the latest progress, for the eval records
        try:
            if checkpoints is None:
                saved = None if restored is None else restored.meta.get("checkpoints")
                checkpoints = CheckpointOptions() if saved is None else CheckpointOptions(**saved)
            if eval_each_epoch is None:
                eval_each_epoch = restored is not None and bool(restored.meta.get("eval_each_epoch"))
            metrics = MetricsWriter(out / METRICS if primary else os.devnull)
            if restored is not None:  # records past this point from before are superseded
                metrics.write({"event": "resume", "step": restored.step, "epoch": start.epoch,
                               "words": start.words, "elapsed": start.seconds})
            checkpointer = None
            if checkpoints.enabled and primary:  # other processes join its saves (train)
                minutes = checkpoints.every_minutes
                checkpointer = Checkpointer(
                    out / CHECKPOINTS, keep=checkpoints.keep, every_words=checkpoints.every_words,
                    every_seconds=None if minutes is None else minutes * 60.0,
                    meta={"config": config.to_dict(), "corpus": str(corpus_path),
                          "corpus_pipe": dataset is None and not Path(corpus_path).is_file(),
                          "dataset": None if dataset is None else dataclasses.asdict(dataset),
                          "vocab": _vocab_meta(vocab), "format": 2,
                          "checkpoints": dataclasses.asdict(checkpoints),
                          "eval_each_epoch": eval_each_epoch})


            def progress(p: Progress) -> None:
                nonlocal replaced
                if replaced is not None:  # training has begun: the old run is not coming back
                    _discard(replaced)
                    replaced = None
                last[:] = [p]
                metrics(p)
                if on_progress is not None:
                    on_progress(p)

            def epoch_end(epoch: int, st: TrainState) -> None:
                from w2v_jax.evaluate import standard_scores

                sc = standard_scores(KeyedVectors(vocab.words, np.asarray(st.w_in)))
                metrics.write({"event": "eval", "epoch": epoch + 1, "analogy": sc["analogy"],
                               "analogy_answered": sc["analogy_answered"], "wordsim": sc["wordsim"],
                               "words": (epoch + 1) * corpus.raw_words,
                               "elapsed": last[0].elapsed if last else None})
                log(f"epoch {epoch + 1}: analogy {sc['analogy'] or 0:.4f}, "
                    f"WordSim-353 {sc['wordsim'] or 0:.4f}")

            if on_start is not None:
                on_start(config, start, config.epochs * corpus.raw_words)
            t1 = time.perf_counter()
            try:
                state = train(config, vocab, corpus, progress, state,
                              epoch_end if eval_each_epoch else None, start=start,
                              checkpointer=checkpointer, should_stop=should_stop)
                t_train = time.perf_counter() - t1
                words = config.epochs * corpus.raw_words - start.words
                summary = {"event": "done", "corpus": str(corpus_path),
                           "raw_words": corpus.raw_words, "vocab_size": len(vocab),
                           "load_seconds": round(t_load, 3), "train_seconds": round(t_train, 3),
                           "words_per_sec": round(words / max(t_train, 1e-9)),
                           "steps": int(state.step) - (0 if restored is None else restored.step),
                           "resumed_from": None if restored is None else restored.step,
                           # The whole run's, across resumes, on the trainer's clock (None:
                           # resumed from a checkpoint that did not keep it):
                           "elapsed": (None if start.seconds is None
                                       else last[0].elapsed if last else start.seconds),
                           "total_steps": int(state.step),
                           "total_words": config.epochs * corpus.raw_words}
                if checkpointer is not None:
                    summary |= {"checkpoint_saves": checkpointer.saves,
                                "checkpoint_blocking_seconds": round(checkpointer.blocking_seconds, 3)}
                metrics.write(summary)
            finally:  # on a stop request too: the final checkpoint must be on disk before exit
                if checkpointer is not None:
                    checkpointer.close()
                metrics.close()
            w_in = np.asarray(state.w_in)
            if multi:  # the replicas must have ended identical
                log(f"process {jax.process_index()}: vectors crc32 {zlib.crc32(w_in.tobytes()):08x}")
            if primary:
                save_run(out, config, vocab, KeyedVectors(vocab.words, w_in),
                         {"corpus": str(corpus_path)})
            if replaced is not None:
                _discard(replaced)
            return summary
        except BaseException:
            if (restored is None and primary and not last
                    and not checkpoint_steps(out / CHECKPOINTS)):
                clear_old_run(out)  # failed before training: leave the directory as it was
                if replaced is not None:
                    _put_back(out, replaced)
                    log(f"w2v-jax: the new run failed before it started; {out} keeps the run "
                        "it held before")
            elif replaced is not None:
                _discard(replaced)
            raise


__all__ = ["CheckpointOptions", "DatasetOptions", "initial_vectors", "prepare_out_dir", "save_run", "train_run"]
