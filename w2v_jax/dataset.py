"""Corpora larger than memory: a Hugging Face dataset → vocabulary + memory-mapped ids.

``load_corpus`` (corpus.py) holds a corpus's tokens in memory. This module reads any
text column that the ``datasets`` library can open (local .txt/.json/.jsonl/.parquet/
.csv files, possibly compressed, a ``save_to_disk`` directory, or a hub name), one row
per sentence, tokenised exactly like corpus.py (``str.split()``), in two passes:

  1. count words per batch (in parallel with ``num_proc``), merged in batch order so
     ids tie-break by first appearance as in corpus.py; the merged table is pruned
     like word2vec C's ReduceVocab once it holds ``max_vocab_types`` words;
  2. map each row to vocabulary ids and append them to flat binary files.

The result is cached under ``cache_dir/corpora/<key>/`` (``ids.i32`` i32[N],
``sentence_lengths.i64`` i64[S], ``vocab.txt``, ``meta.json``) and returned as read-only
``np.memmap``s, so memory stays bounded by the vocabulary and one batch. An entry is
built in a temporary sibling directory and renamed into place only when complete.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from w2v_jax.corpus import Corpus
from w2v_jax.errors import W2VError
from w2v_jax.vocab import Vocab, build_vocab

FORMAT_VERSION = 1
# ~1–1.5 GB of Python dict (gensim: "every 10 million word types need about 1GB of RAM");
# word2vec C prunes at 21M. Real corpora rarely reach it; web crawls with junk tokens do.
DEFAULT_MAX_VOCAB_TYPES = 10_000_000
_BATCH_ROWS = 1000  # rows per batch: bounds the Python strings alive at once
_LONG_ROW = 1 << 20  # characters; longer rows are tokenised lazily
_WORD = re.compile(r"\S+")  # \s is exactly str.isspace(), so this splits as str.split() does
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4")
_BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json",
             ".parquet": "parquet", ".csv": "csv"}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where the rows come from: ``kind`` is "files" (``builder`` text/json/...), "saved"
    (a ``save_to_disk`` directory) or "hub"; ``paths`` are resolved local paths."""

    kind: str
    name: str
    paths: tuple[str, ...] = ()
    builder: str = ""

    def identity(self) -> list:
        """What the cache key must change with: every local file's path, size and mtime."""
        if self.kind == "hub":
            return ["hub", self.name]
        files = self.paths if self.kind == "files" else sorted(
            str(p) for p in Path(self.paths[0]).rglob("*") if p.is_file())
        return [self.kind] + [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files]


def _builder_for(path: str) -> str:
    name = path.lower()
    for ext in _COMPRESSED:
        name = name.removesuffix(ext)
    return _BUILDERS.get(os.path.splitext(name)[1], "text")  # text8 has no extension


def _looks_local(s: str) -> bool:
    name = s.lower()
    return s.startswith(("/", ".", "~")) or name.endswith(_COMPRESSED) or (
        os.path.splitext(name)[1] in _BUILDERS)


def _resolve(source: str | os.PathLike | Sequence) -> _Source:
    """Turns a path, glob, list of files or hub name into a :class:`_Source`."""
    if isinstance(source, (list, tuple)):
        paths = [p for s in source for p in _resolve(s).paths]
        if not paths:
            raise W2VError("the list of dataset files is empty; pass at least one file")
    else:
        s = os.path.expanduser(os.fspath(source))
        p = Path(s)
        if p.is_dir():
            if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
                return _Source("saved", s, (str(p.resolve()),))
            raise W2VError(f"{p} is a directory but not one written by save_to_disk (no "
                           "state.json); pass a file, a glob or a saved dataset")
        if p.is_file():
            paths = [s]
        elif glob.has_magic(s):
            paths = sorted(glob.glob(s))
            if not paths:
                raise W2VError(f"no file matches {s}; check the pattern given to --dataset")
        elif _looks_local(s):
            raise W2VError(f"dataset file {p} does not exist; check the path given to --dataset")
        else:
            return _Source("hub", s)
    paths = [str(Path(p).resolve()) for p in paths]
    builders = {_builder_for(p) for p in paths}
    if len(builders) > 1:
        raise W2VError(f"dataset files mix formats ({', '.join(sorted(builders))}); "
                       "pass files of one format")
    return _Source("files", os.fspath(source) if not isinstance(source, (list, tuple))
                   else ",".join(paths), tuple(paths), builders.pop())


