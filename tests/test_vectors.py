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
    (tmp_path / "bad.txt").write_text("hello world\n")
    with pytest.raises(W2VError, match="bad header"):
        KeyedVectors.load_word2vec_format(tmp_path / "bad.txt")
    kv.save_word2vec_format(tmp_path / "v.bin")
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(W2VError, match="truncated"):
        KeyedVectors.load_word2vec_format(tmp_path / "cut.bin", binary=True)
