"""Interop: export W_in / W_out / W_in + W_out for gensim, import gensim's vectors
(for evaluation and as initialisation), and Flax embedding layers from trained vectors."""

import jax.numpy as jnp
import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKV

from w2v_jax.checkpoint import CHECKPOINTS, restore_latest
from w2v_jax.cli import main
from w2v_jax.config import Config
from w2v_jax.errors import W2VError
from w2v_jax.interop import linen_params, nnx_embed, run_vectors
from w2v_jax.run import initial_vectors
from w2v_jax.vectors import KeyedVectors
from w2v_jax.vocab import Vocab

FLAGS = ["--vector-size", "12", "--window", "3", "--min-count", "1", "--sample", "0",
         "--epochs", "2", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import planted_topics_text

    d = tmp_path_factory.mktemp("interop")
    (d / "c.txt").write_text(planted_topics_text())
    assert main(["train", "--corpus", str(d / "c.txt"), "--out", str(d / "run"), *FLAGS]) == 0
    return d / "run"


@pytest.mark.parametrize("which", ["in", "out", "sum"])
@pytest.mark.parametrize("text", [False, True])
def test_export_round_trips_through_gensim(run, tmp_path, which, text):
    path = tmp_path / ("v.txt" if text else "v.bin")
    args = ["export", str(run), str(path), "--which", which] + (["--text"] if text else [])
    assert main(args) == 0
    ck = restore_latest(run / CHECKPOINTS)
    want = {"in": ck.w_in, "out": ck.w_out, "sum": ck.w_in + ck.w_out}[which]
    g = GensimKV.load_word2vec_format(str(path), binary=not text)
    assert list(g.index_to_key) == ck.meta["vocab"]["words"]
    np.testing.assert_array_equal(g.vectors, want)  # text uses 9 digits: exact for float32
    ours = run_vectors(run, which)
    for word in ("a0", "b7"):
        assert [w for w, _ in ours.most_similar(word, topn=5)] == \
               [w for w, _ in g.most_similar(word, topn=5)]


def test_vectors_bin_is_the_final_w_in(run):
    ck = restore_latest(run / CHECKPOINTS)
    assert ck.position.epoch == 2  # the final checkpoint
    np.testing.assert_array_equal(run_vectors(run, "in").vectors, ck.w_in)


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_saved_vectors_import_and_evaluate(tmp_path, binary, capsys):
    rng = np.random.default_rng(1)
    words = ["king", "queen", "man", "woman", "paris", "france"]
    g = GensimKV(10)
    g.add_vectors(words, rng.standard_normal((6, 10)).astype(np.float32))
    path = tmp_path / ("g.bin" if binary else "g.txt")
    g.save_word2vec_format(str(path), binary=binary)
    ours = KeyedVectors.load_word2vec_format(path)
    assert ours.index_to_key == words
    np.testing.assert_allclose(ours.vectors, g.vectors, rtol=1e-6)
    assert main(["similar", str(path), "king", "--topn", "2"]) == 0
    got = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert got == [w for w, _ in g.most_similar("king", topn=2)]


def test_init_vectors_sets_known_rows_only(tmp_path):
    vocab = Vocab(("the", "king", "zzz"), np.array([5, 3, 1]))
    g = GensimKV(4)
    g.add_vectors(["king", "the", "other"], np.arange(12, dtype=np.float32).reshape(3, 4))
    g.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    msgs = []
    state = initial_vectors(tmp_path / "g.bin", vocab, Config(vector_size=4), msgs.append)
    w_in = np.asarray(state.w_in)
    np.testing.assert_array_equal(w_in[0], g["the"])
    np.testing.assert_array_equal(w_in[1], g["king"])
    assert 0 < np.abs(w_in[2]).max() <= Config().init_scale / 4  # the random init
    assert "2 of 3" in msgs[0]
    with pytest.raises(W2VError, match="dimension 4 but --vector-size is 8"):
        initial_vectors(tmp_path / "g.bin", vocab, Config(vector_size=8))


def test_train_from_init_vectors(run, tmp_path):
    from conftest import planted_topics_text

    (tmp_path / "c.txt").write_text(planted_topics_text(seed=5))
    flags = [f if f != "2" else "1" for f in FLAGS]  # one epoch
    assert main(["train", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"),
                 "--init-vectors", str(run / "vectors.bin"), *flags]) == 0
    assert len(KeyedVectors.load_word2vec_format(tmp_path / "r" / "vectors.bin")) == 40


def test_export_needs_a_checkpoint_for_w_out(tmp_path, capsys):
    from conftest import planted_topics_text

    (tmp_path / "c.txt").write_text(planted_topics_text())
    assert main(["train", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"),
                 "--no-checkpoints", *FLAGS]) == 0
    assert not (tmp_path / "r" / CHECKPOINTS).exists()
    assert main(["export", str(tmp_path / "r"), str(tmp_path / "o.bin"), "--which", "out"]) == 2
    assert "--no-checkpoints" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "r"), str(tmp_path / "i.bin")]) == 0


