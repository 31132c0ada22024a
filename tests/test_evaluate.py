"""Tests for w2v_jax.evaluate: analogies (3CosAdd/3CosMul), similarity, loaders."""

import sys

import numpy as np
import pytest

from w2v_jax import evaluate as ev
from w2v_jax.errors import W2VError
from w2v_jax.evaluate import (bundled_eval_path, evaluate_analogies, evaluate_similarity,
                              load_analogies, load_similarity)
from w2v_jax.vectors import KeyedVectors

METHODS = ["3cosadd", "3cosmul"]


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x)


def write(tmp_path, text, name="f.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def planted_kv(seed=0, v=60, d=32, n_questions=12):
    """Random vectors where, for each question, row d is exactly unit(b) − unit(a) + unit(c)."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((v, d))
    words = [f"w{i}" for i in range(v)]
    questions = []
    rows = rng.permutation(v)[: 4 * n_questions].reshape(n_questions, 4)
    for a, b, c, dd in rows:
        vecs[dd] = unit(vecs[b]) - unit(vecs[a]) + unit(vecs[c])
        questions.append(tuple(words[i] for i in (a, b, c, dd)))
    return KeyedVectors(words, vecs), questions


# --------------------------------------------------------------------- analogies


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch", [512, 5])  # 5: several device calls and a padded last one
def test_planted_answers_are_found(method, batch):
    kv, qs = planted_kv()
    r = evaluate_analogies(kv, [("capital-x", qs)], restrict_vocab=len(kv), method=method,
                           batch=batch)
    assert r["method"] == method
    assert (r["correct"], r["answered"], r["oov"], r["total"]) == (12, 12, 0, 12)
    assert r["accuracy"] == 1.0 and r["accuracy_all"] == 1.0


def excluded_kv():
    # b and c are nearly the same vector, so the best match of b − a + c is b or c
    # themselves; the intended answer d is only found once a, b, c are excluded.
    e = np.eye(4)
    vecs = {"a": e[0], "b": e[1], "c": e[1] + 0.1 * e[2], "d": e[1] + e[3],
            "f1": e[3], "f2": e[2] + e[3], "f3": e[0] + e[3]}
    return KeyedVectors(list(vecs), np.stack(list(vecs.values())))


@pytest.mark.parametrize("method", METHODS)
def test_query_words_are_excluded(method):
    kv = excluded_kv()
    u = np.asarray(kv.unit_vectors(), np.float64)
    a, b, c = u[0], u[1], u[2]
    if method == "3cosadd":
        raw = u @ (b - a + c)
    else:
        cos = (u @ np.stack([a, b, c]).T + 1) / 2
        raw = cos[:, 1] * cos[:, 2] / (cos[:, 0] + ev.COSMUL_EPS)
    assert kv.index_to_key[int(np.argmax(raw))] in {"b", "c"}  # the planting works
    r = evaluate_analogies(kv, [("s", [("a", "b", "c", "d")])], method=method)
    assert (r["correct"], r["answered"]) == (1, 1)


@pytest.mark.parametrize("method", METHODS)
def test_other_casing_of_query_word_is_excluded_and_words_match_case_insensitively(method):
    kv = excluded_kv()
    # "B" (a rarer casing of b) has b's vector: it must not be the answer either.
    words = ["A", "b", "C", "D", "f1", "f2", "f3", "B"]
    kv = KeyedVectors(words, np.concatenate([kv.vectors, kv.vectors[1:2]]))
    r = evaluate_analogies(kv, [("s", [("a", "b", "c", "d")])], method=method)
    assert (r["correct"], r["answered"], r["oov"]) == (1, 1, 0)


def test_oov_questions_are_counted_not_dropped():
    kv, qs = planted_kv()
    sections = [("family", qs[:4] + [("w0", "w1", "zzz", "w2"), ("nope", "w1", "w2", "w3")]),
                ("gram1-x", qs[4:6] + [("w0", "w1", "w2", "missing")])]
    r = evaluate_analogies(kv, sections, restrict_vocab=len(kv))
    assert (r["correct"], r["answered"], r["oov"], r["total"]) == (6, 6, 3, 9)
    assert r["accuracy"] == 1.0
    assert r["accuracy_all"] == pytest.approx(6 / 9)
    assert r["sections"]["family"] == {"accuracy": 1.0, "correct": 4, "answered": 4, "oov": 2}
    assert r["sections"]["gram1-x"]["oov"] == 1
    assert r["semantic"]["oov"] == 2 and r["syntactic"]["oov"] == 1


def test_restrict_vocab_limits_search_and_coverage():
    kv, qs = planted_kv(n_questions=1)
    (a, b, c, d), = qs
    ia, ib, ic, idd = (kv.key_to_index[w] for w in (a, b, c, d))
    # Move the exact answer to the last row; put a weaker answer ("near") in front.
    rng = np.random.default_rng(1)
    near = kv.vectors[idd] + 0.3 * np.linalg.norm(kv.vectors[idd]) * unit(rng.standard_normal(32))
    others = [i for i in range(len(kv)) if i not in (ia, ib, ic, idd)]
    words = [a, b, c, "near"] + [kv.index_to_key[i] for i in others] + [d]
    vecs = np.stack([kv.vectors[ia], kv.vectors[ib], kv.vectors[ic], near]
                    + [kv.vectors[i] for i in others] + [kv.vectors[idd]])
    kv2 = KeyedVectors(words, vecs)
    v = len(kv2)
    q_near = [("s", [(a, b, c, "near")])]
    q_exact = [("s", [(a, b, c, d)])]
    for method in METHODS:
        # Searching every row finds the exact answer, so "near" is wrong ...
        assert evaluate_analogies(kv2, q_near, restrict_vocab=v, method=method)["correct"] == 0
        assert evaluate_analogies(kv2, q_exact, restrict_vocab=v, method=method)["correct"] == 1
        # ... but with the last row cut off, "near" is the best remaining answer,
        r = evaluate_analogies(kv2, q_near, restrict_vocab=v - 1, method=method)
        assert (r["correct"], r["answered"], r["restrict_vocab"]) == (1, 1, v - 1)
        # and a question whose answer lies outside the restricted rows is OOV.
        r = evaluate_analogies(kv2, q_exact, restrict_vocab=v - 1, method=method)
        assert (r["correct"], r["answered"], r["oov"]) == (0, 0, 1)
        assert r["accuracy"] is None and r["accuracy_all"] == 0.0
    # a query word outside the restricted rows also makes the question OOV
    assert evaluate_analogies(kv2, q_near, restrict_vocab=3)["oov"] == 1


def test_semantic_syntactic_split(tmp_path):
    kv, qs = planted_kv(n_questions=8)
    wrong = [(a, b, c, "w59" if d != "w59" else "w58") for a, b, c, d in qs]
    text = (": capital-common\n" + "".join(" ".join(q).upper() + "\n" for q in qs[:3])
            + ": gram1-adverb\n" + "".join(" ".join(q) + "\n" for q in qs[3:5] + wrong[:1])
            + "\n: gram2-opposite\n" + "".join(" ".join(q) + "\n" for q in wrong[1:3])
            + ": family\n" + "".join(" ".join(q) + "\n" for q in qs[5:6] + wrong[3:4]))
    r = evaluate_analogies(kv, write(tmp_path, text), restrict_vocab=None)
    assert list(r["sections"]) == ["capital-common", "gram1-adverb", "gram2-opposite", "family"]
    assert r["semantic"] == {"accuracy": 4 / 5, "correct": 4, "answered": 5, "oov": 0}
    assert r["syntactic"] == {"accuracy": 2 / 5, "correct": 2, "answered": 5, "oov": 0}
    assert r["sections"]["gram2-opposite"] == {"accuracy": 0.0, "correct": 0, "answered": 2,
                                               "oov": 0}
    assert (r["correct"], r["answered"], r["accuracy"]) == (6, 10, 0.6)


def test_load_analogies_sections_and_lowercase(tmp_path):
    p = write(tmp_path, "# a comment of four words\n: Capital\nAthens Greece Baghdad Iraq\n\n"
              ": gram1-x\n  a b  c d \n# another comment, any length\n")
    assert load_analogies(p) == [("Capital", [("athens", "greece", "baghdad", "iraq")]),
                                 ("gram1-x", [("a", "b", "c", "d")])]


@pytest.mark.parametrize("text, where", [
    (": s\na b c d\na b c\n", ":3:"),
    ("a b c d\n", ":1:"),
    (": s\na b c d e\n", ":2:"),
    (":\na b c d\n", ":1:"),
    ("", "no analogy questions"),
])
def test_load_analogies_malformed(tmp_path, text, where):
    p = write(tmp_path, text)
    with pytest.raises(W2VError, match=where) as e:
        load_analogies(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_unreadable_files_raise_w2verror(tmp_path):
    with pytest.raises(W2VError, match="does not exist"):
        load_analogies(tmp_path / "missing.txt")
    with pytest.raises(W2VError, match="does not exist"):
        load_similarity(tmp_path / "missing.txt")
    with pytest.raises(W2VError, match="directory"):
        load_analogies(tmp_path)
    with pytest.raises(W2VError, match="path is empty"):  # not the current directory
        load_similarity("")
    p = tmp_path / "bin.txt"
    p.write_bytes(b": s\na b c d\n\xff\xfe x y\n")
    with pytest.raises(W2VError, match=r"bin.txt:3: not UTF-8"):
        load_analogies(p)


def test_bad_arguments():
    kv, qs = planted_kv()
    with pytest.raises(W2VError, match="method"):
        evaluate_analogies(kv, [("s", qs)], method="cosadd")
    with pytest.raises(W2VError, match="restrict_vocab"):
        evaluate_analogies(kv, [("s", qs)], restrict_vocab=0)
    with pytest.raises(W2VError, match="no bundled"):
        bundled_eval_path("simlex.txt")


def test_bundled_eval_sets_load():
    sections = load_analogies(bundled_eval_path("questions-words.txt"))
    assert len(sections) == 14 and sum(len(q) for _, q in sections) == 19544
    assert sum(not name.startswith("gram") for name, _ in sections) == 5
    assert sections[0][1][0] == ("athens", "greece", "baghdad", "iraq")
    pairs = load_similarity(bundled_eval_path("wordsim353"))
    assert len(pairs) == 353 and pairs[0] == ("love", "sex", 6.77)


# -------------------------------------------------------------------- similarity


def angled_kv(angles):
    """Word "base" along x, word f"w{i}" at angles[i] from it in the x-y plane."""
    words = ["base"] + [f"w{i}" for i in range(len(angles))]
    vecs = [[1.0, 0.0, 0.0]] + [[np.cos(t), np.sin(t), 0.0] for t in angles]
    return KeyedVectors(words, np.asarray(vecs))


def test_spearman_is_one_for_monotone_scores():
    angles = np.linspace(0.1, 3.0, 12)
    kv = angled_kv(angles)
    # Human score any decreasing function of the angle: cosine ranks agree exactly.
    pairs = [("base", f"w{i}", 10 - t ** 2) for i, t in enumerate(angles)]
    r = evaluate_similarity(kv, pairs)
    assert r["spearman"] == pytest.approx(1.0)
    assert r["pearson"] < 1.0  # nonlinear, so only the rank correlation is perfect
    assert (r["pairs"], r["covered"], r["oov"]) == (12, 12, 0)
    reversed_pairs = [(a, b, -s) for a, b, s in pairs]
    assert evaluate_similarity(kv, reversed_pairs)["spearman"] == pytest.approx(-1.0)


def constructed_pairs():
    rng = np.random.default_rng(3)
    angles = rng.uniform(0, np.pi, 30)
    human = np.round(10 * np.cos(angles) + rng.normal(0, 4, 30))  # rounded: ties
    pairs = [("base", f"w{i}", float(s)) for i, s in enumerate(human)]
    return angled_kv(angles), pairs, angles, human


def test_spearman_and_pearson_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    kv, pairs, angles, human = constructed_pairs()
    assert len(set(human)) < len(human)  # the construction has ties
    r = evaluate_similarity(kv, pairs + [("base", "unknown", 5.0), ("Unk", "w1", 3.0)])
    assert (r["pairs"], r["covered"], r["oov"]) == (32, 30, 2)
    assert r["spearman"] == pytest.approx(stats.spearmanr(human, np.cos(angles))[0], abs=1e-9)
    assert r["pearson"] == pytest.approx(stats.pearsonr(human, np.cos(angles))[0], abs=1e-6)


def test_spearman_without_scipy_matches_scipy(monkeypatch):
    stats = pytest.importorskip("scipy.stats")
    kv, pairs, angles, human = constructed_pairs()
    expected = stats.spearmanr(human, np.cos(angles))[0]
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # makes the import fail
    with pytest.raises(ImportError):
        from scipy.stats import spearmanr  # noqa: F401
    assert evaluate_similarity(kv, pairs)["spearman"] == pytest.approx(expected, abs=1e-9)
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    assert ev._rankdata(x).tolist() == stats.rankdata(x).tolist()


def test_similarity_too_few_pairs_is_none():
    kv = angled_kv([0.5])
    r = evaluate_similarity(kv, [("base", "w0", 3.0), ("base", "nope", 1.0)])
    assert (r["spearman"], r["pearson"], r["covered"], r["oov"]) == (None, None, 1, 1)


def test_load_similarity_header_comments_and_separators(tmp_path):
    text = ("# WordSim-like\n\n# Word 1\tWord 2\tscore\nWord 1\tWord 2\tHuman (mean)\r\n"
            "Love\tsex\t6.77\r\n# comment\ntiger cat   7.35\n\nbook\tpaper\t-1e-1\n")
    assert load_similarity(write(tmp_path, text)) == [
        ("love", "sex", 6.77), ("tiger", "cat", 7.35), ("book", "paper", -0.1)]
    # no header: the first line is data
    assert load_similarity(write(tmp_path, "a b 1\nc d 2\n")) == [("a", "b", 1.0), ("c", "d", 2.0)]


@pytest.mark.parametrize("text, where", [
    ("w1 w2 score\na b 1\nc d high\n", ":3:"),   # only the first line may be a header
    ("a b 1\nc d\n", ":2:"),
    ("a b 1 2\n", ":1:"),
    ("a b 1\nc d nan\n", ":2:"),
    ("a b 7.3O\nc d 2\n", ":1:"),  # a mistyped first score is not taken for a header
    ("a b nan\nc d 2\n", ":1:"),
    ("a b N/A\nc d 2\n", ":1:"),   # a missing first score neither
    ("# only comments\n\n", "no word pairs"),
])
def test_load_similarity_malformed(tmp_path, text, where):
    p = write(tmp_path, text)
    with pytest.raises(W2VError, match=where) as e:
        load_similarity(p)
    assert str(p) in str(e.value)


# ------------------------------------------------------------------- vs. gensim


@pytest.fixture(scope="module")
def gensim_setup():
    gensim_models = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(42)
    v, d = 200, 16
    vecs = rng.standard_normal((v, d)).astype(np.float32)
    words = [f"w{i}" for i in range(v)]
    # Half the questions get a noisy planted answer, so some are right and some wrong.
    questions = []
    for k in range(60):
        a, b, c, dd = rng.choice(v, 4, replace=False)
        if k % 2 == 0:
            vecs[dd] = (unit(vecs[b]) - unit(vecs[a]) + unit(vecs[c])
                        + 0.45 * rng.standard_normal(d))
        questions.append(tuple(words[i] for i in (a, b, c, dd)))
    g = gensim_models.KeyedVectors(vector_size=d)
    g.add_vectors(words, vecs)
    return g, KeyedVectors(words, vecs), questions


def test_3cosadd_matches_gensim(gensim_setup, tmp_path):
    g, kv, questions = gensim_setup
    text = (": capital-x\n" + "".join(" ".join(q) + "\n" for q in questions[:30])
            + ": gram1-y\n" + "".join(" ".join(q) + "\n" for q in questions[30:]))
    path = write(tmp_path, text)
    _, g_sections = g.evaluate_word_analogies(str(path), restrict_vocab=len(kv))
    g_correct = {s["section"]: len(s["correct"]) for s in g_sections}
    r = evaluate_analogies(kv, path, restrict_vocab=len(kv), method="3cosadd", batch=7)
    assert 0 < r["correct"] < r["answered"] == 60  # non-trivial
    assert r["correct"] == g_correct["Total accuracy"]
    assert r["sections"]["capital-x"]["correct"] == g_correct["capital-x"]
    assert r["sections"]["gram1-y"]["correct"] == g_correct["gram1-y"]


def test_3cosmul_predictions_match_gensim(gensim_setup, monkeypatch):
    g, kv, questions = gensim_setup
    # gensim's most_similar_cosmul guards the denominator with 1e-6, not 1e-3.
    monkeypatch.setattr(ev, "COSMUL_EPS", 1e-6)
    asked = []
    for a, b, c, _ in questions[:12]:
        top1 = g.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0]
        asked.append((a, b, c, top1))
    r = evaluate_analogies(kv, [("s", asked)], restrict_vocab=len(kv), method="3cosmul")
    assert (r["correct"], r["answered"]) == (12, 12)
    # and our 3CosAdd answer is gensim's most_similar top-1
    asked = [(a, b, c, g.most_similar(positive=[b, c], negative=[a], topn=1)[0][0])
             for a, b, c, _ in questions[:12]]
    r = evaluate_analogies(kv, [("s", asked)], restrict_vocab=len(kv), method="3cosadd")
    assert (r["correct"], r["answered"]) == (12, 12)


def test_case_folds_as_gensim_does_for_unicode():
    # gensim folds with upper(): "straße" and "STRASSE" are one word there, and here.
    kv = KeyedVectors(["STRASSE", "weg", "gasse", "pfad"], np.eye(4, dtype=np.float32) + 0.1)
    r = evaluate_similarity(kv, [("straße", "weg", 1.0), ("gasse", "pfad", 2.0),
                                 ("weg", "pfad", 3.0)])
    assert r["covered"] == 3
    res = evaluate_analogies(kv, [("s", [("straße", "weg", "gasse", "pfad")])])
    assert res["answered"] == 1
