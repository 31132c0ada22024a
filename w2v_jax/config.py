"""Hyper-parameters: one frozen dataclass, validated with clear messages.

Field names follow gensim's ``Word2Vec`` so that users can carry their settings over
(``vector_size``, ``window``, ``min_count``, ``sg``, ``negative``, ``ns_exponent``,
``sample``, ``alpha``, ``min_alpha``, ``epochs``, ``seed``). The rest control the
JAX trainer (batching, the negative sampler, how many steps one dispatch runs).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Iterable

from w2v_jax.errors import W2VError

SAMPLERS = ("alias", "cdf", "categorical")
OBJECTIVES = ("ns", "softmax", "hs")
# The objectives that draw negatives from the noise distribution: the settings of
# ``_NS_ONLY`` act on them only, they get the sampler's table as their ``aux``
# (``train.objective_aux``) and each step's draws as ``ex["negs"]``
# (``train.draw_negatives``), and CBOW's default row-term cap is theirs.
NEGATIVE_SAMPLING = ("ns",)
TABLE_MODES = ("replicated", "sharded")
CBOW_UPDATES = ("word2vec", "exact")
SG_NEGATIVES = ("centre", "pair")
# The step is written with one slice per offset (2·window of them, unrolled for speed), so
# its compile time grows with the window: SG took ~11 s at window 40 and ~55 s at 160 on
# the 2-core dev machine (2026-11-27); at 100,000 it ran for many minutes without starting.
F32_MAX = 3.4028234663852886e38  # the largest float32

MAX_WINDOW = 256


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run (together with the corpus).

    Attributes:
      vector_size: embedding dimension d.
      window: maximum distance between centre and context; the effective window of
        each centre is drawn uniformly from 1..window (word2vec's dynamic window).
      min_count: words rarer than this are dropped from the vocabulary.
      max_vocab_size: keep at most this many of the most frequent words (None: all).
      sg: 1 for skip-gram, 0 for CBOW.
      negative: K, negatives per positive pair.
      ns_exponent: noise distribution P_n(w) ∝ count(w)**ns_exponent.
      sample: sub-sampling threshold, a fraction of the corpus's words (0 disables
        sub-sampling; 1 or more: a word count, as gensim reads it).
      alpha: initial learning rate; None picks 0.025 for SG and 0.05 for CBOW.
      min_alpha: final learning rate, reached linearly at the last training word.
      epochs: passes over the corpus.
      seed: the one seed every random draw of the run derives from.
      init_scale: W_in starts uniform in ±init_scale / vector_size (W_out at 0).
        word2vec C uses 0.5, gensim 1.0. Both start near the saddle at the origin
        (each table's gradient is proportional to the other), where a 5-epoch run on a
        few million words spends much of its first epoch; a wider start escapes it and
        measured better on the bench corpus (see the README's *Initialisation*).
      batch_size: C, consecutive centres per SGD step (SG: all their pairs, about
        C·(window+1); CBOW: C windows). Gradients within a step are summed. None: 64
        for SG, 512 for CBOW. SG lost most of its accuracy at 512, and 64 measured about
        0.45 analogy points above 128 (3 seeds) for ~30% more time per centre (read in
        order; read in lanes, 32 scored as 64 over 5 seeds, for ~25% more time); CBOW
        at 512 needs the row-term cap, which is on for it by default, and ran ~20%
        faster per window than at 256 with the same accuracy (1024 lost 2 points).
        CBOW with the full softmax: 128, since each step moves every W_out row by all
        its windows (at 512 it diverged in the first epoch of the embedded corpus).
      shared_negatives: S, centres of a step that share one draw of negatives
        (HogBatch); they lie C/S centres apart, so their windows do not overlap. CBOW
        draws K per group of S windows; SG M per group of S centres (``sg_negatives``
        "centre") or K per context offset and group ("pair": a pair shares its negatives
        only with the pairs at the same offset of S − 1 other centres). 1 = fresh
        negatives for every centre/window. None: 8 for SG, 4 for CBOW.
      sg_negatives: how skip-gram draws its negatives. word2vec draws K for every pair,
        n·K for a centre with n pairs, and each term involves only the centre's vector.
        "centre": M = K·(window + 1) draws per centre (word2vec's expected n·K), each
        term weighted n·K/M: the same expected gradient, and no work for the pairs a
        centre's dynamic window leaves out (40% of the 2·window slots at window 5);
        5 epochs on the bench corpus ran 1.6× faster for ~0.5 analogy points and the
        same WordSim (README, *Skip-gram negatives*). "pair": K fresh draws per pair,
        one draw per context offset, word2vec's scheme to the letter.
      sampler: how negatives are drawn: "alias" (O(1) alias table), "cdf"
        (inverse CDF by binary search) or "categorical" (``jax.random.categorical``
        down a tree of 16-way draws, O(16·log₁₆ V)). All are exact.
      steps_per_call: SGD steps one jitted dispatch runs (``lax.scan``).
      lanes: L, places each epoch is read from side by side: the corpus is cut into L
        equal parts and the trainer takes 8192 tokens of each in turn (word2vec's and
        gensim's ``corpus_file`` threads each read their own part of the file, side by
        side, in the same way). 1 reads the corpus in order, as do corpora under two
        pieces (fewer lanes where there are fewer than L pieces). On the bench corpus, 5
        epochs of SG at L = 8 scored 23.2% analogy against 22.2% in order (mean of 5
        seeds each, better on 4 of them); CBOW about the same or better (README,
        *Reading order*).
      objective: "ns" (negative sampling, O(K+1) output rows per pair), "softmax"
        (the vanilla full softmax, O(V) per pair) or "hs" (hierarchical softmax over a
        Huffman tree, O(log V)); ``negative``, ``ns_exponent``, ``shared_negatives`` and
        ``sampler`` apply to "ns" only.
      cbow_update: "word2vec" adds the full gradient of the mean context vector to
        every context row (word2vec C and gensim); "exact" adds 1/count of it
        (the true gradient of the loss).
      max_row_terms: A step sums the gradients of all its pairs from the old rows, so a
        row that many of them touch (the most frequent noise words: ~10 draws a step,
        each for up to S pairs or windows; the inner nodes near the Huffman root: every
        pair of the step) moves as if by that many SGD updates without seeing any of
        them. Its summed update is scaled by min(1, max_row_terms / its number of
        terms) (CBOW "ns": W_out rows; SG "ns": W_out and centre rows; "hs": node rows,
        and SG's context rows). None: 20 for "hs", none for SG with "ns", and for CBOW
        with "ns" 10, or more for a small vocabulary (see ``row_term_cap``).
      devices: D, devices trained on data-parallel (``w2v_jax.parallel``); each step
        then takes D·C centres, C per device. With several processes, D must be the
        number of devices of all of them.
      tables: how the two V×d tables lie on the devices: "replicated" (whole on each)
        or "sharded" along the vocabulary (V/D rows each, for tables too large for one
        device). Both give the same vectors.
    """

    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    max_vocab_size: int | None = None
    sg: int = 1
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    alpha: float | None = None
    min_alpha: float = 1e-4
    epochs: int = 5
    seed: int = 1
    init_scale: float = 8.0
    batch_size: int | None = None
    shared_negatives: int | None = None
    sg_negatives: str = "centre"
    sampler: str = "alias"
    steps_per_call: int = 256
    lanes: int = 8
    cbow_update: str = "word2vec"
    objective: str = "ns"
    max_row_terms: float | None = None
    devices: int = 1
    tables: str = "replicated"

    def __post_init__(self):
        for f in dataclasses.fields(self):  # NumPy scalars (from grids) as plain numbers
            v = getattr(self, f.name)
            if f.name == "sg" and isinstance(v, bool):  # gensim users write sg=True
                object.__setattr__(self, f.name, int(v))
            elif isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)):
                object.__setattr__(self, f.name, int(v))
            elif isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)):
                object.__setattr__(self, f.name, float(v))
        _validate(self)

    @property
    def learning_rate(self) -> float:
        """The initial learning rate actually used (``alpha`` or its SG/CBOW default)."""
        if self.alpha is not None:
            return float(self.alpha)
        return 0.025 if self.sg else 0.05

    @property
    def draws_negatives(self) -> bool:
        """Whether the objective draws negatives (one of ``NEGATIVE_SAMPLING``)."""
        return self.objective in NEGATIVE_SAMPLING

    @property
    def centres_per_step(self) -> int:
        """The C actually used (``batch_size`` or its SG/CBOW default)."""
        if self.batch_size is not None:
            return int(self.batch_size)
        if self.sg:
            return 64
        return 128 if self.objective == "softmax" else 512

    @property
    def negatives_shared_by(self) -> int:
        """The S actually used (``shared_negatives`` or its SG/CBOW default)."""
        if self.shared_negatives is not None:
            return int(self.shared_negatives)
        return 8 if self.sg else 4

    @property
    def negatives_per_centre(self) -> int:
        """M, skip-gram's negative draws per centre with ``sg_negatives="centre"``."""
        return self.negative * (self.window + 1)

    def row_term_cap(self, vocab_size: int) -> float | None:
        """The cap a step uses: ``max_row_terms``, else 20 for "hs" (whose SG form
        diverged without one: every pair of a step updates the root's row) and, for CBOW
        with "ns", max(10, 4·C·(K+1)/V): at C = 512 without a cap, 5 epochs on the bench
        corpus reached 15.8% analogy instead of 23.5% (its most frequent noise words are
        drawn ~20 times a step, each for S windows). The floor 4·C·(K+1)/V, four times a
        row's even share of the step, leaves the cap to the few rows far above it: when
        it bit on nearly every row of a 40-word corpus, CBOW's vectors collapsed onto
        one direction."""
        if self.max_row_terms is not None:
            return float(self.max_row_terms)
        if self.objective == "hs":
            return 20.0
        if self.draws_negatives and not self.sg:
            even_share = self.centres_per_step * (self.negative + 1) / max(vocab_size, 1)
            return max(10.0, 4.0 * even_share)
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """Builds a Config from plain data, naming any unknown field."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise W2VError(
                f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}"
            )
        return cls(**d)


# Measured on an H200 and an H100 (benchmarks/accelerator.py, bench corpus, 5 epochs,
# 2026-11-26). SG at C = 1024 with cap 20 against C = 64: 8.1× (H200) to 10.8× (H100),
# from 0.25 points lower to 0.3 higher. CBOW at C = 4096 against 512: 1.5× (H200, in
# corpus order, −0.2) to 2.1–2.5× (H100, 8 lanes, −0.9). A GPU step is bound by kernel
# launches at the CPU's C, so a larger C with the row-term cap trains much faster for
# little accuracy. The defaults stay the same on every backend (one config, one
# computation); the CLI suggests these where they pay.
GPU_SETTINGS = {1: ("--batch-size 1024 --max-row-terms 20",
                    "8–11× faster, its analogy accuracy within 0.3 points"),
                0: ("--batch-size 4096", "1.5–2.5× faster for 0.2–0.9 analogy points")}


def accelerator_hint(config: Config, platform: str) -> str | None:
    """A one-line suggestion of GPU batch settings, or None where it does not apply
    (not a GPU, not negative sampling, or ``batch_size`` chosen by the user)."""
    if platform != "gpu" or not config.draws_negatives or config.batch_size is not None:
        return None
    flags, effect = GPU_SETTINGS[config.sg]
    mode = "skip-gram" if config.sg else "CBOW"
    return f"note: on a GPU, {flags} trains {mode} {effect} (README: GPU and TPU)"


def _type_ok(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _validate(c: Config) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise W2VError(msg)

    ints = ("vector_size", "window", "min_count", "sg", "negative", "epochs", "seed",
            "steps_per_call", "devices", "lanes")
    floats = ("ns_exponent", "sample", "min_alpha", "init_scale")
    for name in ints:
        v = getattr(c, name)
        need(_type_ok(v, int), f"{name} must be an integer, got {v!r}")
    for name in floats:
        v = getattr(c, name)
        need(_type_ok(v, float), f"{name} must be a number, got {v!r}")
    for name in ("alpha", "max_vocab_size", "batch_size", "shared_negatives", "max_row_terms"):
        v = getattr(c, name)
        kind = float if name in ("alpha", "max_row_terms") else int
        need(v is None or _type_ok(v, kind), f"{name} must be a number or None, got {v!r}")

    for name in floats + ("alpha", "max_row_terms"):
        v = getattr(c, name)
        need(v is None or math.isfinite(v), f"{name} must be a finite number, got {v!r}")
    need(0 <= c.seed < 2**63, f"seed must be in 0 .. 2**63 - 1, got {c.seed}")
    for name in ("vector_size", "window", "epochs", "steps_per_call", "devices", "lanes"):
        need(getattr(c, name) > 0, f"{name} must be a positive integer, got {getattr(c, name)}")
    # hs and softmax draw no negatives: gensim's hs=1, negative=0 carries over.
    need(c.negative > 0 or (not c.draws_negatives and c.negative == 0),
         f"negative must be a positive integer, got {c.negative}"
         + (" (0 only with an objective that draws none: "
            + ", ".join(repr(o) for o in OBJECTIVES if o not in NEGATIVE_SAMPLING) + ")"
            if c.draws_negatives else ""))
    need(c.window <= MAX_WINDOW,
         f"window must be at most {MAX_WINDOW} (the step is compiled with one slice per "
         f"offset), got {c.window}")
    need(c.init_scale > 0, f"init_scale must be > 0, got {c.init_scale}")
    need(c.min_count >= 1, f"min_count must be >= 1, got {c.min_count}")
    need(c.max_vocab_size is None or c.max_vocab_size > 0,
         f"max_vocab_size must be positive or None, got {c.max_vocab_size}")
    need(c.sg in (0, 1), f"sg must be 1 (skip-gram) or 0 (CBOW), got {c.sg}")
    need(c.sample >= 0, f"sample must be >= 0 (0 disables sub-sampling), got {c.sample}")
    need(c.alpha is None or c.alpha > 0, f"alpha must be > 0, got {c.alpha}")
    need(c.learning_rate <= F32_MAX,
         f"alpha must be at most {F32_MAX:.3g} (the tables are float32), got {c.alpha}")
    need(c.min_alpha >= 0, f"min_alpha must be >= 0, got {c.min_alpha}")
    need(c.min_alpha <= c.learning_rate,
         f"min_alpha ({c.min_alpha}) must not exceed alpha ({c.learning_rate})")
    need(c.max_row_terms is None or c.max_row_terms > 0,
         f"max_row_terms must be > 0 or None, got {c.max_row_terms}")
    need(c.batch_size is None or c.batch_size > 0,
         f"batch_size must be a positive integer or None, got {c.batch_size}")
    need(c.shared_negatives is None or c.shared_negatives > 0,
         f"shared_negatives must be a positive integer or None, got {c.shared_negatives}")
    need(not c.draws_negatives or c.centres_per_step % c.negatives_shared_by == 0,
         f"batch_size ({c.centres_per_step}) must be a multiple of shared_negatives ({c.negatives_shared_by})")
    need(c.max_row_terms is None or c.objective != "softmax",
         "max_row_terms does not apply to objective 'softmax' (its step moves every W_out "
         "row by one dense update); drop it, or lower alpha or batch_size to steady it")
    need(c.sampler in SAMPLERS, f"sampler must be one of {', '.join(SAMPLERS)}, got {c.sampler!r}")
    need(c.objective in OBJECTIVES,
         f"objective must be one of {', '.join(OBJECTIVES)}, got {c.objective!r}")
    need(c.tables in TABLE_MODES,
         f"tables must be one of {', '.join(TABLE_MODES)}, got {c.tables!r}")
    need(not (c.tables == "sharded" and c.objective == "softmax"),
         "the full softmax updates the whole of W_out every step; use tables='replicated' "
         "(--tables replicated) with objective 'softmax'")
    need(c.sg_negatives in SG_NEGATIVES,
         f"sg_negatives must be one of {', '.join(SG_NEGATIVES)}, got {c.sg_negatives!r}")
    need(c.cbow_update in CBOW_UPDATES,
         f"cbow_update must be one of {', '.join(CBOW_UPDATES)}, got {c.cbow_update!r}")
    # A setting that cannot act is refused rather than ignored; its default passes, so a
    # grid over objectives or modes may keep the others at theirs.
    inactive = _inactive(c.to_dict())
    if inactive:
        name, why = next(iter(inactive.items()))
        raise W2VError(f"{name}={getattr(c, name)!r} {why}")


_NS_ONLY = ("negative", "ns_exponent", "shared_negatives", "sampler", "sg_negatives")


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(Config)}


def inert(fields: dict[str, Any]) -> set[str]:
    """The fields that cannot act on the run that ``fields`` (a partial config) defines,
    whatever their values: the negative-sampling settings without negative sampling,
    ``sg_negatives`` for CBOW, ``cbow_update`` for skip-gram."""
    whole = _defaults() | fields
    found = set() if whole["objective"] in NEGATIVE_SAMPLING else set(_NS_ONLY)
    found.add("sg_negatives" if not whole["sg"] else "cbow_update")
    return found


def _inactive(fields: dict[str, Any]) -> dict[str, str]:
    """The settings of a whole config that cannot act on its run and are not at their
    default (nor gensim's ``negative=0`` without negative sampling), each with why and
    what to do."""
    defaults = _defaults()
    found = {}
    for name in sorted(inert(fields)):
        if fields[name] == defaults[name] or (name == "negative" and fields[name] == 0):
            continue
        if name in _NS_ONLY and fields["objective"] not in NEGATIVE_SAMPLING:
            found[name] = (f"applies to negative sampling only, and objective "
                           f"{fields['objective']!r} trains no negatives (unlike gensim's "
                           "hs=1 with negative > 0, which trains both); drop it or set "
                           "objective='ns'")
        elif name == "sg_negatives":
            found[name] = "applies to skip-gram only; drop it or set sg=1"
        else:
            found[name] = "applies to CBOW only; drop it or set sg=0"
    return found


def without_inactive(fields: dict[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """``fields`` with the settings that cannot act on its run (:func:`inert`; except
    those named in ``keep``) set back to their defaults: for settings shared by runs of
    several objectives or modes (an experiment's [base], ``--set``, a sweep), and for a
    checkpoint from before such settings were refused (they never acted)."""
    defaults = _defaults()
    drop = inert(fields) - set(keep)
    return {k: (defaults[k] if k in drop else v) for k, v in fields.items()}
