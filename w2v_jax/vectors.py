"""Trained vectors: a KeyedVectors-like view, word2vec text/binary I/O, neighbours.

The word2vec formats are those of the original C tool, which gensim
(``KeyedVectors.load_word2vec_format``), fastText and most other tools read:
a header line ``V d``, then per word ``word v1 ... vd`` (text) or
``word<space>`` followed by d little-endian float32 and a newline (binary).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import warnings
import zlib
from functools import partial
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax.errors import UnknownWord, W2VError

_SEPARATORS = re.compile("[ \t\n\r]")


# XLA options for the one-shot programs of evaluation and neighbour queries: a GPU
# autotunes each new matmul, which for the analogy kernels took 13-14 s per method on an
# H200 (2026-11-27), ten times the evaluation itself; on other backends it is a no-op.
ONE_SHOT_COMPILE = {"xla_gpu_autotune_level": 0}


@partial(jax.jit, compiler_options=ONE_SHOT_COMPILE)
def _cosines(unit: jax.Array, q: jax.Array) -> jax.Array:
    """f32[V] cosines of the unit rows ``unit: f32[V, d]`` with the unit query ``q: f32[d]``."""
    return jnp.matmul(unit, q, precision=jax.lax.Precision.HIGHEST)  # no TF32 on GPUs


def _entries(query) -> list:
    """A query side as a list: one word or vector alone stands for a list of one (gensim's
    shorthand, ``most_similar("king")``)."""
    return [query] if isinstance(query, (str, np.ndarray, jax.Array)) else list(query)


class KeyedVectors:
    """Words and their vectors, with cosine neighbours computed on device.

    ``vectors`` is read-only (a trained model's and a loaded file's alike): the unit
    vectors are computed once, so changed rows would leave them stale. To change vectors,
    build a new ``KeyedVectors(words, new_vectors)``.

    Args:
      words: the V words, in row order.
      vectors: f32[V, d].
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32).view()  # the caller's array stays writable
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise W2VError(f"got {len(words)} words but vectors of shape {vectors.shape}")
        vectors.flags.writeable = False
        self.index_to_key = list(words)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        self.vectors = vectors
        self._unit = None

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str | Sequence[str]) -> np.ndarray:
        """f32[d] for a word, f32[n, d] for a list of n words (as gensim)."""
        if isinstance(word, (list, tuple)):
            return self.vectors[[self.index(w) for w in word]]
        return self.vectors[self.index(word)]

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def index(self, word: str) -> int:
        try:
            return self.key_to_index[word]
        except KeyError:
            raise UnknownWord(f"word {word!r} is not in the vocabulary ({len(self)} words)") from None

    def unit_vectors(self) -> jax.Array:
        """f32[V, d] rows scaled to unit length (computed once, kept on device)."""
        if self._unit is None:
            v = jnp.asarray(self.vectors)
            self._unit = v / jnp.maximum(jnp.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return self._unit

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        u = self.unit_vectors()
        return float(jnp.dot(u[self.index(w1)], u[self.index(w2)],
                             precision=jax.lax.Precision.HIGHEST))

    def most_similar(self, positive=(), negative=(), topn: int | None = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """The ``topn`` words (None: all) nearest by cosine to the query, best first.

        The query is gensim's: the weighted sum of ``positive`` minus ``negative``, scaled
        to unit length. Each entry is a word (its unit vector, weight 1 or −1), a vector
        f[d] (taken as it is), or a ``(word, weight)`` pair, whose weight is used as given
        in either list (gensim's rule). Query words are left out of the answer;
        ``restrict_vocab`` N looks only among the first N words (the most frequent, in a
        run's order).
        """
        positive, negative = _entries(positive), _entries(negative)
        if not len(positive) and not len(negative):
            raise W2VError("most_similar needs at least one word or vector")
        u = self.unit_vectors()
        terms, ids = [], []
        for entries, sign in ((positive, 1.0), (negative, -1.0)):
            for entry in entries:
                vec, weight = self._query_term(entry, sign)
                if isinstance(vec, int):
                    ids.append(vec)
                    vec = u[vec]
                terms.append(weight * jnp.asarray(vec, jnp.float32))
        q = sum(terms[1:], terms[0])
        q = q / jnp.maximum(jnp.linalg.norm(q), 1e-12)
        scores = np.array(_cosines(u, q))
        return self._best(scores, ids, topn, restrict_vocab)

    def most_similar_cosmul(self, positive=(), negative=(), topn: int | None = 10,
                            restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """The ``topn`` words (None: all) best by 3CosMul (Levy & Goldberg 2014, as gensim's
        ``most_similar_cosmul``): Π (1 + cos(x, p)) / 2 over ``positive`` divided by
        Π (1 + cos(x, n)) / 2 over ``negative`` + 1e-6.

        Entries are words (their unit vectors) or vectors f[d] (taken as they are, as
        gensim takes them); query words are left out of the answer; ``restrict_vocab`` N
        looks only among the first N words.
        """
        positive, negative = _entries(positive), _entries(negative)
        if not len(positive):
            raise W2VError("most_similar_cosmul needs at least one positive word or vector")
        u, ids = self.unit_vectors(), []

        def shifted(entry) -> np.ndarray:  # f64[V]: (1 + cos) / 2 of every row
            if isinstance(entry, tuple):
                raise W2VError("most_similar_cosmul takes words or vectors, not (word, "
                               "weight) pairs (as gensim's); use most_similar for weights")
            vec, _ = self._query_term(entry, 1.0)
            if isinstance(vec, int):
                ids.append(vec)
                vec = u[vec]
            return (1.0 + np.asarray(_cosines(u, jnp.asarray(vec, jnp.float32)), np.float64)) / 2.0

        scores = np.prod([shifted(e) for e in positive], axis=0)
        scores = scores / (np.prod([shifted(e) for e in negative], axis=0) + 1e-6)
        return self._best(scores, ids, topn, restrict_vocab)

    def _best(self, scores: np.ndarray, ids: list[int], topn: int | None,
              restrict_vocab: int | None) -> list[tuple[str, float]]:
        """The ``topn`` (None: all) best-scoring words, best first, leaving out rows
        ``ids`` (the query's words) and those from ``restrict_vocab`` on."""
        if topn is None:
            topn = len(self)
        if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)):
            raise W2VError(f"topn must be a whole number or None, got {topn!r}")
        if restrict_vocab is not None:
            scores[restrict_vocab:] = -np.inf
        scores[ids] = -np.inf
        k = min(topn, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.array([], dtype=int)
        top = top[np.argsort(-scores[top])]
        return [(self.index_to_key[i], float(scores[i])) for i in top]

    def _query_term(self, entry, sign: float) -> tuple[int | np.ndarray, float]:
        """(row index or vector, weight) of one entry of a most_similar query."""
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
            return self.index(entry[0]), float(entry[1])
        if isinstance(entry, str):
            return self.index(entry), sign
        vec = np.asarray(entry, np.float32)
        if vec.shape != (self.vector_size,):
            raise W2VError(f"a query vector must have shape ({self.vector_size},), got {vec.shape}")
        return vec, sign

    def similar_by_word(self, word: str, topn: int | None = 10) -> list[tuple[str, float]]:
        """``most_similar([word], topn=topn)`` (gensim's name)."""
        return self.most_similar([word], topn=topn)

    def similar_by_vector(self, vector, topn: int | None = 10) -> list[tuple[str, float]]:
        """The words nearest by cosine to ``vector`` f[d] (gensim's name)."""
        return self.most_similar([np.asarray(vector)], topn=topn)

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        """f32[d]: the word's vector, or its unit vector with ``norm``."""
        i = self.index(word)
        return np.asarray(self.unit_vectors()[i]) if norm else self.vectors[i]

    def get_index(self, word: str) -> int:
        """The word's row (gensim's name for :meth:`index`)."""
        return self.index(word)

    def distance(self, w1: str, w2: str) -> float:
        """1 − cosine similarity."""
        return 1.0 - self.similarity(w1, w2)

    def n_similarity(self, words1: Sequence[str], words2: Sequence[str]) -> float:
        """Cosine between the means of two sets of words' vectors (as gensim)."""
        if not len(words1) or not len(words2):
            raise W2VError("n_similarity needs at least one word on each side")
        a, b = (self[list(ws)].mean(axis=0) for ws in (words1, words2))
        return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the words' unit vectors (as gensim)."""
        if not len(words):
            raise W2VError("doesnt_match needs at least one word")
        u = np.asarray(self.unit_vectors()[jnp.asarray([self.index(w) for w in words])])
        mean = u.mean(axis=0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        return list(words)[int(np.argmin(u @ mean))]

    # ---------------------------------------------------------------- word2vec format

    def save(self, *args, **kwargs):  # gensim's pickle: not offered, word2vec files are
        raise W2VError("KeyedVectors are saved as word2vec files here, not pickles: use "
                       "save_word2vec_format(path, binary=True), which gensim reads too")

    @classmethod
    def load(cls, *args, **kwargs):
        raise W2VError("KeyedVectors are read from word2vec files here, not pickles: use "
                       "KeyedVectors.load_word2vec_format(path) or w2v_jax.load_vectors(path)")

    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = True) -> None:
        """Writes the word2vec C format, atomically (a temp file renamed into place).

        Words must be non-empty and free of spaces and line breaks, which the format
        uses as separators.
        """
        bad = next((w for w in self.index_to_key if not w or _SEPARATORS.search(w)), None)
        if bad is not None:
            raise W2VError(f"word {bad!r} cannot be written in the word2vec format (it is empty "
                           "or holds a space or line break); rename it first")
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(f"{len(self)} {self.vector_size}\n".encode())
                vecs = self.vectors.astype("<f4")
                for w, v in zip(self.index_to_key, vecs):
                    if binary:
                        f.write(w.encode("utf-8") + b" " + v.tobytes() + b"\n")
                    else:
                        f.write((w + " " + " ".join(f"{x:.9g}" for x in v) + "\n").encode())
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise W2VError(f"cannot write vectors to {path}: {e.strerror or e}; choose another "
                           "path") from None

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike,
                             binary: bool | None = None) -> "KeyedVectors":
        """Reads word2vec text or binary vectors, gzipped or not (``GoogleNews-vectors-
        negative300.bin.gz`` as downloaded); ``binary=None`` tries the format the first
        entry looks like, then the other: a file is accepted only if all its V entries
        parse and nothing but whitespace follows them."""
        path = Path(path)
        if not path.is_file():
            raise W2VError(f"vectors file {path} does not exist or is not a file")
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":  # gzip's magic number, whatever the file's name
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as e:
                raise W2VError(f"vectors file {path} is gzipped but cannot be decompressed "
                               f"({e}); the download may be incomplete") from None
        if not data or data.isspace():  # (strip() would copy the whole file)
            raise W2VError(f"vectors file {path} is empty; pass a word2vec text or binary file")
        nl = data.find(b"\n")
        try:
            v, d = (int(x) for x in data[:max(nl, 0)].split())
            assert v >= 0 and d > 0
        except Exception:
            head = data[:nl if 0 <= nl < 60 else 60]
            raise W2VError(f"{path}: bad header {head!r}; expected 'vocab_size vector_size'") from None
        if v * (2 * d + 2) - 1 > len(data) - nl - 1:  # before allocating V·d floats: no entry
            # is shorter than a 1-byte word and d one-digit numbers, space-separated
            raise W2VError(f"{path}: its header promises {v:,} vectors of {d} but the file has "
                           f"only {len(data):,} bytes; the file is truncated or the header wrong")
        if binary is None:
            first = _looks_binary(data, nl + 1, d)
            formats = [first, not first]
        else:
            formats = [binary]
        errors = []
        for fmt in formats:
            try:
                words, rows = (_read_binary if fmt else _read_text)(data, nl + 1, v, d)
            except _Malformed as e:
                errors.append(f"as {'binary' if fmt else 'text'}: {e}")
                continue
            bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
            if bad.size:  # it would poison every cosine (a word would be its own neighbour)
                raise W2VError(f"{path}: the vector of {words[bad[0]]!r} (entry {bad[0] + 1}) "
                               f"holds NaN or inf ({bad.size} such); the file is corrupt or "
                               "comes from a diverged run")
            if len(set(words)) < len(words):  # as gensim: the first entry of a word is kept
                seen: dict[str, int] = {}
                for i, w in enumerate(words):
                    seen.setdefault(w, i)
                again = next(w for i, w in enumerate(words) if seen[w] != i)
                warnings.warn(f"{path}: {len(words) - len(seen)} repeated word(s), e.g. "
                              f"{again!r}; kept the first entry of each", stacklevel=2)
                first = sorted(seen.values())
                words, rows = [words[i] for i in first], rows[first]
            return cls(words, rows)
        raise W2VError(f"{path}: truncated or malformed ({'; '.join(errors)}); the file may be "
                       "incomplete or not match its header")


class _Malformed(ValueError):
    """Where a word2vec file stops parsing in one format."""


def _read_binary(data: bytes, pos: int, v: int, d: int) -> tuple[list[str], np.ndarray]:
    """V entries ``word<space><d little-endian f32>``, each optionally followed by a newline."""
    words, rows = [], np.empty((v, d), np.float32)
    for i in range(v):
        if data[pos:pos + 1] == b"\n":
            pos += 1
        sp = data.find(b" ", pos)
        word = data[pos:sp]
        # (a tab or \r inside a word is kept, as gensim keeps it; a line break is not)
        if sp < 0 or not word or b"\n" in word or sp + 1 + 4 * d > len(data):
            raise _Malformed(f"entry {i + 1} of {v} is not a word, a space and {d} floats")
        try:
            words.append(word.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Malformed(f"entry {i + 1} of {v}: its word is not UTF-8") from None
        rows[i] = np.frombuffer(data, "<f4", d, sp + 1)
        pos = sp + 1 + 4 * d
    if data[pos:].strip():
        raise _Malformed(f"{len(data) - pos} bytes follow the {v} entries of the header")
    return words, rows


def _read_text(data: bytes, pos: int, v: int, d: int) -> tuple[list[str], np.ndarray]:
    """V lines ``word v1 … vd`` (the last newline optional)."""
    words, rows = [], np.empty((v, d), np.float32)
    with warnings.catch_warnings():  # 1e39 → inf, reported once by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        pos = _read_text_rows(data, pos, v, d, words, rows)
    if data[pos:].strip():
        raise _Malformed(f"more lines follow the {v} entries of the header")
    return words, rows


def _read_text_rows(data: bytes, pos: int, v: int, d: int, words: list[str],
                    rows: np.ndarray) -> int:
    for i in range(v):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        try:
            parts = data[pos:end].decode("utf-8").rstrip().split(" ")
            if len(parts) != d + 1 or not parts[0]:  # else numpy would broadcast a short row
                raise ValueError
            rows[i] = np.asarray(parts[1:], dtype=np.float32)
        except (ValueError, UnicodeDecodeError):
            raise _Malformed(f"entry {i + 1} of {v} (line {i + 2}) is not a word and {d} "
                             "numbers") from None
        words.append(parts[0])
        pos = end + 1
    return pos


def _looks_binary(data: bytes, pos: int, d: int) -> bool:
    """True if the first entry parses as ``word<space><4d bytes>`` rather than text."""
    sp = data.find(b" ", pos)
    if sp < 0:
        return False
    text_line = data[sp + 1: data.find(b"\n", sp) if data.find(b"\n", sp) >= 0 else len(data)]
    try:
        return len(text_line.decode("ascii").split()) != d
    except UnicodeDecodeError:
        return True