def _settings(text_column, lowercase, min_count, max_vocab_size, max_vocab_types) -> dict:
    return {"text_column": text_column, "lowercase": lowercase, "min_count": min_count,
            "max_vocab_size": max_vocab_size, "max_vocab_types": max_vocab_types,
            "format": FORMAT_VERSION}


def cache_entry(source: str | os.PathLike | Sequence, *, text_column: str = "text",
                min_count: int = 5, max_vocab_size: int | None = None, lowercase: bool = False,
                max_vocab_types: int | None = None,
                cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory that ``load_dataset_corpus`` with these arguments reads or writes.

    The key hashes the source's identity (local files: resolved paths, sizes, mtimes;
    a saved dataset: every file in its directory; a hub name: the name only, so pass
    ``refresh=True`` after the hub dataset changes) and every setting that changes the
    result. ``streaming`` and ``num_proc`` do not: they give identical entries.
    """
    settings = _settings(text_column, lowercase, min_count, max_vocab_size,
                         max_vocab_types or DEFAULT_MAX_VOCAB_TYPES)
    blob = json.dumps([_resolve(source).identity(), settings], sort_keys=True)
    root = Path(cache_dir or os.environ.get("W2V_JAX_CACHE") or "~/.cache/w2v_jax")
    root = root.expanduser()
    return root / "corpora" / hashlib.sha256(blob.encode()).hexdigest()[:24]


@contextlib.contextmanager
def _reading(src: _Source):
    """Turns the many exception types of datasets, pyarrow and the hub into a W2VError."""
    import datasets

    try:
        yield
    except W2VError:
        raise
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as e:
        cause = e.__cause__ or e  # DatasetGenerationError hides the real problem here
        where = " (a hub dataset: check the name and the network)" if src.kind == "hub" else ""
        fix = ("; re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
               if isinstance(cause, UnicodeDecodeError) else "")
        raise W2VError(f"could not load dataset {src.name}{where}: {type(cause).__name__}: "
                       f"{' '.join(str(cause).split())}{fix}") from None


def _open_dataset(src: _Source, streaming: bool, num_proc: int | None, hf_cache: Path):
    """A ``Dataset`` (memory-mapped Arrow) or, streaming, an ``IterableDataset``."""
    import datasets

    if src.kind == "saved":
        try:
            ds = datasets.load_from_disk(src.paths[0])
        except IndexError:  # datasets cannot concatenate the tables of zero shards
            raise W2VError(f"dataset {src.name} has no rows; pass a dataset with text") from None
    elif src.kind == "files":
        ds = datasets.load_dataset(src.builder, data_files=list(src.paths), split="train",
                                   cache_dir=str(hf_cache), streaming=streaming,
                                   num_proc=num_proc if len(src.paths) > 1 and not streaming
                                   else None)  # datasets parallelises across files only
    else:
        ds = datasets.load_dataset(src.name, cache_dir=str(hf_cache), streaming=streaming)
    if isinstance(ds, dict):  # DatasetDict / IterableDatasetDict
        splits = list(ds)
        if "train" not in ds and len(splits) != 1:
            raise W2VError(f"dataset {src.name} has splits {', '.join(splits)} but no 'train'; "
                           "save the split to train on with save_to_disk")
        ds = ds["train" if "train" in ds else splits[0]]
    if streaming and src.kind == "saved":  # already memory-mapped; a stream skips num_proc
        ds = ds.to_iterable_dataset()
    return ds


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """The hub's address if a TCP connection to it fails within ``timeout`` seconds, else
    None (also when the user set ``HF_HUB_OFFLINE`` themselves, which ``datasets`` obeys).

    Without the check an uncached hub name on a machine without network spent ~27 s in
    the hub client's retries (and printed each one) before failing.
    """
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return None
    import socket
    import urllib.parse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError):
        return endpoint
    return None


def _go_offline() -> None:
    """Puts ``datasets`` and the hub client in offline mode (cache only), also when they
    were imported before (they read the variables once, at import)."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    if "datasets" in sys.modules:
        import datasets
        import huggingface_hub.constants

        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
        huggingface_hub.constants.HF_HUB_OFFLINE = True


def _check_column(columns: Iterable[str], column: str, source: str) -> None:
    columns = list(columns)
    if column not in columns:
        raise W2VError(f"dataset {source} has no column {column!r} (columns: "
                       f"{', '.join(columns) or 'none'}); pass the text column with --text-column")


