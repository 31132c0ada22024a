"""Text → token ids: read a plain or compressed file (gzip, bzip2, xz), count words, keep
sentence bounds.

A corpus is whitespace-separated words; each line is a sentence (windows never cross
a line). Lines may be of any length: the file is read in fixed-size binary blocks and
cut at whitespace, so a single 7.5M-word line (text8) costs no more than many short
ones. The result is compact: one int32 per token, plus the sentence lengths.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import dataclasses
import functools
import gzip
import importlib.resources
import io
import itertools
import lzma
import os
import zlib
from pathlib import Path

import numpy as np

from w2v_jax.errors import W2VError
from w2v_jax.vocab import Vocab, build_vocab

_BLOCK = 1 << 21  # bytes read at a time; bounds the Python strings alive at once
_BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark
_MAX_WORD = 1 << 20  # a "word" longer than this means the file is not a text corpus


def embedded_corpus_path() -> Path:
    """The small public-domain corpus shipped with the package (KJV Bible, 790k words)."""
    return Path(str(importlib.resources.files("w2v_jax") / "data" / "kjv.txt.gz"))


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A tokenised corpus restricted to a vocabulary.

    Attributes:
      ids: i32[N] vocabulary ids of the in-vocabulary tokens, in corpus order.
      sentence_lengths: i64[S] number of in-vocabulary tokens in each sentence (line).
      raw_words: number of tokens in the file, out-of-vocabulary ones included
        (the "raw words" of gensim's progress reports and of words/s).

    ``ids`` and ``sentence_lengths`` may be read-only ``np.memmap``s (a cached dataset,
    ``w2v_jax.dataset``): the trainer reads them a chunk at a time, so a corpus larger
    than memory trains in memory bounded by the chunk size.
    """

    ids: np.ndarray
    sentence_lengths: np.ndarray
    raw_words: int

    def check_trainable(self) -> None:
        """Raises W2VError unless there is at least one pair of words to train on: a
        sentence (line) with two in-vocabulary words, since windows never cross lines."""
        if self.ids.size < 2:
            raise W2VError("the corpus has fewer than 2 in-vocabulary words; nothing to train "
                           "on (use a larger corpus or lower --min-count)")
        if not np.any(np.asarray(self.sentence_lengths) >= 2):
            raise W2VError("no line of the corpus has 2 in-vocabulary words, and windows never "
                           "cross lines: nothing to train on (one word per line? put each "
                           "sentence on one line, or lower --min-count)")

    @functools.cached_property
    def sentence_starts(self) -> np.ndarray:
        """i64[S] the position in ``ids`` of each sentence's first token."""
        return np.cumsum(self.sentence_lengths, dtype=np.int64) - self.sentence_lengths

    def sentence_ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """i32[stop − start] the sentence index of the tokens ``ids[start:stop]``."""
        stop = self.ids.size if stop is None else stop
        if stop <= start:
            return np.zeros(0, np.int32)
        starts = self.sentence_starts
        # The sentences that meet [start, stop), each repeated for its tokens there: linear
        # in the tokens, ~5× faster than a binary search per token.
        first, last = np.searchsorted(starts, [start, stop - 1], side="right") - 1
        lo = np.maximum(starts[first:last + 1], start)
        hi = np.minimum(starts[first:last + 1] + self.sentence_lengths[first:last + 1], stop)
        return np.repeat(np.arange(first, last + 1, dtype=np.int32), hi - lo)


# Compressed formats told apart by their first bytes; the stdlib reads all but zstd.
_MAGIC = {b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
          b"BZh": bz2.BZ2File, b"\xfd7zXZ\x00": lzma.LZMAFile}
_ZSTD = b"\x28\xb5\x2f\xfd"


@contextlib.contextmanager
def _open(path: Path):
    """The file's bytes, decompressed if it is gzip, bzip2 or xz.

    Opened once and told apart by peeking, so that a pipe (``<(zcat big.gz)``,
    ``/dev/stdin``) is read whole: a second open would lose what the first read took.
    """
    if not path.exists():
        raise W2VError(f"corpus file {path} does not exist; check the path")
    if path.is_dir():
        raise W2VError(f"corpus path {path} is a directory; pass a text file (plain, .gz, .bz2 or .xz)")
    if not os.access(path, os.R_OK):
        raise W2VError(f"corpus file {path} is not readable; check its permissions")
    with open(path, "rb", buffering=0) as raw:
        head = b""
        while len(head) < 8:  # a pipe may deliver its first bytes one at a time
            more = raw.read(8 - len(head))
            if not more:
                break
            head += more
        if head.startswith(_ZSTD):
            raise W2VError(f"corpus {path} is zstd-compressed, which --corpus does not read; "
                           f"decompress it, or pass --corpus <(zstd -dc {path})")
        data = io.BufferedReader(_Prefixed(head, raw), buffer_size=_BLOCK)
        kind = next((cls for magic, cls in _MAGIC.items() if head.startswith(magic)), None)
        if kind is None:
            yield data
        else:
            with kind(data) as f:
                yield f


class _Prefixed(io.RawIOBase):
    """The bytes already read from ``raw`` (``head``), then the rest of ``raw``."""

    def __init__(self, head: bytes, raw):
        self._head, self._raw = head, raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._raw.readinto(b)


