"""Intrinsic evaluation of word vectors: analogies (3CosAdd / 3CosMul) and word similarity.

The analogy protocol follows word2vec's ``compute-accuracy`` and gensim's
``KeyedVectors.evaluate_word_analogies``: only the first ``restrict_vocab`` rows
(the most frequent words, since rows are frequency-sorted) are searched, the three
query words are never an answer, a question with any word outside those rows is
skipped (and counted as OOV here, so that a small vocabulary cannot look accurate
by silently answering only the easy questions), and accuracy is over the answered
questions. Words are matched case-insensitively, the most frequent casing standing
for a word, as gensim does by default.

All functions are pure: they read the vectors and return plain dicts.
"""

from __future__ import annotations

import importlib.resources
import math
import os
from functools import partial
from pathlib import Path
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax.errors import W2VError
from w2v_jax.vectors import ONE_SHOT_COMPILE, KeyedVectors

Question = tuple[str, str, str, str]
Sections = list[tuple[str, list[Question]]]
PathLike = Union[str, os.PathLike]

METHODS = ("3cosadd", "3cosmul")

# Levy & Goldberg (2014) use 1e-3; gensim's most_similar_cosmul uses 1e-6. Only
# matters when cos'(x, a) is ~0, i.e. x nearly opposite to a, which rarely wins anyway.
COSMUL_EPS = 1e-3

_BUNDLED = {"questions-words.txt", "wordsim353.txt"}


def bundled_eval_path(name: str) -> Path:
    """Path of an evaluation file shipped in the package.

    Args:
      name: ``"questions-words.txt"`` (Google analogies) or ``"wordsim353.txt"``
        (WordSim-353); the ``.txt`` may be left off.
    """
    if not name.endswith(".txt"):
        name += ".txt"
    if name not in _BUNDLED:
        raise W2VError(f"no bundled evaluation set {name!r}; choose one of {sorted(_BUNDLED)}")
    path = Path(str(importlib.resources.files("w2v_jax") / "data" / "eval" / name))
    if not path.is_file():
        raise W2VError(f"bundled evaluation set {path} is missing; reinstall w2v-jax")
    return path


def _read_lines(path: PathLike, what: str) -> list[str]:
    if not str(path):  # Path("") would read as the current directory
        raise W2VError(f"the {what} file's path is empty; pass a file name")
    path = Path(path)
    try:
        # utf-8-sig: tolerate a BOM from files saved by spreadsheet tools.
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise W2VError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise W2VError(f"{what} file {path} is a directory, not a file") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        article = "an" if what[0] in "aeiou" else "a"
        raise W2VError(f"{path}:{line}: not UTF-8 text; is this {article} {what} file?") from None
    except OSError as e:
        raise W2VError(f"cannot read {what} file {path}: {e.strerror or e}") from None


# ------------------------------------------------------------------------ analogies