def test_flax_embedding_layers_hold_the_vectors(run):
    from flax import linen, nnx

    kv = run_vectors(run)
    ids = jnp.asarray([kv.index("a3"), kv.index("b11"), 0])
    layer = nnx_embed(kv)
    assert isinstance(layer, nnx.Embed)
    np.testing.assert_array_equal(np.asarray(layer(ids)), kv.vectors[np.asarray(ids)])
    out = linen.Embed(len(kv), kv.vector_size).apply(linen_params(kv), ids)
    np.testing.assert_array_equal(np.asarray(out), kv.vectors[np.asarray(ids)])


def test_export_refuses_w_out_of_a_hierarchical_softmax_run(tmp_path, capsys):
    """Its W_out rows are Huffman nodes; written under word names they meant nothing."""
    from conftest import planted_topics_text

    (tmp_path / "c.txt").write_text(planted_topics_text())
    assert main(["train", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"),
                 "--objective", "hs", *FLAGS]) == 0
    for which in ("out", "sum"):
        assert main(["export", str(tmp_path / "r"), str(tmp_path / "o.bin"), "--which", which]) == 2
        assert "hierarchical softmax" in capsys.readouterr().err
    assert not (tmp_path / "o.bin").exists()
    assert main(["export", str(tmp_path / "r"), str(tmp_path / "i.bin")]) == 0


def test_export_refuses_to_overwrite_the_runs_own_vectors(run, capsys):
    before = (run / "vectors.bin").read_bytes()
    assert main(["export", str(run), str(run / "vectors.bin"), "--which", "out"]) == 2
    assert "the run's own vectors file" in capsys.readouterr().err
    assert (run / "vectors.bin").read_bytes() == before


def test_export_of_w_out_refuses_an_older_checkpoint_than_the_runs_end(run, tmp_path, capsys):
    import shutil

    from w2v_jax.checkpoint import checkpoint_steps

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    steps = checkpoint_steps(copy / CHECKPOINTS)
    assert len(steps) >= 2
    shutil.rmtree(copy / CHECKPOINTS / str(steps[0]) / "state")  # the final one, unreadable
    capsys.readouterr()
    assert main(["export", str(copy), str(tmp_path / "o.bin"), "--which", "out"]) == 2
    err = capsys.readouterr().err
    assert "the checkpoint at the end of" in err and "only --which in can be exported" in err
    assert not (tmp_path / "o.bin").exists()
    for step in steps[1:]:
        shutil.rmtree(copy / CHECKPOINTS / str(step) / "state")
    assert main(["export", str(copy), str(tmp_path / "o.bin"), "--which", "sum"]) == 2
    assert "reads back intact, so its W_out is lost" in capsys.readouterr().err
    assert main(["export", str(copy), str(tmp_path / "i.bin")]) == 0  # W_in: vectors.bin