def _words(text, lowercase: bool) -> Iterable[str]:
    """The row's words, as ``str.split()`` gives them."""
    if text is None:
        return ()
    if not isinstance(text, str):
        raise W2VError(f"the text column holds {type(text).__name__} values, not strings; "
                       "pass a column of text with --text-column")
    text = text.lower() if lowercase else text
    if text.startswith("\ufeff"):  # a byte-order mark (a file's first row): not a word
        text = text[1:]
    if len(text) > _LONG_ROW:  # one 100 MB row (text8) would split into a 1 GB list
        return (m.group() for m in _WORD.finditer(text))
    return text.split()


def _count_batch(texts: list, lowercase: bool) -> dict:
    """Pass 1 on one batch → one row: its words in first-appearance order and their counts."""
    counter: collections.Counter = collections.Counter()  # keeps first-insertion order
    for text in texts:
        counter.update(_words(text, lowercase))
    counts = list(counter.values())
    return {"words": [list(counter)], "counts": [counts], "tokens": [sum(counts)]}


def _ids_batch(texts: list, lowercase: bool, index: dict[str, int]) -> dict:
    """Pass 2 on one batch → one row: ids i32[n] (OOV dropped), lengths i64[s] of the
    sentences with an in-vocabulary token, and the raw token count."""
    get = index.get
    parts, lengths, raw = [], [], 0
    for text in texts:
        ids = np.fromiter(map(get, _words(text, lowercase), itertools.repeat(-1)), dtype=np.int32)
        raw += ids.size
        ids = ids[ids >= 0]
        if ids.size:
            parts.append(ids)
            lengths.append(ids.size)
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return {"ids": [ids], "lengths": [np.asarray(lengths, np.int64)], "raw": [raw]}


def _batch_results(ds, column: str, fn: Callable, kwargs: dict, features: dict,
                   num_proc: int | None, work: Path) -> Iterator[dict]:
    """Yields ``fn(texts, **kwargs)`` for each batch of rows, in order. With ``num_proc``
    the batches run in ``ds.map`` workers and the per-batch rows go through an Arrow
    file in ``work`` (deleted with the build), never through memory all at once."""
    import datasets

    if num_proc is None or num_proc == 1 or not isinstance(ds, datasets.Dataset):
        for batch in ds.iter(batch_size=_BATCH_ROWS):
            yield fn(batch[column], **kwargs)
        return
    list_of = getattr(datasets, "List", datasets.Sequence)  # List is datasets ≥ 4
    feats = datasets.Features({k: list_of(datasets.Value(v[:-2])) if v.endswith("[]")
                               else datasets.Value(v) for k, v in features.items()})
    token = uuid.uuid4().hex[:16]  # given, so datasets does not hash the vocabulary
    mapped = ds.map(fn, batched=True, batch_size=_BATCH_ROWS, input_columns=[column],
                    fn_kwargs=kwargs, num_proc=num_proc, remove_columns=ds.column_names,
                    features=feats, cache_file_name=str(work / f"{fn.__name__}.arrow"),
                    new_fingerprint=token, load_from_cache_file=False,
                    desc=f"w2v-jax {fn.__name__.strip('_').replace('_', ' ')}")
    for table in mapped.with_format("arrow").iter(batch_size=64):
        yield {name: [v.values.to_numpy(zero_copy_only=False) if name in ("ids", "lengths")
                      else v.as_py() for v in table.column(name)] for name in table.column_names}


@dataclasses.dataclass
class _CountTable:
    """word → count in first-appearance order, kept at most ``limit`` entries by dropping
    the rarest words (word2vec C's ReduceVocab): counts of dropped words restart from 0."""

    limit: int
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    threshold: int = 1  # the next prune drops counts ≤ this
    peak: int = 0
    prunes: int = 0

    def add(self, words: list[str], counts: Iterable[int]) -> None:
        table = self.counts
        for w, c in zip(words, counts):
            if w in table:
                table[w] += c
                continue
            if len(table) >= self.limit:
                self._prune()
            table[w] = c
        self.peak = max(self.peak, len(table))

    def _prune(self) -> None:
        table = self.counts
        self.peak = max(self.peak, len(table))
        while len(table) >= self.limit:
            for w in [w for w, c in table.items() if c <= self.threshold]:
                del table[w]
            self.threshold += 1
        self.prunes += 1


