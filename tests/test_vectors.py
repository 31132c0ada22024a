"""KeyedVectors: word2vec formats readable by gensim, neighbours, errors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKV

from w2v_jax.errors import W2VError
from w2v_jax.vectors import KeyedVectors


@pytest.fixture
def kv():
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "über", "x"]
    return KeyedVectors(words, rng.standard_normal((6, 8)).astype(np.float32))


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_reads_what_we_write_and_we_read_back(tmp_path, kv, binary):
    p = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(p, binary=binary)
    g = GensimKV.load_word2vec_format(str(p), binary=binary)
    assert list(g.index_to_key) == kv.index_to_key
    np.testing.assert_allclose(g.vectors, kv.vectors, rtol=1e-5)
    back = KeyedVectors.load_word2vec_format(p)  # format guessed
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_allclose(back.vectors, kv.vectors, rtol=1e-5)


def test_we_read_gensim_binary(tmp_path, kv):
    g = GensimKV(8)
    g.add_vectors(kv.index_to_key, kv.vectors)
    g.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    ours = KeyedVectors.load_word2vec_format(tmp_path / "g.bin")
    np.testing.assert_array_equal(ours.vectors, kv.vectors)


def test_we_read_gzipped_files_and_gensim_words_with_tabs(tmp_path, kv):
    # GoogleNews-vectors-negative300.bin.gz is read as downloaded, as gensim reads it.
    g = GensimKV(8)
    g.add_vectors(["a\tb", "c\rd", *kv.index_to_key], np.vstack([kv.vectors[:2], kv.vectors]))
    g.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    import gzip

    (tmp_path / "g.bin.gz").write_bytes(gzip.compress((tmp_path / "g.bin").read_bytes()))
    for name in ("g.bin", "g.bin.gz"):
        ours = KeyedVectors.load_word2vec_format(tmp_path / name)
        assert ours.index_to_key == list(g.index_to_key)
        np.testing.assert_array_equal(ours.vectors, g.vectors)
    (tmp_path / "cut.gz").write_bytes((tmp_path / "g.bin.gz").read_bytes()[:40])
    with pytest.raises(W2VError, match="gzipped but cannot be decompressed"):
        KeyedVectors.load_word2vec_format(tmp_path / "cut.gz")


def test_most_similar_matches_gensim(kv):
    g = GensimKV(8)
    g.add_vectors(kv.index_to_key, kv.vectors)
    ours = kv.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
    theirs = g.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)
    assert abs(kv.similarity("king", "queen") - g.similarity("king", "queen")) < 1e-6


def test_unknown_word_and_bad_files(tmp_path, kv):
    with pytest.raises(W2VError, match="not in the vocabulary"):
        kv.most_similar("nope")
    with pytest.raises(KeyError) as e:  # gensim users catch KeyError
        kv["nope"]
    assert str(e.value) == f"word 'nope' is not in the vocabulary ({len(kv)} words)"
    (tmp_path / "bad.txt").write_text("hello world\n")
    with pytest.raises(W2VError, match="bad header"):
        KeyedVectors.load_word2vec_format(tmp_path / "bad.txt")
    kv.save_word2vec_format(tmp_path / "v.bin")
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(W2VError, match="truncated"):
        KeyedVectors.load_word2vec_format(tmp_path / "cut.bin", binary=True)


def test_a_malformed_text_file_is_an_error_not_garbage(tmp_path):
    """Rows of d + 1 numbers once passed for a binary file and loaded as nonsense words."""
    f = tmp_path / "extra.txt"
    f.write_text("3 2\nking 0.1 0.2 0.3\nqueen 0.2 0.1 0.3\nman 0.3 0.3 0.3\n")
    with pytest.raises(W2VError, match="truncated or malformed"):
        KeyedVectors.load_word2vec_format(f)
    f.write_text("2 2\nking 0.1 0.2\nqueen 0.2 0.1\nman 0.3 0.3\n")  # more rows than the header
    with pytest.raises(W2VError, match="follow the 2 entries"):
        KeyedVectors.load_word2vec_format(f)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tiny_binary_files_are_not_taken_for_text(tmp_path, d):
    """At d = 1 or 2 a float's 4 bytes can look like d ASCII tokens; such files were read
    as text and rejected (115 of 2,000 random files at d = 1)."""
    rng = np.random.default_rng(d)
    for i in range(300):
        kv = KeyedVectors([f"w{j}" for j in range(3)], rng.normal(size=(3, d)).astype(np.float32))
        kv.save_word2vec_format(tmp_path / "v.bin", binary=True)
        back = KeyedVectors.load_word2vec_format(tmp_path / "v.bin")
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_array_equal(back.vectors, kv.vectors)


def test_a_text_file_without_a_final_newline(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("2 2\nking 0.1 0.2\nqueen 0.2 0.1")
    kv = KeyedVectors.load_word2vec_format(f)
    assert kv.index_to_key == ["king", "queen"]
    np.testing.assert_allclose(kv["queen"], [0.2, 0.1])


@pytest.mark.parametrize("word", ["two words", "", "line\nbreak", "tab\there"])
def test_words_the_format_cannot_hold_are_refused(tmp_path, word):
    kv = KeyedVectors(["ok", word], np.ones((2, 3), np.float32))
    for binary in (True, False):
        with pytest.raises(W2VError, match="cannot be written in the word2vec format"):
            kv.save_word2vec_format(tmp_path / "v", binary=binary)
    assert not (tmp_path / "v").exists()


def test_most_similar_takes_a_single_negative_word(kv):
    assert kv.most_similar("king", negative="man") == kv.most_similar(["king"], negative=["man"])


def test_most_similar_topn_none_gives_every_other_word_and_a_bad_topn_is_named(kv):
    every = kv.most_similar("king", topn=None)
    assert len(every) == len(kv) - 1 and "king" not in {w for w, _ in every}
    assert [s for _, s in every] == sorted((s for _, s in every), reverse=True)
    assert every[:3] == kv.most_similar("king", topn=3)
    for bad in (2.5, "3", True):
        with pytest.raises(W2VError, match="topn must be a whole number or None"):
            kv.most_similar("king", topn=bad)


@pytest.mark.parametrize("text", ["2 2\na nan 2\nb 3 4\n", "2 2\na 1e39 2\nb 3 4\n", ""])
def test_vectors_files_with_nan_inf_or_nothing_are_refused_in_one_line(tmp_path, text):
    import warnings

    (tmp_path / "v.txt").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way
        with pytest.raises(W2VError) as e:
            KeyedVectors.load_word2vec_format(tmp_path / "v.txt")
    msg = str(e.value)
    assert "\n" not in msg
    assert ("is empty" in msg) if not text else ("vector of 'a' (entry 1) holds NaN or inf" in msg)


def test_a_vectors_file_with_a_word_twice_keeps_the_first_as_gensim(tmp_path):
    (tmp_path / "dup.txt").write_text("3 2\na 1 2\nb 3 4\na 1 2.1\n")
    with pytest.warns(UserWarning, match=r"1 repeated word\(s\), e.g. 'a'; kept the first"):
        kv = KeyedVectors.load_word2vec_format(tmp_path / "dup.txt")
    assert kv.index_to_key == ["a", "b"] and kv["a"].tolist() == [1.0, 2.0]
    assert [w for w, _ in kv.most_similar("a")] == ["b"]  # not its own twin


def test_vectors_are_read_only_and_lists_index_rows(tmp_path):
    # Writable rows would leave the cached unit vectors stale (gensim recomputes them).
    mine = np.arange(12, dtype=np.float32).reshape(3, 4)
    kv = KeyedVectors(["a", "b", "c"], mine)
    with pytest.raises(ValueError, match="read-only"):
        kv.vectors[0] = 1.0
    mine[0] = 5.0  # the caller's own array stays writable
    kv.save_word2vec_format(tmp_path / "v.bin")
    back = KeyedVectors.load_word2vec_format(tmp_path / "v.bin")
    assert not back.vectors.flags.writeable
    np.testing.assert_array_equal(back[["c", "a"]], back.vectors[[2, 0]])
    assert back["b"].shape == (4,)


def test_gensim_query_forms_match_gensim(kv, tmp_path):
    kv.save_word2vec_format(tmp_path / "v.bin")
    g = GensimKV.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)

    def same(ours, theirs):
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)

    same(kv.most_similar([("king", 2.0), "woman"], negative=[("man", 0.5)], topn=4),
         g.most_similar([("king", 2.0), "woman"], negative=[("man", 0.5)], topn=4))
    vec = kv["queen"] * 3 - kv["x"]
    same(kv.most_similar([vec, "man"], topn=3), g.most_similar([vec, "man"], topn=3))
    same(kv.similar_by_vector(vec, topn=6), g.similar_by_vector(vec, topn=6))
    same(kv.similar_by_word("king", topn=2), g.similar_by_word("king", topn=2))
    same(kv.most_similar("king", restrict_vocab=4), g.most_similar("king", restrict_vocab=4))
    assert kv.get_index("man") == g.get_index("man") == 2
    np.testing.assert_allclose(kv.get_vector("man", norm=True), g.get_vector("man", norm=True),
                               rtol=1e-5)
    assert kv.distance("king", "man") == pytest.approx(g.distance("king", "man"), rel=1e-5)
    assert kv.n_similarity(["king", "man"], ["queen"]) == pytest.approx(
        g.n_similarity(["king", "man"], ["queen"]), rel=1e-5)
    words = ["king", "queen", "man", "x"]
    assert kv.doesnt_match(words) == g.doesnt_match(words)
    same(kv.most_similar_cosmul(["king", "woman"], ["man"], topn=3),
         g.most_similar_cosmul(["king", "woman"], ["man"], topn=3))
    unit_vec = vec / np.linalg.norm(vec)
    same(kv.most_similar_cosmul([unit_vec, "x"], "man", topn=None),
         g.most_similar_cosmul([unit_vec, "x"], "man", topn=len(kv)))
    same(kv.most_similar_cosmul("queen", topn=2), g.most_similar_cosmul("queen", topn=2))
    with pytest.raises(W2VError, match="not \\(word, weight\\) pairs"):
        kv.most_similar_cosmul([("king", 2.0)])
    with pytest.raises(W2VError, match=r"shape \(8,\)"):
        kv.most_similar([np.ones(3)])
