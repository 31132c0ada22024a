"""Vocabulary: word counts → ids by frequency, the noise distribution, keep-probabilities.

Ids are sorted by descending count (ties broken by first appearance in the corpus),
so id 0 is the most frequent word: the order word2vec C and gensim use, and the one
the blocked categorical sampler relies on.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from w2v_jax.errors import W2VError


@dataclasses.dataclass(frozen=True)
class Vocab:
    """The words kept for training, most frequent first.

    Attributes:
      words: the V words; ``words[i]`` has id i.
      counts: i64[V] corpus counts, descending.
    """

    words: tuple[str, ...]
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """Number of corpus tokens that are in the vocabulary."""
        return int(self.counts.sum())

    def index(self) -> dict[str, int]:
        """word → id."""
        return {w: i for i, w in enumerate(self.words)}

    def noise_distribution(self, ns_exponent: float = 0.75) -> np.ndarray:
        """P_n(w) ∝ count(w)**ns_exponent, as f64[V] summing to 1."""
        # In logs, relative to the largest count: count**x overflows float64 from x ≈ 90
        # on a corpus of ~3k-count words, and gave NaN probabilities.
        counts = self.counts.astype(np.float64)
        if ns_exponent == 0:  # 0**0 = 1: uniform, zero counts included
            return np.full(counts.size, 1.0 / counts.size)
        seen = counts > 0  # a zero count (the API allows one) is never drawn
        if not seen.any():
            raise W2VError("every word of the vocabulary has count 0; nothing to draw "
                           "negatives from")
        logs = np.full(counts.size, -np.inf)
        logs[seen] = ns_exponent * np.log(counts[seen])
        p = np.exp(logs - logs.max())
        return p / p.sum()

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """Sub-sampling keep-probability of each word, f64[V] in (0, 1].

        word2vec C's formula, p = (sqrt(f / t) + 1) · t / f with t = sample·N, f the
        word's count and N the number of in-vocabulary tokens, capped at 1;
        ``sample = 0`` keeps everything. A ``sample`` of 1 or more is a count, as in
        gensim: t = ⌊sample · (3 + √5) / 2⌋, the count whose keep-probability is 1.
        """
        if sample <= 0:
            return np.ones(len(self), dtype=np.float64)
        t = sample * self.total if sample < 1 else float(int(sample * (3 + np.sqrt(5)) / 2))
        f = self.counts.astype(np.float64)
        return np.minimum((np.sqrt(f / t) + 1.0) * t / f, 1.0)

    def save(self, path) -> None:
        """Writes ``word<TAB>count`` lines, most frequent first."""
        with open(path, "w", encoding="utf-8") as f:
            for w, c in zip(self.words, self.counts.tolist()):
                f.write(f"{w}\t{c}\n")

    @classmethod
    def load(cls, path) -> "Vocab":
        words, counts = [], []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 2 or not parts[1].isdigit():
                    raise W2VError(f"{path}:{n}: expected 'word<TAB>count', got {line.strip()!r}")
                words.append(parts[0])
                counts.append(int(parts[1]))
        return cls(tuple(words), np.asarray(counts, dtype=np.int64))


def build_vocab(types: list[str], counts: np.ndarray, min_count: int = 5,
                max_vocab_size: int | None = None) -> tuple[Vocab, np.ndarray]:
    """Keeps the words with ``count >= min_count`` (at most ``max_vocab_size``), by frequency.

    Args:
      types: the distinct words in order of first appearance.
      counts: i64[T] their counts.
    Returns:
      (vocab, remap) where remap: i32[T] maps a type's position to its vocabulary id,
      or -1 for dropped words.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(types) == 0 or counts.sum() == 0:
        raise W2VError("the corpus has no words; pass a non-empty text file with --corpus")
    # Stable sort on -count keeps first-appearance order among equal counts.
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_count]
    if max_vocab_size is not None:
        order = order[:max_vocab_size]
    if order.size == 0:
        raise W2VError(
            f"no word occurs at least min_count={min_count} times (the most frequent occurs "
            f"{int(counts.max())} times); lower --min-count or use a larger corpus"
        )
    remap = np.full(len(types), -1, dtype=np.int32)
    remap[order] = np.arange(order.size, dtype=np.int32)
    vocab = Vocab(tuple(types[i] for i in order.tolist()), counts[order])
    return vocab, remap