def _count(ds, column: str, lowercase: bool, num_proc: int | None, limit: int, work: Path,
           log) -> tuple[list[str], np.ndarray, int, dict]:
    """Pass 1 → (types, i64[T] counts, raw token count, table stats)."""
    table, raw = _CountTable(limit), 0
    for r in _batch_results(ds, column, _count_batch, {"lowercase": lowercase},
                            {"words": "string[]", "counts": "int64[]", "tokens": "int64"},
                            num_proc, work):
        for words, counts, tokens in zip(r["words"], r["counts"], r["tokens"]):
            table.add(words, counts)
            raw += tokens
    stats = {"peak_types": table.peak, "prunes": table.prunes,
             "prune_threshold": table.threshold - 1 if table.prunes else 0}
    if table.prunes:
        log(f"word table reached max_vocab_types={limit:,} and was pruned {table.prunes} times: "
            f"counts of words seen ≤ {stats['prune_threshold']} times are approximate")
    counts = np.fromiter(table.counts.values(), np.int64, len(table.counts))
    return list(table.counts), counts, raw, stats


def _write_ids(ds, column: str, lowercase: bool, index: dict[str, int], num_proc: int | None,
               out: Path, work: Path) -> dict:
    """Pass 2: appends ids to ``out/ids.i32`` and lengths to ``out/sentence_lengths.i64``.
    Returns their sizes and the raw token count."""
    n_tokens = n_sentences = raw = 0
    with open(out / "ids.i32", "wb") as f_ids, open(out / "sentence_lengths.i64", "wb") as f_len:
        for r in _batch_results(ds, column, _ids_batch, {"lowercase": lowercase, "index": index},
                                {"ids": "int32[]", "lengths": "int64[]", "raw": "int64"},
                                num_proc, work):
            for ids, lengths, raw_words in zip(r["ids"], r["lengths"], r["raw"]):
                np.asarray(ids, "<i4").tofile(f_ids)
                np.asarray(lengths, "<i8").tofile(f_len)
                n_tokens, n_sentences = n_tokens + len(ids), n_sentences + len(lengths)
                raw += raw_words
        for f in (f_ids, f_len):  # the rename that publishes the entry must follow the data
            f.flush()
            os.fsync(f.fileno())
    return {"n_tokens": n_tokens, "n_sentences": n_sentences, "raw_words": raw}


def _build_into(tmp: Path, src: _Source, settings: dict, streaming: bool, num_proc: int | None,
                hf_cache: Path, log) -> None:
    """Both passes, writing a complete entry (ids, lengths, vocab, meta) into ``tmp``."""
    column, lowercase = settings["text_column"], settings["lowercase"]
    ds = _open_dataset(src, streaming, num_proc, hf_cache)
    if ds.column_names is None:  # a json/text stream learns its columns from a row
        _check_column(next(iter(ds.iter(batch_size=1)), {column: []}), column, src.name)
    else:
        _check_column(ds.column_names, column, src.name)
        ds = ds.select_columns([column])
    log(f"dataset {src.name}: counting words (pass 1 of 2)")
    types, counts, raw, stats = _count(ds, column, lowercase, num_proc,
                                       settings["max_vocab_types"], tmp / "work", log)
    if raw == 0:
        raise W2VError(f"dataset {src.name} has no words in column {column!r} (empty or "
                       "whitespace only); pass a dataset with text")
    vocab, _ = build_vocab(types, counts, settings["min_count"], settings["max_vocab_size"])
    del types, counts
    log(f"dataset {src.name}: {raw:,} words, vocabulary {len(vocab):,}; writing ids (pass 2 of 2)")
    sizes = _write_ids(ds, column, lowercase, vocab.index(), num_proc, tmp, tmp / "work")
    if sizes["raw_words"] != raw:
        raise W2VError(f"dataset {src.name} changed between the two passes ({raw:,} then "
                       f"{sizes['raw_words']:,} words); run again once it is stable")
    vocab.save(tmp / "vocab.txt")
    meta = {**settings, "source": src.name, **sizes, "vocab_size": len(vocab), **stats}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))