def load_analogies(path: PathLike) -> Sections:
    """Parses the Google analogy format.

    ``: section-name`` lines start a section; lines starting with ``#`` are comments;
    every other non-blank line is a question ``a b c d`` (a is to b as c is to d).
    Words are lower-cased.

    Returns:
      ``[(section_name, [(a, b, c, d), ...]), ...]`` in file order.
    """
    sections: Sections = []
    for lineno, line in enumerate(_read_lines(path, "analogy"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            name = line[1:].strip()
            if not name:
                raise W2VError(f"{path}:{lineno}: section line ':' has no name")
            sections.append((name, []))
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise W2VError(f"{path}:{lineno}: expected 4 words 'a b c d', "
                           f"got {len(words)}: {line[:60]!r}")
        if not sections:
            raise W2VError(f"{path}:{lineno}: question before any ': section' line")
        sections[-1][1].append(tuple(words))
    if not any(qs for _, qs in sections):
        raise W2VError(f"{path}: no analogy questions found; "
                       "expected ': section' lines then 'a b c d' lines")
    return sections


def _fold(word: str) -> str:
    """The case-insensitive key of a word: upper-cased, as gensim's evaluations fold
    (``"straße"`` and ``"STRASSE"`` are one word; lower-casing keeps them apart)."""
    return word.upper()


def _canonical_rows(words: Sequence[str]) -> tuple[dict[str, int], np.ndarray]:
    """Case-insensitive lookup: folded word (:func:`_fold`) -> its first (most frequent) row.

    Returns the dict and i32[len(words)], each row's canonical row, so that a
    different casing of a query word is excluded from the answers too.
    """
    lookup: dict[str, int] = {}
    canon = np.empty(len(words), np.int32)
    for i, w in enumerate(words):
        canon[i] = lookup.setdefault(_fold(w), i)
    return lookup, canon


@partial(jax.jit, static_argnames=("method", "eps"), compiler_options=ONE_SHOT_COMPILE)
def _answer_batch(unit: jax.Array, canon: jax.Array, abc: jax.Array, method: str,
                  eps: float) -> jax.Array:
    """Best answer row for each question of a batch.

    Args:
      unit: f32[R, d] unit vectors of the searchable rows.
      canon: i32[R] canonical row of each row.
      abc: i32[B, 3] canonical rows of the query words a, b, c.
      method: "3cosadd" or "3cosmul".
      eps: 3CosMul's denominator guard (static, so changing COSMUL_EPS retraces).

    Returns:
      i32[B] canonical row of the answer with the highest score.
    """
    # "highest": on GPUs the default f32 matmul is TF32, whose rounding can flip
    # near-ties and make results disagree with CPU / gensim.
    dot = partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)
    qa, qb, qc = unit[abc[:, 0]], unit[abc[:, 1]], unit[abc[:, 2]]  # f32[B, d]
    if method == "3cosadd":
        # Normalising the query would not change the argmax over unit rows.
        scores = dot(qb - qa + qc, unit.T)  # f32[B, R]
    else:
        cos = dot(jnp.concatenate([qa, qb, qc]), unit.T).reshape(3, abc.shape[0], -1)
        cos = (cos + 1.0) / 2.0  # to [0, 1] so the product/ratio is monotone
        scores = cos[1] * cos[2] / (cos[0] + eps)
    query = ((canon[None, :] == abc[:, 0:1]) | (canon[None, :] == abc[:, 1:2])
             | (canon[None, :] == abc[:, 2:3]))
    scores = jnp.where(query, -jnp.inf, scores)
    return canon[jnp.argmax(scores, axis=1)]


def _ratio(correct: int, answered: int) -> float | None:
    return correct / answered if answered else None


def evaluate_analogies(kv: KeyedVectors, sections_or_path: Sections | PathLike,
                       restrict_vocab: int | None = 30000, method: str = "3cosadd",
                       batch: int = 512) -> dict:
    """Analogy accuracy: for a:b :: c:?, is the best-scoring word d?

    Args:
      kv: vectors whose rows are sorted by decreasing frequency.
      sections_or_path: the output of :func:`load_analogies`, or a path to parse.
      restrict_vocab: search (and require the four words to be in) only the first
        this many rows; ``None`` means all rows.
      method: ``"3cosadd"``: argmax_x cos(x, b − a + c) on unit vectors;
        ``"3cosmul"`` (Levy & Goldberg 2014): argmax_x cos'(x,b)·cos'(x,c) /
        (cos'(x,a) + 1e-3), cos' = (cos + 1)/2.
      batch: questions scored per device call (a [batch, restrict_vocab] score matrix).

    Returns:
      ``{"method", "restrict_vocab", "accuracy", "accuracy_all", "correct",
      "answered", "oov", "total", "semantic": {...}, "syntactic": {...},
      "sections": {name: {"accuracy", "correct", "answered", "oov"}}}``.
      ``accuracy`` = correct / answered (gensim's figure), ``accuracy_all`` =
      correct / total (OOV questions count as wrong); an accuracy is ``None`` when
      its denominator is 0. Semantic sections are those whose name does not start
      with "gram".
    """
    if method not in METHODS:
        raise W2VError(f"unknown analogy method {method!r}; choose one of {list(METHODS)}")
    if batch < 1:
        raise W2VError(f"batch must be >= 1, got {batch}")
    if restrict_vocab is None:
        restrict_vocab = len(kv)
    if restrict_vocab < 1:
        raise W2VError(f"restrict_vocab must be >= 1, got {restrict_vocab}")
    if len(kv) == 0:
        raise W2VError("cannot evaluate analogies on empty vectors")
    restrict_vocab = min(restrict_vocab, len(kv))
    sections = (load_analogies(sections_or_path)
                if isinstance(sections_or_path, (str, os.PathLike)) else sections_or_path)

    lookup, canon = _canonical_rows(kv.index_to_key[:restrict_vocab])
    rows, owner, oov = [], [], {}  # rows: i32[4] per answerable question; owner: its section
    for name, questions in sections:
        stats = oov.setdefault(name, [0, 0])  # [oov, total]; dict merges repeated names
        for q in questions:
            stats[1] += 1
            ids = [lookup.get(_fold(w)) for w in q]
            if None in ids:
                stats[0] += 1
            else:
                rows.append(ids)
                owner.append(name)

    hits = np.zeros(len(rows), bool)
    if rows:
        ids = np.asarray(rows, np.int32)
        unit = kv.unit_vectors()[:restrict_vocab]
        canon_d = jnp.asarray(canon)
        batch = min(batch, len(ids))
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch, :3]
            n = len(chunk)
            # Pad the last chunk to a full batch so only one shape is ever compiled.
            if n < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - n, 3), np.int32)])
            pred = _answer_batch(unit, canon_d, jnp.asarray(chunk), method, COSMUL_EPS)
            pred = np.asarray(pred)[:n]
            hits[start:start + n] = pred == ids[start:start + n, 3]

    per = {name: {"correct": 0, "answered": 0, "oov": o} for name, (o, _) in oov.items()}
    for name, hit in zip(owner, hits):
        per[name]["answered"] += 1
        per[name]["correct"] += int(hit)

    def total(names):
        c = sum(per[n]["correct"] for n in names)
        a = sum(per[n]["answered"] for n in names)
        o = sum(per[n]["oov"] for n in names)
        return {"accuracy": _ratio(c, a), "correct": c, "answered": a, "oov": o}

    semantic = [n for n in per if not n.startswith("gram")]
    syntactic = [n for n in per if n.startswith("gram")]
    overall = total(per)
    n_total = overall["answered"] + overall["oov"]
    return {
        "method": method,
        "restrict_vocab": restrict_vocab,
        "accuracy": overall["accuracy"],
        "accuracy_all": _ratio(overall["correct"], n_total),
        "correct": overall["correct"],
        "answered": overall["answered"],
        "oov": overall["oov"],
        "total": n_total,
        "semantic": total(semantic),
        "syntactic": total(syntactic),
        "sections": {n: {"accuracy": _ratio(s["correct"], s["answered"]), **s}
                     for n, s in per.items()},
    }