def _blocks(path: Path):
    """Yields decoded text blocks that end at a whitespace boundary."""
    offset = 0
    carry = b""
    try:
        with _open(path) as f:
            while True:
                raw = f.read(_BLOCK)
                if not raw:
                    break
                if offset == 0 and not carry and raw.startswith(_BOM):  # Windows editors'
                    raw, offset = raw[len(_BOM):], len(_BOM)  # mark: not part of a word
                buf = carry + raw
                cut = max(buf.rfind(b" "), buf.rfind(b"\n"), buf.rfind(b"\t"), buf.rfind(b"\r"))
                if cut < 0:
                    cut = _last_other_space(buf)
                if cut < 0:
                    if len(buf) > _MAX_WORD:  # bounded memory for whitespace-free input
                        raise W2VError(
                            f"corpus {path} has no whitespace in {len(buf):,} bytes from byte "
                            f"offset {offset}; it is not a text corpus of space-separated words")
                    carry = buf  # no whitespace yet: the word goes on
                    continue
                carry = buf[cut + 1:]
                yield _decode(buf[: cut + 1], path, offset)
                offset += cut + 1
            if carry:
                yield _decode(carry, path, offset)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise W2VError(f"could not read corpus {path}: {e}") from None


# What str.split() also splits at, besides ASCII's space, tab, CR and LF, as UTF-8.
_OTHER_SPACES = tuple(c.encode() for c in "\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680"
                      "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                      "\u2028\u2029\u202f\u205f\u3000")


def _last_other_space(buf: bytes) -> int:
    """The index of the last byte of the last whitespace in ``_OTHER_SPACES`` (U+3000
    between ideographs, NBSP, \\v, \\f, …), or −1. Searched only in a block with no
    ASCII whitespace, so ordinary text never pays for it."""
    return max(buf.rfind(sp) + len(sp) - 1 if sp in buf else -1 for sp in _OTHER_SPACES)


def _decode(b: bytes, path: Path, offset: int) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as e:
        raise W2VError(
            f"corpus {path} is not valid UTF-8 (bad byte at offset {offset + e.start}); "
            "re-encode it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _scan_parts(path: Path) -> tuple[list[str], np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`scan`, with the tokens left as one i32 array per read block (in order)."""
    # word → id, a new word getting the next id when first looked up: one C-level dict
    # lookup per token (the whole scan took ~20% less CPU than with a generator calling
    # setdefault per token: bench corpus, 2026-11-27).
    index: dict[str, int] = collections.defaultdict(itertools.count().__next__)
    lookup = index.__getitem__
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    line_len = 0
    for text in _blocks(path):
        words: list[str] = []
        for i, line in enumerate(text.split("\n")):
            if i > 0:  # a newline ended the previous line
                if line_len:
                    lengths.append(line_len)
                line_len = 0
            line_words = line.split()
            words += line_words
            line_len += len(line_words)
        if words:  # one array a block: a numpy object per line cost ~100 bytes each
            parts.append(np.fromiter(map(lookup, words), dtype=np.int32, count=len(words)))
    if line_len:
        lengths.append(line_len)
    if not index:
        raise W2VError(f"corpus {path} has no words (empty or whitespace only); "
                       "pass a text file with words separated by spaces")
    counts = np.zeros(len(index), np.int64)
    for part in parts:
        counts += np.bincount(part, minlength=len(index))
    return list(index), counts, parts, np.asarray(lengths, dtype=np.int64)


def scan(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """One pass over a text file.

    Returns:
      (types, counts, tokens, sentence_lengths): the distinct words in order of first
      appearance, i64[T] their counts, i32[n] every token as an index into ``types``,
      and i64[S] the number of tokens on each non-empty line.
    """
    types, counts, parts, lengths = _scan_parts(Path(path))
    return types, counts, np.concatenate(parts), lengths


def _fresh_strings(vocab: Vocab) -> Vocab:
    """The vocabulary with its words copied into new string objects.

    The kept words are the first occurrences of each word, strewn through the memory of
    Python's small-object allocator among the scan's millions of short-lived token
    strings; each one pins a 1 MiB arena that is otherwise free. Copied once the rest
    are gone, they pack into a few arenas and the others go back to the OS: on the
    bench corpus, 26 MB less resident after loading (2026-11-27).
    """
    return dataclasses.replace(vocab, words=tuple(w.encode().decode() for w in vocab.words))


def load_corpus(path: str | os.PathLike, min_count: int = 5,
                max_vocab_size: int | None = None) -> tuple[Vocab, Corpus]:
    """Reads a corpus, builds its vocabulary and maps it to vocabulary ids.

    Out-of-vocabulary tokens are dropped before windows are formed (as in word2vec C
    and gensim), so a window spans the words around a dropped one.

    Memory: the file's tokens as int32 (4 bytes a word) and the distinct words; each
    block of tokens is mapped to vocabulary ids and freed in turn, into an array sized
    from the counts, so no second corpus-sized array is alive at once.
    """
    types, counts, parts, lengths = _scan_parts(Path(path))
    vocab, remap = build_vocab(types, counts, min_count, max_vocab_size)
    del types
    vocab = _fresh_strings(vocab)
    raw_words = int(counts.sum())
    ids = np.empty(int(counts[remap >= 0].sum()), np.int32)
    starts = np.cumsum(lengths) - lengths  # each line's first token, in the file's tokens
    kept_before = np.empty(lengths.size, np.int64)  # in-vocabulary tokens before each line
    parts.reverse()  # popped from the end, first block first
    line = kept = seen = 0
    while parts:
        part = remap[parts.pop()]
        keep = part >= 0
        # The lines that start in this block: kept tokens before them.
        end = int(np.searchsorted(starts, seen + part.size))
        at = starts[line:end] - seen
        kept_in = np.concatenate([[0], np.cumsum(keep)])
        kept_before[line:end] = kept + kept_in[at]
        line = end
        part = part[keep]
        ids[kept:kept + part.size] = part
        kept, seen = kept + part.size, seen + keep.size
    kept_lengths = np.diff(np.append(kept_before, kept))
    corpus = Corpus(ids=ids, sentence_lengths=kept_lengths[kept_lengths > 0],
                    raw_words=raw_words)
    corpus.check_trainable()
    return vocab, corpus