def _build(src: _Source, entry: Path, settings: dict, streaming: bool,
           num_proc: int | None, log) -> None:
    """Builds into a temporary sibling of ``entry``, then renames it into place: a killed
    build leaves at most a ``.tmp-*`` directory, never a half entry, and the next build
    of the entry removes it (a build holds a lock on its own, so concurrent builds stay)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(entry)
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    lock = tmp.with_name(tmp.name + ".lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # before the directory exists: see below
        try:
            _build_locked(src, entry, tmp, settings, streaming, num_proc, log)
        finally:
            lock.unlink(missing_ok=True)


def _remove_stale_builds(entry: Path) -> None:
    """Removes the ``.tmp-*`` directories of killed builds of ``entry`` (those whose lock
    no process holds; a build locks before it creates its directory) and ``.old-*`` ones."""
    for tmp in entry.parent.glob(f".tmp-{entry.name}-*"):
        if not tmp.is_dir():
            continue
        lock = tmp.with_name(tmp.name + ".lock")
        with contextlib.suppress(OSError), open(lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a build in progress
            shutil.rmtree(tmp, ignore_errors=True)
            lock.unlink(missing_ok=True)
    for old in entry.parent.glob(f".old-{entry.name}-*"):
        shutil.rmtree(old, ignore_errors=True)


def _build_locked(src: _Source, entry: Path, tmp: Path, settings: dict, streaming: bool,
                  num_proc: int | None, log) -> None:
    (tmp / "work").mkdir(parents=True)
    # A hub download is worth keeping; a local file's Arrow copy only lives for the build.
    hf_cache = entry.parent.parent / "hf" if src.kind == "hub" else tmp / "work" / "hf"
    try:
        with _reading(src):
            _build_into(tmp, src, settings, streaming, num_proc, hf_cache, log)
        shutil.rmtree(tmp / "work")
        if entry.exists():  # stale or corrupt: rename() cannot replace a non-empty directory
            old = entry.with_name(f".old-{entry.name}-{uuid.uuid4().hex[:8]}")
            entry.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.exists():
                raise  # else a concurrent build of the same entry won the race: use its
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path) -> tuple[tuple[Vocab, Corpus] | None, str]:
    """The cached (vocab, corpus), or (None, what is wrong with the entry)."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta["format"] != FORMAT_VERSION:
            return None, f"format {meta['format']}, expected {FORMAT_VERSION}"
        for name, size in [("ids.i32", 4 * meta["n_tokens"]),
                           ("sentence_lengths.i64", 8 * meta["n_sentences"])]:
            if (entry / name).stat().st_size != size:
                return None, f"{name} is not {size} bytes as meta.json says"
        vocab = Vocab.load(entry / "vocab.txt")
        if len(vocab) != meta["vocab_size"]:
            return None, f"vocab.txt has {len(vocab)} words, meta.json says {meta['vocab_size']}"
        problem = _check_contents(entry, meta["n_tokens"], len(vocab))
        if problem:
            return None, problem
        corpus = Corpus(ids=np.memmap(entry / "ids.i32", dtype="<i4", mode="r"),
                        sentence_lengths=np.memmap(entry / "sentence_lengths.i64", "<i8", "r"),
                        raw_words=int(meta["raw_words"]))
    except (OSError, ValueError, KeyError, TypeError) as e:  # W2VError is a ValueError
        return None, " ".join(str(e).split())
    return (vocab, corpus), ""


def _check_contents(entry: Path, n_tokens: int, vocab_size: int,
                    block: int = 1 << 22) -> str:
    """What is wrong with an entry's arrays whose sizes are right (a zeroed page, bit rot):
    ids outside [0, V), a sentence length under 1, lengths that do not add up to the
    tokens; "" if nothing. Read in blocks with ``read()``, so no page stays mapped (the
    bench corpus's 30 MB of ids: 7–28 ms)."""
    lo, hi = 0, -1
    with open(entry / "ids.i32", "rb") as f:
        while chunk := f.read(4 * block):
            ids = np.frombuffer(chunk, "<i4")
            lo, hi = min(lo, int(ids.min())), max(hi, int(ids.max()))
    if n_tokens and (lo < 0 or hi >= vocab_size):
        return f"ids.i32 holds ids outside 0..{vocab_size - 1} ({lo}..{hi})"
    total, shortest = 0, 1
    with open(entry / "sentence_lengths.i64", "rb") as f:
        while chunk := f.read(8 * block):
            lengths = np.frombuffer(chunk, "<i8")
            total, shortest = total + int(lengths.sum()), min(shortest, int(lengths.min()))
    if shortest < 1 or total != n_tokens:
        return (f"sentence_lengths.i64 does not add up to the {n_tokens:,} tokens (sum "
                f"{total:,}, shortest {shortest})")
    return ""