# ----------------------------------------------------------------------- similarity


def load_similarity(path: PathLike) -> list[tuple[str, str, float]]:
    """Parses a word-similarity file: ``word1 word2 score`` per line.

    Fields are separated by tabs or spaces; blank lines and lines starting with
    ``#`` are skipped, and so is a first line whose score field has no digit and is
    not a number (a header such as ``Word 1<TAB>Word 2<TAB>Human (mean)``); any other
    line whose score is not a finite number (``7.3O``, ``nan``) is an error, the first
    one included. Words are lower-cased.

    Returns:
      ``[(word1, word2, score), ...]`` in file order.
    """
    pairs = []
    first = True
    for lineno, line in enumerate(_read_lines(path, "similarity"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        numeric = len(fields) >= 3 and _is_number(fields[2])
        if first and len(fields) >= 3 and not numeric and not _looks_numeric(fields[2]):
            first = False  # a header such as "Word 1<TAB>Word 2<TAB>Human (mean)"
            continue
        if len(fields) != 3 or not numeric:
            raise W2VError(f"{path}:{lineno}: expected 'word1 word2 score', got {line[:60]!r}")
        first = False
        pairs.append((fields[0].lower(), fields[1].lower(), float(fields[2])))
    if not pairs:
        raise W2VError(f"{path}: no word pairs found; expected lines 'word1 word2 score'")
    return pairs


_MISSING = {"n/a", "na", "none", "null", "?", "-"}


def _looks_numeric(s: str) -> bool:
    """Whether a score field was meant as a number: a digit, what float() reads (``nan``,
    ``inf``) or a missing-value mark (``N/A``), so that a bad first score is an error, not
    a header."""
    if s.lower() in _MISSING:
        return True
    try:
        float(s)
        return True
    except ValueError:
        return any(ch.isdigit() for ch in s)


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _rankdata(x: np.ndarray) -> np.ndarray:
    """f64[n] 1-based ranks, ties given their average rank (scipy's default)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]  # first element of each run of equal values
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom > 0 else None


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # scipy is only a dev dependency
        return _pearson(_rankdata(x), _rankdata(y))
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined; scipy would warn and give nan
        return None
    return float(spearmanr(x, y)[0])


def evaluate_similarity(kv: KeyedVectors,
                        pairs_or_path: Sequence[tuple[str, str, float]] | PathLike) -> dict:
    """Correlation of human similarity scores with cosine similarity.

    Args:
      kv: the vectors; words are matched case-insensitively.
      pairs_or_path: the output of :func:`load_similarity`, or a path to parse.

    Returns:
      ``{"spearman", "pearson", "pairs", "covered", "oov"}``: the correlations over
      the ``covered`` pairs whose two words are both in ``kv`` (``None`` if fewer
      than 2 or either side is constant); ``oov`` = pairs − covered.
    """
    pairs = (load_similarity(pairs_or_path)
             if isinstance(pairs_or_path, (str, os.PathLike)) else list(pairs_or_path))
    lookup, _ = _canonical_rows(kv.index_to_key)
    idx, human = [], []
    for w1, w2, score in pairs:
        i, j = lookup.get(_fold(w1)), lookup.get(_fold(w2))
        if i is not None and j is not None:
            idx.append((i, j))
            human.append(score)
    spearman = pearson = None
    if len(idx) >= 2:
        ij = np.asarray(idx)
        # A few hundred rows: gather on host rather than pull all unit vectors off device.
        v = kv.vectors.astype(np.float64)
        v1, v2 = v[ij[:, 0]], v[ij[:, 1]]
        norms = np.maximum(np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1), 1e-24)
        cos = np.einsum("nd,nd->n", v1, v2) / norms
        human_a = np.asarray(human, np.float64)
        spearman, pearson = _spearman(human_a, cos), _pearson(human_a, cos)
    return {"spearman": spearman, "pearson": pearson, "pairs": len(pairs),
            "covered": len(idx), "oov": len(pairs) - len(idx)}


def standard_scores(kv: KeyedVectors) -> dict:
    """The scores runs, experiments and the benchmark report: Google analogies (3CosAdd,
    restrict_vocab 30000) and WordSim-353 Spearman, both on the bundled sets.

    Returns ``{"analogy", "analogy_answered", "analogy_semantic", "analogy_syntactic",
    "wordsim", "wordsim_covered"}`` (accuracies and correlation may be None when nothing
    was answered or covered).
    """
    a = evaluate_analogies(kv, bundled_eval_path("questions-words.txt"), 30000)
    s = evaluate_similarity(kv, bundled_eval_path("wordsim353.txt"))
    return {"analogy": a["accuracy"], "analogy_answered": a["answered"],
            "analogy_semantic": a["semantic"]["accuracy"],
            "analogy_syntactic": a["syntactic"]["accuracy"],
            "wordsim": s["spearman"], "wordsim_covered": s["covered"]}