def load_dataset_corpus(source: str | os.PathLike | Sequence[str | os.PathLike], *,
                        text_column: str = "text", min_count: int = 5,
                        max_vocab_size: int | None = None, streaming: bool = False,
                        num_proc: int | None = None, lowercase: bool = False,
                        max_vocab_types: int | None = None,
                        cache_dir: str | os.PathLike | None = None, refresh: bool = False,
                        log: Callable[[str], None] = _stderr) -> tuple[Vocab, Corpus]:
    """Reads a dataset's text column into a vocabulary and a memory-mapped corpus, cached.

    Args:
      source: a local file, glob or list of files (.txt[.gz] one sentence per line,
        .json/.jsonl, .parquet, .csv), a ``save_to_disk`` directory (a DatasetDict's
        "train" split or its only split), or a Hugging Face hub name.
      text_column: the column holding one sentence per row.
      streaming: iterate the source without converting it to Arrow first.
      num_proc: worker processes for both passes (not with ``streaming``).
      max_vocab_types: most distinct words held while counting (default
        ``DEFAULT_MAX_VOCAB_TYPES``); past it the rarest are pruned, making their counts
        approximate.
      cache_dir: default ``$W2V_JAX_CACHE`` or ``~/.cache/w2v_jax``.
      refresh: rebuild the cache entry even if it is valid.
    Returns:
      (vocab, corpus) with ``corpus.ids`` i32[N] and ``corpus.sentence_lengths`` i64[S]
      read-only ``np.memmap``s; equal to ``load_corpus``'s for a plain text file.
    """
    if num_proc is not None and num_proc < 1:
        raise W2VError(f"num_proc must be at least 1, got {num_proc}")
    if streaming and num_proc is not None and num_proc > 1:
        raise W2VError("num_proc does not apply to a stream (read by one process); drop "
                       "--num-proc, or --streaming to convert the dataset and read it in parallel")
    if not text_column:
        raise W2VError("text_column is empty; name the dataset's column of text (--text-column)")
    cores = os.cpu_count() or 1
    if num_proc is not None and num_proc > cores:  # 1000 processes on 2 cores took 220× longer
        log(f"w2v-jax: warning: num_proc {num_proc} is more than the {cores} cores; using {cores}")
        num_proc = cores
    max_vocab_types = max_vocab_types or DEFAULT_MAX_VOCAB_TYPES
    src = _resolve(source)
    if src.kind != "hub":  # set before datasets is imported, so nothing tries the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    hub_down = src.kind == "hub" and _hub_unreachable()
    if hub_down:
        log(f"w2v-jax: the hub ({hub_down}) cannot be reached; looking for {src.name} in "
            "the local cache only")
        _go_offline()
    if src.kind == "files" and all(os.path.getsize(p) == 0 for p in src.paths):
        raise W2VError(f"dataset {src.name} has no words (empty files); pass a dataset with text")
    entry = cache_entry(source, text_column=text_column, min_count=min_count,
                        max_vocab_size=max_vocab_size, lowercase=lowercase,
                        max_vocab_types=max_vocab_types, cache_dir=cache_dir)
    if entry.exists() and not refresh:
        loaded, problem = _read_entry(entry)
        if loaded:
            log(f"dataset {src.name}: using cached corpus {entry}")
            loaded[1].check_trainable()
            return loaded
        log(f"w2v-jax: warning: cache entry {entry} is incomplete ({problem}); rebuilding it")
    settings = _settings(text_column, lowercase, min_count, max_vocab_size, max_vocab_types)
    try:
        _build(src, entry, settings, streaming, num_proc, log)
    except W2VError as e:
        if not hub_down:
            raise
        raise W2VError(f"dataset {src.name} is not in the local cache ({entry.parent.parent}) "
                       f"and the hub ({hub_down}) cannot be reached; download it on a machine "
                       "with network and copy the cache, or pass local files") from e
    loaded, problem = _read_entry(entry)
    if loaded is None:
        raise W2VError(f"the cache entry {entry} just written is unreadable ({problem}); "
                       "check the disk and --cache-dir")
    loaded[1].check_trainable()
    return loaded
